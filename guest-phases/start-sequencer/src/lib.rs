//! Phase 11, **start-sequencer**: the new generation's version source.
//!
//! Decides: the node of the sequencer (the placement policy picks it). The
//! host starts it fenced by this epoch, handing out versions after the
//! recovery version. Stalls when placement or the start fails.

use ratchet_guest::recruit::start_phase;
use ratchet_guest::types::{AttemptState, PhaseOutcome, ServiceKind, StateField};
use ratchet_guest::{Host, Phase};

/// The phase run after this one.
pub const NEXT: &str = "start-proxies";

/// The start-sequencer phase.
pub struct StartSequencer;

impl Phase for StartSequencer {
    const READS: &'static [StateField] = &[];
    const WRITES: &'static [StateField] = &[StateField::Sequencer];

    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let count = 1;
        start_phase(state, host, ServiceKind::Sequencer, count, NEXT, |state, started| state.sequencer = started.into_iter().next())
    }
}

ratchet_guest::export_phase!(StartSequencer);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, state};
    use ratchet_guest::types::PhaseStep;

    #[test]
    fn starts_one_sequencer() {
        let mut host = ScriptedHost::with_nodes(3, 3);
        let out = StartSequencer::run(state(1, None), &mut host);
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        assert_eq!(out.state.sequencer.unwrap().kind, ServiceKind::Sequencer);
        assert_eq!(host.calls, ["start n1 sequencer"]);
    }

    #[test]
    fn no_node_stalls() {
        let out = StartSequencer::run(state(1, None), &mut ScriptedHost::default());
        assert!(matches!(out.step, PhaseStep::Stalled(_)));
    }
}
