//! The cluster as the director reaches it: one trait, [`Cluster`],
//! implemented by the one cluster client, [`RemoteCluster`], over any
//! transport: TCP to worker processes, or in memory to the foremen of a
//! [`LocalCluster`] (the demo, the dry run, the simulator behind its
//! simulated network, the tests, the benchmarks).

mod degraded;
mod detector;
mod local;
mod registrations;
mod remote;

pub use degraded::DEGRADED_CALL_TIMEOUTS;
pub use detector::{FailureDetector, Health};
pub use local::{LocalCluster, LocalError, ReplicaContents, TeamContents, Wire};
pub use registrations::{RegistrationWatch, Registrations};
pub use remote::{Breakage, CommitError, RemoteCluster};

use crate::bindings::types::{ClusterError, Epoch, Layout, LockInfo, Node, ServiceDescriptor, ServiceKind, ShardTag, Version};
use crate::services::{Mutation, ServiceError};

pub use crate::services::SnapshotPage;

/// A page pulled from a log: the mutations, and the last version it covers.
pub type PulledPage = (Vec<(Version, Mutation)>, Version);

/// The operations a director performs on a cluster. Every call that changes a
/// service carries the attempt's epoch, and the service enforces its lock.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    /// Every node, with its health and load.
    async fn nodes(&self) -> Vec<Node>;
    /// The service directory.
    async fn services(&self) -> Vec<ServiceDescriptor>;
    /// The nodes and the service directory together, as [`Cluster::nodes`]
    /// and [`Cluster::services`] answer them. A cluster that learns both
    /// from the same question asks it once.
    async fn survey(&self) -> (Vec<Node>, Vec<ServiceDescriptor>) {
        (self.nodes().await, self.services().await)
    }
    /// Locks one service at `epoch` and reports its recovery information.
    async fn lock(&self, id: &str, epoch: Epoch) -> Result<LockInfo, ClusterError>;
    /// Has the foreman of `node` create a worker of `kind`, locked at `epoch`.
    async fn create_worker(&self, node: &str, kind: ServiceKind, epoch: Epoch) -> Result<ServiceDescriptor, ClusterError>;
    /// Makes log `target` copy `[first, last]` of `tags` from one of `sources`.
    async fn recover_log(
        &self,
        epoch: Epoch,
        target: &str,
        sources: &[String],
        tags: &[ShardTag],
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError>;
    /// Starts a stateless role of generation `epoch` on `node`; a sequencer's
    /// first version follows `start`.
    async fn start_role(&self, node: &str, kind: ServiceKind, epoch: Epoch, start: Version) -> Result<ServiceDescriptor, ClusterError>;
    /// Hands a service the new layout and lets it serve generation `epoch`.
    async fn unlock(&self, id: &str, epoch: Epoch, layout: &Layout) -> Result<(), ClusterError>;
    /// The layout was persisted: its generation is now the live one that
    /// clients commit through.
    async fn adopt(&self, layout: &Layout);
    /// Stops and forgets a service for `epoch` (one an abandoned attempt
    /// created, or one no generation needs); a service a newer epoch holds
    /// is kept.
    async fn release(&self, id: &str, epoch: Epoch);
    /// A counter that rises whenever a service registers or comes back, so a
    /// stalled director can retry at once.
    fn registrations(&self) -> RegistrationWatch;
    /// The version storage replica `id` was last seen durable at while it
    /// served, as this process saw it: a floor of what the replica holds,
    /// even while it cannot be reached. `None` when this process has not
    /// seen it serve.
    fn known_durable(&self, id: &str) -> Option<Version>;

    // Replica recovery: the figures it decides on and the moves it makes
    // (see `crate::replica`). Every change carries the recovery's epoch and
    // the replica enforces its lock.

    /// A storage replica's durable version, and the endpoint it is reached at.
    async fn replica_state(&self, id: &str) -> Result<(Version, String), ClusterError>;
    /// The versions log `id` retains of shard `tag`: `(oldest, last]`.
    async fn log_retained(&self, id: &str, tag: ShardTag) -> Result<(Version, Version), ClusterError>;
    /// A page of the mutations of `tag` in `(after, upto]` held by log `log`.
    async fn pull(&self, log: &str, tag: ShardTag, after: Version, upto: Version) -> Result<PulledPage, ClusterError>;
    /// Applies pulled mutations to a replica locked by `epoch`, durable up to `upto`.
    async fn recover_apply(&self, id: &str, epoch: Epoch, mutations: Vec<(Version, Mutation)>, upto: Version) -> Result<(), ClusterError>;
    /// Rolls a replica locked by `epoch` back to `to`.
    async fn truncate(&self, id: &str, epoch: Epoch, to: Version) -> Result<(), ClusterError>;
    /// A page of replica `id`'s data as of `as_of` (as it is, when it is
    /// not there yet): the keys after `after`.
    /// Refused when a newer epoch than `epoch` holds the replica.
    async fn snapshot_page(&self, id: &str, epoch: Epoch, after: Option<String>, as_of: Version) -> Result<SnapshotPage, ClusterError>;
    /// A page of a teammate's snapshot for replica `id`, locked by `epoch`:
    /// `first` starts the transfer; with `last` the replica's data is
    /// replaced, whole, by the snapshot at `version`.
    async fn rebuild_page(
        &self,
        id: &str,
        epoch: Epoch,
        version: Version,
        entries: Vec<(String, String)>,
        first: bool,
        last: bool,
    ) -> Result<(), ClusterError>;
}

impl From<ServiceError> for ClusterError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Superseded(epoch) => ClusterError::Superseded(epoch),
            other => ClusterError::Failed(other.to_string()),
        }
    }
}
