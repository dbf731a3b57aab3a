//! What a plugin can reach: the cluster, the placement policy and host time.
//!
//! The runtime hands every phase call an [`HostServices`] and routes the
//! guest's `cluster`, `placement` and `clock` imports to it. The director
//! supplies one bound to its attempt, behind the invariant guard; tools that
//! only inspect or benchmark plugins use [`Detached`].

use std::time::{Duration, Instant};

use crate::bindings::types::{
    Assignment, ClusterError, Layout, LockInfo, Node, PlacementError, PlacementRequest,
    ServiceDescriptor, ServiceKind, ShardTag, Version,
};

/// The host's side of the `cluster`, `placement` and `clock` imports.
#[async_trait::async_trait]
pub trait HostServices: Send + Sync {
    /// The service directory.
    async fn services(&self) -> Vec<ServiceDescriptor>;
    /// Every known node.
    async fn nodes(&self) -> Vec<Node>;
    /// Locks services at the attempt's epoch; one result per id, in order.
    async fn lock(&self, ids: Vec<String>) -> Vec<Result<LockInfo, ClusterError>>;
    /// Creates and locks a worker of `kind` on `node`.
    async fn create_worker(&self, node: String, kind: ServiceKind)
    -> Result<ServiceDescriptor, ClusterError>;
    /// Makes log `target` copy `[first, last]` of `tags` from `sources`.
    async fn recover_log(
        &self,
        target: String,
        sources: Vec<String>,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError>;
    /// Starts a stateless role on `node`.
    async fn start_role(&self, node: String, kind: ServiceKind)
    -> Result<ServiceDescriptor, ClusterError>;
    /// Checks the new layout and keeps it for `unlock` and `persist_layout`.
    async fn stage_layout(&self, layout: Layout) -> Result<(), ClusterError>;
    /// Unlocks services, handing them the staged layout; one result per id.
    async fn unlock(&self, ids: Vec<String>) -> Vec<Result<(), ClusterError>>;
    /// Persists the staged layout, fenced by epoch.
    async fn persist_layout(&self) -> Result<(), ClusterError>;
    /// Asks the active placement policy.
    async fn place(&self, request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError>;
    /// Host time in milliseconds.
    fn now_ms(&self) -> u64;
    /// Waits `ms` milliseconds of host time.
    async fn sleep_ms(&self, ms: u64);
}

/// Services for a plugin that is not part of a recovery: every cluster call
/// fails with `unreachable`, placement is unavailable, and time is real.
#[derive(Debug)]
pub struct Detached {
    origin: Instant,
}

impl Default for Detached {
    fn default() -> Self {
        Detached { origin: Instant::now() }
    }
}

const DETACHED: &str = "no cluster is attached to this call";

fn detached<T>() -> Result<T, ClusterError> {
    Err(ClusterError::Unreachable(DETACHED.into()))
}

#[async_trait::async_trait]
impl HostServices for Detached {
    async fn services(&self) -> Vec<ServiceDescriptor> {
        Vec::new()
    }
    async fn nodes(&self) -> Vec<Node> {
        Vec::new()
    }
    async fn lock(&self, ids: Vec<String>) -> Vec<Result<LockInfo, ClusterError>> {
        ids.iter().map(|_| detached()).collect()
    }
    async fn create_worker(&self, _: String, _: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        detached()
    }
    async fn recover_log(
        &self,
        _: String,
        _: Vec<String>,
        _: Vec<ShardTag>,
        _: Version,
        _: Version,
    ) -> Result<(), ClusterError> {
        detached()
    }
    async fn start_role(&self, _: String, _: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        detached()
    }
    async fn stage_layout(&self, _: Layout) -> Result<(), ClusterError> {
        detached()
    }
    async fn unlock(&self, ids: Vec<String>) -> Vec<Result<(), ClusterError>> {
        ids.iter().map(|_| detached()).collect()
    }
    async fn persist_layout(&self) -> Result<(), ClusterError> {
        detached()
    }
    async fn place(&self, _: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        Err(PlacementError {
            vacancy: 0,
            constraint: "unavailable".into(),
            message: DETACHED.into(),
        })
    }
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
