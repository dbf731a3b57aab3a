//! Where a director's phases and placement decisions come from.

use std::sync::Arc;

use super::{InvokeError, Registry};
use crate::bindings::types::{Assignment, AttemptState, PhaseOutcome, PlacementError, PlacementRequest, ReplicaHistory, ReplicaPlan};
use crate::runtime::{Detached, PluginHost};

/// The phases and the placement policy a director runs. The [`Registry`]
/// runs them as sandboxed components; the native baseline of the benchmarks
/// runs the same crates compiled natively, behind the same invariant guard.
#[async_trait::async_trait]
pub trait Plugins: Send + Sync {
    /// Runs the phase in `slot` on `state`; `host` answers its host calls.
    async fn run_phase(&self, slot: &str, state: &AttemptState, host: Arc<dyn PluginHost>) -> Result<PhaseOutcome, InvokeError>;

    /// Asks the placement policy.
    async fn place(&self, request: &PlacementRequest) -> Result<Result<Vec<Assignment>, PlacementError>, InvokeError>;

    /// Asks the replica recovery policy how to bring a replica up to date.
    async fn replica_plan(&self, history: &ReplicaHistory) -> Result<ReplicaPlan, InvokeError>;
}

#[async_trait::async_trait]
impl Plugins for Registry {
    async fn run_phase(&self, slot: &str, state: &AttemptState, host: Arc<dyn PluginHost>) -> Result<PhaseOutcome, InvokeError> {
        self.call_phase(slot, state, host).await
    }

    async fn place(&self, request: &PlacementRequest) -> Result<Result<Vec<Assignment>, PlacementError>, InvokeError> {
        // A placement policy imports only `log`: it reaches nothing else.
        self.call_placement(request, Arc::new(Detached::default())).await
    }

    async fn replica_plan(&self, history: &ReplicaHistory) -> Result<ReplicaPlan, InvokeError> {
        self.call_replica(history).await
    }
}
