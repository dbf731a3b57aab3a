//! The foreman of one node: it hosts the log, storage, sequencer, proxy and
//! resolver roles the coordinator asks for, with logs and storage made
//! durable on the node's [`Disk`] (`<id>.log` and `<id>.storage` journals),
//! and reaches the other nodes through a [`Transport`]. A worker process
//! runs one on its data directory over TCP; the in-process cluster runs one
//! per node on in-memory disks over the in-memory transport. A restarted
//! foreman reopens every journal it finds; stateless roles die with it, as
//! they should.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::commit::{self, Generation, Peers};
use crate::bindings::kind_name;
use crate::bindings::types::{ClusterError, Epoch, LockInfo, Node, ServiceDescriptor, ServiceKind, ShardTag, Version};
use crate::services::{
    CommitProxy, Disk, DurableError, DurableLog, DurableStorage, JournalError, Resolver, Sequencer, ServiceError, StagedSnapshots,
    StagingError,
};
use crate::topology::{NodeSpec, PAGE_BYTES};
use crate::transport::{Handler, Peer, TcpTransport, Transport, TransportConfig};
use crate::wire::{Serving, WorkerProtocol, WorkerReply, WorkerRequest};

enum Role {
    Log(DurableLog),
    Storage(DurableStorage),
    Sequencer(Sequencer),
    Proxy(CommitProxy),
    Resolver(Resolver),
}

struct Hosted {
    descriptor: ServiceDescriptor,
    role: Role,
}

/// The foreman of one node.
pub struct Foreman {
    spec: NodeSpec,
    address: String,
    disk: Disk,
    roles: Mutex<BTreeMap<String, Hosted>>,
    next: Mutex<u64>,
    /// The generation of each unlocked proxy.
    generations: Mutex<BTreeMap<String, Generation>>,
    /// The workers a proxy pushes to.
    peers: Peers,
    /// A proxy's commits run one at a time: a log takes versions in order.
    commits: tokio::sync::Mutex<()>,
    /// Woken after every push, for a push waiting on an earlier version.
    pushed: tokio::sync::Notify,
    /// Woken when a proxy's generation breaks, for a held `Info`.
    broke: tokio::sync::Notify,
    /// The last `Info` answered, for one asked while a long journal write
    /// (an fsync, a compaction) holds the roles: a busy worker is alive.
    last_info: Mutex<Option<WorkerReply>>,
    /// Snapshot pages received so far, by the replica they rebuild.
    staged: Mutex<StagedSnapshots>,
    /// The replicas taken out of the roles while a rebuild installs them:
    /// still hosted, as `Info` reports.
    installing: Mutex<BTreeMap<String, ServiceDescriptor>>,
    /// The most a page of a bulk transfer (a log range, a pull, a
    /// snapshot) holds, in bytes.
    page_bytes: usize,
}

impl Foreman {
    /// Opens the foreman of `spec` with its journals on `disk`, reloading
    /// every log and storage journal there. `address` is where it is
    /// reached; it reaches the other nodes over TCP until
    /// [`Foreman::with_transport`] says otherwise.
    pub fn open(spec: NodeSpec, disk: Disk, address: impl Into<String>) -> Result<Self, JournalError> {
        let address = address.into();
        disk.ensure()?;
        let mut roles = BTreeMap::new();
        for name in disk.names()? {
            let (id, kind, role) = if let Some(id) = name.strip_suffix(".log") {
                (id, ServiceKind::Log, Role::Log(DurableLog::open_on(&disk, &name)?))
            } else if let Some(id) = name.strip_suffix(".storage") {
                (id, ServiceKind::Storage, Role::Storage(DurableStorage::open_on(&disk, &name)?))
            } else if name.ends_with(".staging") || name.ends_with(".rewrite") {
                // A transfer or a compaction the crash interrupted: void
                // (a transfer starts over; the journal was not replaced).
                disk.remove(&name)?;
                continue;
            } else {
                continue;
            };
            let descriptor = ServiceDescriptor { id: id.into(), kind, node: spec.id.clone(), address: address.clone() };
            tracing::info!(id, kind = kind_name(kind), "reloaded from disk");
            roles.insert(id.to_string(), Hosted { descriptor, role });
        }
        // Ids end in a counter: continue above every id reloaded, so a
        // restarted worker never reuses one.
        let next = roles.keys().filter_map(|id| id.rsplit('-').next()?.parse::<u64>().ok()).max().unwrap_or(0);
        Ok(Foreman {
            spec,
            address,
            staged: Mutex::new(StagedSnapshots::on(disk.clone())),
            installing: Mutex::default(),
            disk,
            roles: Mutex::new(roles),
            next: Mutex::new(next),
            generations: Mutex::default(),
            peers: Peers::new(Arc::new(TcpTransport::new(TransportConfig::default()))),
            commits: tokio::sync::Mutex::new(()),
            pushed: tokio::sync::Notify::new(),
            broke: tokio::sync::Notify::new(),
            last_info: Mutex::default(),
            page_bytes: PAGE_BYTES,
        })
    }

    /// Reaches the other nodes' foremen through `transport`.
    pub fn with_transport(mut self, transport: Arc<dyn Transport<WorkerProtocol>>) -> Self {
        self.peers = Peers::new(transport);
        self
    }

    /// Serves bulk transfers in pages of at most `bytes` (at least one
    /// entry each). Smaller pages interleave better with commits; the
    /// default is [`PAGE_BYTES`].
    pub fn with_page_bytes(mut self, bytes: usize) -> Self {
        self.page_bytes = bytes.max(1);
        self
    }

    fn generations(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Generation>> {
        self.generations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one request that needs no other worker. A commit is refused
    /// here: it is served by [`Handler::handle`], which reaches the logs.
    pub fn answer(&self, request: WorkerRequest) -> Result<WorkerReply, ClusterError> {
        let mut roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
        match request {
            WorkerRequest::Info { .. } => Ok(self.info_of(&roles)),
            WorkerRequest::Lock { id, epoch } => {
                let info = match &mut hosted(&mut roles, &id)?.role {
                    Role::Log(log) => LockInfo::Log(log.lock(epoch, &id).map_err(durable)?),
                    Role::Storage(storage) => LockInfo::Storage(storage.lock(epoch, &id).map_err(durable)?),
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
                };
                Ok(WorkerReply::Locked(info))
            }
            WorkerRequest::CreateWorker { kind, epoch } => {
                self.check_room(roles.len())?;
                let id = self.new_id(kind, epoch);
                let role = match kind {
                    ServiceKind::Log => {
                        let mut log = DurableLog::open_on(&self.disk, &format!("{id}.log")).map_err(journal)?;
                        log.lock(epoch, &id).map_err(durable)?;
                        Role::Log(log)
                    }
                    ServiceKind::Storage => {
                        let mut storage = DurableStorage::open_on(&self.disk, &format!("{id}.storage")).map_err(journal)?;
                        storage.lock(epoch, &id).map_err(durable)?;
                        Role::Storage(storage)
                    }
                    other => {
                        return Err(ClusterError::Failed(format!(
                            "a foreman creates logs and storage; start a {} with start-role",
                            kind_name(other)
                        )));
                    }
                };
                Ok(WorkerReply::Created(self.host(&mut roles, id, kind, role)))
            }
            WorkerRequest::StartRole { kind, epoch, start } => {
                self.check_room(roles.len())?;
                let id = self.new_id(kind, epoch);
                let role = match kind {
                    ServiceKind::Sequencer => Role::Sequencer(Sequencer::new(epoch, start)),
                    ServiceKind::CommitProxy => Role::Proxy(CommitProxy::new(epoch)),
                    ServiceKind::Resolver => Role::Resolver(Resolver::new(epoch)),
                    other => {
                        return Err(ClusterError::Failed(format!(
                            "{} is not a stateless role; recruit it with create-worker",
                            kind_name(other)
                        )));
                    }
                };
                Ok(WorkerReply::Created(self.host(&mut roles, id, kind, role)))
            }
            WorkerRequest::ReadRange { id, epoch, tags, first, last } => match &hosted(&mut roles, &id)?.role {
                Role::Log(log) => match log.service().lock_holder() {
                    Some(holder) if holder == epoch => {
                        let (entries, through) = log.service().read_range_page(&tags, first, last, self.page_bytes)?;
                        Ok(WorkerReply::Range { entries, through })
                    }
                    holder => Err(ClusterError::Refused(format!("{id} is not locked by epoch {epoch} ({holder:?})"))),
                },
                _ => Err(not_a(&id, "log")),
            },
            WorkerRequest::InstallRange { id, epoch, tags, first, last, entries } => match &mut hosted(&mut roles, &id)?.role {
                Role::Log(log) => log.install_range(epoch, &tags, first, last, entries).map(done).map_err(durable),
                _ => Err(not_a(&id, "log")),
            },
            WorkerRequest::Unlock { id, epoch, serving } => {
                let hosted = hosted(&mut roles, &id)?;
                let reply = unlock(hosted, epoch, &serving)?;
                if let (Role::Proxy(_), Serving::Proxy(layout)) = (&hosted.role, serving) {
                    self.generations().insert(id, Generation::new(*layout));
                }
                Ok(reply)
            }
            WorkerRequest::Release { id, epoch } => {
                if let Some(hosted) = roles.get(&id) {
                    fence(hosted, epoch)?;
                }
                self.generations().remove(&id);
                self.staged.lock().unwrap_or_else(|e| e.into_inner()).discard(&id).map_err(journal)?;
                if let Some(hosted) = roles.remove(&id) {
                    let file = match hosted.role {
                        Role::Log(_) => Some(format!("{id}.log")),
                        Role::Storage(_) => Some(format!("{id}.storage")),
                        _ => None,
                    };
                    if let Some(file) = file {
                        self.disk.remove(&file).map_err(journal)?;
                    }
                }
                Ok(WorkerReply::Done)
            }
            WorkerRequest::Snapshot { id, epoch, after, as_of } => match &fenced(&mut roles, &id, epoch)?.role {
                Role::Storage(storage) => {
                    let page = storage.service().snapshot_page(after.as_deref(), self.page_bytes, as_of)?;
                    Ok(WorkerReply::SnapshotPage(page))
                }
                _ => Err(not_a(&id, "storage server")),
            },
            WorkerRequest::Rebuild { id, epoch, version, entries, first, last } => {
                drop(roles);
                self.rebuild(&id, epoch, version, entries, first, last)
            }
            WorkerRequest::RecoverApply { id, epoch, mutations, upto } => match &mut hosted(&mut roles, &id)?.role {
                Role::Storage(storage) => storage.recover_apply(epoch, mutations, upto).map(done).map_err(durable),
                _ => Err(not_a(&id, "storage server")),
            },
            WorkerRequest::Truncate { id, epoch, to } => match &mut hosted(&mut roles, &id)?.role {
                Role::Storage(storage) => storage.truncate(epoch, to).map(done).map_err(durable),
                _ => Err(not_a(&id, "storage server")),
            },
            WorkerRequest::Retained { id, tag } => match &hosted(&mut roles, &id)?.role {
                Role::Log(log) => {
                    let (after, last) = match tag {
                        Some(tag) => log.service().retained(tag)?,
                        None => log.service().span(),
                    };
                    Ok(WorkerReply::Retained { after, last })
                }
                _ => Err(not_a(&id, "log")),
            },
            WorkerRequest::Pop { id, epoch, through } => match &mut fenced(&mut roles, &id, epoch)?.role {
                Role::Log(log) => log.pop(through).map(done).map_err(durable),
                _ => Err(not_a(&id, "log")),
            },
            WorkerRequest::Commit { id, .. } => Err(ClusterError::Failed(format!("{id}: a commit is served asynchronously"))),
            WorkerRequest::ReadVersion { id } => match &hosted(&mut roles, &id)?.role {
                Role::Proxy(_) => self
                    .generations()
                    .get(&id)
                    .map(|g| WorkerReply::ReadVersion(g.committed))
                    .ok_or_else(|| ClusterError::Failed(format!("{id} is not unlocked yet"))),
                _ => Err(not_a(&id, "commit proxy")),
            },
            WorkerRequest::NextVersion { id, epoch } => match &mut hosted(&mut roles, &id)?.role {
                Role::Sequencer(sequencer) => {
                    let (prev, version) = sequencer.next_version(epoch)?;
                    Ok(WorkerReply::Versions { prev, version })
                }
                _ => Err(not_a(&id, "sequencer")),
            },
            WorkerRequest::Resolve { id, epoch } => match &hosted(&mut roles, &id)?.role {
                Role::Resolver(resolver) => resolver.resolve(epoch).map(done).map_err(ClusterError::from),
                _ => Err(not_a(&id, "resolver")),
            },
            WorkerRequest::Push { id, epoch, prev, version, mutations } => match &mut hosted(&mut roles, &id)?.role {
                Role::Log(log) => log.push(epoch, prev, version, mutations).map(done).map_err(durable),
                _ => Err(not_a(&id, "log")),
            },
            WorkerRequest::Pull { id, tag, after, upto } => match &hosted(&mut roles, &id)?.role {
                Role::Log(log) => {
                    let (mutations, through) = log.service().pull_page(tag, after, upto, self.page_bytes)?;
                    Ok(WorkerReply::Pulled { mutations, through, last: log.service().last_version() })
                }
                _ => Err(not_a(&id, "log")),
            },
            WorkerRequest::Apply { id, epoch, mutations, upto } => match &mut fenced(&mut roles, &id, epoch)?.role {
                Role::Storage(storage) => storage.apply(mutations, upto).map(done).map_err(durable),
                _ => Err(not_a(&id, "storage server")),
            },
            WorkerRequest::Read { id, key } => match &hosted(&mut roles, &id)?.role {
                Role::Storage(storage) => Ok(WorkerReply::Value {
                    value: storage.service().read(&key).map(str::to_string),
                    durable: storage.service().durable_version(),
                    serving: storage.service().is_serving(),
                }),
                _ => Err(not_a(&id, "storage server")),
            },
        }
    }

    // What a test or the simulator's checker inspects, without a message:
    // each answers `None` (or `false`) for a service this node does not host.

    fn inspect<R>(&self, id: &str, look: impl FnOnce(&Role) -> Option<R>) -> Option<R> {
        let roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
        look(&roles.get(id)?.role)
    }

    /// The node's id.
    pub fn node_id(&self) -> &str {
        &self.spec.id
    }

    /// Whether this node hosts service `id`.
    pub fn hosts(&self, id: &str) -> bool {
        self.roles.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id)
    }

    /// The ids of the services this node hosts.
    pub fn service_ids(&self) -> Vec<String> {
        self.roles.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// The epoch holding the lock of log or storage `id`, if it is locked.
    pub fn lock_holder(&self, id: &str) -> Option<Epoch> {
        self.inspect(id, |role| match role {
            Role::Log(log) => log.service().lock_holder(),
            Role::Storage(storage) => storage.service().lock_holder(),
            _ => None,
        })
    }

    /// Whether service `id` serves generation `epoch`; for a proxy, also
    /// that its generation is not broken.
    pub fn serves(&self, id: &str, epoch: Epoch) -> bool {
        let serves = self.inspect(id, |role| {
            Some(match role {
                Role::Log(log) => log.service().serves(epoch),
                Role::Storage(storage) => storage.service().serves(epoch),
                Role::Sequencer(role) => role.serves(epoch),
                Role::Proxy(role) => role.serves(epoch),
                Role::Resolver(role) => role.serves(epoch),
            })
        });
        serves.unwrap_or(false) && !self.generations().get(id).is_some_and(|g| g.broken)
    }

    /// Whether `id` is a storage replica joining generation `epoch`.
    pub fn joins(&self, id: &str, epoch: Epoch) -> bool {
        let joins = self.inspect(id, |role| match role {
            Role::Storage(storage) => Some(storage.service().joins(epoch)),
            _ => None,
        });
        joins.unwrap_or(false)
    }

    /// Storage replica `id`'s durable version and data.
    pub fn replica(&self, id: &str) -> Option<(Version, BTreeMap<String, String>)> {
        self.inspect(id, |role| match role {
            Role::Storage(storage) => Some((storage.service().durable_version(), storage.service().contents().clone())),
            _ => None,
        })
    }

    /// Whether log `id` holds the write of `key` to `value` in shard `tag`.
    pub fn log_holds_write(&self, id: &str, tag: ShardTag, key: &str, value: &str) -> bool {
        self.inspect(id, |role| match role {
            Role::Log(log) => Some(log.service().holds_write(tag, key, value)),
            _ => None,
        })
        .unwrap_or(false)
    }

    fn node(&self, load: usize) -> Node {
        Node {
            id: self.spec.id.clone(),
            zone: self.spec.zone.clone(),
            capabilities: crate::services::ALL_KINDS.to_vec(),
            load: load as u32,
            capacity: self.spec.capacity,
            healthy: true,
            last_seen_ms: 0,
        }
    }

    fn check_room(&self, load: usize) -> Result<(), ClusterError> {
        if load as u32 >= self.spec.capacity {
            return Err(ClusterError::Failed(format!("node {} is full ({} workers)", self.spec.id, self.spec.capacity)));
        }
        Ok(())
    }

    /// A service id unique in the cluster: the node, the epoch that created
    /// it (epochs are never reissued) and a counter.
    fn new_id(&self, kind: ServiceKind, epoch: Epoch) -> String {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        format!("{}-{}-e{epoch}-{}", kind_name(kind), self.spec.id, *next)
    }

    fn host(&self, roles: &mut BTreeMap<String, Hosted>, id: String, kind: ServiceKind, role: Role) -> ServiceDescriptor {
        let descriptor = ServiceDescriptor { id: id.clone(), kind, node: self.spec.id.clone(), address: self.address.clone() };
        roles.insert(id, Hosted { descriptor: descriptor.clone(), role });
        descriptor
    }
}

impl Foreman {
    /// Commits `writes` through proxy `id`; see [`commit`].
    async fn commit(&self, id: &str, writes: &[(String, String)]) -> Result<WorkerReply, ClusterError> {
        let _one_at_a_time = self.commits.lock().await;
        let (epoch, generation) = {
            let mut roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
            let epoch = match &hosted(&mut roles, id)?.role {
                Role::Proxy(proxy) => proxy.admit()?,
                _ => return Err(not_a(id, "commit proxy")),
            };
            let generation = self.generations().get(id).cloned();
            (epoch, generation.ok_or_else(|| ClusterError::Failed(format!("{id} is not unlocked yet")))?)
        };
        if generation.broken {
            return Err(ClusterError::Failed(format!("{id}: generation {epoch} is broken and awaits recovery")));
        }
        let versions = match commit::take_version(&self.peers, &generation.route, epoch).await {
            Ok(versions) => versions,
            // No answer is no proof that no version was taken: a sequencer
            // whose reply was lost has handed out a version no log will
            // ever be pushed, a gap no later push can cross.
            Err(err @ ClusterError::Unreachable(_)) => {
                tracing::warn!(proxy = id, epoch, %err, "no answer from the sequencer: generation broken");
                self.break_generation(id);
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        let finished = commit::finish(&self.peers, &generation.route, epoch, versions, writes).await;
        match finished {
            Ok(()) => {
                let mut generations = self.generations();
                let current =
                    generations.get_mut(id).ok_or_else(|| ClusterError::Failed(format!("{id} was released during the commit")))?;
                current.committed = current.committed.max(versions.1);
                Ok(WorkerReply::Committed(versions.1))
            }
            Err(err) => {
                tracing::warn!(proxy = id, epoch, version = versions.1, %err, "commit failed after taking a version: generation broken");
                self.break_generation(id);
                Err(err)
            }
        }
    }

    /// Marks proxy `id`'s generation broken: it refuses every further
    /// commit, and its worker's `Info` reports it.
    fn break_generation(&self, id: &str) {
        if let Some(current) = self.generations().get_mut(id) {
            current.broken = true;
        }
        self.broke.notify_waiters();
    }

    /// Holds an `Info` until a proxy's generation breaks or `hold` passes
    /// (at most [`MAX_HOLD`]), then answers it. A generation broken before
    /// the hold began was in an earlier answer.
    async fn held_info(&self, hold: std::time::Duration) -> Result<WorkerReply, ClusterError> {
        // Either ends the hold; neither is an error.
        tokio::time::timeout(hold.min(MAX_HOLD), self.broke.notified()).await.ok();
        Ok(self.info())
    }

    /// The node, its services and its broken proxies: as they are, or, while
    /// a long journal write holds the roles, as last answered (they change
    /// only under that lock, so the answer is at most that write behind).
    fn info(&self) -> WorkerReply {
        let roles = match self.roles.try_lock() {
            Ok(roles) => roles,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                if let Some(last) = self.last_info.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                    return last;
                }
                self.roles.lock().unwrap_or_else(|e| e.into_inner())
            }
        };
        let info = self.info_of(&roles);
        drop(roles);
        *self.last_info.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.clone());
        info
    }

    /// The `Info` reply for `roles`.
    fn info_of(&self, roles: &BTreeMap<String, Hosted>) -> WorkerReply {
        let installing = self.installing.lock().unwrap_or_else(|e| e.into_inner());
        let services = roles.values().map(|h| &h.descriptor).chain(installing.values());
        WorkerReply::Info {
            node: self.node(roles.len() + installing.len()),
            services: services.cloned().collect(),
            broken: self.generations().iter().filter(|(_, g)| g.broken).map(|(id, _)| id.clone()).collect(),
        }
    }

    /// A page of a rebuild of replica `id`: staged in a file; with the last
    /// page the replica's data is replaced and checkpointed whole. Neither
    /// holds the node's other roles up: the staging has its own lock, and
    /// the replica is taken out of the roles while it is installed (a
    /// gigabyte's checkpoint takes seconds), answering `not found` then,
    /// though `Info` still lists it: its generation, which may be serving
    /// from its teammates meanwhile, is not broken.
    fn rebuild(
        &self,
        id: &str,
        epoch: Epoch,
        version: Version,
        entries: Vec<(String, String)>,
        first: bool,
        last: bool,
    ) -> Result<WorkerReply, ClusterError> {
        let roles = || self.roles.lock().unwrap_or_else(|e| e.into_inner());
        match roles().get(id).map(|h| &h.role) {
            Some(Role::Storage(storage)) => storage.check_rebuild(epoch).map_err(durable)?,
            Some(_) => return Err(not_a(id, "storage server")),
            None => return Err(ClusterError::NotFound(format!("service {id}"))),
        }
        let staged = self.staged.lock().unwrap_or_else(|e| e.into_inner()).page(id, version, entries, first, last);
        let whole = staged.map_err(|err| match err {
            StagingError::Service(err) => ClusterError::from(err),
            StagingError::Journal(err) => journal(err),
        })?;
        let Some(snapshot) = whole else { return Ok(WorkerReply::Done) };
        let installing = || self.installing.lock().unwrap_or_else(|e| e.into_inner());
        let mut hosted = {
            let mut roles = roles();
            let hosted = roles.remove(id).ok_or_else(|| ClusterError::NotFound(format!("service {id}")))?;
            installing().insert(id.to_string(), hosted.descriptor.clone());
            hosted
        };
        let installed = match &mut hosted.role {
            Role::Storage(storage) => storage.rebuild(epoch, snapshot).map(done).map_err(durable),
            _ => Err(not_a(id, "storage server")),
        };
        let mut roles = roles();
        roles.insert(id.to_string(), hosted);
        installing().remove(id);
        installed
    }

    /// [`Foreman::answer`], kept off the async threads when journal writes
    /// wait for the disk.
    fn answer_off_async(&self, request: WorkerRequest) -> Result<WorkerReply, ClusterError> {
        if self.disk.blocks() { tokio::task::block_in_place(|| self.answer(request)) } else { self.answer(request) }
    }

    /// Whether log `id` has not yet reached `prev`: a push of a later version
    /// from another proxy arrived first.
    fn log_behind(&self, id: &str, prev: u64) -> bool {
        let roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
        matches!(roles.get(id).map(|h| &h.role), Some(Role::Log(log)) if log.service().last_version() < prev)
    }

    /// Pushes to a log, first waiting (up to a second) for the versions
    /// before it, which other proxies may still be pushing.
    async fn push(&self, request: WorkerRequest) -> Result<WorkerReply, ClusterError> {
        if let WorkerRequest::Push { id, prev, .. } = &request {
            let deadline = tokio::time::Instant::now() + PUSH_WAIT;
            loop {
                let pushed = self.pushed.notified();
                tokio::pin!(pushed);
                pushed.as_mut().enable();
                if !self.log_behind(id, *prev) || tokio::time::timeout_at(deadline, pushed).await.is_err() {
                    break;
                }
            }
        }
        let reply = self.answer_off_async(request);
        if reply.is_ok() {
            self.pushed.notify_waiters();
        }
        reply
    }
}

/// The longest an `Info` is held.
const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a push waits for the versions before it.
const PUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

#[async_trait::async_trait]
impl Handler<WorkerProtocol> for Foreman {
    async fn handle(&self, request: WorkerRequest) -> Result<WorkerReply, ClusterError> {
        match request {
            WorkerRequest::Commit { id, writes } => self.commit(&id, &writes).await,
            push @ WorkerRequest::Push { .. } => self.push(push).await,
            WorkerRequest::Rebuild { id, epoch, version, entries, first, last } if self.disk.blocks() => {
                tokio::task::block_in_place(|| self.rebuild(&id, epoch, version, entries, first, last))
            }
            WorkerRequest::Info { hold_ms } if hold_ms > 0 => self.held_info(std::time::Duration::from_millis(hold_ms)).await,
            WorkerRequest::Info { .. } => Ok(self.info()),
            request => self.answer_off_async(request),
        }
    }

    fn forbids(&self, peer: &Peer, request: &WorkerRequest) -> Option<String> {
        let callers = request.callers();
        (!peer.holds_any(callers)).then(|| {
            let may: Vec<&str> = callers.iter().map(|r| r.label()).collect();
            format!("{} may be asked only by a {}, not by {}", request.kind().name(), may.join(" or "), peer.describe())
        })
    }
}

fn unlock(hosted: &mut Hosted, epoch: Epoch, serving: &Serving) -> Result<WorkerReply, ClusterError> {
    let id = &hosted.descriptor.id;
    match (&mut hosted.role, serving) {
        (Role::Log(log), Serving::Member { tags, recovery_version }) => {
            log.unlock(epoch, tags, *recovery_version).map_err(durable)?;
        }
        (Role::Log(_), Serving::Proxy(_)) => return Err(ClusterError::Failed(format!("log {id} is unlocked as a proxy"))),
        (Role::Proxy(proxy), Serving::Proxy(_)) => proxy.unlock(epoch)?,
        (Role::Proxy(_), Serving::Member { .. }) => {
            return Err(ClusterError::Failed(format!("proxy {id} is unlocked without the layout it commits through")));
        }
        (Role::Storage(storage), _) => storage.unlock(epoch).map_err(durable)?,
        (Role::Sequencer(role), _) if role.epoch() == epoch => {}
        (Role::Resolver(role), _) if role.epoch() == epoch => {}
        (Role::Sequencer(role), _) => return Err(ServiceError::Fenced { serving: role.epoch(), request: epoch }.into()),
        (Role::Resolver(role), _) => return Err(ServiceError::Fenced { serving: role.epoch(), request: epoch }.into()),
    }
    Ok(WorkerReply::Done)
}

fn hosted<'a>(roles: &'a mut BTreeMap<String, Hosted>, id: &str) -> Result<&'a mut Hosted, ClusterError> {
    roles.get_mut(id).ok_or_else(|| ClusterError::NotFound(format!("service {id}")))
}

fn done(_: ()) -> WorkerReply {
    WorkerReply::Done
}

fn not_a(id: &str, what: &str) -> ClusterError {
    ClusterError::Failed(format!("{id} is not a {what}"))
}

fn durable(err: DurableError) -> ClusterError {
    match err {
        DurableError::Service(err) => err.into(),
        other => ClusterError::Failed(other.to_string()),
    }
}

fn journal(err: JournalError) -> ClusterError {
    ClusterError::Failed(err.to_string())
}

impl Role {
    /// The newest epoch that holds the service: a log's or replica's lock,
    /// a role's generation or the one that stopped it.
    fn holder(&self) -> Option<Epoch> {
        match self {
            Role::Log(log) => log.service().lock_holder(),
            Role::Storage(storage) => storage.service().lock_holder(),
            Role::Sequencer(role) => Some(role.holder()),
            Role::Proxy(role) => Some(role.holder()),
            Role::Resolver(role) => Some(role.holder()),
        }
    }
}

/// Refuses a request of `epoch` to a service a newer epoch holds: a deposed
/// coordinator releases, pops, applies and copies nothing.
fn fence(hosted: &Hosted, epoch: Epoch) -> Result<(), ClusterError> {
    match hosted.role.holder() {
        Some(holder) if holder > epoch => Err(ClusterError::Superseded(holder)),
        _ => Ok(()),
    }
}

/// The hosted service `id`, once [`fence`] admits `epoch`.
fn fenced<'a>(roles: &'a mut BTreeMap<String, Hosted>, id: &str, epoch: Epoch) -> Result<&'a mut Hosted, ClusterError> {
    let hosted = hosted(roles, id)?;
    fence(hosted, epoch)?;
    Ok(hosted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::Mutation;
    use crate::sim::rng::SimRng;

    fn created(reply: Result<WorkerReply, ClusterError>) -> String {
        match reply {
            Ok(WorkerReply::Created(descriptor)) => descriptor.id,
            other => panic!("expected a service, got {other:?}"),
        }
    }

    /// A deposed coordinator (or a peer replaying its requests) changes
    /// nothing: every mutating request of an epoch below the one holding a
    /// service is refused, whatever its arguments. Seeded, so a failure
    /// names the request that got through.
    #[test]
    fn no_request_of_an_older_epoch_changes_a_service_a_newer_one_holds() {
        const HOLDER: Epoch = 5;
        for seed in 0..64 {
            let foreman = Foreman::open(NodeSpec { id: "n1".into(), zone: "z1".into(), capacity: 16 }, Disk::memory(), "n1").unwrap();
            let log = created(foreman.answer(WorkerRequest::CreateWorker { kind: ServiceKind::Log, epoch: HOLDER }));
            let storage = created(foreman.answer(WorkerRequest::CreateWorker { kind: ServiceKind::Storage, epoch: HOLDER }));
            let replica_before = foreman.replica(&storage);
            let span = |foreman: &Foreman| foreman.answer(WorkerRequest::Retained { id: log.clone(), tag: None }).map(|r| format!("{r:?}"));
            let span_before = span(&foreman);
            let mut rng = SimRng::new(seed);
            for _ in 0..32 {
                let epoch = rng.below(HOLDER);
                let version = rng.below(100);
                let target = if rng.chance(0.5) { log.clone() } else { storage.clone() };
                let mutations = vec![(version, Mutation { tag: 0, key: format!("k{version}"), value: "v".into() })];
                let attack = match rng.below(8) {
                    0 => WorkerRequest::Release { id: target, epoch },
                    1 => WorkerRequest::Pop { id: target, epoch, through: version },
                    2 => WorkerRequest::Apply { id: target, epoch, mutations, upto: version },
                    3 => WorkerRequest::Snapshot { id: target, epoch, after: None, as_of: version },
                    4 => WorkerRequest::Rebuild {
                        id: target,
                        epoch,
                        version,
                        entries: vec![("k".into(), "v".into())],
                        first: true,
                        last: rng.chance(0.5),
                    },
                    5 => WorkerRequest::RecoverApply { id: target, epoch, mutations, upto: version },
                    6 => WorkerRequest::Truncate { id: target, epoch, to: version },
                    _ => WorkerRequest::Lock { id: target, epoch },
                };
                let described = format!("{attack:?}");
                assert!(foreman.answer(attack).is_err(), "seed {seed}: {described} was not refused");
            }
            assert!(foreman.hosts(&log) && foreman.hosts(&storage), "seed {seed}: a service was released");
            assert_eq!(foreman.lock_holder(&log), Some(HOLDER));
            assert_eq!(foreman.lock_holder(&storage), Some(HOLDER));
            assert_eq!(foreman.replica(&storage), replica_before, "seed {seed}: the replica changed");
            assert_eq!(span(&foreman), span_before, "seed {seed}: the log changed");
            // The epoch that holds them may.
            assert!(foreman.answer(WorkerRequest::Release { id: log.clone(), epoch: HOLDER }).is_ok());
            assert!(!foreman.hosts(&log));
        }
    }
}
