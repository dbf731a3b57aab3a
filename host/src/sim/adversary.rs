//! The adversary in the simulator: `plugin-adversary` run natively in the
//! slot a run attacks, against the same guarded host services a component
//! gets. Values cross between the host's and the SDK's generated types
//! through postcard, as both derive serde from the same WIT.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use plugin_adversary::{AdversaryHost, mix};
use ratchet_guest::types as g;

use crate::bindings::types::{Assignment, AttemptState, PhaseOutcome, PlacementError, PlacementRequest, ReplicaHistory, ReplicaPlan};
use crate::bindings::{clock, cluster, placement};
use crate::registry::{InvokeError, PHASES, PLACEMENT, Plugins, REPLICA, all_slots};
use crate::runtime::{HostView, PluginHost};

/// Which slot the adversary takes in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdversarySlot {
    /// This slot, in every run.
    Slot(&'static str),
    /// A slot each seed picks.
    All,
}

impl FromStr for AdversarySlot {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "all" {
            return Ok(AdversarySlot::All);
        }
        all_slots()
            .find(|slot| *slot == text)
            .map(AdversarySlot::Slot)
            .ok_or_else(|| format!("`{text}` is no slot; the adversary takes one of: all, {}", all_slots().collect::<Vec<_>>().join(", ")))
    }
}

impl std::fmt::Display for AdversarySlot {
    /// As `--adversary` takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdversarySlot::Slot(slot) => f.write_str(slot),
            AdversarySlot::All => f.write_str("all"),
        }
    }
}

impl AdversarySlot {
    /// The slot the adversary takes in the run of `seed`.
    pub fn slot_for(&self, seed: u64) -> &'static str {
        match self {
            AdversarySlot::Slot(slot) => slot,
            AdversarySlot::All => {
                let slots: Vec<&'static str> = all_slots().collect();
                slots[(mix(&[seed, 0xad7e]) % slots.len() as u64) as usize]
            }
        }
    }
}

/// Whether the adversary is in its slot now: a run arms it and disarms
/// it as it goes.
#[derive(Debug, Default)]
pub struct Switch(AtomicBool);

impl Switch {
    /// Arms or disarms.
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    /// Whether it is armed.
    pub fn on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// `inner` with the adversary in one slot, while `armed`.
pub struct AdversarialPlugins {
    inner: Arc<dyn Plugins>,
    slot: &'static str,
    seed: u64,
    armed: Arc<Switch>,
    /// Calls so far: each call draws from its own seed.
    calls: AtomicU64,
}

impl AdversarialPlugins {
    /// `inner`, with the adversary of run `seed` in `slot` while `armed`.
    pub fn new(inner: Arc<dyn Plugins>, slot: &'static str, seed: u64, armed: Arc<Switch>) -> Self {
        AdversarialPlugins { inner, slot, seed, armed, calls: AtomicU64::new(0) }
    }

    fn attacks(&self, slot: &str) -> bool {
        slot == self.slot && self.armed.on()
    }

    fn next_seed(&self, parts: &[u64]) -> u64 {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        mix(&[&[self.seed, call], parts].concat())
    }
}

/// A value of one generated type set as the other: the same WIT record,
/// the same serde shape.
fn convert<A: serde::Serialize, B: serde::de::DeserializeOwned>(value: &A) -> B {
    let bytes = postcard::to_stdvec(value).expect("a generated WIT value encodes");
    postcard::from_bytes(&bytes).expect("both type sets are generated from the same WIT")
}

#[async_trait::async_trait]
impl Plugins for AdversarialPlugins {
    async fn run_phase(&self, slot: &str, state: &AttemptState, host: Arc<dyn PluginHost>) -> Result<PhaseOutcome, InvokeError> {
        if !self.attacks(slot) {
            return self.inner.run_phase(slot, state, host).await;
        }
        let seed = self.next_seed(&[state.epoch, u64::from(state.attempt)]);
        let next = PHASES.iter().position(|p| *p == slot).and_then(|i| PHASES.get(i + 1)).copied();
        let mut native = NativeHost { view: HostView::native(&*host) };
        let outcome = plugin_adversary::run_phase(seed, convert(state), &mut native, next).await;
        Ok(convert(&outcome))
    }

    async fn place(&self, request: &PlacementRequest) -> Result<Result<Vec<Assignment>, PlacementError>, InvokeError> {
        if !self.attacks(PLACEMENT) {
            return self.inner.place(request).await;
        }
        let seed = self.next_seed(&[]);
        Ok(convert(&plugin_adversary::place(seed, &convert(request))))
    }

    async fn replica_plan(&self, history: &ReplicaHistory) -> Result<ReplicaPlan, InvokeError> {
        if !self.attacks(REPLICA) {
            return self.inner.replica_plan(history).await;
        }
        let seed = self.next_seed(&[]);
        Ok(convert(&plugin_adversary::decide(seed, convert(history))))
    }
}

/// The guarded host, through the imports a component's calls run, as the
/// adversary's host.
struct NativeHost<'a> {
    view: HostView<'a>,
}

impl AdversaryHost for NativeHost<'_> {
    async fn services(&mut self) -> Vec<g::ServiceDescriptor> {
        convert(&cluster::Host::services(&mut self.view).await)
    }
    async fn nodes(&mut self) -> Vec<g::Node> {
        convert(&cluster::Host::nodes(&mut self.view).await)
    }
    async fn lock(&mut self, ids: Vec<String>) -> Vec<Result<g::LockInfo, g::ClusterError>> {
        convert(&cluster::Host::lock(&mut self.view, ids).await)
    }
    async fn create_worker(&mut self, node: String, kind: g::ServiceKind) -> Result<g::ServiceDescriptor, g::ClusterError> {
        convert(&cluster::Host::create_worker(&mut self.view, node, convert(&kind)).await)
    }
    async fn create_workers(&mut self, requests: Vec<(String, g::ServiceKind)>) -> Vec<Result<g::ServiceDescriptor, g::ClusterError>> {
        convert(&cluster::Host::create_workers(&mut self.view, convert(&requests)).await)
    }
    async fn known_durable(&mut self, ids: Vec<String>) -> Result<Vec<Option<u64>>, g::ClusterError> {
        convert(&cluster::Host::known_durable(&mut self.view, ids).await)
    }
    async fn recover_logs(&mut self, copies: Vec<g::LogCopy>) -> Vec<Result<(), g::ClusterError>> {
        convert(&cluster::Host::recover_logs(&mut self.view, convert(&copies)).await)
    }
    async fn recover_log(
        &mut self,
        target: String,
        sources: Vec<String>,
        tags: Vec<g::ShardTag>,
        first: g::Version,
        last: g::Version,
    ) -> Result<(), g::ClusterError> {
        convert(&cluster::Host::recover_log(&mut self.view, target, sources, tags, first, last).await)
    }
    async fn start_role(&mut self, node: String, kind: g::ServiceKind) -> Result<g::ServiceDescriptor, g::ClusterError> {
        convert(&cluster::Host::start_role(&mut self.view, node, convert(&kind)).await)
    }
    async fn stage_layout(&mut self, layout: g::Layout) -> Result<(), g::ClusterError> {
        convert(&cluster::Host::stage_layout(&mut self.view, convert(&layout)).await)
    }
    async fn unlock(&mut self, ids: Vec<String>) -> Vec<Result<(), g::ClusterError>> {
        convert(&cluster::Host::unlock(&mut self.view, ids).await)
    }
    async fn persist_layout(&mut self) -> Result<(), g::ClusterError> {
        convert(&cluster::Host::persist_layout(&mut self.view).await)
    }
    async fn place(&mut self, request: g::PlacementRequest) -> Result<Vec<g::Assignment>, g::PlacementError> {
        convert(&placement::Host::place(&mut self.view, convert(&request)).await)
    }
    fn now_ms(&mut self) -> u64 {
        // The SDK's clock is synchronous; the guard's answers at once.
        futures::executor::block_on(clock::Host::now_ms(&mut self.view))
    }
    async fn sleep_ms(&mut self, ms: u64) {
        clock::Host::sleep_ms(&mut self.view, ms).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_parse_and_all_spreads_over_every_slot() {
        assert_eq!("placement".parse::<AdversarySlot>(), Ok(AdversarySlot::Slot("placement")));
        assert!("nowhere".parse::<AdversarySlot>().unwrap_err().contains("lock-services"));
        let picked: std::collections::BTreeSet<&str> = (0..500).map(|seed| AdversarySlot::All.slot_for(seed)).collect();
        assert_eq!(picked.len(), all_slots().count(), "500 seeds reach every slot");
    }
}
