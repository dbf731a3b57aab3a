//! Phase 15, **persist-layout**: make the new generation official.
//!
//! Decides: nothing; it writes the assembled layout through the coordinator.
//! The host checks the layout's closure (I6) and writes it with
//! compare-and-swap on the epoch (I7), so a superseded director's write fails.
//! Completes on success, fails when superseded, stalls on any other error.

use ratchet_guest::types::{AttemptState, ClusterError, PhaseOutcome, PhaseStep, StateField};
use ratchet_guest::{Host, Phase, outcome};

/// The persist-layout phase.
pub struct PersistLayout;

impl Phase for PersistLayout {
    const READS: &'static [StateField] = &[StateField::NewLayout];
    const WRITES: &'static [StateField] = &[];

    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let Some(layout) = &state.new_layout else {
            return outcome(state, PhaseStep::Failed("no layout was assembled".into()));
        };
        let step = match host.persist_layout(layout) {
            Ok(()) => PhaseStep::Completed,
            Err(ClusterError::Superseded(newer)) => PhaseStep::Failed(format!("superseded by epoch {newer}")),
            Err(err) => PhaseStep::Stalled(format!("persisting the layout: {err:?}")),
        };
        outcome(state, step)
    }
}

ratchet_guest::export_phase!(PersistLayout);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};

    #[test]
    fn persists_and_completes() {
        let mut s = state(2, None);
        s.new_layout = Some(old_layout());
        let mut host = ScriptedHost::default();
        assert_eq!(PersistLayout::run(s.clone(), &mut host).step, PhaseStep::Completed);
        host.persist = Some(Err(ClusterError::Superseded(3)));
        assert!(matches!(PersistLayout::run(s, &mut host).step, PhaseStep::Failed(_)));
    }
}
