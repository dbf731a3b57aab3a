//! One plugin call: a fresh `Store` with the call's limits, the call itself,
//! and the translation of whatever went wrong into a [`CallError`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Instrument;
use wasmtime::component::{ComponentNamedList, Instance, Lift, Lower, TypedFunc};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::engine::EPOCH_TICK;
use super::host::PluginHost;
use super::sandbox::{CallCtx, CallInfo, Channel, Limits, OutputLimitExceeded};
use super::{Digest256, GuestMeter, Runtime};
use crate::bindings::state_fields::{self, MaskedState};
use crate::bindings::types::{
    Assignment, AttemptState, PhaseOutcome, PlacementError, PlacementRequest, ReplicaHistory, ReplicaPlan, StateField,
};
use crate::bindings::{PlacementPolicyPre, RecoveryPhasePre, ReplicaRecoveryPre};

/// What stopped a plugin call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// The call ran past its wall-time deadline.
    #[error("deadline of {0:?} exceeded")]
    Deadline(Duration),
    /// The call burnt its whole fuel budget.
    #[error("fuel budget of {0} exhausted")]
    FuelExhausted(u64),
    /// The guest asked for more linear memory than its cap.
    #[error("out of memory: growth to {requested} bytes refused (limit {limit} bytes)")]
    OutOfMemory {
        /// The size the guest asked for.
        requested: usize,
        /// The cap.
        limit: usize,
    },
    /// The guest wrote more to stdout and stderr than allowed.
    #[error("output limit of {0} bytes exceeded")]
    OutputLimit(usize),
    /// The guest trapped (a panic shows up here, with its message from stderr).
    #[error("trapped: {message}{}", if stderr.is_empty() { String::new() } else { format!(" (guest stderr: {stderr})") })]
    Trap {
        /// The trap.
        message: String,
        /// The last lines the guest wrote to stderr, which hold a panic message.
        stderr: String,
    },
    /// The component could not be instantiated: it asks for more than the
    /// sandbox allows (more memories or tables than a component may hold).
    #[error("could not instantiate: {0}")]
    Instantiate(String),
    /// The host had no room for the call: every instance slot of its pool
    /// was taken. The host's condition, not the plugin's fault.
    #[error("the host is busy: {0}")]
    HostBusy(String),
}

/// A plugin call that failed: the slot, the version and what happened. The
/// host never panics on a plugin's account; this is what it returns instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{slot}` v{version} ({sha256}): {failure}")]
pub struct CallError {
    /// The slot called.
    pub slot: String,
    /// The version within the slot.
    pub version: u32,
    /// The first digits of the component's sha256.
    pub sha256: String,
    /// What went wrong.
    pub failure: CallFailure,
}

/// Marks the error an expired epoch deadline raises.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
struct DeadlineExceeded;

tokio::task_local! {
    /// The clock of the plugin call running on this task, if any: a plugin
    /// call made on its behalf (a placement policy asked by a phase) stops
    /// it, so a slow policy is charged to the policy, not to the phase.
    static CALL_CLOCK: Arc<CallClock>;
}

/// The time a call is charged: its wall time, less the time the host spends
/// answering it (its I/O, and the plugin calls made on its behalf, each
/// bounded by its own limits). That time is bounded on its own, by the
/// call's host budget.
struct CallClock {
    started: tokio::time::Instant,
    nested: Mutex<Nested>,
    host_budget: Duration,
}

/// A host call refused because the plugin call it belongs to has spent
/// its host budget.
#[derive(Debug, thiserror::Error)]
#[error("the host budget of {0:?} for this plugin call is spent")]
pub(super) struct HostBudgetSpent(Duration);

/// Stops the clock of the plugin call running on this task while the host
/// answers one of its calls, until the returned guard is dropped: a
/// phase's deadline bounds its own execution, not the network's. Refused
/// once the call has spent its host budget. Outside a plugin call (a
/// plugin compiled natively) there is no clock to stop.
pub(super) fn host_answers() -> Result<Option<Stopped>, HostBudgetSpent> {
    let Ok(clock) = CALL_CLOCK.try_with(Arc::clone) else { return Ok(None) };
    if clock.outside() >= clock.host_budget {
        return Err(HostBudgetSpent(clock.host_budget));
    }
    Ok(Some(clock.stop()))
}

#[derive(Default)]
struct Nested {
    /// Host calls and nested plugin calls running now (a phase's locks,
    /// replica recoveries, run in parallel).
    running: usize,
    /// Since when at least one has been running.
    since: Option<tokio::time::Instant>,
    /// Time spent with at least one running, before `since`.
    total: Duration,
}

impl CallClock {
    fn new(host_budget: Duration) -> Self {
        CallClock { started: tokio::time::Instant::now(), nested: Mutex::default(), host_budget }
    }

    fn nested(&self) -> std::sync::MutexGuard<'_, Nested> {
        self.nested.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The time charged to the call so far.
    fn charged(&self) -> Duration {
        let now = tokio::time::Instant::now();
        (now - self.started).saturating_sub(self.outside_at(now))
    }

    /// The time the host has spent answering the call so far.
    fn outside(&self) -> Duration {
        self.outside_at(tokio::time::Instant::now())
    }

    fn outside_at(&self, now: tokio::time::Instant) -> Duration {
        let nested = self.nested();
        nested.total + nested.since.map_or(Duration::ZERO, |since| now - since)
    }

    /// Whether a nested call runs now: the call's clock stands still.
    fn stopped(&self) -> bool {
        self.nested().running > 0
    }

    /// Stops the clock until the returned guard is dropped.
    fn stop(self: &Arc<Self>) -> Stopped {
        let mut nested = self.nested();
        nested.running += 1;
        if nested.running == 1 {
            nested.since = Some(tokio::time::Instant::now());
        }
        Stopped(self.clone())
    }
}

/// Restarts a [`CallClock`] when dropped.
pub(super) struct Stopped(Arc<CallClock>);

impl Drop for Stopped {
    fn drop(&mut self) {
        let mut nested = self.0.nested();
        nested.running -= 1;
        if nested.running == 0
            && let Some(since) = nested.since.take()
        {
            nested.total += since.elapsed();
        }
    }
}

impl Runtime {
    /// Runs a recovery phase once in a fresh sandbox.
    pub(crate) async fn call_phase(
        &self,
        pre: &RecoveryPhasePre<CallCtx>,
        digest: Digest256,
        info: CallInfo,
        limits: &Limits,
        host: Arc<dyn PluginHost>,
        state: &AttemptState,
    ) -> Result<PhaseOutcome, CallError> {
        self.sandboxed(digest, info, limits, host, async |store| {
            let instance = pre.instance_pre().instantiate_async(&mut *store).await.map_err(Failed::Instantiate)?;
            store.data_mut().guest.instantiated();
            let reads = phase_export::<(), (Vec<StateField>,)>(store, &instance, "reads")?;
            let run = phase_export::<(MaskedState<'_>,), (PhaseOutcome,)>(store, &instance, "run")?;
            // Only what the phase reads crosses into it: at a thousand nodes
            // the whole state would cost more to copy than the phase's work.
            // It is lowered from the host's state as it is, never cloned.
            let (reads,) = reads.call_async(&mut *store, ()).await.map_err(Failed::Run)?;
            let (outcome,) = run.call_async(&mut *store, (state_fields::masked_view(state, &reads),)).await.map_err(Failed::Run)?;
            Ok(outcome)
        })
        .await
    }

    /// Runs a placement policy once in a fresh sandbox.
    pub(crate) async fn call_policy(
        &self,
        pre: &PlacementPolicyPre<CallCtx>,
        digest: Digest256,
        info: CallInfo,
        limits: &Limits,
        host: Arc<dyn PluginHost>,
        request: &PlacementRequest,
    ) -> Result<Result<Vec<Assignment>, PlacementError>, CallError> {
        self.sandboxed(digest, info, limits, host, async |store| {
            let instance = pre.instantiate_async(&mut *store).await.map_err(Failed::Instantiate)?;
            store.data_mut().guest.instantiated();
            instance.ratchet_recovery_placement().call_place(store, request).await.map_err(Failed::Run)
        })
        .await
    }

    /// Runs a replica recovery policy once in a fresh sandbox.
    pub(crate) async fn call_replica(
        &self,
        pre: &ReplicaRecoveryPre<CallCtx>,
        digest: Digest256,
        info: CallInfo,
        limits: &Limits,
        host: Arc<dyn PluginHost>,
        history: &ReplicaHistory,
    ) -> Result<ReplicaPlan, CallError> {
        self.sandboxed(digest, info, limits, host, async |store| {
            let instance = pre.instantiate_async(&mut *store).await.map_err(Failed::Instantiate)?;
            store.data_mut().guest.instantiated();
            instance.ratchet_recovery_replica().call_decide(store, *history).await.map_err(Failed::Run)
        })
        .await
    }

    /// Runs `call` (instantiate, then call the export) in a fresh store under
    /// `limits`, in the call's span, and turns its end into a result.
    async fn sandboxed<T>(
        &self,
        digest: Digest256,
        info: CallInfo,
        limits: &Limits,
        host: Arc<dyn PluginHost>,
        call: impl AsyncFnOnce(&mut Store<CallCtx>) -> Result<T, Failed>,
    ) -> Result<T, CallError> {
        let span = call_span(&info);
        // A call made on behalf of another stops the other's clock.
        let outer = CALL_CLOCK.try_with(|outer| outer.stop()).ok();
        // Calls wait for a slot: top-level calls and the calls they make
        // (a placement or replica policy, never nesting further) each have
        // half the instance pool, so the pool is never exhausted and a
        // nested call always finds room.
        let slots = if outer.is_some() { &self.nested_calls } else { &self.calls };
        let Ok(_slot) = slots.acquire().await else {
            let failure = CallFailure::HostBusy("the runtime is shutting down".into());
            return Err(CallError { slot: info.slot, version: info.version, sha256: digest.short(), failure });
        };
        let clock = Arc::new(CallClock::new(limits.host_budget));
        let mut store = self.new_store(info, limits, host, &clock);
        if self.starts_own_code(&digest) {
            // Its instantiation runs the plugin's own start function: guest
            // time from the first crossing.
            store.data_mut().guest.instantiated();
        }
        let result = CALL_CLOCK.scope(clock.clone(), bounded(limits, &clock, call(&mut store))).instrument(span.clone()).await;
        span.in_scope(|| finish(store, digest, limits, &clock, result))
    }

    fn new_store(&self, info: CallInfo, limits: &Limits, host: Arc<dyn PluginHost>, clock: &Arc<CallClock>) -> Store<CallCtx> {
        let mut store = Store::new(&self.engine, CallCtx::new(info, limits, host));
        store.limiter(|ctx| &mut ctx.memory);
        store.call_hook(|mut ctx, hook| {
            ctx.data_mut().guest.cross(hook);
            Ok(())
        });
        if self.meters_fuel() {
            store.set_fuel(limits.fuel.unwrap_or(u64::MAX)).expect("fuel is enabled on the engine");
        }
        // Without metering, `limits` ask for no fuel: the registry refuses
        // fuel limits on such a runtime (`RegistryError::FuelNotMetered`).
        if limits.fuel_only {
            // Fuel alone ends the call; the epoch deadline is never reached.
            store.set_epoch_deadline(u64::MAX / 2);
            return store;
        }
        let (clock, deadline) = (clock.clone(), limits.deadline);
        // The call's charged time when it last gave the thread back to tokio.
        let mut charged_at_yield = Duration::ZERO;
        store.epoch_deadline_callback(move |_| {
            let charged = clock.charged();
            if charged >= deadline {
                return Err(DeadlineExceeded.into());
            }
            // Yield to tokio once the call has run a tick of its own since it
            // last did, so that a long guest never starves the executor. The
            // tick also passes while the host answers a call, which awaits
            // and so gives the thread back: a guest just back from the host
            // goes on instead of being suspended behind other tasks.
            if charged.saturating_sub(charged_at_yield) >= EPOCH_TICK {
                charged_at_yield = charged;
                Ok(UpdateDeadline::Yield(1))
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        store.set_epoch_deadline(1);
        store
    }
}

/// Runs `call` until `clock` has charged it its deadline, or unbounded in
/// time when the limits are fuel-only.
async fn bounded<T>(
    limits: &Limits,
    clock: &CallClock,
    call: impl std::future::Future<Output = T>,
) -> Result<T, tokio::time::error::Elapsed> {
    if limits.fuel_only {
        return Ok(call.await);
    }
    tokio::pin!(call);
    loop {
        // While a nested call runs the clock stands still: look again a
        // tenth of the deadline later (the nested call is bounded by its
        // own), so the call overruns its deadline by at most that.
        let wait = if clock.stopped() { limits.deadline / 10 } else { limits.deadline.saturating_sub(clock.charged()) };
        match tokio::time::timeout(wait, &mut call).await {
            Ok(value) => return Ok(value),
            Err(elapsed) if !clock.stopped() && clock.charged() >= limits.deadline => return Err(elapsed),
            Err(_) => {}
        }
    }
}

fn call_span(info: &CallInfo) -> tracing::Span {
    tracing::debug_span!(
        "plugin_call",
        slot = %info.slot,
        version = info.version,
        epoch = info.epoch,
        attempt = info.attempt,
    )
}

/// The typed function `name` of the instance's `phase` export. The linker
/// has checked the component against the `recovery-phase` world already;
/// this checks the Rust types the host calls it with.
fn phase_export<P, R>(store: &mut Store<CallCtx>, instance: &Instance, name: &str) -> Result<TypedFunc<P, R>, Failed>
where
    P: ComponentNamedList + Lower,
    R: ComponentNamedList + Lift,
{
    let missing = || Failed::Run(wasmtime::format_err!("no export `{PHASE_INTERFACE}#{name}`"));
    let interface = instance.get_export_index(&mut *store, None, PHASE_INTERFACE).ok_or_else(missing)?;
    let func = instance.get_export_index(&mut *store, Some(&interface), name).ok_or_else(missing)?;
    instance.get_typed_func(&mut *store, func).map_err(Failed::Run)
}

/// The interface a recovery phase exports.
const PHASE_INTERFACE: &str = "ratchet:recovery/phase@0.1.0";

enum Failed {
    Instantiate(wasmtime::Error),
    Run(wasmtime::Error),
}

/// Forwards the guest's output to tracing and turns a failure into a
/// [`CallError`].
fn finish<T>(
    store: Store<CallCtx>,
    digest: Digest256,
    limits: &Limits,
    clock: &CallClock,
    result: Result<Result<T, Failed>, tokio::time::error::Elapsed>,
) -> Result<T, CallError> {
    let ctx = store.into_data();
    // A call that got past instantiation started the guest clock there.
    debug_assert!(
        ctx.guest.counting() || !matches!(result, Ok(Ok(_))),
        "a call of {} instantiated without starting the guest clock",
        ctx.info.slot
    );
    GuestMeter::charge(ctx.guest.total());
    if ctx.log.dropped > 0 {
        tracing::warn!(
            slot = %ctx.info.slot,
            version = ctx.info.version,
            dropped = ctx.log.dropped,
            lines = limits.log_lines,
            bytes = limits.log_bytes,
            "the plugin wrote more log lines than a call may: the rest were dropped"
        );
    }
    let stdout = ctx.output.text(Channel::Stdout);
    let stderr = ctx.output.text(Channel::Stderr);
    forward(&stdout, "stdout");
    forward(&stderr, "stderr");
    let failure = match result {
        Ok(Ok(value)) => return Ok(value),
        Err(_elapsed) => CallFailure::Deadline(limits.deadline),
        Ok(Err(Failed::Instantiate(err))) if err.chain().any(|e| e.is::<wasmtime::PoolConcurrencyLimitError>()) => {
            CallFailure::HostBusy(format!("{err:#}"))
        }
        Ok(Err(Failed::Instantiate(err))) => CallFailure::Instantiate(format!("{err:#}")),
        Ok(Err(Failed::Run(err))) => classify(&err, &ctx.memory.refused, limits, clock, &stderr),
    };
    let error = CallError { slot: ctx.info.slot.clone(), version: ctx.info.version, sha256: digest.short(), failure };
    tracing::warn!(%error, "plugin call failed");
    Err(error)
}

fn classify(err: &wasmtime::Error, refused: &Option<usize>, limits: &Limits, clock: &CallClock, stderr: &str) -> CallFailure {
    let overran = !limits.fuel_only && clock.charged() >= limits.deadline;
    if err.chain().any(|e| e.is::<DeadlineExceeded>()) || overran {
        return CallFailure::Deadline(limits.deadline);
    }
    if let Some(requested) = *refused {
        return CallFailure::OutOfMemory { requested, limit: limits.memory_bytes };
    }
    if err.chain().any(|e| e.is::<OutputLimitExceeded>()) {
        return CallFailure::OutputLimit(limits.output_bytes);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallFailure::FuelExhausted(limits.fuel.unwrap_or(u64::MAX)),
        Some(Trap::Interrupt) => CallFailure::Deadline(limits.deadline),
        Some(trap) => CallFailure::Trap { message: trap.to_string(), stderr: tail(stderr) },
        None => CallFailure::Trap { message: first_line(&format!("{err:#}")), stderr: tail(stderr) },
    }
}

/// The last few lines of the guest's stderr, on one line.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    let joined = lines[start..].join(" | ");
    truncate(&joined, 500)
}

fn first_line(text: &str) -> String {
    truncate(text.lines().next().unwrap_or_default(), 500)
}

/// `text` cut to at most `max` bytes on a character boundary, marked with `…`.
pub(super) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The most guest lines forwarded to tracing per stream and call.
const MAX_FORWARDED_LINES: usize = 200;

fn forward(text: &str, stream: &str) {
    for line in text.lines().take(MAX_FORWARDED_LINES) {
        tracing::info!(target: "ratchet::guest", stream, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn host_time_stops_the_clock_until_the_host_budget_is_spent() {
        let clock = Arc::new(CallClock::new(Duration::from_millis(50)));
        CALL_CLOCK
            .scope(clock.clone(), async {
                let answering = host_answers().expect("nothing spent yet").expect("inside a call");
                tokio::time::sleep(Duration::from_millis(60)).await;
                drop(answering);
                tokio::time::sleep(Duration::from_millis(5)).await;
                assert_eq!(clock.charged(), Duration::from_millis(5), "the host's 60 ms are not the plugin's");
                assert!(host_answers().is_err(), "past its budget, no further host call is answered");
            })
            .await;
        assert!(host_answers().expect("outside a call nothing is spent").is_none());
    }
}
