//! The simulated network between the director and the services: every call
//! the director makes goes through [`SimCluster`], which delays it by a
//! seeded latency and, while faults are on, loses, duplicates, delays or
//! partitions it as the fault profile says. Behind it, the cluster client
//! reaches the foremen of an in-process cluster: the code the worker
//! processes run.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::{Instant, sleep};

use super::faults::FaultProfile;
use super::history::History;
use super::rng::SimRng;
use crate::bindings::types::{
    ClusterError, Epoch, Layout, LockInfo, Node, ServiceDescriptor, ServiceKind, ShardTag, Version,
};
use crate::cluster::{Cluster, LocalCluster, PulledPage, RemoteCluster, SnapshotPage};
use crate::services::Mutation;

/// How long the director waits for any one reply.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// The fault switches and the network's random stream, shared by the
/// simulated cluster, the plugin wrapper and the run's driver.
pub struct Network {
    state: Mutex<NetState>,
}

struct NetState {
    rng: SimRng,
    profile: FaultProfile,
    /// Whether faults are being injected (the fault window is open).
    on: bool,
    /// Nodes cut off from the director and the clients.
    partitioned: BTreeSet<String>,
    /// Locks that timed out at the caller and arrive later.
    late: Vec<LateLock>,
}

/// A lock that arrives after its caller gave up on it.
#[derive(Clone, Debug)]
pub struct LateLock {
    /// When it arrives.
    pub due: Instant,
    /// The service.
    pub id: String,
    /// The epoch of the lock.
    pub epoch: Epoch,
}

/// What happens to one call.
enum Fate {
    /// Delivered; the round trip takes `latency` (past the timeout, the
    /// caller gives up although the request was carried out). `twice`
    /// delivers the request a second time.
    Deliver { latency: Duration, twice: bool },
    /// The target's node is partitioned away: no answer.
    Partitioned,
    /// The request is lost.
    LoseRequest,
    /// The request is carried out and the reply lost.
    LoseReply { latency: Duration },
    /// A lock that times out at the caller and arrives later.
    LateLock { after: Duration },
}

impl Network {
    /// A network drawing from `seed`, with faults off.
    pub fn new(seed: u64, profile: FaultProfile) -> Self {
        Network {
            state: Mutex::new(NetState {
                rng: SimRng::new(seed),
                profile,
                on: false,
                partitioned: BTreeSet::new(),
                late: Vec::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens or closes the fault window.
    pub fn set_faults(&self, on: bool) {
        self.state().on = on;
    }

    /// Whether faults are being injected.
    pub fn faults_on(&self) -> bool {
        self.state().on
    }

    /// Cuts `node` off, or reconnects it.
    pub fn set_partitioned(&self, node: &str, cut: bool) {
        let mut state = self.state();
        if cut {
            state.partitioned.insert(node.to_string());
        } else {
            state.partitioned.remove(node);
        }
    }

    /// Whether `node` is cut off.
    pub fn is_partitioned(&self, node: &str) -> bool {
        self.state().partitioned.contains(node)
    }

    /// Reconnects every node.
    pub fn heal(&self) {
        self.state().partitioned.clear();
    }

    /// Draws `true` with the probability `pick` takes from the profile, when
    /// faults are on.
    pub fn draw(&self, pick: impl Fn(&FaultProfile) -> f64) -> bool {
        let mut state = self.state();
        let p = pick(&state.profile);
        state.on && state.rng.chance(p)
    }

    /// Late locks due by `now`, removed from the queue.
    pub fn due_locks(&self, now: Instant) -> Vec<LateLock> {
        let mut state = self.state();
        let (due, later) = std::mem::take(&mut state.late).into_iter().partition(|l| l.due <= now);
        state.late = later;
        due
    }

    fn fate(&self, node: Option<&str>, idempotent: bool, lock: Option<(&str, Epoch)>) -> Fate {
        let mut s = self.state();
        let s = &mut *s;
        if node.is_some_and(|n| s.partitioned.contains(n)) {
            return Fate::Partitioned;
        }
        let mut latency = s.rng.millis(0, 2);
        if !s.on {
            return Fate::Deliver { latency, twice: false };
        }
        let p = s.profile.clone();
        if let Some((id, epoch)) = lock
            && s.rng.chance(p.lock_timeout)
        {
            let after = CALL_TIMEOUT + s.rng.millis(0, 500);
            s.late.push(LateLock { due: Instant::now() + after, id: id.to_string(), epoch });
            return Fate::LateLock { after };
        }
        if s.rng.chance(p.lost_request) {
            return Fate::LoseRequest;
        }
        if s.rng.chance(p.lost_reply) {
            return Fate::LoseReply { latency };
        }
        if s.rng.chance(p.slow_reply) {
            latency += s.rng.millis(20, 400);
        }
        let twice = idempotent && s.rng.chance(p.duplicate);
        Fate::Deliver { latency, twice }
    }
}

/// The cluster client behind the simulated network.
pub struct SimCluster {
    inner: Arc<RemoteCluster>,
    local: Arc<LocalCluster>,
    net: Arc<Network>,
    history: History,
}

fn timed_out(what: &str) -> ClusterError {
    ClusterError::Unreachable(format!("{what}: no reply within {CALL_TIMEOUT:?}"))
}

fn show<T>(result: &Result<T, ClusterError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(err) => format!("{err:?}"),
    }
}

impl SimCluster {
    /// The client of `local` behind `net`, recording into `history`.
    pub fn new(local: Arc<LocalCluster>, net: Arc<Network>, history: History) -> Self {
        SimCluster { inner: local.client(), local, net, history }
    }

    /// Carries one call across the network. `op` is the request's effect on
    /// the service, run once per delivery.
    async fn call<'a, T>(
        &self,
        what: String,
        node: Option<String>,
        idempotent: bool,
        lock: Option<(&str, Epoch)>,
        op: impl Fn() -> BoxFuture<'a, Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        match self.net.fate(node.as_deref(), idempotent, lock) {
            Fate::Partitioned => {
                sleep(CALL_TIMEOUT).await;
                self.history.event("net", format_args!("{what} -> no answer: partitioned"));
                Err(ClusterError::Unreachable(format!("{what}: partitioned")))
            }
            Fate::LoseRequest => {
                sleep(CALL_TIMEOUT).await;
                self.history.event("net", format_args!("{what} -> request lost"));
                Err(timed_out(&what))
            }
            Fate::LateLock { after } => {
                sleep(CALL_TIMEOUT).await;
                self.history.event("net", format_args!("{what} -> timed out; arrives in {after:?}"));
                Err(timed_out(&what))
            }
            Fate::LoseReply { latency } => {
                sleep(latency / 2).await;
                let result = op().await;
                self.history.event("net", format_args!("{what} -> {} (reply lost)", show(&result)));
                sleep(CALL_TIMEOUT.saturating_sub(latency / 2)).await;
                Err(timed_out(&what))
            }
            Fate::Deliver { latency, twice } => {
                let half = latency / 2;
                sleep(half.min(CALL_TIMEOUT)).await;
                if half >= CALL_TIMEOUT {
                    self.history.event("net", format_args!("{what} -> too slow, dropped"));
                    return Err(timed_out(&what));
                }
                let result = op().await;
                if twice {
                    let again = op().await;
                    self.history.event("net", format_args!("{what} delivered twice: again {}", show(&again)));
                }
                if latency >= CALL_TIMEOUT {
                    sleep(CALL_TIMEOUT - half).await;
                    self.history.event("net", format_args!("{what} -> {} (reply too late)", show(&result)));
                    return Err(timed_out(&what));
                }
                sleep(latency - half).await;
                self.history.event("call", format_args!("{what} -> {}", show(&result)));
                result
            }
        }
    }

    /// Delivers the late locks that are due; the driver calls it every tick.
    pub async fn deliver_late_locks(&self) {
        for late in self.net.due_locks(Instant::now()) {
            let result = self.inner.lock(&late.id, late.epoch).await;
            if result.is_ok() {
                self.history.accepted(&late.id, late.epoch, "lock");
            }
            self.history.event("net", format_args!("late lock {} e{} -> {}", late.id, late.epoch, show(&result)));
        }
    }
}

#[async_trait::async_trait]
impl Cluster for SimCluster {
    async fn nodes(&self) -> Vec<Node> {
        // The coordinator hears no heartbeat from a partitioned node.
        let mut nodes = self.inner.nodes().await;
        for node in &mut nodes {
            if self.net.is_partitioned(&node.id) {
                node.healthy = false;
            }
        }
        nodes
    }

    async fn services(&self) -> Vec<ServiceDescriptor> {
        self.inner.services().await
    }

    async fn lock(&self, id: &str, epoch: Epoch) -> Result<LockInfo, ClusterError> {
        let node = self.local.node_of(id);
        self.call(format!("lock {id} e{epoch}"), node, true, Some((id, epoch)), || {
            Box::pin(async move {
                let result = self.inner.lock(id, epoch).await;
                if result.is_ok() {
                    self.history.accepted(id, epoch, "lock");
                }
                result
            })
        })
        .await
    }

    async fn create_worker(&self, node: &str, kind: ServiceKind, epoch: Epoch) -> Result<ServiceDescriptor, ClusterError> {
        let what = format!("create {} on {node} e{epoch}", crate::bindings::kind_name(kind));
        self.call(what, Some(node.to_string()), false, None, || {
            Box::pin(async move {
                let result = self.inner.create_worker(node, kind, epoch).await;
                if let Ok(created) = &result {
                    self.history.recruited(created, epoch);
                }
                result
            })
        })
        .await
    }

    async fn recover_log(
        &self,
        epoch: Epoch,
        target: &str,
        sources: &[String],
        tags: &[ShardTag],
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError> {
        let node = self.local.node_of(target);
        let what = format!("recover {target} tags {tags:?} [{first}, {last}] from {} e{epoch}", sources.join(","));
        self.call(what, node, true, None, || {
            Box::pin(async move {
                let result = self.inner.recover_log(epoch, target, sources, tags, first, last).await;
                if result.is_ok() {
                    self.history.accepted(target, epoch, "recover-log");
                }
                result
            })
        })
        .await
    }

    async fn start_role(&self, node: &str, kind: ServiceKind, epoch: Epoch, start: Version) -> Result<ServiceDescriptor, ClusterError> {
        let what = format!("start {} on {node} e{epoch}", crate::bindings::kind_name(kind));
        self.call(what, Some(node.to_string()), false, None, || {
            Box::pin(async move {
                let result = self.inner.start_role(node, kind, epoch, start).await;
                if let Ok(started) = &result {
                    self.history.recruited(started, epoch);
                }
                result
            })
        })
        .await
    }

    async fn unlock(&self, id: &str, epoch: Epoch, layout: &Layout) -> Result<(), ClusterError> {
        let node = self.local.node_of(id);
        self.call(format!("unlock {id} e{epoch}"), node, true, None, || {
            Box::pin(async move {
                let result = self.inner.unlock(id, epoch, layout).await;
                if result.is_ok() {
                    self.history.accepted(id, epoch, "unlock");
                }
                result
            })
        })
        .await
    }

    async fn adopt(&self, layout: &Layout) {
        self.history.event("cluster", format_args!("generation of epoch {} is live", layout.epoch));
        self.inner.adopt(layout).await
    }

    async fn release(&self, id: &str) {
        self.history.event("cluster", format_args!("released {id}"));
        self.inner.release(id).await
    }

    fn registrations(&self) -> crate::cluster::RegistrationWatch {
        self.inner.registrations()
    }

    async fn replica_state(&self, id: &str) -> Result<(Version, String), ClusterError> {
        let node = self.local.node_of(id);
        self.call(format!("state of {id}"), node, true, None, || Box::pin(self.inner.replica_state(id))).await
    }

    async fn log_retained(&self, id: &str, tag: ShardTag) -> Result<(Version, Version), ClusterError> {
        let node = self.local.node_of(id);
        self.call(format!("retained of tag {tag} by {id}"), node, true, None, || Box::pin(self.inner.log_retained(id, tag))).await
    }

    async fn pull(&self, log: &str, tag: ShardTag, after: Version, upto: Version) -> Result<PulledPage, ClusterError> {
        let node = self.local.node_of(log);
        let what = format!("pull tag {tag} ({after}, {upto}] from {log}");
        self.call(what, node, true, None, || Box::pin(self.inner.pull(log, tag, after, upto))).await
    }

    async fn recover_apply(&self, id: &str, epoch: Epoch, mutations: Vec<(Version, Mutation)>, upto: Version) -> Result<(), ClusterError> {
        let node = self.local.node_of(id);
        let what = format!("catch-up {id} {} entries through {upto} e{epoch}", mutations.len());
        self.call(what, node, true, None, || {
            let mutations = mutations.clone();
            Box::pin(async move {
                let result = self.inner.recover_apply(id, epoch, mutations, upto).await;
                if result.is_ok() {
                    self.history.accepted(id, epoch, "catch-up");
                }
                result
            })
        })
        .await
    }

    async fn truncate(&self, id: &str, epoch: Epoch, to: Version) -> Result<(), ClusterError> {
        let node = self.local.node_of(id);
        self.call(format!("truncate {id} to {to} e{epoch}"), node, true, None, || {
            Box::pin(async move {
                let result = self.inner.truncate(id, epoch, to).await;
                if result.is_ok() {
                    self.history.accepted(id, epoch, "truncate");
                }
                result
            })
        })
        .await
    }

    async fn snapshot_page(&self, id: &str, after: Option<String>) -> Result<SnapshotPage, ClusterError> {
        let node = self.local.node_of(id);
        self.call(format!("snapshot page of {id}"), node, true, None, || Box::pin(self.inner.snapshot_page(id, after.clone())))
            .await
    }

    async fn rebuild_page(
        &self,
        id: &str,
        epoch: Epoch,
        version: Version,
        entries: Vec<(String, String)>,
        first: bool,
        last: bool,
    ) -> Result<(), ClusterError> {
        let node = self.local.node_of(id);
        let what = format!("rebuild {id} at {version}: {} keys (first {first}, last {last}) e{epoch}", entries.len());
        // A page delivered twice would be staged twice: not idempotent.
        self.call(what, node, false, None, || {
            let entries = entries.clone();
            Box::pin(async move {
                let result = self.inner.rebuild_page(id, epoch, version, entries, first, last).await;
                if result.is_ok() && last {
                    self.history.accepted(id, epoch, "rebuild");
                }
                result
            })
        })
        .await
    }
}
