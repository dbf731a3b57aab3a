//! Helpers shared by the host's integration tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::OnceLock;

use ratchet::bindings::types::{AttemptState, RecoveryConfig};
use ratchet::runtime::{Detached, EngineConfig, HostServices, Runtime, RuntimeConfig};

/// One runtime for the whole test binary, as in production: guests do not
/// meter fuel.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(|| Arc::new(Runtime::new(RuntimeConfig::default()).expect("runtime starts"))).clone()
}

/// One runtime whose guests meter fuel, as `ratchet experiment` runs them.
pub fn fuel_runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let engine = EngineConfig { fuel: true, ..EngineConfig::default() };
            Arc::new(Runtime::new(RuntimeConfig { engine, ..RuntimeConfig::default() }).expect("runtime starts"))
        })
        .clone()
}

pub fn detached() -> Arc<dyn HostServices> {
    Arc::new(Detached::default())
}

/// An attempt state for a new cluster at epoch 1.
pub fn new_cluster_state() -> AttemptState {
    AttemptState::new(1, 1, RecoveryConfig::default(), None)
}

/// A layout of `epoch` that names nothing.
pub fn empty_layout(epoch: u64) -> ratchet::bindings::types::Layout {
    ratchet::bindings::types::Layout {
        epoch,
        sequencer: None,
        commit_proxies: vec![],
        resolvers: vec![],
        logs: vec![],
        storage_teams: vec![],
        services: vec![],
        recovery_version: 0,
    }
}

/// A state that tells the adversarial fixture what to do.
pub fn command(cmd: &str) -> AttemptState {
    let mut state = new_cluster_state();
    state.unreachable = vec![cmd.to_string()];
    state
}

pub fn adversarial_bytes() -> Vec<u8> {
    std::fs::read(ratchet::components::fixtures::ADVERSARIAL).expect("fixture built by build.rs")
}

pub fn wrong_world_bytes() -> Vec<u8> {
    std::fs::read(ratchet::components::fixtures::WRONG_WORLD).expect("fixture built by build.rs")
}

/// Services whose `sleep_ms` parks until the test releases it, so a test can
/// hold a call in flight for as long as it needs. Everything else behaves as
/// [`Detached`].
#[derive(Default)]
pub struct Gate {
    inner: Detached,
    pub entered: tokio::sync::Notify,
    pub release: tokio::sync::Notify,
}

use ratchet::bindings::types::{
    Assignment, ClusterError, Layout, LockInfo, Node, PlacementError, PlacementRequest,
    ServiceDescriptor, ServiceKind, ShardTag, Version,
};

#[async_trait::async_trait]
impl HostServices for Gate {
    async fn services(&self) -> Vec<ServiceDescriptor> {
        self.inner.services().await
    }
    async fn nodes(&self) -> Vec<Node> {
        self.inner.nodes().await
    }
    async fn lock(&self, ids: Vec<String>) -> Vec<Result<LockInfo, ClusterError>> {
        self.inner.lock(ids).await
    }
    async fn create_worker(&self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        self.inner.create_worker(node, kind).await
    }
    async fn recover_log(
        &self,
        target: String,
        sources: Vec<String>,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError> {
        self.inner.recover_log(target, sources, tags, first, last).await
    }
    async fn start_role(&self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        self.inner.start_role(node, kind).await
    }
    async fn stage_layout(&self, layout: Layout) -> Result<(), ClusterError> {
        self.inner.stage_layout(layout).await
    }
    async fn unlock(&self, ids: Vec<String>) -> Vec<Result<(), ClusterError>> {
        self.inner.unlock(ids).await
    }
    async fn persist_layout(&self) -> Result<(), ClusterError> {
        self.inner.persist_layout().await
    }
    async fn place(&self, request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        self.inner.place(request).await
    }
    fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }
    async fn sleep_ms(&self, _ms: u64) {
        self.entered.notify_one();
        self.release.notified().await;
    }
}
