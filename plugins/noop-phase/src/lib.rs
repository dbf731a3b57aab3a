//! A validate-layout that reads nothing, writes nothing and moves on to
//! lock-services. Its call costs what any call of a component built with the
//! SDK costs before the phase does any work: a fresh store, the instance,
//! `reads`, an empty state in and an empty outcome out. The recovery
//! benchmark calls it once per plugin call of a native recovery to measure
//! that floor (BENCHMARKS.md).

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep};
use ratchet_guest::{Host, Phase, outcome};

/// The phase that does nothing.
pub struct Noop;

impl Phase for Noop {
    const READS: &'static [ratchet_guest::types::StateField] = &[];

    fn run(state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        outcome(state, PhaseStep::Next("lock-services".into()))
    }
}

ratchet_guest::export_phase!(Noop);
ratchet_guest::use_call_arena!();
