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

use super::{Cluster, CommitError, tag_of};
use crate::bindings::types::{
    ClusterError, Epoch, Layout, LockInfo, Node, ServiceDescriptor, ServiceKind, ShardTag, Version,
};
use crate::transport::{Client, TransportConfig};
use crate::worker::{WorkerProtocol, WorkerReply, WorkerRequest};

/// A registered worker process.
#[derive(Clone)]
struct Member {
    zone: String,
    capacity: u32,
    addr: String,
    client: Arc<Client<WorkerProtocol>>,
}

/// The cluster of worker processes.
pub struct RemoteCluster {
    config: TransportConfig,
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
}

impl RemoteCluster {
    /// An empty cluster; workers join with [`RemoteCluster::register`].
    pub fn new(config: TransportConfig) -> Self {
        RemoteCluster {
            config,
            members: Mutex::default(),
            directory: Mutex::default(),
            live: Mutex::default(),
            committed: AtomicU64::new(0),
            registrations: super::Registrations::new(),
            next_proxy: AtomicUsize::new(0),
            broken: Mutex::default(),
        }
    }

    /// Adds the worker of `node`, or moves it to a new address, and wakes a
    /// stalled director. A heartbeat (the same registration again) changes
    /// nothing: its connection is kept and no retry is triggered.
    pub fn register(&self, node: &str, zone: &str, capacity: u32, addr: &str) {
        let mut members = lock(&self.members);
        if members.get(node).is_some_and(|m| m.addr == addr && m.zone == zone && m.capacity == capacity) {
            return;
        }
        let client = Arc::new(Client::new(addr, self.config.clone()));
        members.insert(node.into(), Member { zone: zone.into(), capacity, addr: addr.into(), client });
        drop(members);
        self.registrations.announce();
        tracing::info!(node, zone, addr, "worker registered");
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
    /// of its shard that holds the acknowledged version.
    pub async fn pump(&self) {
        let Some(layout) = self.live_layout() else { return };
        let upto = self.committed_version();
        for team in &layout.storage_teams {
            for member in &team.storage_ids {
                let after = match self.ask(member, WorkerRequest::Read { id: member.clone(), key: String::new() }).await {
                    Ok(WorkerReply::Value { durable, serving: true, .. }) if durable < upto => durable,
                    _ => continue,
                };
                self.catch_up(&layout, team.tag, member, after, upto).await;
            }
        }
    }

    /// Pulls `(after, upto]` of `tag` into replica `member` a page at a
    /// time, from the first log that holds it, moving to the next log of
    /// the tag when one fails part of the way.
    async fn catch_up(&self, layout: &Layout, tag: ShardTag, member: &str, mut after: Version, upto: Version) {
        for log in layout.logs.iter().filter(|l| l.tags.contains(&tag)) {
            while after < upto {
                let pulled = self.ask(&log.id, WorkerRequest::Pull { id: log.id.clone(), tag, after, upto }).await;
                let Ok(WorkerReply::Pulled { mutations, through, last }) = pulled else { break };
                if last < upto || through <= after || through > upto {
                    break;
                }
                let apply = WorkerRequest::Apply { id: member.into(), mutations, upto: through };
                if self.ask(member, apply).await.is_err() {
                    return;
                }
                after = through;
            }
            if after >= upto {
                return;
            }
        }
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

    /// Copies teammate `mate`'s data into the empty replica `id`, a page at a
    /// time; returns the version it was durable at. Starts over (a few times)
    /// when the teammate's version moves during the copy, so a seeded
    /// replica never holds pages of two versions.
    async fn seed(&self, id: &str, mate: &str) -> Result<Version, ClusterError> {
        'transfer: for _ in 0..3 {
            let (mut after, mut first, mut version) = (None, true, None);
            loop {
                let reply = self.ask(mate, WorkerRequest::Snapshot { id: mate.into(), after: after.clone() }).await;
                let (page_version, entries, more) = match reply {
                    Ok(WorkerReply::SnapshotPage { version, entries, more }) => (version, entries, more),
                    other => return Err(unexpected(other)),
                };
                if version.is_some_and(|v| v != page_version) {
                    continue 'transfer;
                }
                version = Some(page_version);
                after = entries.last().map(|(key, _)| key.clone());
                let install = WorkerRequest::Install { id: id.into(), version: page_version, entries, first, last: !more };
                self.ask(id, install).await?;
                first = false;
                if !more {
                    return Ok(page_version);
                }
            }
        }
        Err(ClusterError::Failed(format!("{mate} kept changing while it was copied")))
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

    async fn ask_node(&self, node: &str, request: WorkerRequest) -> Result<WorkerReply, ClusterError> {
        let member = lock(&self.members).get(node).cloned().ok_or_else(|| ClusterError::NotFound(format!("node {node}")))?;
        match member.client.call(request).await {
            Ok(reply) => reply,
            Err(err) => Err(ClusterError::Unreachable(err.to_string())),
        }
    }

    fn note(&self, descriptor: &ServiceDescriptor) {
        lock(&self.directory).insert(descriptor.id.clone(), descriptor.node.clone());
    }
}

#[async_trait::async_trait]
impl Cluster for RemoteCluster {
    async fn nodes(&self) -> Vec<Node> {
        let members: Vec<(String, Member)> = lock(&self.members).iter().map(|(n, m)| (n.clone(), m.clone())).collect();
        let answers = members.iter().map(|(node, member)| async move {
            match member.client.call(WorkerRequest::Info).await {
                Ok(Ok(WorkerReply::Info { node, .. })) => node,
                _ => Node {
                    id: node.clone(),
                    zone: member.zone.clone(),
                    capabilities: vec![],
                    load: 0,
                    capacity: member.capacity,
                    healthy: false,
                    last_seen_ms: 0,
                },
            }
        });
        join_all(answers).await
    }

    async fn services(&self) -> Vec<ServiceDescriptor> {
        let members: Vec<Member> = lock(&self.members).values().cloned().collect();
        let answers = members.iter().map(|member| member.client.call(WorkerRequest::Info));
        let mut services = Vec::new();
        let mut broken = BTreeSet::new();
        for answer in join_all(answers).await {
            if let Ok(Ok(WorkerReply::Info { services: hosted, broken: proxies, .. })) = answer {
                services.extend(hosted);
                broken.extend(proxies);
            }
        }
        *lock(&self.broken) = broken;
        for service in &services {
            self.note(service);
        }
        services
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
        // source failing part of the way is replaced for the rest.
        let mut from = first;
        loop {
            let mut failures = Vec::new();
            let mut page = None;
            for source in sources {
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
            let install = WorkerRequest::InstallRange { id: target.into(), epoch, tags: tags.to_vec(), first: from, last: through, entries };
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
        // A replica new to its team (still empty) is seeded from a teammate
        // first; it is never unlocked empty while a teammate holds data.
        if let Ok(WorkerReply::Value { durable: 0, .. }) = self.ask(id, WorkerRequest::Read { id: id.into(), key: String::new() }).await
            && let Some(team) = layout.storage_teams.iter().find(|t| t.storage_ids.iter().any(|s| s == id))
        {
            let mut failures = Vec::new();
            let mut seeded = team.storage_ids.len() == 1;
            for mate in team.storage_ids.iter().filter(|s| *s != id) {
                match self.seed(id, mate).await {
                    Ok(version) => {
                        seeded = true;
                        if version > 0 {
                            break;
                        }
                    }
                    Err(err) => failures.push(format!("{mate}: {err:?}")),
                }
            }
            if !seeded {
                return Err(ClusterError::Unreachable(format!("no teammate could seed {id}: {}", failures.join("; "))));
            }
        }
        self.ask(id, WorkerRequest::Unlock { id: id.into(), epoch, layout: layout.clone() }).await.map(drop)
    }

    async fn adopt(&self, layout: &Layout) {
        self.committed.fetch_max(layout.recovery_version, Ordering::SeqCst);
        *lock(&self.live) = Some(Arc::new(layout.clone()));
    }

    async fn release(&self, id: &str) {
        let _ = self.ask(id, WorkerRequest::Release { id: id.into() }).await;
        lock(&self.directory).remove(id);
    }

    fn registrations(&self) -> super::RegistrationWatch {
        self.registrations.subscribe()
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
