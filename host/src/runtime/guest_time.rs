//! Time inside wasm: the time a call spends running the guest's own code
//! (its exports, and the `realloc` the host calls to copy values in),
//! read at every crossing of the boundary. Instantiation, copying values
//! on the host's side and the host calls the guest makes are out.
//!
//! Instantiating runs compiled code too: wasmtime compiles the setting up
//! of an instance's tables and element segments (and a module's start
//! function) into a startup function that enters the instance like an
//! export. Without a start function of the plugin's own that is
//! instantiation, so the clock counts only from
//! [`GuestClock::instantiated`]; with one (`start_code.rs`; no default
//! plugin has one) the clock counts from the first crossing.
//!
//! A phase and the policy calls made on its behalf add up in one
//! [`GuestMeter`], so the director can say how much of a recovery was
//! spent in plugins' code.

use std::cell::Cell;
use std::time::{Duration, Instant};

use wasmtime::CallHook;

/// The guest time of one call, kept in its store.
#[derive(Debug, Default)]
pub(crate) struct GuestClock {
    /// Since when the guest has been running, while it runs.
    since: Option<Instant>,
    /// Time the guest ran, before `since`.
    total: Duration,
    /// Whether the instance is made: crossings before are instantiation's.
    instantiated: bool,
}

impl GuestClock {
    /// Notes a crossing of the boundary. A guest suspended mid-code (the
    /// epoch deadline yields to tokio every tick) is still counted: the
    /// figure errs high, never low.
    pub(crate) fn cross(&mut self, hook: CallHook) {
        if !self.instantiated {
            return;
        }
        match hook {
            CallHook::CallingWasm | CallHook::ReturningFromHost => self.since = Some(Instant::now()),
            CallHook::CallingHost | CallHook::ReturningFromWasm => {
                if let Some(since) = self.since.take() {
                    self.total += since.elapsed();
                }
            }
        }
    }

    /// Starts counting: the instance is made, and what runs in it from now
    /// on is the guest's.
    pub(crate) fn instantiated(&mut self) {
        self.instantiated = true;
    }

    /// Whether the clock counts: the instance is made.
    pub(crate) fn counting(&self) -> bool {
        self.instantiated
    }

    /// The guest's time so far.
    pub(crate) fn total(&self) -> Duration {
        self.total + self.since.map_or(Duration::ZERO, |since| since.elapsed())
    }
}

tokio::task_local! {
    static METER: Cell<Duration>;
}

/// Adds up the guest time of every plugin call made while a future runs
/// on its task (see [`GuestMeter::measure`]).
pub struct GuestMeter;

impl GuestMeter {
    /// Runs `future` and answers its output with the guest time of the
    /// plugin calls it made, nested ones included.
    pub async fn measure<F: std::future::Future>(future: F) -> (F::Output, Duration) {
        METER
            .scope(Cell::new(Duration::ZERO), async {
                let output = future.await;
                (output, METER.with(Cell::get))
            })
            .await
    }

    /// Charges `guest` to the meter of this task, if one is measuring.
    pub(crate) fn charge(guest: Duration) {
        // Outside `measure` nobody asked: nothing to add to.
        if METER.try_with(|meter| meter.set(meter.get() + guest)).is_err() {
            tracing::trace!(?guest, "guest time with no meter");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_time_between_entering_and_leaving_the_guest_counts() {
        let mut clock = GuestClock::default();
        clock.instantiated();
        clock.cross(CallHook::CallingWasm);
        std::thread::sleep(Duration::from_millis(10));
        clock.cross(CallHook::CallingHost);
        // The host answers: not the guest's time.
        std::thread::sleep(Duration::from_millis(300));
        clock.cross(CallHook::ReturningFromHost);
        std::thread::sleep(Duration::from_millis(10));
        clock.cross(CallHook::ReturningFromWasm);
        std::thread::sleep(Duration::from_millis(300));
        let total = clock.total();
        assert!(total >= Duration::from_millis(20) && total < Duration::from_millis(300), "{total:?}");
    }

    #[test]
    fn what_runs_while_the_instance_is_made_is_instantiation() {
        let mut clock = GuestClock::default();
        // The startup function wasmtime runs to set up tables and segments.
        clock.cross(CallHook::CallingWasm);
        std::thread::sleep(Duration::from_millis(300));
        clock.cross(CallHook::ReturningFromWasm);
        clock.instantiated();
        clock.cross(CallHook::CallingWasm);
        std::thread::sleep(Duration::from_millis(10));
        clock.cross(CallHook::ReturningFromWasm);
        let total = clock.total();
        assert!(total >= Duration::from_millis(10) && total < Duration::from_millis(300), "{total:?}");
    }

    #[tokio::test]
    async fn a_meter_adds_up_the_calls_made_inside_it_and_only_those() {
        GuestMeter::charge(Duration::from_millis(5));
        let ((), guest) = GuestMeter::measure(async {
            GuestMeter::charge(Duration::from_millis(2));
            tokio::task::yield_now().await;
            GuestMeter::charge(Duration::from_millis(3));
        })
        .await;
        assert_eq!(guest, Duration::from_millis(5));
    }
}
