//! The host as a phase sees it: the `cluster`, `placement`, `clock` and `log`
//! imports of the `recovery-phase` world, behind one trait.
//!
//! Inside a component the trait is implemented by the WIT imports (see
//! [`export_phase!`](crate::export_phase)); natively, tests and the baseline
//! benchmark implement it directly.

use crate::types::{
    Assignment, ClusterError, Layout, LockInfo, LogCopy, Node, PlacementError, PlacementRequest, ServiceDescriptor, ServiceKind, ShardTag,
    Version,
};

/// How important a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Very detailed diagnostics.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something the plugin could not handle.
    Error,
}

/// Everything a phase may ask of the host. Each method mirrors one function
/// of the WIT interfaces `cluster`, `placement`, `clock` and `log`.
pub trait Host {
    /// The service directory.
    fn services(&mut self) -> Vec<ServiceDescriptor>;
    /// Every known node.
    fn nodes(&mut self) -> Vec<Node>;
    /// Locks services at this attempt's epoch; one result per id, in order.
    fn lock(&mut self, ids: &[String]) -> Vec<Result<LockInfo, ClusterError>>;
    /// Creates a worker of `kind` on `node`; the host locks it before returning.
    fn create_worker(&mut self, node: &str, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError>;
    /// Creates workers, all at once; one result per `(node, kind)`, in order.
    fn create_workers(&mut self, requests: &[(String, ServiceKind)]) -> Vec<Result<ServiceDescriptor, ClusterError>>;
    /// Makes logs copy ranges, all at once, one copy per target; one
    /// result per copy, in order.
    fn recover_logs(&mut self, copies: &[LogCopy]) -> Vec<Result<(), ClusterError>>;
    /// Makes log `target` copy `[first, last]` of `tags` from `sources`.
    fn recover_log(
        &mut self,
        target: &str,
        sources: &[String],
        tags: &[ShardTag],
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError>;
    /// The version each storage replica was last seen durable at by the
    /// host; one answer per id, in order, `None` for a replica it has not
    /// seen serve.
    fn known_durable(&mut self, ids: &[String]) -> Result<Vec<Option<Version>>, ClusterError>;
    /// Starts a stateless role on `node`.
    fn start_role(&mut self, node: &str, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError>;
    /// Hands the host the new layout, which checks it (I6) and keeps it for
    /// `unlock` and `persist_layout`: the layout crosses the boundary once.
    fn stage_layout(&mut self, layout: &Layout) -> Result<(), ClusterError>;
    /// Unlocks services, handing them the staged layout; one result per id.
    fn unlock(&mut self, ids: &[String]) -> Vec<Result<(), ClusterError>>;
    /// Persists the staged layout, fenced by epoch.
    fn persist_layout(&mut self) -> Result<(), ClusterError>;
    /// Asks the active placement policy.
    fn place(&mut self, request: &PlacementRequest) -> Result<Vec<Assignment>, PlacementError>;
    /// Host time in milliseconds.
    fn now_ms(&mut self) -> u64;
    /// Waits `ms` milliseconds of host time.
    fn sleep_ms(&mut self, ms: u64);
    /// Writes a structured log line into the host's tracing.
    fn log(&mut self, level: LogLevel, message: &str, fields: &[(String, String)]);
}
