//! The cluster as the director reaches it: one trait, [`Cluster`], with the
//! in-process implementation ([`InProcessCluster`]) and the cluster of worker
//! processes over the transport ([`RemoteCluster`]). The simulator will
//! implement the same trait, so every phase and policy runs unchanged
//! against any of them.

mod in_process;
mod registrations;
mod remote;

pub use in_process::{CommitError, InProcessCluster, NodeSpec, tag_of};
pub use registrations::{RegistrationWatch, Registrations};
pub use remote::RemoteCluster;

use crate::bindings::types::{
    ClusterError, Epoch, Layout, LockInfo, Node, ServiceDescriptor, ServiceKind, ShardTag, Version,
};
use crate::services::ServiceError;

/// The operations a director performs on a cluster. Every call that changes a
/// service carries the attempt's epoch, and the service enforces its lock.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    /// Every node, with its health and load.
    async fn nodes(&self) -> Vec<Node>;
    /// The service directory.
    async fn services(&self) -> Vec<ServiceDescriptor>;
    /// Locks one service at `epoch` and reports its recovery information.
    async fn lock(&self, id: &str, epoch: Epoch) -> Result<LockInfo, ClusterError>;
    /// Has the foreman of `node` create a worker of `kind`, locked at `epoch`.
    async fn create_worker(&self, node: &str, kind: ServiceKind, epoch: Epoch)
    -> Result<ServiceDescriptor, ClusterError>;
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
    async fn start_role(&self, node: &str, kind: ServiceKind, epoch: Epoch, start: Version)
    -> Result<ServiceDescriptor, ClusterError>;
    /// Hands a service the new layout and lets it serve generation `epoch`.
    async fn unlock(&self, id: &str, epoch: Epoch, layout: &Layout) -> Result<(), ClusterError>;
    /// The layout was persisted: its generation is now the live one that
    /// clients commit through.
    async fn adopt(&self, layout: &Layout);
    /// Stops and forgets a worker an abandoned attempt created.
    async fn release(&self, id: &str);
    /// A counter that rises whenever a service registers or comes back, so a
    /// stalled director can retry at once.
    fn registrations(&self) -> RegistrationWatch;
}

impl From<ServiceError> for ClusterError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Superseded(epoch) => ClusterError::Superseded(epoch),
            other => ClusterError::Failed(other.to_string()),
        }
    }
}
