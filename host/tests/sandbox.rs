//! Adversarial guests against the real runtime: each is stopped within its
//! bound, reported with a typed error naming slot and version, and the slot
//! keeps serving afterwards.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ratchet::bindings::types::PhaseStep;
use ratchet::registry::{InvokeError, Registry, RegistryError, unrecorded};
use ratchet::runtime::{CallFailure, Limits};

const SLOT: &str = "lock-services";

/// A registry whose `lock-services` slot holds the adversarial fixture (v2)
/// on top of the default lock-services (v1, well behaved), on a runtime that
/// meters fuel if `limits` need it.
fn registry_with_adversary(limits: Limits) -> Registry {
    let runtime = if limits.need_fuel() { fuel_runtime() } else { runtime() };
    let registry = Registry::with_defaults(runtime).unwrap();
    registry.load(SLOT, &adversarial_bytes(), "adversary").unwrap();
    registry.set_limits(SLOT, limits).unwrap();
    registry
}

async fn failure_of(registry: &Registry, cmd: &str) -> CallFailure {
    match registry.call_phase(SLOT, &command(cmd), detached()).await {
        Err(InvokeError::Call(err)) => {
            assert_eq!(err.slot, SLOT);
            assert_eq!(err.version, 2, "the error names the version that failed");
            assert_eq!(err.sha256.len(), 12);
            err.failure
        }
        other => panic!("expected a call failure for `{cmd}`, got {other:?}"),
    }
}

/// After a failure the same version still serves, and a rollback restores
/// the previous version at once.
async fn slot_keeps_serving(registry: &Registry) {
    let idle = registry.call_phase(SLOT, &command("idle"), detached()).await.unwrap();
    assert_eq!(idle.step, PhaseStep::Stalled("adversarial: idle".into()));
    registry.rollback(SLOT, None, &unrecorded).unwrap();
    let good = registry.call_phase(SLOT, &new_cluster_state(), detached()).await.unwrap();
    assert_eq!(good.step, PhaseStep::Next("determine-path".into()));
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_its_deadline() {
    let limits = Limits { deadline: Duration::from_millis(200), ..Limits::default() };
    let registry = registry_with_adversary(limits);
    let started = Instant::now();
    let failure = failure_of(&registry, "loop").await;
    let took = started.elapsed();
    assert_eq!(failure, CallFailure::Deadline(Duration::from_millis(200)));
    assert!(took < Duration::from_secs(2), "stopped near its 200 ms deadline, took {took:?}");
    slot_keeps_serving(&registry).await;
}

/// A guest that never stops gives the thread back to tokio once per epoch
/// tick, so the tasks beside it on the same thread (a test's runtime has
/// one thread) still run while it loops.
#[tokio::test]
async fn a_looping_guest_does_not_starve_the_tasks_beside_it() {
    let limits = Limits { deadline: Duration::from_millis(200), ..Limits::default() };
    let registry = registry_with_adversary(limits);
    let ticks = Arc::new(AtomicUsize::new(0));
    let beside = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let failure = failure_of(&registry, "loop").await;
    beside.abort();
    assert_eq!(failure, CallFailure::Deadline(Duration::from_millis(200)));
    // Every 5 ms over the 200 ms the loop ran: about 40 (none if the guest
    // kept the thread).
    let ticks = ticks.load(Ordering::SeqCst);
    assert!(ticks >= 10, "the task beside the loop ran {ticks} times in 200 ms");
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_fuel() {
    let limits = Limits { fuel: Some(5_000_000), ..Limits::default() };
    let registry = registry_with_adversary(limits);
    assert_eq!(failure_of(&registry, "loop").await, CallFailure::FuelExhausted(5_000_000));
    slot_keeps_serving(&registry).await;
}

#[tokio::test]
async fn under_fuel_only_limits_the_wall_clock_never_ends_a_call() {
    // As the simulator runs plugins: a deadline that would end the loop
    // long before its fuel is ignored, so how the call ends does not depend
    // on how fast the machine is.
    let limits = Limits { deadline: Duration::from_millis(1), ..Limits::fuel_only(50_000_000) };
    let registry = registry_with_adversary(limits);
    assert_eq!(failure_of(&registry, "loop").await, CallFailure::FuelExhausted(50_000_000));
    slot_keeps_serving(&registry).await;
}

#[tokio::test]
async fn fuel_limits_are_refused_where_guests_do_not_meter_fuel() {
    // Without metering a fuel budget could never run out, and fuel-only
    // limits would leave a call unbounded: the registry says so instead.
    let deadline = Limits { deadline: Duration::from_millis(200), ..Limits::default() };
    let registry = registry_with_adversary(deadline.clone());
    assert!(!registry.runtime().meters_fuel());
    for limits in [Limits { fuel: Some(5_000_000), ..Limits::default() }, Limits::fuel_only(5_000_000)] {
        let err = registry.set_limits(SLOT, limits).unwrap_err();
        assert_eq!(err, RegistryError::FuelNotMetered(SLOT.into()));
        assert!(err.to_string().contains("meters fuel"), "{err}");
    }
    assert_eq!(registry.limits(SLOT), Some(deadline), "the slot keeps the limits it had");
    assert_eq!(failure_of(&registry, "loop").await, CallFailure::Deadline(Duration::from_millis(200)));
    slot_keeps_serving(&registry).await;
}

#[tokio::test]
async fn unbounded_memory_growth_hits_the_cap() {
    let limits = Limits { memory_bytes: 16 << 20, ..Limits::default() };
    let registry = registry_with_adversary(limits);
    match failure_of(&registry, "grow").await {
        CallFailure::OutOfMemory { requested, limit } => {
            assert_eq!(limit, 16 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected out-of-memory, got {other:?}"),
    }
    slot_keeps_serving(&registry).await;
}

#[tokio::test]
async fn a_panic_is_a_trap_carrying_the_panic_message() {
    let registry = registry_with_adversary(Limits::default());
    match failure_of(&registry, "panic").await {
        CallFailure::Trap { message, stderr } => {
            assert!(message.contains("unreachable"), "{message}");
            assert!(stderr.contains("adversarial phase panicked on purpose"), "{stderr}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    slot_keeps_serving(&registry).await;
}

#[tokio::test]
async fn a_flood_of_output_hits_the_output_cap() {
    let limits = Limits { output_bytes: 32 << 10, ..Limits::default() };
    let registry = registry_with_adversary(limits);
    assert_eq!(failure_of(&registry, "spew").await, CallFailure::OutputLimit(32 << 10));
    slot_keeps_serving(&registry).await;
}

#[tokio::test]
async fn a_sleep_past_the_deadline_is_cut_short() {
    let limits = Limits { deadline: Duration::from_millis(100), ..Limits::default() };
    let registry = registry_with_adversary(limits);
    let started = Instant::now();
    assert_eq!(failure_of(&registry, "sleep:10000").await, CallFailure::Deadline(Duration::from_millis(100)));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn guest_logs_and_stderr_do_not_fail_the_call() {
    let registry = registry_with_adversary(Limits::default());
    let outcome = registry.call_phase(SLOT, &command("log"), detached()).await.unwrap();
    assert_eq!(outcome.step, PhaseStep::Stalled("adversarial: logged".into()));
}

#[tokio::test]
async fn the_wrong_world_is_refused_and_the_slot_keeps_its_version() {
    let registry = registry_with_adversary(Limits::default());
    let before = registry.active(SLOT).unwrap();
    let err = registry.load(SLOT, &wrong_world_bytes(), "wrong").unwrap_err().to_string();
    assert!(err.contains("recovery-phase") && err.contains("ratchet:recovery/phase@0.1.0"), "{err}");
    let placement = ratchet::components::default_for("placement").unwrap().bytes;
    let err = registry.load(SLOT, placement, "policy-in-phase-slot").unwrap_err().to_string();
    assert!(err.contains("missing export `ratchet:recovery/phase@0.1.0`"), "{err}");
    assert_eq!(registry.active(SLOT).unwrap(), before);
    assert_eq!(registry.history(SLOT).len(), 2, "refused candidates never enter the history");
}

#[tokio::test]
async fn guests_see_no_environment_filesystem_clock_or_network() {
    let registry = registry_with_adversary(Limits::default());
    let outcome = registry.call_phase(SLOT, &command("probe"), detached()).await.unwrap();
    assert_eq!(outcome.step, PhaseStep::Stalled("env=0 file=false dir=false now=0 net=false".into()));
}

#[tokio::test]
async fn a_phase_is_refused_by_the_placement_slot() {
    let registry = registry_with_adversary(Limits::default());
    let before = registry.active("placement").unwrap();
    let err = registry.load("placement", &adversarial_bytes(), "phase-in-policy-slot").unwrap_err();
    assert!(err.to_string().contains("placement-policy"), "{err}");
    assert_eq!(registry.active("placement").unwrap(), before);
}

/// A host whose cluster answers every lock after `delay`: a network slower
/// than the phase's deadline.
struct SlowLocks {
    delay: Duration,
}

#[async_trait::async_trait]
impl ratchet::runtime::PluginHost for SlowLocks {
    async fn answer(&self, call: ratchet::runtime::HostCall) -> ratchet::runtime::HostReply {
        use ratchet::bindings::types::{LockInfo, ServiceKind};
        use ratchet::runtime::{HostCall, HostReply};
        match call {
            HostCall::Lock { ids } => {
                tokio::time::sleep(self.delay).await;
                HostReply::Locked(ids.iter().map(|_| Ok(LockInfo::Stateless(ServiceKind::Sequencer))).collect())
            }
            other => ratchet::runtime::Detached::default().answer(other).await,
        }
    }
}

#[tokio::test]
async fn time_the_host_spends_answering_is_not_charged_to_the_phase() {
    // The default lock-services, bounded by 100 ms, waits 300 ms on its
    // locks: the network's time is the host's, so the phase completes.
    let registry = Registry::with_defaults(runtime()).unwrap();
    let limits = Limits { deadline: Duration::from_millis(100), ..Limits::default() };
    registry.set_limits(SLOT, limits).unwrap();
    let mut state = new_cluster_state();
    let mut old = empty_layout(1);
    old.services = vec![ratchet::bindings::types::ServiceDescriptor {
        id: "sequencer-n1-e1-1".into(),
        kind: ratchet::bindings::types::ServiceKind::Sequencer,
        node: "n1".into(),
        address: "n1".into(),
    }];
    state.old_layout = Some(old);
    let host = std::sync::Arc::new(SlowLocks { delay: Duration::from_millis(300) });
    let outcome = registry.call_phase(SLOT, &state, host).await.expect("the phase is not charged the host's time");
    assert_eq!(outcome.step, PhaseStep::Next("determine-path".into()));
    assert!(outcome.state.unreachable.is_empty(), "{:?}", outcome.state.unreachable);
}

/// A tracing writer into a shared buffer, to read what a call logged.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_log_lines_is_cut_at_the_calls_allowance() {
    let limits = Limits { log_lines: 10, ..Limits::default() };
    let registry = registry_with_adversary(limits);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let outcome = registry.call_phase(SLOT, &command("logflood"), detached()).await.unwrap();
    assert_eq!(outcome.step, PhaseStep::Stalled("adversarial: flooded".into()));
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.matches("adversarial flood").count(), 10, "{text}");
    assert!(text.contains("dropped=99990"), "{text}");
    slot_keeps_serving(&registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_more_calls_than_instance_slots_all_run_none_refused() {
    use ratchet::runtime::{EngineConfig, Runtime, RuntimeConfig};
    // Eight instance slots, 200 calls at once: they wait for a slot rather
    // than fail, and none is charged to the plugin.
    let engine = EngineConfig { max_instances: 8, ..EngineConfig::default() };
    let runtime = std::sync::Arc::new(Runtime::new(RuntimeConfig { engine, ..RuntimeConfig::default() }).unwrap());
    let registry = std::sync::Arc::new(Registry::with_defaults(runtime).unwrap());
    registry.load(SLOT, &adversarial_bytes(), "adversary").unwrap();
    let calls = (0..200).map(|_| {
        let registry = registry.clone();
        tokio::spawn(async move { registry.call_phase(SLOT, &command("sleep:5"), detached()).await })
    });
    for call in futures::future::join_all(calls).await {
        let outcome = call.unwrap().unwrap();
        assert_eq!(outcome.step, PhaseStep::Stalled("adversarial: slept 5 ms".into()));
    }
}
