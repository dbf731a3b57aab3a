//! Plugin traps on demand: the phases and the placement policy of a
//! simulated run, with a trap injected where the seed says.

use std::sync::Arc;

use super::history::History;
use super::net::Network;
use crate::bindings::types::{Assignment, AttemptState, PhaseOutcome, PlacementError, PlacementRequest, ReplicaHistory, ReplicaPlan};
use crate::registry::{InvokeError, Plugins};
use crate::runtime::{CallError, CallFailure, PluginHost};

/// `inner`, trapping a phase call now and then while faults are on.
pub struct FaultyPlugins {
    inner: Arc<dyn Plugins>,
    net: Arc<Network>,
    history: History,
}

impl FaultyPlugins {
    /// Wraps `inner`; `net` decides when to trap.
    pub fn new(inner: Arc<dyn Plugins>, net: Arc<Network>, history: History) -> Self {
        FaultyPlugins { inner, net, history }
    }
}

#[async_trait::async_trait]
impl Plugins for FaultyPlugins {
    async fn run_phase(&self, slot: &str, state: &AttemptState, host: Arc<dyn PluginHost>) -> Result<PhaseOutcome, InvokeError> {
        if self.net.draw(|p| p.plugin_trap) {
            self.history.event("plugin", format_args!("{slot} traps (injected) e{}", state.epoch));
            return Err(InvokeError::Call(CallError {
                slot: slot.to_string(),
                version: 0,
                sha256: "injected".into(),
                failure: CallFailure::Trap { message: "trap injected by the simulator".into(), stderr: String::new() },
            }));
        }
        let outcome = self.inner.run_phase(slot, state, host).await;
        if let Err(err) = &outcome {
            self.history.event("plugin", format_args!("{slot} failed e{}: {err}", state.epoch));
        }
        outcome
    }

    async fn place(&self, request: &PlacementRequest) -> Result<Result<Vec<Assignment>, PlacementError>, InvokeError> {
        self.inner.place(request).await
    }

    async fn replica_plan(&self, history: &ReplicaHistory) -> Result<ReplicaPlan, InvokeError> {
        self.inner.replica_plan(history).await
    }
}
