//! Helpers shared by the host's integration tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::OnceLock;

use ratchet::bindings::types::{AttemptState, RecoveryConfig};
use ratchet::director::{Director, DirectorOptions, RecoveryReport};
use ratchet::runtime::{Detached, EngineConfig, HostCall, HostReply, PluginHost, Runtime, RuntimeConfig};

/// The layout a recovery completed with; panics with every attempt's
/// outcome when it did not complete.
pub fn completed(report: &RecoveryReport) -> ratchet::bindings::types::Layout {
    report.layout().cloned().unwrap_or_else(|| {
        let outcomes: Vec<_> = report.attempts.iter().map(|a| a.outcome.to_string()).collect();
        panic!("recovery did not complete: {outcomes:?}")
    })
}

/// The node hosting service `id` of `layout`.
pub fn node_of(layout: &ratchet::bindings::types::Layout, id: &str) -> String {
    layout.services.iter().find(|s| s.id == id).expect("the layout names it").node.clone()
}

/// Commits `count` single-key writes from `start` through `cluster`, pumping
/// storage every `pump_every`, and returns the acknowledged ones.
pub async fn commit_writes(
    cluster: &ratchet::cluster::RemoteCluster,
    start: usize,
    count: usize,
    pump_every: usize,
) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    for i in start..start + count {
        let key = format!("{:08x}-{i}", (i as u32).wrapping_mul(2_654_435_761));
        let value = format!("value-{i}");
        if cluster.commit(&[(key.clone(), value.clone())]).await.is_ok() {
            acked.push((key, value));
        }
        if i % pump_every == 0 {
            cluster.pump().await;
        }
    }
    acked
}

/// The keys of `acked` that `cluster` does not read back with their value,
/// after letting storage catch up.
pub async fn unreadable(cluster: &ratchet::cluster::RemoteCluster, acked: &[(String, String)]) -> Vec<String> {
    cluster.pump().await;
    let mut missing = Vec::new();
    for (key, value) in acked {
        if cluster.read(key).await.ok().flatten().as_deref() != Some(value.as_str()) {
            missing.push(key.clone());
        }
    }
    missing
}

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

pub fn detached() -> Arc<dyn PluginHost> {
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

/// A host whose `sleep-ms` parks until the test releases it, so a test can
/// hold a call in flight for as long as it needs. Every other call is
/// answered as [`Detached`] answers it.
#[derive(Default)]
pub struct Gate {
    inner: Detached,
    pub entered: tokio::sync::Notify,
    pub release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl PluginHost for Gate {
    async fn answer(&self, call: HostCall) -> HostReply {
        if let HostCall::Sleep { .. } = call {
            self.entered.notify_one();
            self.release.notified().await;
            return HostReply::Slept;
        }
        self.inner.answer(call).await
    }
}

/// An in-process cluster of foremen on 9 nodes in 3 zones, a store in
/// memory and the default components: what the recovery and guard tests
/// recover.
pub struct Harness {
    pub local: Arc<ratchet::cluster::LocalCluster>,
    pub cluster: Arc<ratchet::cluster::RemoteCluster>,
    pub store: Arc<ratchet::store::MemoryStore>,
    pub registry: Arc<ratchet::registry::Registry>,
}

impl Default for Harness {
    /// Nodes of room for 10 workers each.
    fn default() -> Self {
        Harness::with_capacity(10)
    }
}

impl Harness {
    /// Nodes of room for 10 workers each.
    pub fn new() -> Self {
        Harness::default()
    }

    /// Nodes of room for `capacity` workers each.
    pub fn with_capacity(capacity: u32) -> Self {
        let local = Arc::new(ratchet::cluster::LocalCluster::with_zones(9, 3, capacity).unwrap());
        Harness {
            cluster: local.client(),
            local,
            store: Arc::new(ratchet::store::MemoryStore::default()),
            registry: Arc::new(ratchet::registry::Registry::with_defaults(runtime()).unwrap()),
        }
    }

    /// A director of the harness's cluster, with `plugins`.
    pub fn director_with(&self, plugins: Arc<dyn ratchet::registry::Plugins>, options: DirectorOptions) -> Director {
        Director::new(plugins, self.cluster.clone(), self.store.clone(), RecoveryConfig::default(), options)
    }

    /// A director of the harness's cluster, with its registry.
    pub fn director(&self, options: DirectorOptions) -> Director {
        self.director_with(self.registry.clone(), options)
    }

    /// Few attempts, short backoffs.
    pub fn quick() -> DirectorOptions {
        DirectorOptions { max_attempts: 3, initial_backoff: std::time::Duration::from_millis(1), ..DirectorOptions::default() }
    }

    /// A recovery with the registry.
    pub async fn recover(&self) -> RecoveryReport {
        self.director(Self::quick()).recover().await.unwrap()
    }

    /// A recovery with `plugins`.
    pub async fn recover_with(&self, plugins: Arc<dyn ratchet::registry::Plugins>) -> RecoveryReport {
        self.director_with(plugins, Self::quick()).recover().await.unwrap()
    }

    /// Boots a new cluster at epoch 1.
    pub async fn boot(&self) -> ratchet::bindings::types::Layout {
        let report = self.recover().await;
        report.layout().cloned().unwrap_or_else(|| panic!("boot failed: {:?}", report.last().map(|a| &a.outcome)))
    }

    /// Commits `count` single-key writes from `start`, pumping storage every
    /// 50, and returns the acknowledged ones.
    pub async fn write(&self, start: usize, count: usize) -> Vec<(String, String)> {
        commit_writes(&self.cluster, start, count, 50).await
    }

    /// Acknowledged writes that cannot be read back.
    pub async fn lost(&self, acked: &[(String, String)]) -> usize {
        unreadable(&self.cluster, acked).await.len()
    }

    /// Crashes the node hosting `id` in `layout`, with everything on it.
    /// Returns the node.
    pub fn crash_node_of(&self, layout: &ratchet::bindings::types::Layout, id: &str) -> String {
        let node = node_of(layout, id);
        self.local.crash(&node);
        node
    }

    /// The services hosted by the nodes that are up.
    pub async fn live_ids(&self) -> std::collections::BTreeSet<String> {
        use ratchet::cluster::Cluster;
        self.cluster.services().await.into_iter().map(|s| s.id).collect()
    }
}
