//! The plugin registry: named slots, each holding the versions loaded into it
//! and the one that is active.
//!
//! A load compiles and type-checks the component off the hot path
//! ([`Registry::prepare`]), then swaps it in under a short write lock
//! ([`Registry::activate`]). A call takes a reference to the active version
//! when it starts and keeps it to the end, so a call in flight finishes on
//! the version it started with while the next call sees the new one. Every
//! version stays in the slot's history, so a rollback is a pointer move.

pub mod file;
mod plugins;
mod shadow;
mod slots;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

pub use plugins::Plugins;
pub use shadow::{Divergence, ShadowSink};
pub use slots::{PHASES, PLACEMENT, REPLICA, all as all_slots, world_of};

use crate::bindings::types::{Assignment, AttemptState, PhaseOutcome, PlacementError, PlacementRequest, ReplicaHistory, ReplicaPlan};
use crate::components;
use crate::runtime::{
    CacheOrigin, CallError, CallFailure, CallInfo, Digest256, Limits, Linked, LoadError, PluginHost, Prepared, Runtime, World,
};

/// One version of a slot, as shown to operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// The slot.
    pub slot: String,
    /// The version number within the slot, from 1.
    pub number: u32,
    /// The sha256 of the component.
    pub sha256: Digest256,
    /// The component's size in bytes.
    pub size: usize,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Where it came from: `embedded:<crate>`, a file path, or a caller's label.
    pub source: String,
    /// Where its compiled code came from.
    pub origin: CacheOrigin,
}

/// Why a registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No slot has that name.
    #[error("unknown slot `{0}`")]
    UnknownSlot(String),
    /// The slot has never been loaded.
    #[error("slot `{0}` has no component loaded")]
    EmptySlot(String),
    /// The slot has no such version.
    #[error("slot `{slot}` has no version {version}")]
    NoSuchVersion {
        /// The slot.
        slot: String,
        /// The version asked for.
        version: u32,
    },
    /// The audit trail could not record the change, so it was not made.
    #[error("not done: the audit trail cannot record it: {0}")]
    Unrecorded(String),
    /// The slot runs no shadow.
    #[error("slot `{0}` has no shadow running")]
    NoShadow(String),
    /// There is no earlier activation to roll back to.
    #[error("slot `{0}` has no earlier version to roll back to")]
    NothingToRollBack(String),
    /// A rollback to a version that never served: only a version that was
    /// once active (and so passed a dry run) may serve again.
    #[error("slot `{slot}` version {version} was never active; a rollback goes back only to a version that served")]
    NeverActive {
        /// The slot.
        slot: String,
        /// The version asked for.
        version: u32,
    },
    /// The limits ask for fuel, and the runtime does not meter it.
    #[error(
        "slot `{0}`: fuel limits need a runtime that meters fuel (`EngineConfig::fuel`), and this one does not; \
         bound the slot by its deadline instead"
    )]
    FuelNotMetered(String),
    /// The slot holds a different world than the call needs.
    #[error("slot `{slot}` holds a {found} component, not a {wanted}")]
    WrongWorld {
        /// The slot.
        slot: String,
        /// The world the slot holds.
        found: World,
        /// The world the call needs.
        wanted: World,
    },
}

/// Why a call through the registry failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The slot could not serve the call.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The plugin failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// A component compiled and checked against a slot's world, not yet active.
/// Cloning is cheap: the compiled code is shared.
#[derive(Clone)]
pub struct Candidate {
    slot: &'static str,
    prepared: Prepared,
    source: String,
}

impl Candidate {
    /// The slot it was checked for.
    pub fn slot(&self) -> &str {
        self.slot
    }

    /// The sha256 of the component.
    pub fn sha256(&self) -> Digest256 {
        self.prepared.sha256
    }
}

struct Version {
    info: VersionInfo,
    linked: Linked,
}

#[derive(Clone)]
struct Slot {
    versions: Vec<Arc<Version>>,
    /// Version numbers in the order they were activated; the last is active.
    activations: Vec<u32>,
    limits: Limits,
    /// A version running in shadow beside the active one.
    shadow: Option<u32>,
}

impl Slot {
    fn active(&self) -> Option<&Arc<Version>> {
        let number = *self.activations.last()?;
        self.versions.get(number as usize - 1)
    }
}

/// How a plugin call ended, as counted by a [`CallObserver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The plugin answered.
    Ok,
    /// It ran out of wall time or fuel.
    Timeout,
    /// It trapped, ran out of memory, flooded its output or did not start.
    Trap,
    /// The host had no room to run it: says nothing of the plugin.
    HostBusy,
}

impl CallOutcome {
    fn of<T>(result: &Result<T, CallError>) -> Self {
        match result {
            Ok(_) => CallOutcome::Ok,
            Err(err) => match err.failure {
                CallFailure::Deadline(_) | CallFailure::FuelExhausted(_) => CallOutcome::Timeout,
                CallFailure::HostBusy(_) => CallOutcome::HostBusy,
                _ => CallOutcome::Trap,
            },
        }
    }

    /// A one-word label: `ok`, `timeout`, `trap` or `host-busy`.
    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Trap => "trap",
            CallOutcome::HostBusy => "host-busy",
        }
    }
}

/// Told of every plugin call the registry makes: for metrics, and for
/// rolling a misbehaving version back.
pub trait CallObserver: Send + Sync {
    /// A call of `version` of `slot` ended with `outcome`.
    fn call_ended(&self, slot: &str, version: u32, outcome: CallOutcome);
}

/// Records a change to a slot before it takes effect, under the registry's
/// lock, given the version the change makes active, shadow or ended: the
/// audit trail's write-ahead. An error (why it could not record) leaves the
/// registry as it was.
pub type Record<'a> = &'a (dyn Fn(&VersionInfo) -> Result<(), String> + Sync);

/// A [`Record`] for changes nobody audits: startup loads, tests, forks.
pub fn unrecorded(_: &VersionInfo) -> Result<(), String> {
    Ok(())
}

/// The plugin registry.
pub struct Registry {
    runtime: Arc<Runtime>,
    slots: RwLock<BTreeMap<&'static str, Slot>>,
    observer: RwLock<Option<Arc<dyn CallObserver>>>,
    shadow_sink: RwLock<Option<Arc<dyn ShadowSink>>>,
}

impl Registry {
    /// An empty registry: every slot exists, none is loaded.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        let slots = all_slots()
            .map(|name| (name, Slot { versions: Vec::new(), activations: Vec::new(), limits: Limits::default(), shadow: None }))
            .collect();
        Registry { runtime, slots: RwLock::new(slots), observer: RwLock::new(None), shadow_sink: RwLock::new(None) }
    }

    /// A copy of the registry as it is now (every slot's versions and active
    /// one, sharing their compiled code), for trying a candidate in a dry run
    /// without touching the slots that serve. The copy has no observer.
    pub fn fork(&self) -> Registry {
        let mut slots = self.read().clone();
        for slot in slots.values_mut() {
            slot.shadow = None;
        }
        Registry { runtime: self.runtime.clone(), slots: RwLock::new(slots), observer: RwLock::new(None), shadow_sink: RwLock::new(None) }
    }

    /// Sends every shadow call's comparison to `sink`. Without a sink, no
    /// shadow runs.
    pub fn set_shadow_sink(&self, sink: Arc<dyn ShadowSink>) {
        *self.shadow_sink.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    /// Adds a prepared candidate to its slot without activating it: it runs
    /// in shadow beside the active version from the slot's next call,
    /// replacing any shadow already running.
    pub fn start_shadow(&self, candidate: Candidate, record: Record<'_>) -> Result<VersionInfo, RegistryError> {
        let info = self.add_version(candidate, record, |slot, number| slot.shadow = Some(number))?;
        tracing::info!(slot = %info.slot, version = info.number, "plugin shadowing");
        Ok(info)
    }

    /// The version running in shadow in `slot`.
    pub fn shadow(&self, slot: &str) -> Option<VersionInfo> {
        Some(self.shadow_version(slot)?.info.clone())
    }

    fn shadow_version(&self, slot: &str) -> Option<Arc<Version>> {
        let slots = self.read();
        let state = slots.get(slot)?;
        state.versions.get(state.shadow? as usize - 1).cloned()
    }

    /// A copy of the registry as [`Registry::fork`] makes it, with the
    /// shadow of `slot` active: what a promotion would serve, to dry-run.
    /// Also answers the shadow.
    pub fn fork_promoting(&self, slot: &str) -> Result<(Registry, VersionInfo), RegistryError> {
        let (number, info) = {
            let slots = self.read();
            let state = slots.get(slot).ok_or_else(|| RegistryError::UnknownSlot(slot.into()))?;
            let number = state.shadow.ok_or_else(|| RegistryError::NoShadow(slot.into()))?;
            (number, state.versions[number as usize - 1].info.clone())
        };
        let fork = self.fork();
        if let Some(state) = fork.write().get_mut(slot) {
            state.activations.push(number);
        }
        Ok((fork, info))
    }

    /// Makes the shadow of `slot` its active version.
    pub fn promote_shadow(&self, slot: &str, record: Record<'_>) -> Result<VersionInfo, RegistryError> {
        self.end_shadow(slot, record, |state, number| state.activations.push(number))
    }

    /// Stops the shadow of `slot`; it stays in the slot's history, never
    /// having served.
    pub fn discard_shadow(&self, slot: &str, record: Record<'_>) -> Result<VersionInfo, RegistryError> {
        self.end_shadow(slot, record, |_, _| {})
    }

    fn end_shadow(&self, slot: &str, record: Record<'_>, then: impl FnOnce(&mut Slot, u32)) -> Result<VersionInfo, RegistryError> {
        let mut slots = self.write();
        let state = slots.get_mut(slot).ok_or_else(|| RegistryError::UnknownSlot(slot.into()))?;
        let number = state.shadow.ok_or_else(|| RegistryError::NoShadow(slot.into()))?;
        let info = state.versions[number as usize - 1].info.clone();
        record(&info).map_err(RegistryError::Unrecorded)?;
        state.shadow = None;
        then(state, number);
        Ok(info)
    }

    /// The shadow of `slot`, when one runs and a sink hears it.
    fn shadow_of(&self, slot: &str) -> Option<(Arc<Version>, Arc<dyn ShadowSink>)> {
        let sink = self.shadow_sink.read().unwrap_or_else(|e| e.into_inner()).clone()?;
        Some((self.shadow_version(slot)?, sink))
    }

    /// Tells `observer` of every call from now on.
    pub fn set_observer(&self, observer: Arc<dyn CallObserver>) {
        *self.observer.write().unwrap_or_else(|e| e.into_inner()) = Some(observer);
    }

    fn observe<T>(&self, slot: &str, version: u32, result: &Result<T, CallError>) {
        if let Some(observer) = self.observer.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            observer.call_ended(slot, version, CallOutcome::of(result));
        }
    }

    /// A registry with every embedded default loaded.
    pub fn with_defaults(runtime: Arc<Runtime>) -> Result<Self, LoadError> {
        let registry = Registry::new(runtime);
        for component in components::DEFAULTS {
            registry.load(component.slot, component.bytes, format!("embedded:{}", component.package))?;
        }
        Ok(registry)
    }

    /// The runtime the registry compiles and calls with.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Compiles `bytes` and checks them against the world of `slot`, without
    /// touching the slot. This is the slow part of a swap.
    pub fn prepare(&self, slot: &str, bytes: &[u8], source: impl Into<String>) -> Result<Candidate, LoadError> {
        let (slot, world) = slot_and_world(slot)?;
        let prepared = self.runtime.prepare(bytes, world)?;
        Ok(Candidate { slot, prepared, source: source.into() })
    }

    /// Makes a prepared candidate the active version of its slot. The next call
    /// of the slot uses it; calls already running finish on their version.
    pub fn activate(&self, candidate: Candidate) -> VersionInfo {
        match self.activate_recorded(candidate, &unrecorded) {
            Ok(info) => info,
            Err(_) => unreachable!("a change nobody records is never refused"),
        }
    }

    /// [`Registry::activate`], once `record` has recorded the change.
    pub fn activate_recorded(&self, candidate: Candidate, record: Record<'_>) -> Result<VersionInfo, RegistryError> {
        let info = self.add_version(candidate, record, |slot, number| slot.activations.push(number))?;
        tracing::info!(slot = %info.slot, version = info.number, sha256 = %info.sha256.short(), source = %info.source, "plugin activated");
        Ok(info)
    }

    /// Adds `candidate` as its slot's next version, then lets `place` make
    /// it active or its shadow, under the same write lock, once `record`
    /// has recorded it.
    fn add_version(
        &self,
        candidate: Candidate,
        record: Record<'_>,
        place: impl FnOnce(&mut Slot, u32),
    ) -> Result<VersionInfo, RegistryError> {
        let mut slots = self.write();
        let slot = slots.get_mut(candidate.slot).expect("candidates name existing slots");
        let number = slot.versions.len() as u32 + 1;
        let info = VersionInfo {
            slot: candidate.slot.to_string(),
            number,
            sha256: candidate.prepared.sha256,
            size: candidate.prepared.size,
            loaded_at: SystemTime::now(),
            source: candidate.source,
            origin: candidate.prepared.origin,
        };
        record(&info).map_err(RegistryError::Unrecorded)?;
        slot.versions.push(Arc::new(Version { info: info.clone(), linked: candidate.prepared.linked }));
        place(slot, number);
        Ok(info)
    }

    /// Prepares and activates in one step.
    pub fn load(&self, slot: &str, bytes: &[u8], source: impl Into<String>) -> Result<VersionInfo, LoadError> {
        let candidate = self.prepare(slot, bytes, source)?;
        Ok(self.activate(candidate))
    }

    /// Loads a component file into `slot`.
    pub fn load_file(&self, slot: &str, path: &Path) -> Result<VersionInfo, LoadError> {
        let bytes =
            file::read_component(path, crate::admin::MAX_COMPONENT).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
        self.load(slot, &bytes, path.display().to_string())
    }

    /// Loads a component into `slot` from a spec: `builtin:NAME` for an
    /// alternative shipped in the binary (`placement=builtin:pack`), else a
    /// file path.
    pub fn load_spec(&self, slot: &str, spec: &str) -> Result<VersionInfo, LoadError> {
        let Some(name) = spec.strip_prefix("builtin:") else {
            return self.load_file(slot, Path::new(spec));
        };
        match crate::components::bundled(name) {
            Some(found) if found.slot == slot => self.load(slot, found.bytes, spec),
            _ => Err(LoadError::UnknownBuiltin {
                name: name.into(),
                slot: slot.into(),
                known: crate::components::BUNDLED.iter().map(|c| format!("{}=builtin:{}", c.slot, c.name)).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Makes an earlier version active again: `to` (a version that was once
    /// active), or else the version that was active before the current one.
    pub fn rollback(&self, slot: &str, to: Option<u32>, record: Record<'_>) -> Result<VersionInfo, RegistryError> {
        let mut slots = self.write();
        let state = slots.get_mut(slot).ok_or_else(|| RegistryError::UnknownSlot(slot.into()))?;
        let target = match to {
            Some(number) => {
                if number == 0 || number as usize > state.versions.len() {
                    return Err(RegistryError::NoSuchVersion { slot: slot.into(), version: number });
                }
                if !state.activations.contains(&number) {
                    return Err(RegistryError::NeverActive { slot: slot.into(), version: number });
                }
                number
            }
            None => {
                let current = state.activations.last().copied();
                state
                    .activations
                    .iter()
                    .rev()
                    .copied()
                    .find(|n| Some(*n) != current)
                    .ok_or_else(|| RegistryError::NothingToRollBack(slot.into()))?
            }
        };
        let info = state.versions[target as usize - 1].info.clone();
        record(&info).map_err(RegistryError::Unrecorded)?;
        state.activations.push(target);
        drop(slots);
        tracing::info!(slot, version = target, sha256 = %info.sha256.short(), "plugin rolled back");
        Ok(info)
    }

    /// The active version of `slot`.
    pub fn active(&self, slot: &str) -> Option<VersionInfo> {
        self.read().get(slot)?.active().map(|v| v.info.clone())
    }

    /// Every version ever loaded into `slot`, oldest first.
    pub fn history(&self, slot: &str) -> Vec<VersionInfo> {
        self.read().get(slot).map(|s| s.versions.iter().map(|v| v.info.clone()).collect()).unwrap_or_default()
    }

    /// Sets the limits of every later call of `slot`. Fuel limits are refused
    /// unless the runtime meters fuel; the slot keeps its limits then.
    pub fn set_limits(&self, slot: &str, limits: Limits) -> Result<(), RegistryError> {
        let mut slots = self.write();
        let state = slots.get_mut(slot).ok_or_else(|| RegistryError::UnknownSlot(slot.into()))?;
        if limits.need_fuel() && !self.runtime.meters_fuel() {
            return Err(RegistryError::FuelNotMetered(slot.into()));
        }
        state.limits = limits;
        Ok(())
    }

    /// The limits calls of `slot` run under.
    pub fn limits(&self, slot: &str) -> Option<Limits> {
        self.read().get(slot).map(|s| s.limits.clone())
    }

    /// Runs the active version of a phase slot on `state`.
    pub async fn call_phase(&self, slot: &str, state: &AttemptState, host: Arc<dyn PluginHost>) -> Result<PhaseOutcome, InvokeError> {
        let (version, limits) = self.checkout(slot, World::RecoveryPhase)?;
        let Linked::Phase(pre) = &version.linked else { unreachable!("checked by checkout") };
        let info = CallInfo { slot: slot.to_string(), version: version.info.number, epoch: state.epoch, attempt: state.attempt };
        let Some((shadow, sink)) = self.shadow_of(slot) else {
            let result = self.runtime.call_phase(pre, version.info.sha256, info, &limits, host, state).await;
            self.observe(slot, version.info.number, &result);
            return Ok(result?);
        };
        // With a shadow: record what the active version does, then let the
        // shadow decide on the same input, in the background.
        let recorder = Arc::new(shadow::Recorder::new(host));
        let result = self.runtime.call_phase(pre, version.info.sha256, info.clone(), &limits, recorder.clone(), state).await;
        self.observe(slot, version.info.number, &result);
        let replayer = Arc::new(recorder.replayer());
        let (runtime, state, active) = (self.runtime.clone(), state.clone(), describe_phase(&result));
        let active_version = version.info.number;
        tokio::spawn(async move {
            let Linked::Phase(pre) = &shadow.linked else { return };
            let info = CallInfo { version: shadow.info.number, ..info };
            let slot = info.slot.clone();
            let outcome = runtime.call_phase(pre, shadow.info.sha256, info, &limits, replayer.clone(), &state).await;
            let decided = describe_phase(&outcome);
            let would_have_made = replayer.would_have_made();
            let divergence = (decided != active || !would_have_made.is_empty()).then(|| Divergence {
                slot: slot.clone(),
                active_version,
                shadow_version: shadow.info.number,
                epoch: state.epoch,
                attempt: state.attempt,
                active,
                shadow: decided,
                would_have_made,
            });
            sink.shadow_call(&slot, divergence);
        });
        Ok(result?)
    }

    /// Asks the active placement policy.
    pub async fn call_placement(
        &self,
        request: &PlacementRequest,
        host: Arc<dyn PluginHost>,
    ) -> Result<Result<Vec<Assignment>, PlacementError>, InvokeError> {
        let (version, limits) = self.checkout(PLACEMENT, World::PlacementPolicy)?;
        let Linked::Policy(pre) = &version.linked else { unreachable!("checked by checkout") };
        let info = CallInfo { slot: PLACEMENT.to_string(), version: version.info.number, ..CallInfo::default() };
        let result = self.runtime.call_policy(pre, version.info.sha256, info.clone(), &limits, host.clone(), request).await;
        self.observe(PLACEMENT, version.info.number, &result);
        if let Some((shadow, sink)) = self.shadow_of(PLACEMENT) {
            let (runtime, request, active) = (self.runtime.clone(), request.clone(), describe_placement(&result));
            let active_version = version.info.number;
            tokio::spawn(async move {
                let Linked::Policy(pre) = &shadow.linked else { return };
                let info = CallInfo { version: shadow.info.number, ..info };
                let answer = runtime.call_policy(pre, shadow.info.sha256, info, &limits, host, &request).await;
                let divergence = policy_divergence(PLACEMENT, active_version, shadow.info.number, active, describe_placement(&answer));
                sink.shadow_call(PLACEMENT, divergence);
            });
        }
        Ok(result?)
    }

    /// Asks the active replica recovery policy how to bring a replica up to
    /// date. A shadow, if any, decides on the same figures in the background.
    pub async fn call_replica(&self, history: &ReplicaHistory) -> Result<ReplicaPlan, InvokeError> {
        let (version, limits) = self.checkout(REPLICA, World::ReplicaRecovery)?;
        let Linked::Replica(pre) = &version.linked else { unreachable!("checked by checkout") };
        let info = CallInfo { slot: REPLICA.to_string(), version: version.info.number, ..CallInfo::default() };
        // A replica policy imports only `log`: it reaches nothing else.
        let host: Arc<dyn PluginHost> = Arc::new(crate::runtime::Detached::default());
        let result = self.runtime.call_replica(pre, version.info.sha256, info.clone(), &limits, host.clone(), history).await;
        self.observe(REPLICA, version.info.number, &result);
        if let Some((shadow, sink)) = self.shadow_of(REPLICA) {
            let (runtime, history, active) = (self.runtime.clone(), *history, describe_replica(&result));
            let active_version = version.info.number;
            tokio::spawn(async move {
                let Linked::Replica(pre) = &shadow.linked else { return };
                let info = CallInfo { version: shadow.info.number, ..info };
                let plan = runtime.call_replica(pre, shadow.info.sha256, info, &limits, host, &history).await;
                let divergence = policy_divergence(REPLICA, active_version, shadow.info.number, active, describe_replica(&plan));
                sink.shadow_call(REPLICA, divergence);
            });
        }
        Ok(result?)
    }

    /// The active version of `slot` and its limits, held for one call.
    fn checkout(&self, slot: &str, wanted: World) -> Result<(Arc<Version>, Limits), RegistryError> {
        let slots = self.read();
        let state = slots.get(slot).ok_or_else(|| RegistryError::UnknownSlot(slot.into()))?;
        let version = state.active().ok_or_else(|| RegistryError::EmptySlot(slot.into()))?.clone();
        let found = version.linked.world();
        if found != wanted {
            return Err(RegistryError::WrongWorld { slot: slot.into(), found, wanted });
        }
        Ok((version, state.limits.clone()))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<&'static str, Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<&'static str, Slot>> {
        self.slots.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The static name of a slot and its world, or an error listing the slots.
fn slot_and_world(slot: &str) -> Result<(&'static str, World), LoadError> {
    all_slots()
        .find(|s| *s == slot)
        .and_then(|s| world_of(s).map(|w| (s, w)))
        .ok_or_else(|| LoadError::UnknownSlot { slot: slot.to_string(), known: all_slots().collect::<Vec<_>>().join(", ") })
}

/// A phase's decision, for comparing an active version with its shadow: the
/// step it returned and the attempt state it handed back, or its failure.
fn describe_phase(result: &Result<PhaseOutcome, CallError>) -> String {
    match result {
        Ok(outcome) => format!("{:?} with {:?}", outcome.step, outcome.state),
        Err(err) => format!("failed: {}", err.failure),
    }
}

/// A placement answer, for the same comparison: `vacancy -> node` pairs.
/// A policy shadow's call (placement, replica recovery: no attempt, no host
/// calls), if its decision differs from the active version's.
fn policy_divergence(slot: &str, active_version: u32, shadow_version: u32, active: String, shadow: String) -> Option<Divergence> {
    (shadow != active).then(|| Divergence {
        slot: slot.into(),
        active_version,
        shadow_version,
        epoch: 0,
        attempt: 0,
        active,
        shadow,
        would_have_made: Vec::new(),
    })
}

fn describe_replica(result: &Result<ReplicaPlan, CallError>) -> String {
    match result {
        Ok(plan) => format!("{:?}", plan.outcome),
        Err(err) => format!("failed: {}", err.failure),
    }
}

fn describe_placement(result: &Result<Result<Vec<Assignment>, PlacementError>, CallError>) -> String {
    match result {
        Ok(Ok(assignments)) => {
            let pairs: Vec<String> = assignments.iter().map(|a| format!("{}->{}", a.vacancy, a.nodes.join(","))).collect();
            pairs.join(" ")
        }
        Ok(Err(err)) => format!("refused vacancy {} ({}): {}", err.vacancy, err.constraint, err.message),
        Err(err) => format!("failed: {}", err.failure),
    }
}
