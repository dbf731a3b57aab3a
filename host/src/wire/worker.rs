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
    Info {
        /// How long to hold the answer, in milliseconds (at most the worker's `MAX_HOLD`); 0 answers at once.
        hold_ms: u64,
    },
    /// Lock a service at `epoch` and report its recovery information.
    Lock {
        /// The service it is addressed to.
        id: String,
        /// The epoch to lock it at; a worker refuses one below the service's holder.
        epoch: Epoch,
    },
    /// Create a log or storage server, locked at `epoch`.
    CreateWorker {
        /// Which to create: a log or a storage server.
        kind: ServiceKind,
        /// The epoch to lock the new service at.
        epoch: Epoch,
    },
    /// Start a sequencer, proxy or resolver of generation `epoch`.
    StartRole {
        /// Which role to start: a sequencer, proxy or resolver.
        kind: ServiceKind,
        /// The generation the new role serves.
        epoch: Epoch,
        /// The version a sequencer's first commit version follows; unused by other roles.
        start: Version,
    },
    /// The mutations of `tags` in `[first, last]` held by a log locked by
    /// `epoch`, a page of about [`PAGE_BYTES`](crate::topology::PAGE_BYTES) at a time.
    ReadRange {
        /// The log it is addressed to.
        id: String,
        /// The epoch the caller acts for, which must hold the service's lock.
        epoch: Epoch,
        /// The shards whose mutations the range holds.
        tags: Vec<ShardTag>,
        /// The first version of the range.
        first: Version,
        /// The last version of the range.
        last: Version,
    },
    /// Install a recovered range into a log locked by `epoch`.
    InstallRange {
        /// The log it is addressed to.
        id: String,
        /// The epoch the caller acts for, which must hold the service's lock.
        epoch: Epoch,
        /// The shards whose mutations the range holds.
        tags: Vec<ShardTag>,
        /// The first version of the range.
        first: Version,
        /// The last version of the range.
        last: Version,
        /// The range's mutations, by version.
        entries: Vec<(Version, Vec<Mutation>)>,
    },
    /// Serve generation `epoch`, given what the service needs of it (see
    /// [`Serving::of`]).
    Unlock {
        /// The service it is addressed to.
        id: String,
        /// The generation to serve, which must hold the service's lock.
        epoch: Epoch,
        /// What the service needs of the generation.
        serving: Serving,
    },
    /// Stop and forget a service, for `epoch`: refused when a newer epoch
    /// holds it.
    Release {
        /// The service it is addressed to.
        id: String,
        /// The epoch the caller acts for; a worker refuses one below the service's holder.
        epoch: Epoch,
    },
    /// A page of a storage replica's data as of version `as_of` (the keys
    /// after `after`), to seed a teammate, for `epoch`: refused when a
    /// newer epoch holds the replica.
    Snapshot {
        /// The storage replica it is addressed to.
        id: String,
        /// The epoch the caller acts for; a worker refuses one below the service's holder.
        epoch: Epoch,
        /// The key the page starts after; `None` for the first page.
        after: Option<String>,
        /// The version whose data the page shows.
        as_of: Version,
    },
    /// A page of a teammate's snapshot for a replica locked by `epoch`,
    /// which replica recovery rebuilds: `first` starts a transfer, and the
    /// replica's data is replaced, whole, at `version`, with the `last`.
    Rebuild {
        /// The storage replica it is addressed to.
        id: String,
        /// The epoch the caller acts for, which must hold the service's lock.
        epoch: Epoch,
        /// The version the snapshot was taken at.
        version: Version,
        /// The page's keys and values.
        entries: Vec<(String, String)>,
        /// Whether this page starts the transfer.
        first: bool,
        /// Whether this page ends the transfer, replacing the replica's data.
        last: bool,
    },
    /// Apply a page of a replica recovery's catch-up to a replica locked by
    /// `epoch`, durable up to `upto`.
    RecoverApply {
        /// The storage replica it is addressed to.
        id: String,
        /// The epoch the caller acts for, which must hold the service's lock.
        epoch: Epoch,
        /// The mutations, each with its version.
        mutations: Vec<(Version, Mutation)>,
        /// The version the replica is durable up to once they are applied.
        upto: Version,
    },
    /// Roll a replica locked by `epoch` back to `to`.
    Truncate {
        /// The storage replica it is addressed to.
        id: String,
        /// The epoch the caller acts for, which must hold the service's lock.
        epoch: Epoch,
        /// The version to roll back to.
        to: Version,
    },
    /// The versions a log retains: of shard `tag`, or of every shard it
    /// carries (the oldest kept of any) when `tag` is `None`.
    Retained {
        /// The log it is addressed to.
        id: String,
        /// The shard to report on; `None` for every shard the log carries.
        tag: Option<ShardTag>,
    },
    /// Discard a log's versions through `through` (storage holds them),
    /// for generation `epoch`: refused when a newer epoch holds the log.
    Pop {
        /// The log it is addressed to.
        id: String,
        /// The epoch the caller acts for; a worker refuses one below the service's holder.
        epoch: Epoch,
        /// The last version to discard.
        through: Version,
    },
    /// Commit writes through a proxy, which takes a version from its
    /// generation's sequencer, checks with every resolver and pushes to
    /// every log. Answered only once every log has made it durable.
    Commit {
        /// The commit proxy it is addressed to.
        id: String,
        /// The keys to write, each with its value.
        writes: Vec<(String, String)>,
    },
    /// The newest version a proxy has acknowledged: a read at it sees
    /// every write acknowledged before the request.
    ReadVersion {
        /// The commit proxy it is addressed to.
        id: String,
    },
    /// Take the next commit version from a sequencer: answers `(prev, version)`.
    NextVersion {
        /// The sequencer it is addressed to.
        id: String,
        /// The generation the caller commits for; the service refuses another.
        epoch: Epoch,
    },
    /// Check a commit at a resolver.
    Resolve {
        /// The resolver it is addressed to.
        id: String,
        /// The generation the caller commits for; the service refuses another.
        epoch: Epoch,
    },
    /// Append a committed version to a log.
    Push {
        /// The log it is addressed to.
        id: String,
        /// The generation the caller commits for; the service refuses another.
        epoch: Epoch,
        /// The version `version` follows, which must be the log's last.
        prev: Version,
        /// The commit version to append.
        version: Version,
        /// The commit's mutations; the log keeps those of the shards it carries.
        mutations: Vec<Mutation>,
    },
    /// The mutations of `tag` in `(after, upto]` held by a log, a page of
    /// about [`PAGE_BYTES`](crate::topology::PAGE_BYTES) at a time.
    Pull {
        /// The log it is addressed to.
        id: String,
        /// The shard whose mutations to pull.
        tag: ShardTag,
        /// The version the range starts after.
        after: Version,
        /// The last version of the range.
        upto: Version,
    },
    /// Apply pulled mutations to a replica, durable up to `upto`, for
    /// generation `epoch`: refused when a newer epoch holds the replica.
    Apply {
        /// The storage replica it is addressed to.
        id: String,
        /// The epoch the caller acts for; a worker refuses one below the service's holder.
        epoch: Epoch,
        /// The mutations, each with its version.
        mutations: Vec<(Version, Mutation)>,
        /// The version the replica is durable up to once they are applied.
        upto: Version,
    },
    /// Read a key from a replica: answers the value and the replica's durable version.
    Read {
        /// The storage replica it is addressed to.
        id: String,
        /// The key to read.
        key: String,
    },
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
    Member {
        /// The shards it carries as a log; none for another role.
        tags: Vec<ShardTag>,
        /// The generation's recovery version, after which a log takes pushes.
        recovery_version: Version,
    },
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

    /// Whether the worker it is sent to answers it on its own, without
    /// waiting on another worker: all but a commit, which waits on its
    /// generation's sequencer, resolvers and logs. A timeout of such a call
    /// is its worker's.
    pub fn answered_alone(&self) -> bool {
        !matches!(self, WorkerRequest::Commit { .. })
    }

    /// Whether it is one of a recovery's own control calls on a service
    /// (a lock, a creation, a role's start, an unlock): one journal write
    /// on a healthy node, whatever the data. One answered after most of
    /// its timeout says the node is slow (`cluster::degraded`).
    pub fn sets_up_a_generation(&self) -> bool {
        matches!(
            self,
            WorkerRequest::Lock { .. }
                | WorkerRequest::CreateWorker { .. }
                | WorkerRequest::StartRole { .. }
                | WorkerRequest::Unlock { .. }
        )
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
    Info {
        /// The worker's node.
        node: Node,
        /// The services it hosts, with those being installed.
        services: Vec<ServiceDescriptor>,
        /// The proxies whose generation broke.
        broken: Vec<String>,
    },
    /// For [`WorkerRequest::Lock`].
    Locked(LockInfo),
    /// For a created worker or started role.
    Created(ServiceDescriptor),
    /// For [`WorkerRequest::ReadRange`]: a page of the range, and the last
    /// version it covers (`last` when the page ends the range).
    Range {
        /// The page's mutations, by version.
        entries: Vec<(Version, Vec<Mutation>)>,
        /// The last version the page covers.
        through: Version,
    },
    /// For [`WorkerRequest::Snapshot`].
    SnapshotPage(SnapshotPage),
    /// For [`WorkerRequest::Commit`]: the acknowledged version.
    Committed(Version),
    /// For [`WorkerRequest::ReadVersion`].
    ReadVersion(Version),
    /// For [`WorkerRequest::NextVersion`].
    Versions {
        /// The version the new one follows.
        prev: Version,
        /// The new commit version.
        version: Version,
    },
    /// For [`WorkerRequest::Pull`]: a page of the mutations, the last
    /// version the page covers (`upto` when it ends the range), and the
    /// log's last version (a range past it is not whole yet).
    Pulled {
        /// The page's mutations, each with its version.
        mutations: Vec<(Version, Mutation)>,
        /// The last version the page covers.
        through: Version,
        /// The log's last version.
        last: Version,
    },
    /// For [`WorkerRequest::Read`]: the value, the replica's durable version,
    /// and whether it serves a live generation.
    Value {
        /// The key's value, if it is set.
        value: Option<String>,
        /// The replica's durable version.
        durable: Version,
        /// Whether the replica serves a live generation.
        serving: bool,
    },
    /// For [`WorkerRequest::Retained`]: the log holds `(after, last]`.
    Retained {
        /// The version the retained range starts after.
        after: Version,
        /// The last version retained.
        last: Version,
    },
    /// Done, nothing to report.
    Done,
}
