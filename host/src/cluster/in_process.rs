//! A second, older data plane: the service state machines of every node in
//! one process behind one lock, with its own commit path and pump. Only the
//! benchmarks still measure it; the demo, the dry run, the simulator and the
//! tests run [`LocalCluster`](super::LocalCluster), the foremen the worker
//! processes ship.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Cluster, PulledPage, SnapshotPage};
use crate::bindings::types::{
    ClusterError, Epoch, Layout, LockInfo, Node, ServiceDescriptor, ServiceKind, ShardTag, Version,
};
use crate::services::{
    CommitProxy, LogService, Mutation, Resolver, Sequencer, ServiceError, StagedSnapshots, StorageService,
};
use crate::topology::{NodeSpec, PAGE_BYTES, tag_of};

/// Why a commit was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// No generation is live.
    #[error("no live generation")]
    NoGeneration,
    /// A member of the live generation is down or refused.
    #[error("{service}: {reason}")]
    Refused {
        /// The member.
        service: String,
        /// Why.
        reason: String,
    },
}

enum Role {
    Log(LogService),
    Storage(StorageService),
    Sequencer(Sequencer),
    Proxy(CommitProxy),
    Resolver(Resolver),
}

struct Worker {
    descriptor: ServiceDescriptor,
    alive: bool,
    role: Role,
}

struct NodeState {
    spec: NodeSpec,
    up: bool,
    /// Live workers hosted, kept in step with `workers`.
    load: u32,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, NodeState>,
    workers: BTreeMap<String, Worker>,
    next_worker: u64,
    /// The layout of the live generation. Shared, because every commit and
    /// pump reads it while changing the workers.
    live: Option<Arc<Layout>>,
    /// The newest version acknowledged by the live generation.
    committed: Version,
    /// How many versions a log keeps beyond what its replicas hold, if
    /// logs are popped at all.
    retention: Option<Version>,
    /// Snapshot pages on their way to the replica they rebuild.
    staged: StagedSnapshots,
    /// Serving replicas the logs no longer hold the history of: they cannot
    /// catch up by pulling, and the generation must be recovered (which
    /// rebuilds them).
    stranded: std::collections::BTreeSet<String>,
}

/// The in-process cluster.
pub struct InProcessCluster {
    state: Mutex<State>,
    registrations: super::Registrations,
}

impl InProcessCluster {
    /// A cluster of `nodes`, with no workers yet.
    pub fn new(nodes: impl IntoIterator<Item = NodeSpec>) -> Self {
        let nodes = nodes.into_iter().map(|spec| (spec.id.clone(), NodeState { spec, up: true, load: 0 })).collect();
        InProcessCluster {
            state: Mutex::new(State { nodes, ..State::default() }),
            registrations: super::Registrations::new(),
        }
    }

    /// Logs keep `versions` versions before the newest, and pop older ones
    /// as the pump finds them applied by some live replica of their shard.
    /// A replica that falls further behind must be rebuilt. By default logs
    /// are never popped.
    pub fn with_retention(self, versions: Version) -> Self {
        self.lock_state().retention = Some(versions);
        self
    }

    /// Every serving replica of each team of the live generation, with its
    /// durable version and its data: to check that replicas agree.
    pub fn team_contents(&self) -> Vec<(ShardTag, Vec<(String, Version, BTreeMap<String, String>)>)> {
        let state = self.lock_state();
        let Some(layout) = state.live.as_ref() else { return Vec::new() };
        layout
            .storage_teams
            .iter()
            .map(|team| {
                let members = team
                    .storage_ids
                    .iter()
                    .filter_map(|id| match state.role(id) {
                        Ok(Role::Storage(s)) => Some((id.clone(), s.durable_version(), s.contents().clone())),
                        _ => None,
                    })
                    .collect();
                (team.tag, members)
            })
            .collect()
    }

    /// `count` nodes spread round-robin over `zones` zones, named `n1..` and
    /// `z1..`, each hosting up to `capacity` workers.
    pub fn with_zones(count: usize, zones: usize, capacity: u32) -> Self {
        InProcessCluster::new((0..count).map(|i| NodeSpec {
            id: format!("n{}", i + 1),
            zone: format!("z{}", i % zones.max(1) + 1),
            capacity,
        }))
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kills a worker: it answers nothing until revived.
    pub fn kill(&self, id: &str) -> bool {
        self.lock_state().set_alive(id, false)
    }

    /// Brings a killed worker back with its state, and announces it.
    pub fn revive(&self, id: &str) -> bool {
        let revived = self.lock_state().set_alive(id, true);
        if revived {
            self.registrations.announce();
        }
        revived
    }

    /// Commits `writes` through the live generation: a version from the
    /// sequencer, a resolver's check, and a push to every log. Acknowledged
    /// (returns the version) only when every log accepted it.
    pub fn commit(&self, writes: &[(String, String)]) -> Result<Version, CommitError> {
        let mut guard = self.lock_state();
        let state = &mut *guard;
        let layout = state.live.clone().ok_or(CommitError::NoGeneration)?;
        let proxy_id = layout.commit_proxies.first().ok_or(CommitError::NoGeneration)?;
        let epoch = match state.role(proxy_id) {
            Ok(Role::Proxy(proxy)) => proxy.admit().map_err(|e| refused(proxy_id, e))?,
            _ => return Err(down(proxy_id)),
        };
        let seq_id = layout.sequencer.as_deref().ok_or(CommitError::NoGeneration)?;
        let (prev, version) = match state.role_mut(seq_id) {
            Ok(Role::Sequencer(seq)) => seq.next_version(epoch).map_err(|e| refused(seq_id, e))?,
            _ => return Err(down(seq_id)),
        };
        for id in &layout.resolvers {
            match state.role(id) {
                Ok(Role::Resolver(resolver)) => resolver.resolve(epoch).map_err(|e| refused(id, e))?,
                _ => return Err(down(id)),
            }
        }
        let mutations: Vec<Mutation> = writes
            .iter()
            .map(|(key, value)| Mutation { tag: tag_of(&layout, key), key: key.clone(), value: value.clone() })
            .collect();
        for log in &layout.logs {
            let pushed = match state.role_mut(&log.id) {
                Ok(Role::Log(service)) => service.push(epoch, prev, version, mutations.clone()).map_err(|e| refused(&log.id, e)),
                _ => Err(down(&log.id)),
            };
            if let Err(err) = pushed {
                // The sequencer has issued this version: a log that missed it
                // can take no later push, even once it is back, so the
                // generation is broken until a recovery replaces it.
                state.stranded.insert(log.id.clone());
                return Err(err);
            }
        }
        state.committed = version;
        Ok(version)
    }

    /// Lets every serving storage replica of the live generation pull from a
    /// live log of its shard up to the acknowledged version.
    pub fn pump(&self) {
        let mut guard = self.lock_state();
        let state = &mut *guard;
        let Some(layout) = state.live.clone() else { return };
        let upto = state.committed;
        for team in &layout.storage_teams {
            for member in &team.storage_ids {
                let after = match state.role(member) {
                    Ok(Role::Storage(s)) if s.is_serving() => s.durable_version(),
                    _ => continue,
                };
                let mut missing = false;
                let source = layout.logs.iter().filter(|l| l.tags.contains(&team.tag)).find_map(|l| match state.role(&l.id) {
                    // This log popped versions the replica still lacks.
                    Ok(Role::Log(log)) if log.retained(team.tag).is_ok_and(|(oldest, _)| after < oldest) => {
                        missing = true;
                        None
                    }
                    Ok(Role::Log(log)) => log.pull(team.tag, after, upto).ok(),
                    _ => None,
                });
                if missing && source.is_none() {
                    state.stranded.insert(member.clone());
                }
                if let (Some(mutations), Ok(Role::Storage(storage))) = (source, state.role_mut(member)) {
                    storage.apply(mutations, upto);
                }
            }
        }
        if let Some(retention) = state.retention {
            state.pop_logs(&layout, retention);
        }
    }

    /// A member of the live generation that is down or no longer serves it
    /// (a newer epoch locked it), if any: while there is one, the generation
    /// cannot commit.
    pub fn unserving_member(&self) -> Option<String> {
        let state = self.lock_state();
        let layout = state.live.as_ref()?;
        let epoch = layout.epoch;
        layout.services.iter().map(|s| &s.id).find(|id| {
            if state.stranded.contains(*id) {
                return true;
            }
            let serves = match state.role(id) {
                Ok(Role::Log(log)) => log.serves(epoch),
                Ok(Role::Storage(storage)) => storage.serves(epoch),
                Ok(Role::Sequencer(role)) => role.serves(epoch),
                Ok(Role::Proxy(role)) => role.serves(epoch),
                Ok(Role::Resolver(role)) => role.serves(epoch),
                Err(_) => false,
            };
            !serves
        }).cloned()
    }

    /// The newest acknowledged version.
    pub fn committed_version(&self) -> Version {
        self.lock_state().committed
    }
}

fn down(id: &str) -> CommitError {
    CommitError::Refused { service: id.to_string(), reason: "down".into() }
}

fn refused(id: &str, err: ServiceError) -> CommitError {
    CommitError::Refused { service: id.to_string(), reason: err.to_string() }
}

impl State {
    /// Pops each live log of `layout` to `retention` versions before its
    /// newest, but never past what some live replica of each of its shards
    /// holds: the logs may drop a lagging replica's history, never the
    /// data itself.
    fn pop_logs(&mut self, layout: &Layout, retention: Version) {
        let held: BTreeMap<ShardTag, Version> = layout
            .storage_teams
            .iter()
            .map(|team| {
                let best = team.storage_ids.iter().filter_map(|id| match self.role(id) {
                    Ok(Role::Storage(s)) if s.is_serving() => Some(s.durable_version()),
                    _ => None,
                });
                (team.tag, best.max().unwrap_or(0))
            })
            .collect();
        for log in &layout.logs {
            let floor = log.tags.iter().map(|tag| held.get(tag).copied().unwrap_or(0)).min().unwrap_or(0);
            if let Ok(Role::Log(service)) = self.role_mut(&log.id) {
                let through = service.last_version().saturating_sub(retention).min(floor);
                service.pop(through);
            }
        }
    }

    fn worker(&self, id: &str) -> Result<&Worker, ClusterError> {
        match self.workers.get(id) {
            None => Err(ClusterError::NotFound(id.to_string())),
            Some(w) if !w.alive => Err(ClusterError::Unreachable(format!("{id} does not answer"))),
            Some(w) => Ok(w),
        }
    }

    fn role(&self, id: &str) -> Result<&Role, ClusterError> {
        self.worker(id).map(|w| &w.role)
    }

    fn role_mut(&mut self, id: &str) -> Result<&mut Role, ClusterError> {
        self.worker(id)?;
        Ok(&mut self.workers.get_mut(id).expect("checked above").role)
    }

    fn load(&self, node: &str) -> u32 {
        self.nodes.get(node).map_or(0, |n| n.load)
    }

    /// Creates a worker on `node`, checking the node is up and has room.
    fn spawn(&mut self, node: &str, kind: ServiceKind, role: Role) -> Result<ServiceDescriptor, ClusterError> {
        let spec = match self.nodes.get(node) {
            None => return Err(ClusterError::NotFound(format!("node {node}"))),
            Some(n) if !n.up => return Err(ClusterError::Unreachable(format!("node {node} is down"))),
            Some(n) => n.spec.clone(),
        };
        if self.load(node) >= spec.capacity {
            return Err(ClusterError::Failed(format!("node {node} is full ({} workers)", spec.capacity)));
        }
        self.next_worker += 1;
        let id = format!("{}-{}", crate::bindings::kind_name(kind), self.next_worker);
        let descriptor =
            ServiceDescriptor { id: id.clone(), kind, node: node.to_string(), address: format!("mem://{id}") };
        self.workers.insert(id, Worker { descriptor: descriptor.clone(), alive: true, role });
        self.adjust_load(node, 1);
        Ok(descriptor)
    }

    fn adjust_load(&mut self, node: &str, delta: i32) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.load = n.load.saturating_add_signed(delta);
        }
    }

    /// Marks a worker alive or dead, keeping its node's load in step.
    fn set_alive(&mut self, id: &str, alive: bool) -> bool {
        if !self.workers.contains_key(id) {
            return false;
        }
        if !alive {
            // What it held in memory only is gone.
            self.staged.discard(id);
        }
        let Some(worker) = self.workers.get_mut(id) else { return false };
        if worker.alive != alive {
            worker.alive = alive;
            let node = worker.descriptor.node.clone();
            self.adjust_load(&node, if alive { 1 } else { -1 });
        }
        true
    }
}

#[async_trait::async_trait]
impl Cluster for InProcessCluster {
    async fn nodes(&self) -> Vec<Node> {
        let state = self.lock_state();
        state
            .nodes
            .values()
            .map(|n| Node {
                id: n.spec.id.clone(),
                zone: n.spec.zone.clone(),
                capabilities: crate::services::ALL_KINDS.to_vec(),
                load: state.load(&n.spec.id),
                capacity: n.spec.capacity,
                healthy: n.up,
                last_seen_ms: 0,
            })
            .collect()
    }

    async fn services(&self) -> Vec<ServiceDescriptor> {
        self.lock_state().workers.values().map(|w| w.descriptor.clone()).collect()
    }

    async fn lock(&self, id: &str, epoch: Epoch) -> Result<LockInfo, ClusterError> {
        let mut state = self.lock_state();
        Ok(match state.role_mut(id)? {
            Role::Log(log) => LockInfo::Log(log.lock(epoch, id)?),
            Role::Storage(storage) => LockInfo::Storage(storage.lock(epoch, id)?),
            Role::Sequencer(role) => {
                role.stop(epoch)?;
                LockInfo::Stateless(ServiceKind::Sequencer)
            }
            Role::Proxy(role) => {
                role.stop(epoch)?;
                LockInfo::Stateless(ServiceKind::CommitProxy)
            }
            Role::Resolver(role) => {
                role.stop(epoch)?;
                LockInfo::Stateless(ServiceKind::Resolver)
            }
        })
    }

    async fn create_worker(&self, node: &str, kind: ServiceKind, epoch: Epoch) -> Result<ServiceDescriptor, ClusterError> {
        let role = match kind {
            ServiceKind::Log => {
                let mut log = LogService::new();
                log.lock(epoch, "new")?;
                Role::Log(log)
            }
            ServiceKind::Storage => {
                let mut storage = StorageService::new();
                storage.lock(epoch, "new")?;
                Role::Storage(storage)
            }
            other => {
                return Err(ClusterError::Failed(format!(
                    "a foreman creates logs and storage; start a {} with start-role",
                    crate::bindings::kind_name(other)
                )));
            }
        };
        self.lock_state().spawn(node, kind, role)
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
        let mut state = self.lock_state();
        let mut failures = Vec::new();
        let mut entries = None;
        for source in sources {
            match state.role(source) {
                Ok(Role::Log(log)) => match log.lock_holder() {
                    Some(holder) if holder == epoch => match log.read_range(tags, first, last) {
                        Ok(found) => {
                            entries = Some(found);
                            break;
                        }
                        Err(err) => failures.push(format!("{source}: {err}")),
                    },
                    holder => failures.push(format!("{source}: not locked by epoch {epoch} ({holder:?})")),
                },
                Ok(_) => failures.push(format!("{source}: not a log")),
                Err(err) => failures.push(format!("{source}: {err:?}")),
            }
        }
        let entries = entries.ok_or_else(|| {
            ClusterError::Failed(format!("no source could provide [{first}, {last}]: {}", failures.join("; ")))
        })?;
        match state.role_mut(target)? {
            Role::Log(log) => Ok(log.install_range(epoch, tags, first, last, entries)?),
            _ => Err(ClusterError::Failed(format!("{target} is not a log"))),
        }
    }

    async fn start_role(&self, node: &str, kind: ServiceKind, epoch: Epoch, start: Version) -> Result<ServiceDescriptor, ClusterError> {
        let role = match kind {
            ServiceKind::Sequencer => Role::Sequencer(Sequencer::new(epoch, start)),
            ServiceKind::CommitProxy => Role::Proxy(CommitProxy::new(epoch)),
            ServiceKind::Resolver => Role::Resolver(Resolver::new(epoch)),
            other => {
                return Err(ClusterError::Failed(format!(
                    "{} is not a stateless role; recruit it with create-worker",
                    crate::bindings::kind_name(other)
                )));
            }
        };
        self.lock_state().spawn(node, kind, role)
    }

    async fn unlock(&self, id: &str, epoch: Epoch, layout: &Layout) -> Result<(), ClusterError> {
        // A storage replica was brought up to date by replica recovery
        // before this (see `crate::replica`).
        let mut state = self.lock_state();
        match state.role_mut(id)? {
            Role::Log(log) => {
                let tags: Vec<ShardTag> =
                    layout.logs.iter().find(|l| l.id == id).map(|l| l.tags.clone()).unwrap_or_default();
                log.unlock(epoch, &tags, layout.recovery_version)?;
            }
            Role::Storage(storage) => storage.unlock(epoch)?,
            Role::Proxy(proxy) => proxy.unlock(epoch)?,
            Role::Sequencer(role) if role.epoch() == epoch => {}
            Role::Resolver(role) if role.epoch() == epoch => {}
            Role::Sequencer(role) => return Err(ServiceError::Fenced { serving: role.epoch(), request: epoch }.into()),
            Role::Resolver(role) => return Err(ServiceError::Fenced { serving: role.epoch(), request: epoch }.into()),
        }
        Ok(())
    }

    async fn adopt(&self, layout: &Layout) {
        let mut state = self.lock_state();
        state.committed = state.committed.max(layout.recovery_version);
        state.live = Some(Arc::new(layout.clone()));
        state.stranded.clear();
    }

    async fn release(&self, id: &str) {
        let mut state = self.lock_state();
        if state.set_alive(id, false) {
            state.workers.remove(id);
        }
    }

    fn registrations(&self) -> super::RegistrationWatch {
        self.registrations.subscribe()
    }

    async fn replica_state(&self, id: &str) -> Result<(Version, String), ClusterError> {
        let state = self.lock_state();
        let worker = state.worker(id)?;
        match &worker.role {
            Role::Storage(storage) => Ok((storage.durable_version(), worker.descriptor.node.clone())),
            _ => Err(ClusterError::Failed(format!("{id} is not a storage server"))),
        }
    }

    async fn log_retained(&self, id: &str, tag: ShardTag) -> Result<(Version, Version), ClusterError> {
        match self.lock_state().role(id)? {
            Role::Log(log) => Ok(log.retained(tag)?),
            _ => Err(ClusterError::Failed(format!("{id} is not a log"))),
        }
    }

    async fn pull(&self, log: &str, tag: ShardTag, after: Version, upto: Version) -> Result<PulledPage, ClusterError> {
        match self.lock_state().role(log)? {
            Role::Log(service) => Ok(service.pull_page(tag, after, upto, PAGE_BYTES)?),
            _ => Err(ClusterError::Failed(format!("{log} is not a log"))),
        }
    }

    async fn recover_apply(&self, id: &str, epoch: Epoch, mutations: Vec<(Version, Mutation)>, upto: Version) -> Result<(), ClusterError> {
        match self.lock_state().role_mut(id)? {
            Role::Storage(storage) => Ok(storage.recover_apply(epoch, mutations, upto)?),
            _ => Err(ClusterError::Failed(format!("{id} is not a storage server"))),
        }
    }

    async fn truncate(&self, id: &str, epoch: Epoch, to: Version) -> Result<(), ClusterError> {
        match self.lock_state().role_mut(id)? {
            Role::Storage(storage) => Ok(storage.truncate(epoch, to)?),
            _ => Err(ClusterError::Failed(format!("{id} is not a storage server"))),
        }
    }

    async fn snapshot_page(&self, id: &str, after: Option<String>) -> Result<SnapshotPage, ClusterError> {
        match self.lock_state().role(id)? {
            Role::Storage(storage) => Ok(storage.snapshot_page(after.as_deref(), PAGE_BYTES)),
            _ => Err(ClusterError::Failed(format!("{id} is not a storage server"))),
        }
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
        let mut guard = self.lock_state();
        let state = &mut *guard;
        let Role::Storage(_) = state.role(id)? else {
            return Err(ClusterError::Failed(format!("{id} is not a storage server")));
        };
        if let Some(snapshot) = state.staged.page(id, version, entries, first, last)?
            && let Ok(Role::Storage(storage)) = state.role_mut(id)
        {
            storage.rebuild(epoch, snapshot)?;
        }
        Ok(())
    }
}
