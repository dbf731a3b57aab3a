//! The host as the adversary sees it: the `cluster`, `placement` and
//! `clock` imports, as `async` calls. A component answers each at once
//! ([`SyncHost`]); the simulator runs the same adversary natively against
//! the guarded host services, whose calls wait on its virtual network.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use ratchet_guest::Host;
use ratchet_guest::types::{
    Assignment, ClusterError, Layout, LockInfo, LogCopy, Node, PlacementError, PlacementRequest, ServiceDescriptor, ServiceKind, ShardTag,
    Version,
};

/// What the adversary may call: everything a phase imports.
#[allow(async_fn_in_trait)]
pub trait AdversaryHost {
    /// `cluster.services`.
    async fn services(&mut self) -> Vec<ServiceDescriptor>;
    /// `cluster.nodes`.
    async fn nodes(&mut self) -> Vec<Node>;
    /// `cluster.lock`.
    async fn lock(&mut self, ids: Vec<String>) -> Vec<Result<LockInfo, ClusterError>>;
    /// `cluster.create-worker`.
    async fn create_worker(&mut self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError>;
    /// `cluster.create-workers`.
    async fn create_workers(&mut self, requests: Vec<(String, ServiceKind)>) -> Vec<Result<ServiceDescriptor, ClusterError>>;
    /// `cluster.known-durable`.
    async fn known_durable(&mut self, ids: Vec<String>) -> Result<Vec<Option<Version>>, ClusterError>;
    /// `cluster.recover-logs`.
    async fn recover_logs(&mut self, copies: Vec<LogCopy>) -> Vec<Result<(), ClusterError>>;
    /// `cluster.recover-log`.
    async fn recover_log(
        &mut self,
        target: String,
        sources: Vec<String>,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError>;
    /// `cluster.start-role`.
    async fn start_role(&mut self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError>;
    /// `cluster.stage-layout`.
    async fn stage_layout(&mut self, layout: Layout) -> Result<(), ClusterError>;
    /// `cluster.unlock`.
    async fn unlock(&mut self, ids: Vec<String>) -> Vec<Result<(), ClusterError>>;
    /// `cluster.persist-layout`.
    async fn persist_layout(&mut self) -> Result<(), ClusterError>;
    /// `placement.place`.
    async fn place(&mut self, request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError>;
    /// `clock.now-ms`.
    fn now_ms(&mut self) -> u64;
    /// `clock.sleep-ms`.
    async fn sleep_ms(&mut self, ms: u64);
}

/// The SDK's host (a component's imports), whose calls return at once.
pub struct SyncHost<'a>(pub &'a mut dyn Host);

impl AdversaryHost for SyncHost<'_> {
    async fn services(&mut self) -> Vec<ServiceDescriptor> {
        self.0.services()
    }
    async fn nodes(&mut self) -> Vec<Node> {
        self.0.nodes()
    }
    async fn lock(&mut self, ids: Vec<String>) -> Vec<Result<LockInfo, ClusterError>> {
        self.0.lock(&ids)
    }
    async fn create_worker(&mut self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        self.0.create_worker(&node, kind)
    }
    async fn create_workers(&mut self, requests: Vec<(String, ServiceKind)>) -> Vec<Result<ServiceDescriptor, ClusterError>> {
        self.0.create_workers(&requests)
    }
    async fn recover_logs(&mut self, copies: Vec<LogCopy>) -> Vec<Result<(), ClusterError>> {
        self.0.recover_logs(&copies)
    }
    async fn known_durable(&mut self, ids: Vec<String>) -> Result<Vec<Option<Version>>, ClusterError> {
        self.0.known_durable(&ids)
    }
    async fn recover_log(
        &mut self,
        target: String,
        sources: Vec<String>,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError> {
        self.0.recover_log(&target, &sources, &tags, first, last)
    }
    async fn start_role(&mut self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        self.0.start_role(&node, kind)
    }
    async fn stage_layout(&mut self, layout: Layout) -> Result<(), ClusterError> {
        self.0.stage_layout(&layout)
    }
    async fn unlock(&mut self, ids: Vec<String>) -> Vec<Result<(), ClusterError>> {
        self.0.unlock(&ids)
    }
    async fn persist_layout(&mut self) -> Result<(), ClusterError> {
        self.0.persist_layout()
    }
    async fn place(&mut self, request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        self.0.place(&request)
    }
    fn now_ms(&mut self) -> u64 {
        self.0.now_ms()
    }
    async fn sleep_ms(&mut self, ms: u64) {
        self.0.sleep_ms(ms)
    }
}

/// Runs a future whose every wait is already over, as the adversary's on
/// a [`SyncHost`] is: it completes on its first poll.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}
