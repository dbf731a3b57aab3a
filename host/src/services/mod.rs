//! The data-plane services as plain state machines: no I/O, no clock, no
//! threads. The in-process cluster, the simulator and the worker process
//! each wrap these same machines; none of them copies the logic. The worker
//! makes the log and storage durable with [`DurableLog`] and
//! [`DurableStorage`], which journal every input before acknowledging it.

mod disk;
mod durable;
mod journal;
mod lock;
mod log;
mod roles;
mod storage;

pub use disk::{Disk, MemoryDir, MemoryFile};
pub use durable::{DurableError, DurableLog, DurableStorage};
pub use journal::{Journal, JournalError};
pub use lock::EpochLock;
pub use log::LogService;
pub use roles::{CommitProxy, Resolver, Sequencer};
pub use storage::{Snapshot, SnapshotPage, StagedSnapshots, StagingError, StorageService, UNDO_VERSIONS};

use serde::{Deserialize, Serialize};

use crate::bindings::types::{Epoch, ShardTag, Version};

/// Every kind of worker; the nodes of both clusters can host them all.
pub const ALL_KINDS: [crate::bindings::types::ServiceKind; 5] = {
    use crate::bindings::types::ServiceKind as K;
    [K::Log, K::Storage, K::Sequencer, K::CommitProxy, K::Resolver]
};

/// One write: a key set to a value, in the shard that owns the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    /// The shard the key belongs to.
    pub tag: ShardTag,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl Mutation {
    /// Its size on the wire, roughly: what a page of a transfer counts.
    pub fn size(&self) -> usize {
        self.key.len() + self.value.len() + 16
    }
}

/// Why a service refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// I2: the service is locked by a newer epoch.
    #[error("locked by newer epoch {0}")]
    Superseded(Epoch),
    /// I4: the caller's epoch does not hold the service's lock.
    #[error("not locked by epoch {caller} (locked by {holder:?})")]
    NotLocked {
        /// The epoch of the caller.
        caller: Epoch,
        /// The epoch holding the lock, if any.
        holder: Option<Epoch>,
    },
    /// A push or role request from a generation the service does not serve.
    #[error("fenced: serves generation {serving}, request from {request}")]
    Fenced {
        /// The generation the service serves.
        serving: Epoch,
        /// The generation of the request.
        request: Epoch,
    },
    /// A request to a role of a generation that a later lock stopped: the
    /// generation no longer commits.
    #[error("stopped: generation {serving} was stopped by the lock of generation {by}")]
    Stopped {
        /// The generation the role serves.
        serving: Epoch,
        /// The generation whose lock stopped it.
        by: Epoch,
    },
    /// A replica asked to apply a generation's mutations while it serves
    /// none (it is locked by a recovery, or still joining).
    #[error("the replica serves no generation: it applies only what a recovery brings")]
    NotServing,
    /// A truncation or rebuild of a recovery whose generation the replica
    /// serves already: a late request of an abandoned session, which would
    /// roll back what the generation applied since.
    #[error("the replica serves generation {0} already: a recovery of it may no longer take versions away")]
    ServingAlready(Epoch),
    /// A push that does not follow the log's last version.
    #[error("version gap: log is at {last}, push follows {prev}")]
    Gap {
        /// The log's last version.
        last: Version,
        /// The version the push claims to follow.
        prev: Version,
    },
    /// A replica cannot roll back that far: it keeps undo entries only for
    /// the versions above `floor`.
    #[error("cannot truncate to {to}: the replica can undo only the versions after {floor}")]
    CannotTruncate {
        /// The version asked for.
        to: Version,
        /// The oldest version it can roll back to.
        floor: Version,
    },
    /// A snapshot page that belongs to no transfer in progress.
    #[error("a snapshot page of version {version} out of its transfer")]
    OutOfTransfer {
        /// The page's version.
        version: Version,
    },
    /// A log does not hold the versions asked for.
    #[error("the log holds [{oldest}, {last}] of shard {tag}, asked for [{first}, {wanted}]")]
    Missing {
        /// The shard.
        tag: ShardTag,
        /// The oldest version held.
        oldest: Version,
        /// The last version held.
        last: Version,
        /// The first version asked for.
        first: Version,
        /// The last version asked for.
        wanted: Version,
    },
    /// A log asked about a shard it does not carry.
    #[error("the log does not carry shard {tag}")]
    NotCarried {
        /// The shard.
        tag: ShardTag,
    },
    /// A version range whose first version is above its last.
    #[error("inverted range [{first}, {last}]")]
    InvertedRange {
        /// The first version.
        first: Version,
        /// The last version.
        last: Version,
    },
    /// A recovered range that neither overlaps nor abuts what the log
    /// holds of the shard: the log would hold it with a gap.
    #[error("shard {tag}: [{first}, {last}] does not join the held [{oldest}, {through}]")]
    Disjoint {
        /// The shard.
        tag: ShardTag,
        /// The oldest version held.
        oldest: Version,
        /// The last version held.
        through: Version,
        /// The first version offered.
        first: Version,
        /// The last version offered.
        last: Version,
    },
    /// A log asked to serve from `start` holds versions past it, which
    /// the generation would issue again.
    #[error("the log holds versions through {last}, past the generation's start {start}")]
    Ahead {
        /// The newest version held.
        last: Version,
        /// The version the generation starts after.
        start: Version,
    },
    /// A push whose version is not above the log's last.
    #[error("a push of version {version} does not follow the last version {last}")]
    NotAfter {
        /// The log's last version.
        last: Version,
        /// The version pushed.
        version: Version,
    },
    /// A sequencer with no version left to hand out.
    #[error("no version is left after {0}")]
    VersionsExhausted(Version),
}
