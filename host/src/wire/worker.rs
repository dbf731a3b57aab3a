//! What the coordinator (and clients) ask a worker process, over the
//! transport. One request per service operation; every change carries the
//! caller's epoch, and the worker's state machines enforce their locks.

use serde::{Deserialize, Serialize};

use crate::transport::Role;

use crate::bindings::types::{ClusterError, Epoch, Layout, LockInfo, Node, ServiceDescriptor, ServiceKind, ShardTag, Version};
use crate::services::{Mutation, SnapshotPage};
use crate::transport::Protocol;

/// The worker protocol.
pub struct WorkerProtocol;

impl Protocol for WorkerProtocol {
    const SERVICE: &'static str = "worker";
    type Request = WorkerRequest;
    type Response = Result<WorkerReply, ClusterError>;
}

/// A request to a worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WorkerRequest {
    /// The node, the services it hosts, and which of its proxies saw their
    /// generation break. With `hold_ms` above 0 the answer waits until a
    /// proxy's generation breaks or `hold_ms` pass: the failure detector's
    /// long poll, always in flight, so a connection that drops is seen at
    /// once and a worker that stops answering within its timeout.
    Info { hold_ms: u64 },
    /// Lock a service at `epoch` and report its recovery information.
    Lock { id: String, epoch: Epoch },
    /// Create a log or storage server, locked at `epoch`.
    CreateWorker { kind: ServiceKind, epoch: Epoch },
    /// Start a sequencer, proxy or resolver of generation `epoch`.
    StartRole { kind: ServiceKind, epoch: Epoch, start: Version },
    /// The mutations of `tags` in `[first, last]` held by a log locked by
    /// `epoch`, a page of about [`PAGE_BYTES`](crate::topology::PAGE_BYTES) at a time.
    ReadRange { id: String, epoch: Epoch, tags: Vec<ShardTag>, first: Version, last: Version },
    /// Install a recovered range into a log locked by `epoch`.
    InstallRange {
        id: String,
        epoch: Epoch,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
        entries: Vec<(Version, Vec<Mutation>)>,
    },
    /// Serve generation `epoch`, given what the service needs of it (see
    /// [`Serving::of`]).
    Unlock { id: String, epoch: Epoch, serving: Serving },
    /// Stop and forget a service, for `epoch`: refused when a newer epoch
    /// holds it.
    Release { id: String, epoch: Epoch },
    /// A page of a storage replica's data as of version `as_of` (the keys
    /// after `after`), to seed a teammate, for `epoch`: refused when a
    /// newer epoch holds the replica.
    Snapshot { id: String, epoch: Epoch, after: Option<String>, as_of: Version },
    /// A page of a teammate's snapshot for a replica locked by `epoch`,
    /// which replica recovery rebuilds: `first` starts a transfer, and the
    /// replica's data is replaced, whole, at `version`, with the `last`.
    Rebuild { id: String, epoch: Epoch, version: Version, entries: Vec<(String, String)>, first: bool, last: bool },
    /// Apply a page of a replica recovery's catch-up to a replica locked by
    /// `epoch`, durable up to `upto`.
    RecoverApply { id: String, epoch: Epoch, mutations: Vec<(Version, Mutation)>, upto: Version },
    /// Roll a replica locked by `epoch` back to `to`.
    Truncate { id: String, epoch: Epoch, to: Version },
    /// The versions a log retains: of shard `tag`, or of every shard it
    /// carries (the oldest kept of any) when `tag` is `None`.
    Retained { id: String, tag: Option<ShardTag> },
    /// Discard a log's versions through `through` (storage holds them),
    /// for generation `epoch`: refused when a newer epoch holds the log.
    Pop { id: String, epoch: Epoch, through: Version },
    /// Commit writes through a proxy, which takes a version from its
    /// generation's sequencer, checks with every resolver and pushes to
    /// every log. Answered only once every log has made it durable.
    Commit { id: String, writes: Vec<(String, String)> },
    /// The newest version a proxy has acknowledged: a read at it sees
    /// every write acknowledged before the request.
    ReadVersion { id: String },
    /// Take the next commit version from a sequencer: answers `(prev, version)`.
    NextVersion { id: String, epoch: Epoch },
    /// Check a commit at a resolver.
    Resolve { id: String, epoch: Epoch },
    /// Append a committed version to a log.
    Push { id: String, epoch: Epoch, prev: Version, version: Version, mutations: Vec<Mutation> },
    /// The mutations of `tag` in `(after, upto]` held by a log, a page of
    /// about [`PAGE_BYTES`](crate::topology::PAGE_BYTES) at a time.
    Pull { id: String, tag: ShardTag, after: Version, upto: Version },
    /// Apply pulled mutations to a replica, durable up to `upto`, for
    /// generation `epoch`: refused when a newer epoch holds the replica.
    Apply { id: String, epoch: Epoch, mutations: Vec<(Version, Mutation)>, upto: Version },
    /// Read a key from a replica: answers the value and the replica's durable version.
    Read { id: String, key: String },
}

/// What a [`WorkerRequest`] asks, without its arguments: one kind per
/// variant, named alike.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RequestKind {
    Info,
    Lock,
    CreateWorker,
    StartRole,
    ReadRange,
    InstallRange,
    Unlock,
    Release,
    Snapshot,
    Rebuild,
    RecoverApply,
    Truncate,
    Retained,
    Pop,
    Commit,
    ReadVersion,
    NextVersion,
    Resolve,
    Push,
    Pull,
    Apply,
    Read,
}

impl RequestKind {
    /// Its name, as a trace shows it.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Info => "info",
            RequestKind::Lock => "lock",
            RequestKind::CreateWorker => "create-worker",
            RequestKind::StartRole => "start-role",
            RequestKind::ReadRange => "read-range",
            RequestKind::InstallRange => "install-range",
            RequestKind::Unlock => "unlock",
            RequestKind::Release => "release",
            RequestKind::Snapshot => "snapshot",
            RequestKind::Rebuild => "rebuild",
            RequestKind::RecoverApply => "recover-apply",
            RequestKind::Truncate => "truncate",
            RequestKind::Retained => "retained",
            RequestKind::Pop => "pop",
            RequestKind::Commit => "commit",
            RequestKind::ReadVersion => "read-version",
            RequestKind::NextVersion => "next-version",
            RequestKind::Resolve => "resolve",
            RequestKind::Push => "push",
            RequestKind::Pull => "pull",
            RequestKind::Apply => "apply",
            RequestKind::Read => "read",
        }
    }

    /// Every kind of request the protocol has.
    pub const ALL: [RequestKind; 22] = [
        RequestKind::Info,
        RequestKind::Lock,
        RequestKind::CreateWorker,
        RequestKind::StartRole,
        RequestKind::ReadRange,
        RequestKind::InstallRange,
        RequestKind::Unlock,
        RequestKind::Release,
        RequestKind::Snapshot,
        RequestKind::Rebuild,
        RequestKind::RecoverApply,
        RequestKind::Truncate,
        RequestKind::Retained,
        RequestKind::Pop,
        RequestKind::Commit,
        RequestKind::ReadVersion,
        RequestKind::NextVersion,
        RequestKind::Resolve,
        RequestKind::Push,
        RequestKind::Pull,
        RequestKind::Apply,
        RequestKind::Read,
    ];
}

/// What a service needs of the generation it is unlocked to serve: a proxy
/// the whole layout it commits through, a log its shards and where the
/// generation starts. Only proxies are sent the layout, so the messages of
/// a recovery grow with the cluster, not with its square.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Serving {
    /// A commit proxy of the generation: its layout.
    Proxy(Box<Layout>),
    /// Any other member: the shard tags it carries as a log (none for
    /// another role), and the generation's recovery version, after which a
    /// log takes pushes.
    Member { tags: Vec<ShardTag>, recovery_version: Version },
}

impl Serving {
    /// What service `id` needs of `layout`, from the role `layout` names
    /// it in.
    pub fn of(layout: &Layout, id: &str) -> Serving {
        if layout.commit_proxies.iter().any(|p| p == id) {
            return Serving::Proxy(Box::new(layout.clone()));
        }
        let tags = layout.logs.iter().find(|l| l.id == id).map(|l| l.tags.clone()).unwrap_or_default();
        Serving::Member { tags, recovery_version: layout.recovery_version }
    }
}

impl WorkerRequest {
    /// The service it is addressed to, if it names one.
    pub fn service(&self) -> Option<&str> {
        match self {
            WorkerRequest::Info { .. } | WorkerRequest::CreateWorker { .. } | WorkerRequest::StartRole { .. } => None,
            WorkerRequest::Lock { id, .. }
            | WorkerRequest::ReadRange { id, .. }
            | WorkerRequest::InstallRange { id, .. }
            | WorkerRequest::Unlock { id, .. }
            | WorkerRequest::Release { id, .. }
            | WorkerRequest::Snapshot { id, .. }
            | WorkerRequest::Rebuild { id, .. }
            | WorkerRequest::RecoverApply { id, .. }
            | WorkerRequest::Truncate { id, .. }
            | WorkerRequest::Retained { id, .. }
            | WorkerRequest::Pop { id, .. }
            | WorkerRequest::Commit { id, .. }
            | WorkerRequest::ReadVersion { id }
            | WorkerRequest::NextVersion { id, .. }
            | WorkerRequest::Resolve { id, .. }
            | WorkerRequest::Push { id, .. }
            | WorkerRequest::Pull { id, .. }
            | WorkerRequest::Apply { id, .. }
            | WorkerRequest::Read { id, .. } => Some(id),
        }
    }

    /// The epoch it carries, if it is fenced by one.
    pub fn epoch(&self) -> Option<Epoch> {
        match self {
            WorkerRequest::Lock { epoch, .. }
            | WorkerRequest::CreateWorker { epoch, .. }
            | WorkerRequest::StartRole { epoch, .. }
            | WorkerRequest::ReadRange { epoch, .. }
            | WorkerRequest::InstallRange { epoch, .. }
            | WorkerRequest::Unlock { epoch, .. }
            | WorkerRequest::Rebuild { epoch, .. }
            | WorkerRequest::RecoverApply { epoch, .. }
            | WorkerRequest::Truncate { epoch, .. }
            | WorkerRequest::NextVersion { epoch, .. }
            | WorkerRequest::Resolve { epoch, .. }
            | WorkerRequest::Push { epoch, .. }
            | WorkerRequest::Release { epoch, .. }
            | WorkerRequest::Snapshot { epoch, .. }
            | WorkerRequest::Pop { epoch, .. }
            | WorkerRequest::Apply { epoch, .. } => Some(*epoch),
            WorkerRequest::Info { .. }
            | WorkerRequest::Retained { .. }
            | WorkerRequest::Commit { .. }
            | WorkerRequest::ReadVersion { .. }
            | WorkerRequest::Pull { .. }
            | WorkerRequest::Read { .. } => None,
        }
    }

    /// Who may ask it: the coordinator alone drives recovery and moves
    /// data; proxies on workers take versions, resolve and push; clients
    /// commit and read.
    pub fn callers(&self) -> &'static [Role] {
        match self {
            WorkerRequest::Info { .. }
            | WorkerRequest::Lock { .. }
            | WorkerRequest::CreateWorker { .. }
            | WorkerRequest::StartRole { .. }
            | WorkerRequest::ReadRange { .. }
            | WorkerRequest::InstallRange { .. }
            | WorkerRequest::Unlock { .. }
            | WorkerRequest::Release { .. }
            | WorkerRequest::Snapshot { .. }
            | WorkerRequest::Rebuild { .. }
            | WorkerRequest::RecoverApply { .. }
            | WorkerRequest::Truncate { .. }
            | WorkerRequest::Retained { .. }
            | WorkerRequest::Pop { .. }
            | WorkerRequest::Pull { .. }
            | WorkerRequest::Apply { .. } => &[Role::Coordinator],
            WorkerRequest::NextVersion { .. } | WorkerRequest::Resolve { .. } | WorkerRequest::Push { .. } => {
                &[Role::Worker, Role::Coordinator]
            }
            WorkerRequest::Commit { .. } | WorkerRequest::ReadVersion { .. } | WorkerRequest::Read { .. } => {
                &[Role::Client, Role::Coordinator]
            }
        }
    }

    /// Whether it moves data (a log range, a pull, a catch-up page, a
    /// snapshot page, a rebuild page, whose last one installs a whole
    /// shard): bounded as data movement is, not as a control call.
    pub fn moves_data(&self) -> bool {
        matches!(
            self,
            WorkerRequest::ReadRange { .. }
                | WorkerRequest::InstallRange { .. }
                | WorkerRequest::Pull { .. }
                | WorkerRequest::Apply { .. }
                | WorkerRequest::RecoverApply { .. }
                | WorkerRequest::Snapshot { .. }
                | WorkerRequest::Rebuild { .. }
        )
    }

    /// What it asks.
    pub fn kind(&self) -> RequestKind {
        match self {
            WorkerRequest::Info { .. } => RequestKind::Info,
            WorkerRequest::Lock { .. } => RequestKind::Lock,
            WorkerRequest::CreateWorker { .. } => RequestKind::CreateWorker,
            WorkerRequest::StartRole { .. } => RequestKind::StartRole,
            WorkerRequest::ReadRange { .. } => RequestKind::ReadRange,
            WorkerRequest::InstallRange { .. } => RequestKind::InstallRange,
            WorkerRequest::Unlock { .. } => RequestKind::Unlock,
            WorkerRequest::Release { .. } => RequestKind::Release,
            WorkerRequest::Snapshot { .. } => RequestKind::Snapshot,
            WorkerRequest::Rebuild { .. } => RequestKind::Rebuild,
            WorkerRequest::RecoverApply { .. } => RequestKind::RecoverApply,
            WorkerRequest::Truncate { .. } => RequestKind::Truncate,
            WorkerRequest::Retained { .. } => RequestKind::Retained,
            WorkerRequest::Pop { .. } => RequestKind::Pop,
            WorkerRequest::Commit { .. } => RequestKind::Commit,
            WorkerRequest::ReadVersion { .. } => RequestKind::ReadVersion,
            WorkerRequest::NextVersion { .. } => RequestKind::NextVersion,
            WorkerRequest::Resolve { .. } => RequestKind::Resolve,
            WorkerRequest::Push { .. } => RequestKind::Push,
            WorkerRequest::Pull { .. } => RequestKind::Pull,
            WorkerRequest::Apply { .. } => RequestKind::Apply,
            WorkerRequest::Read { .. } => RequestKind::Read,
        }
    }
}

/// A worker's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkerReply {
    /// For [`WorkerRequest::Info`].
    Info { node: Node, services: Vec<ServiceDescriptor>, broken: Vec<String> },
    /// For [`WorkerRequest::Lock`].
    Locked(LockInfo),
    /// For a created worker or started role.
    Created(ServiceDescriptor),
    /// For [`WorkerRequest::ReadRange`]: a page of the range, and the last
    /// version it covers (`last` when the page ends the range).
    Range { entries: Vec<(Version, Vec<Mutation>)>, through: Version },
    /// For [`WorkerRequest::Snapshot`].
    SnapshotPage(SnapshotPage),
    /// For [`WorkerRequest::Commit`]: the acknowledged version.
    Committed(Version),
    /// For [`WorkerRequest::ReadVersion`].
    ReadVersion(Version),
    /// For [`WorkerRequest::NextVersion`].
    Versions { prev: Version, version: Version },
    /// For [`WorkerRequest::Pull`]: a page of the mutations, the last
    /// version the page covers (`upto` when it ends the range), and the
    /// log's last version (a range past it is not whole yet).
    Pulled { mutations: Vec<(Version, Mutation)>, through: Version, last: Version },
    /// For [`WorkerRequest::Read`]: the value, the replica's durable version,
    /// and whether it serves a live generation.
    Value { value: Option<String>, durable: Version, serving: bool },
    /// For [`WorkerRequest::Retained`]: the log holds `(after, last]`.
    Retained { after: Version, last: Version },
    /// Done, nothing to report.
    Done,
}
