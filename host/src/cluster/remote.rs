//! The cluster of real worker processes, reached over the transport. It
//! implements the same [`Cluster`] trait as the in-process cluster, so the
//! director, the guard and every phase and policy run unchanged; only the
//! service handles differ.
//!
//! Workers register with their node, zone, capacity and address. A node
//! whose worker does not answer is reported unhealthy, so placement skips it.
//! Data a recovery moves (a log range, a replica's snapshot) flows through
//! here: read from one worker, written to another.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::join_all;

use super::degraded::DegradedNodes;
use super::{Cluster, FailureDetector, Health, PulledPage, SnapshotPage};
use crate::bindings::types::{ClusterError, Epoch, Layout, LockInfo, Node, ServiceDescriptor, ServiceKind, ShardTag, Version};
use crate::services::Mutation;
use crate::topology::tag_of;
use crate::transport::{TcpTransport, Transport, TransportConfig, TransportError};
use crate::worker::{Serving, WorkerProtocol, WorkerReply, WorkerRequest};

/// A registered worker process.
#[derive(Clone)]
struct Member {
    zone: String,
    capacity: u32,
    addr: String,
    /// When it last registered (a worker registers again every heartbeat).
    registered: std::time::Instant,
}

/// How long a worker watched by a failure detector stays in the directory
/// without registering again: five of its heartbeats.
const EXPIRE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

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

/// The cluster of worker processes.
pub struct RemoteCluster {
    transport: Arc<dyn Transport<WorkerProtocol>>,
    members: Mutex<BTreeMap<String, Member>>,
    /// Which node hosts each service, as last seen.
    directory: Mutex<BTreeMap<String, String>>,
    live: Mutex<Option<Arc<Layout>>>,
    committed: AtomicU64,
    registrations: super::Registrations,
    /// The proxy the next commit goes to, round robin.
    next_proxy: AtomicUsize,
    /// Proxies whose generation broke, as last surveyed.
    broken: Mutex<BTreeSet<String>>,
    /// The storage replicas of the live generation that did not serve it at
    /// the last pump: they are still joining their teams.
    joining: Mutex<BTreeSet<String>>,
    /// The version each storage replica was last seen durable at by the
    /// pump while it served (see [`Cluster::known_durable`]).
    seen_durable: Mutex<BTreeMap<String, Version>>,
    /// Versions each log keeps behind its newest; `None` keeps everything.
    retention: Option<Version>,
    /// Watches the workers, when they are processes (see
    /// [`RemoteCluster::with_failure_detector`]).
    detector: Option<Arc<FailureDetector>>,
    /// Carries the calls that move data, when they have bounds of their
    /// own (see [`RemoteCluster::with_bulk_transport`]).
    bulk: Option<Arc<dyn Transport<WorkerProtocol>>>,
    /// Nodes whose calls time out while they answer their heartbeats.
    degraded: DegradedNodes,
}

/// Why a generation cannot commit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Breakage {
    /// No worker that answers hosts this member.
    #[error("{0} unreachable")]
    Unreachable(String),
    /// This replica lacks versions every log of its shard has popped.
    #[error("{0} is behind what the logs retain")]
    Stranded(String),
    /// This proxy's commit failed after it took a version: the logs have a
    /// gap no later push can cross.
    #[error("{0}: a commit failed after taking a version")]
    BrokenProxy(String),
    /// The failure detector failed the worker hosting this member.
    #[error("{service} is on failed node {node}: {reason}")]
    Failed {
        /// The member.
        service: String,
        /// Its node.
        node: String,
        /// Why the node is failed.
        reason: String,
    },
    /// An empty commit through this proxy (the health probe) did not
    /// complete: the generation cannot take a version and commit.
    #[error("{proxy} cannot commit: {reason}")]
    CannotCommit {
        /// The proxy probed.
        proxy: String,
        /// What the probe ran into.
        reason: String,
    },
}

/// The version a shard's logs may be popped through, from what each live
/// replica of its team of `team` replicas reached: what two of them hold
/// (what the one holds, in a team of one). Popping what only the most
/// recent replica holds would leave a version in one place: that replica
/// lost for good, while its teammates are down or behind, would take it
/// with it (the simulator's chaos seed 75,641 with `--retention 2`). With
/// fewer than two live replicas, nothing is popped.
fn held_by_two(team: usize, mut reached: Vec<Version>) -> Version {
    reached.sort_unstable_by(|a, b| b.cmp(a));
    let needed = team.clamp(1, 2);
    reached.get(needed - 1).copied().unwrap_or(0)
}

/// How one replica's catch-up by the pump ended.
enum Pumped {
    /// It reached the version asked (or a log did not answer: try later).
    Done(Version),
    /// Every log of its shard popped versions it still lacks.
    Stranded,
}

impl RemoteCluster {
    /// An empty cluster reached over TCP; workers join with
    /// [`RemoteCluster::register`].
    pub fn new(config: TransportConfig) -> Self {
        let call_timeout = config.call_timeout;
        Self::over(Arc::new(TcpTransport::new(config))).with_call_timeout(call_timeout)
    }

    /// An empty cluster whose workers are reached through `transport`, whose
    /// calls time out as [`TransportConfig`]'s do by default (see
    /// [`RemoteCluster::with_call_timeout`]).
    pub fn over(transport: Arc<dyn Transport<WorkerProtocol>>) -> Self {
        RemoteCluster {
            transport,
            members: Mutex::default(),
            directory: Mutex::default(),
            live: Mutex::default(),
            committed: AtomicU64::new(0),
            registrations: super::Registrations::new(),
            next_proxy: AtomicUsize::new(0),
            broken: Mutex::default(),
            joining: Mutex::default(),
            seen_durable: Mutex::default(),
            retention: None,
            detector: None,
            bulk: None,
            degraded: DegradedNodes::new(TransportConfig::default().call_timeout),
        }
    }

    /// Sends the calls that move data ([`WorkerRequest::moves_data`])
    /// through `transport`, whose call timeout bounds them as
    /// the replica session's budget does, not as a control call. A call to
    /// a worker the failure detector fails still ends then.
    pub fn with_bulk_transport(mut self, transport: Arc<dyn Transport<WorkerProtocol>>) -> Self {
        self.bulk = Some(transport);
        self
    }

    /// Counts a node degraded for [`super::DEGRADED_CALL_TIMEOUTS`] times
    /// `call_timeout` after one of its calls times out (see
    /// [`RemoteCluster::degraded`]): `call_timeout` is the transport's, the
    /// time a call to a worker that answers its heartbeats is given.
    pub fn with_call_timeout(mut self, call_timeout: std::time::Duration) -> Self {
        self.degraded = DegradedNodes::new(call_timeout);
        self
    }

    /// Watches every worker that registers with a [`FailureDetector`] that
    /// fails it after `timeout` without an answer, over `transport` (its
    /// own, with calls bounded by `timeout`). Calls to a failed worker end
    /// at once as unreachable, `nodes` reports it unhealthy without asking,
    /// one that answers again wakes a stalled director like a
    /// registration, and one that stops registering expires from the
    /// directory.
    pub fn with_failure_detector(mut self, transport: Arc<dyn Transport<WorkerProtocol>>, timeout: std::time::Duration) -> Self {
        self.detector = Some(FailureDetector::new(transport, timeout, self.registrations.clone()));
        self
    }

    /// The failure detector, if the workers are watched.
    pub fn detector(&self) -> Option<&Arc<FailureDetector>> {
        self.detector.as_ref()
    }

    /// Why `node` is failed, if the failure detector says it is.
    fn failure_of(&self, node: &str) -> Option<String> {
        self.detector.as_ref().and_then(|d| d.health(node).failure().map(str::to_string))
    }

    /// The registered members, less those that stopped registering and
    /// do not answer their heartbeats: they leave the directory and the
    /// failure detector. (A worker that answers is kept whatever its
    /// registrations: they may be held up on their way.)
    fn members(&self) -> Vec<(String, Member)> {
        let mut members = lock(&self.members);
        if let Some(detector) = &self.detector {
            let expired: Vec<String> = members
                .iter()
                .filter(|(node, m)| m.registered.elapsed() > EXPIRE_AFTER && detector.health(node) != Health::Alive)
                .map(|(n, _)| n.clone())
                .collect();
            for node in expired {
                tracing::warn!(%node, after = ?EXPIRE_AFTER, "worker expired: it stopped registering");
                members.remove(&node);
                detector.forget(&node);
                lock(&self.directory).retain(|_, host| *host != node);
            }
        }
        members.iter().map(|(n, m)| (n.clone(), m.clone())).collect()
    }

    /// Lets [`RemoteCluster::pump`] pop each log of the live generation to
    /// `versions` before its newest, never past what the most recent live
    /// replica of each of its shards holds: the logs may drop a lagging
    /// replica's history, never the data itself.
    pub fn with_log_retention(mut self, versions: Version) -> Self {
        self.retention = Some(versions);
        self
    }

    /// Adds the worker of `node`, or moves it to a new address, and wakes a
    /// stalled director. A heartbeat (the same registration again) changes
    /// nothing: its connection is kept and no retry is triggered.
    pub fn register(&self, node: &str, zone: &str, capacity: u32, addr: &str) {
        let mut members = lock(&self.members);
        let registered = std::time::Instant::now();
        if let Some(member) = members.get_mut(node)
            && member.addr == addr
            && member.zone == zone
            && member.capacity == capacity
        {
            member.registered = registered;
            return;
        }
        members.insert(node.into(), Member { zone: zone.into(), capacity, addr: addr.into(), registered });
        drop(members);
        self.degraded.forgive(node);
        if let Some(detector) = &self.detector {
            detector.watch(node, addr);
        }
        self.registrations.announce();
        tracing::info!(node, zone, addr, "worker registered");
    }

    /// A member came back (a restarted worker at the address it had): wakes
    /// a stalled director, as a new registration does.
    pub fn announce(&self) {
        self.registrations.announce();
    }

    /// The nodes whose workers have registered.
    pub fn registered_nodes(&self) -> BTreeSet<String> {
        self.members().into_iter().map(|(node, _)| node).collect()
    }

    /// The layout of the live generation.
    pub fn live_layout(&self) -> Option<Arc<Layout>> {
        lock(&self.live).clone()
    }

    /// The newest acknowledged version.
    pub fn committed_version(&self) -> Version {
        self.committed.load(Ordering::SeqCst)
    }

    /// Commits `writes` through a proxy of the live generation (each in
    /// turn); see the worker's commit path. Returns the acknowledged version.
    pub async fn commit(&self, writes: &[(String, String)]) -> Result<Version, CommitError> {
        let layout = self.live_layout().ok_or(CommitError::NoGeneration)?;
        if layout.commit_proxies.is_empty() {
            return Err(CommitError::NoGeneration);
        }
        let proxy = &layout.commit_proxies[self.next_proxy.fetch_add(1, Ordering::Relaxed) % layout.commit_proxies.len()];
        match self.ask(proxy, WorkerRequest::Commit { id: proxy.clone(), writes: writes.to_vec() }).await {
            Ok(WorkerReply::Committed(version)) => {
                self.committed.fetch_max(version, Ordering::SeqCst);
                Ok(version)
            }
            other => Err(refused(proxy, unexpected(other))),
        }
    }

    /// Learns the newest acknowledged version from every proxy of the live
    /// generation (a read version, as FoundationDB's clients get one). Fails
    /// when a proxy does not answer: it may have acknowledged more.
    pub async fn refresh_committed(&self) -> Result<Version, ClusterError> {
        let Some(layout) = self.live_layout() else { return Ok(self.committed_version()) };
        let asks = layout.commit_proxies.iter().map(|proxy| self.ask(proxy, WorkerRequest::ReadVersion { id: proxy.clone() }));
        for (proxy, answer) in layout.commit_proxies.iter().zip(join_all(asks).await) {
            match answer {
                Ok(WorkerReply::ReadVersion(version)) => {
                    self.committed.fetch_max(version, Ordering::SeqCst);
                }
                other => return Err(ClusterError::Unreachable(format!("read version from {proxy}: {:?}", unexpected(other)))),
            }
        }
        Ok(self.committed_version())
    }

    /// The proxies that reported, at the last [`Cluster::services`] survey,
    /// that a commit failed after taking a version: their generation has a
    /// gap in its logs and must be recovered.
    pub fn broken_proxies(&self) -> BTreeSet<String> {
        lock(&self.broken).clone()
    }

    /// Lets every serving replica of the live generation catch up from a log
    /// of its shard that holds the acknowledged version, then pops the logs
    /// to the retention window. Answers the replicas that cannot catch up
    /// because the logs no longer hold what they lack: only a recovery (a
    /// rebuild) brings them back.
    pub async fn pump(&self) -> Vec<String> {
        self.pump_popping(true).await
    }

    /// [`RemoteCluster::pump`], popping the logs only if `pop`: a
    /// coordinator unsure it still leads catches replicas up but drops
    /// nothing.
    async fn pump_popping(&self, pop: bool) -> Vec<String> {
        let Some(layout) = self.live_layout() else { return Vec::new() };
        let upto = self.committed_version();
        let mut stranded = Vec::new();
        let mut joining = BTreeSet::new();
        // Per shard, the version its logs may be popped through (see
        // `held_by_two`).
        let mut held: BTreeMap<ShardTag, Version> = BTreeMap::new();
        for team in &layout.storage_teams {
            let mut reached_by = Vec::with_capacity(team.storage_ids.len());
            for member in &team.storage_ids {
                let durable = match self.ask(member, WorkerRequest::Read { id: member.clone(), key: String::new() }).await {
                    Ok(WorkerReply::Value { durable, serving: true, .. }) => durable,
                    // Not serving yet (or being installed, or gone: a
                    // member gone breaks the generation anyway).
                    _ => {
                        joining.insert(member.clone());
                        continue;
                    }
                };
                let reached = if durable < upto {
                    match self.catch_up(&layout, team.tag, member, durable, upto).await {
                        Pumped::Done(reached) => reached,
                        Pumped::Stranded => {
                            stranded.push(member.clone());
                            durable
                        }
                    }
                } else {
                    durable
                };
                self.seen_serving(member, reached.min(upto));
                reached_by.push(reached);
            }
            let mut through = held_by_two(team.storage_ids.len(), reached_by);
            // A departing replica counts as a copy while a member joins in
            // its place: the logs keep what it lacks until then.
            if team.storage_ids.iter().any(|member| joining.contains(member)) {
                for departing in &team.departing {
                    through = through.min(departing.durable_version);
                }
            }
            held.insert(team.tag, through);
        }
        *lock(&self.joining) = joining;
        if let Some(retention) = self.retention.filter(|_| pop) {
            self.pop_logs(&layout, &held, retention).await;
        }
        stranded
    }

    /// Notes that serving replica `member` is durable at `version` (what it
    /// answered, or what the pump's applies, each made durable before it is
    /// answered, brought it to). Capped by the caller at the acknowledged
    /// version, which every later recovery keeps: a truncation never takes
    /// a replica below it.
    fn seen_serving(&self, member: &str, version: Version) {
        let mut known = lock(&self.seen_durable);
        match known.get_mut(member) {
            Some(seen) => *seen = (*seen).max(version),
            None => {
                known.insert(member.to_string(), version);
            }
        }
    }

    /// The storage replicas of the live generation that did not serve it
    /// yet at the last pump: replicas still joining their teams.
    pub fn joining(&self) -> BTreeSet<String> {
        lock(&self.joining).clone()
    }

    /// Notes the replicas that join the generation just adopted, until the
    /// next pump sees for itself.
    pub fn note_joining(&self, replicas: &[String]) {
        *lock(&self.joining) = replicas.iter().cloned().collect();
    }

    /// Pulls `(after, upto]` of `tag` into replica `member` a page at a
    /// time, from the first log that holds it, moving to the next log of
    /// the tag when one fails part of the way.
    async fn catch_up(&self, layout: &Layout, tag: ShardTag, member: &str, mut after: Version, upto: Version) -> Pumped {
        let (mut popped, mut logs) = (0, 0);
        for log in layout.logs.iter().filter(|l| l.tags.contains(&tag)) {
            logs += 1;
            match self.ask(&log.id, WorkerRequest::Retained { id: log.id.clone(), tag: Some(tag) }).await {
                // This log popped versions the replica still lacks.
                Ok(WorkerReply::Retained { after: oldest, .. }) if after < oldest => {
                    popped += 1;
                    continue;
                }
                Ok(WorkerReply::Retained { .. }) => {}
                _ => continue,
            }
            while after < upto {
                let pulled = self.ask(&log.id, WorkerRequest::Pull { id: log.id.clone(), tag, after, upto }).await;
                let Ok(WorkerReply::Pulled { mutations, through, last }) = pulled else { break };
                if last < upto || through <= after || through > upto {
                    break;
                }
                let apply = WorkerRequest::Apply { id: member.into(), epoch: layout.epoch, mutations, upto: through };
                if self.ask(member, apply).await.is_err() {
                    return Pumped::Done(after);
                }
                after = through;
            }
            if after >= upto {
                break;
            }
        }
        if after < upto && logs > 0 && popped == logs {
            return Pumped::Stranded;
        }
        Pumped::Done(after)
    }

    /// Pops each log of `layout` to `retention` versions before its newest,
    /// but never past `held`, what two live replicas of each of its shards
    /// hold (see `held_by_two`).
    async fn pop_logs(&self, layout: &Layout, held: &BTreeMap<ShardTag, Version>, retention: Version) {
        for log in &layout.logs {
            let floor = log.tags.iter().map(|tag| held.get(tag).copied().unwrap_or(0)).min().unwrap_or(0);
            let Ok(WorkerReply::Retained { after, last }) =
                self.ask(&log.id, WorkerRequest::Retained { id: log.id.clone(), tag: None }).await
            else {
                continue;
            };
            let through = last.saturating_sub(retention).min(floor);
            if through > after
                && let Err(err) = self.ask(&log.id, WorkerRequest::Pop { id: log.id.clone(), epoch: layout.epoch, through }).await
            {
                tracing::warn!(log = %log.id, through, ?err, "cannot pop the log");
            }
        }
    }

    /// Checks the generation made of `members`: pumps storage (popping the
    /// logs only if `pop`), then asks every worker what it hosts. Answers
    /// the services hosted when the generation is whole, or why it cannot
    /// commit.
    pub async fn check(&self, members: &BTreeSet<String>, pop: bool) -> Result<Vec<ServiceDescriptor>, Breakage> {
        // A member on a node known to be failed breaks the generation before
        // anything is asked of anyone.
        if let Some(failed) = self.failed_member(members) {
            return Err(failed);
        }
        if let Err(err) = self.refresh_committed().await {
            // The survey below finds the proxy that did not answer.
            tracing::debug!(?err, "no read version before the check");
        }
        if let Some(stranded) = self.pump_popping(pop).await.into_iter().find(|id| members.contains(id)) {
            return Err(Breakage::Stranded(stranded));
        }
        let hosted = self.services().await;
        let live: BTreeSet<&str> = hosted.iter().map(|s| s.id.as_str()).collect();
        if let Some(gone) = members.iter().find(|id| !live.contains(id.as_str())) {
            // The detector may have failed its node while the survey ran.
            return Err(self.failed_member(members).unwrap_or_else(|| Breakage::Unreachable(gone.clone())));
        }
        if let Some(proxy) = self.broken_proxies().into_iter().find(|p| members.contains(p)) {
            return Err(Breakage::BrokenProxy(proxy));
        }
        Ok(hosted)
    }

    /// The first of `members` hosted on a node the failure detector failed.
    pub fn failed_member(&self, members: &BTreeSet<String>) -> Option<Breakage> {
        let directory = lock(&self.directory).clone();
        members.iter().find_map(|member| {
            let node = directory.get(member)?;
            let reason = self.failure_of(node)?;
            Some(Breakage::Failed { service: member.clone(), node: node.clone(), reason })
        })
    }

    /// The health probe: an empty commit through every proxy of the live
    /// generation, each within `within`. Whatever its members answer to
    /// `Info`, a generation whose proxies cannot take a version from the
    /// sequencer and push it to every log is broken (a sequencer locked by
    /// an epoch the coordinator does not know leaves every commit hanging).
    pub async fn probe(&self, within: std::time::Duration) -> Result<(), Breakage> {
        let Some(layout) = self.live_layout() else { return Ok(()) };
        let probes = layout.commit_proxies.iter().map(|proxy| async move {
            let commit = self.ask(proxy, WorkerRequest::Commit { id: proxy.clone(), writes: Vec::new() });
            let reason = match tokio::time::timeout(within, commit).await {
                Ok(Ok(WorkerReply::Committed(version))) => {
                    self.committed.fetch_max(version, Ordering::SeqCst);
                    return Ok(());
                }
                Ok(other) => format!("{:?}", unexpected(other)),
                Err(_) => format!("an empty commit did not complete within {within:?}"),
            };
            Err(Breakage::CannotCommit { proxy: proxy.clone(), reason })
        });
        join_all(probes).await.into_iter().collect()
    }

    /// Reads `key` from a serving replica of its team that holds every
    /// acknowledged version, letting replicas catch up first when none does:
    /// a read never misses an acknowledged write because storage lags. Fails
    /// when no read version can be had, or no replica catches up.
    pub async fn read(&self, key: &str) -> Result<Option<String>, ClusterError> {
        let layout = self.live_layout().ok_or_else(|| ClusterError::Unreachable("no live generation".into()))?;
        let committed = self.refresh_committed().await?;
        let tag = tag_of(&layout, key);
        let team = layout
            .storage_teams
            .iter()
            .find(|t| t.tag == tag)
            .ok_or_else(|| ClusterError::NotFound(format!("no storage team for tag {tag}")))?;
        for _ in 0..3 {
            for id in &team.storage_ids {
                if let Ok(WorkerReply::Value { value, durable, serving: true }) =
                    self.ask(id, WorkerRequest::Read { id: id.clone(), key: key.into() }).await
                    && durable >= committed
                {
                    return Ok(value);
                }
            }
            self.pump().await;
        }
        Err(ClusterError::Unreachable(format!("no replica of team {tag} reached version {committed}")))
    }

    /// Sends `request` to the worker hosting service `id`.
    async fn ask(&self, id: &str, request: WorkerRequest) -> Result<WorkerReply, ClusterError> {
        let known = lock(&self.directory).get(id).cloned();
        let node = match known {
            Some(node) => node,
            None => {
                self.services().await;
                lock(&self.directory).get(id).cloned().ok_or_else(|| ClusterError::NotFound(format!("service {id}")))?
            }
        };
        self.ask_node(&node, request).await
    }

    /// Sends `request` to the worker of `node`. A node the failure detector
    /// has failed is not asked, and a call in flight ends when its node
    /// fails: nothing waits on a machine known to be gone.
    async fn ask_node(&self, node: &str, request: WorkerRequest) -> Result<WorkerReply, ClusterError> {
        let member = lock(&self.members).get(node).cloned().ok_or_else(|| ClusterError::NotFound(format!("node {node}")))?;
        let transport = match &self.bulk {
            Some(bulk) if request.moves_data() => bulk,
            _ => &self.transport,
        };
        let alone = request.answered_alone();
        let timed = request.sets_up_a_generation();
        let what = request.kind();
        let started = tokio::time::Instant::now();
        let call = transport.call(&member.addr, request);
        let answer = match &self.detector {
            None => call.await,
            Some(detector) => {
                if let Some(reason) = detector.health(node).failure() {
                    return Err(ClusterError::Unreachable(format!("node {node} is failed: {reason}")));
                }
                tokio::select! {
                    answer = call => answer,
                    () = detector.failed(node) => {
                        let reason = detector.health(node).failure().unwrap_or_default().to_string();
                        return Err(ClusterError::Unreachable(format!("node {node} failed: {reason}")));
                    }
                }
            }
        };
        match answer {
            Ok(reply) => {
                if timed {
                    self.degraded.answered(node, what.name(), started.elapsed());
                }
                reply
            }
            Err(err) => {
                if alone && matches!(err, TransportError::Timeout { .. }) {
                    self.degraded.strike(node, format!("{}: {err}", what.name()));
                }
                Err(ClusterError::Unreachable(err.to_string()))
            }
        }
    }

    /// The nodes degraded now, with why: each answers its heartbeats, but a
    /// call to it that it answers alone
    /// ([`WorkerRequest::answered_alone`]) timed out, as calls do on a
    /// slow disk. Each is reported unhealthy, so placement goes around it,
    /// for [`super::DEGRADED_CALL_TIMEOUTS`] call timeouts from its last
    /// timeout; a worker that registers at a new address starts afresh.
    pub fn degraded(&self) -> Vec<(String, String)> {
        // A node the failure detector failed since is down, not slow.
        self.degraded.all().into_iter().filter(|(node, _)| self.failure_of(node).is_none()).collect()
    }

    fn note(&self, descriptor: &ServiceDescriptor) {
        lock(&self.directory).insert(descriptor.id.clone(), descriptor.node.clone());
    }
}

#[async_trait::async_trait]
impl Cluster for RemoteCluster {
    async fn nodes(&self) -> Vec<Node> {
        self.survey().await.0
    }

    async fn services(&self) -> Vec<ServiceDescriptor> {
        self.survey().await.1
    }

    async fn survey(&self) -> (Vec<Node>, Vec<ServiceDescriptor>) {
        let members = self.members();
        let answers = members.iter().map(|(node, _)| self.ask_node(node, WorkerRequest::Info { hold_ms: 0 }));
        let answers = join_all(answers).await;
        let (mut nodes, mut services, mut broken) = (Vec::new(), Vec::new(), BTreeSet::new());
        for ((id, member), answer) in members.iter().zip(answers) {
            match answer {
                Ok(WorkerReply::Info { mut node, services: hosted, broken: proxies }) => {
                    // A node too slow to do its work is not offered for more.
                    node.healthy &= self.degraded.reason(id).is_none();
                    nodes.push(node);
                    services.extend(hosted);
                    broken.extend(proxies);
                }
                _ => nodes.push(Node {
                    id: id.clone(),
                    zone: member.zone.clone(),
                    capabilities: vec![],
                    load: 0,
                    capacity: member.capacity,
                    healthy: false,
                    last_seen_ms: 0,
                }),
            }
        }
        *lock(&self.broken) = broken;
        for service in &services {
            self.note(service);
        }
        (nodes, services)
    }

    async fn lock(&self, id: &str, epoch: Epoch) -> Result<LockInfo, ClusterError> {
        match self.ask(id, WorkerRequest::Lock { id: id.into(), epoch }).await? {
            WorkerReply::Locked(info) => Ok(info),
            other => Err(unexpected(Ok(other))),
        }
    }

    async fn create_worker(&self, node: &str, kind: ServiceKind, epoch: Epoch) -> Result<ServiceDescriptor, ClusterError> {
        match self.ask_node(node, WorkerRequest::CreateWorker { kind, epoch }).await? {
            WorkerReply::Created(descriptor) => {
                self.note(&descriptor);
                Ok(descriptor)
            }
            other => Err(unexpected(Ok(other))),
        }
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
        // A page at a time, each from the first source that serves it: a
        // source failing part of the way is replaced for the rest. A source
        // on a degraded node is asked last: its calls time out.
        let on_degraded = |source: &&String| lock(&self.directory).get(*source).is_some_and(|node| self.degraded.reason(node).is_some());
        let (mut sources, slow): (Vec<&String>, Vec<&String>) = sources.iter().partition(|source| !on_degraded(source));
        sources.extend(slow);
        let mut from = first;
        loop {
            let mut failures = Vec::new();
            let mut page = None;
            for &source in &sources {
                let request = WorkerRequest::ReadRange { id: source.clone(), epoch, tags: tags.to_vec(), first: from, last };
                match self.ask(source, request).await {
                    Ok(WorkerReply::Range { entries, through }) if through <= last && (through >= from || from > last) => {
                        page = Some((entries, through));
                        break;
                    }
                    other => failures.push(format!("{source}: {:?}", unexpected(other))),
                }
            }
            let Some((entries, through)) = page else {
                return Err(ClusterError::Failed(format!("no source could provide [{from}, {last}]: {}", failures.join("; "))));
            };
            let install =
                WorkerRequest::InstallRange { id: target.into(), epoch, tags: tags.to_vec(), first: from, last: through, entries };
            self.ask(target, install).await?;
            if through >= last {
                return Ok(());
            }
            from = through + 1;
        }
    }

    async fn start_role(&self, node: &str, kind: ServiceKind, epoch: Epoch, start: Version) -> Result<ServiceDescriptor, ClusterError> {
        match self.ask_node(node, WorkerRequest::StartRole { kind, epoch, start }).await? {
            WorkerReply::Created(descriptor) => {
                self.note(&descriptor);
                Ok(descriptor)
            }
            other => Err(unexpected(Ok(other))),
        }
    }

    async fn unlock(&self, id: &str, epoch: Epoch, layout: &Layout) -> Result<(), ClusterError> {
        // A storage replica was brought up to date by replica recovery
        // before this (see `crate::replica`).
        let serving = Serving::of(layout, id);
        self.ask(id, WorkerRequest::Unlock { id: id.into(), epoch, serving }).await.map(drop)
    }

    async fn adopt(&self, layout: &Layout) {
        self.committed.fetch_max(layout.recovery_version, Ordering::SeqCst);
        // A director that finishes after a rival adopted a newer generation
        // does not take the client back to its older one.
        let mut live = lock(&self.live);
        if live.as_ref().is_none_or(|current| current.epoch <= layout.epoch) {
            *live = Some(Arc::new(layout.clone()));
        }
    }

    async fn release(&self, id: &str, epoch: Epoch) {
        if let Err(err) = self.ask(id, WorkerRequest::Release { id: id.into(), epoch }).await {
            // Its worker keeps it until the worker is asked again or lost.
            tracing::warn!(service = id, ?err, "cannot release the service");
        }
        lock(&self.directory).remove(id);
        // A released replica never serves again: what the pump saw of it
        // goes too, so the map holds the replicas that may still serve.
        lock(&self.seen_durable).remove(id);
    }

    fn registrations(&self) -> super::RegistrationWatch {
        self.registrations.subscribe()
    }

    fn known_durable(&self, id: &str) -> Option<Version> {
        lock(&self.seen_durable).get(id).copied()
    }

    async fn replica_state(&self, id: &str) -> Result<(Version, String), ClusterError> {
        match self.ask(id, WorkerRequest::Read { id: id.into(), key: String::new() }).await? {
            WorkerReply::Value { durable, .. } => {
                let node = lock(&self.directory).get(id).cloned().unwrap_or_default();
                let endpoint = lock(&self.members).get(&node).map(|m| m.addr.clone()).unwrap_or(node);
                Ok((durable, endpoint))
            }
            other => Err(unexpected(Ok(other))),
        }
    }

    async fn log_retained(&self, id: &str, tag: ShardTag) -> Result<(Version, Version), ClusterError> {
        match self.ask(id, WorkerRequest::Retained { id: id.into(), tag: Some(tag) }).await? {
            WorkerReply::Retained { after, last } => Ok((after, last)),
            other => Err(unexpected(Ok(other))),
        }
    }

    async fn pull(&self, log: &str, tag: ShardTag, after: Version, upto: Version) -> Result<PulledPage, ClusterError> {
        match self.ask(log, WorkerRequest::Pull { id: log.into(), tag, after, upto }).await? {
            WorkerReply::Pulled { mutations, through, .. } => Ok((mutations, through)),
            other => Err(unexpected(Ok(other))),
        }
    }

    async fn recover_apply(&self, id: &str, epoch: Epoch, mutations: Vec<(Version, Mutation)>, upto: Version) -> Result<(), ClusterError> {
        self.ask(id, WorkerRequest::RecoverApply { id: id.into(), epoch, mutations, upto }).await.map(drop)
    }

    async fn truncate(&self, id: &str, epoch: Epoch, to: Version) -> Result<(), ClusterError> {
        self.ask(id, WorkerRequest::Truncate { id: id.into(), epoch, to }).await.map(drop)
    }

    async fn snapshot_page(&self, id: &str, epoch: Epoch, after: Option<String>, as_of: Version) -> Result<SnapshotPage, ClusterError> {
        match self.ask(id, WorkerRequest::Snapshot { id: id.into(), epoch, after, as_of }).await? {
            WorkerReply::SnapshotPage(page) => Ok(page),
            other => Err(unexpected(Ok(other))),
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
        self.ask(id, WorkerRequest::Rebuild { id: id.into(), epoch, version, entries, first, last }).await.map(drop)
    }
}

fn refused(service: &str, err: ClusterError) -> CommitError {
    CommitError::Refused { service: service.into(), reason: format!("{err:?}") }
}

fn unexpected(reply: Result<WorkerReply, ClusterError>) -> ClusterError {
    match reply {
        Err(err) => err,
        Ok(other) => ClusterError::Failed(format!("unexpected reply {other:?}")),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_released_replica_is_forgotten_by_the_pump() {
        let config = TransportConfig { call_timeout: std::time::Duration::from_millis(200), ..TransportConfig::default() };
        let cluster = RemoteCluster::new(config);
        cluster.seen_serving("storage-1", 40);
        cluster.seen_serving("storage-2", 41);
        assert_eq!(cluster.known_durable("storage-1"), Some(40));
        // Its worker is gone: the release is not answered, and the replica
        // is forgotten all the same.
        cluster.release("storage-1", 3).await;
        assert_eq!(cluster.known_durable("storage-1"), None);
        assert_eq!(cluster.known_durable("storage-2"), Some(41));
    }
}
