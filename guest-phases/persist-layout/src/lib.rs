//! Phase 15, **persist-layout**: make the new generation official.
//!
//! Decides: nothing; it has the host write the layout assemble-layout staged
//! through the coordinator. The host checks the layout's closure (I6) and
//! writes it with compare-and-swap on the epoch (I7), so a superseded
//! director's write fails. Reads nothing: the layout stays with the host.
//! Completes on success, fails when superseded, stalls on any other error
//! (a refusal when nothing was staged among them).

use ratchet_guest::types::{AttemptState, ClusterError, PhaseOutcome, PhaseStep, StateField};
use ratchet_guest::{Host, Phase, outcome};

/// The persist-layout phase.
pub struct PersistLayout;

impl Phase for PersistLayout {
    const READS: &'static [StateField] = &[];
    const WRITES: &'static [StateField] = &[];

    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let step = match host.persist_layout() {
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
    fn persists_the_staged_layout_and_completes() {
        let s = state(2, None);
        let mut host = ScriptedHost::default();
        host.staged = Some(old_layout());
        assert_eq!(PersistLayout::run(s.clone(), &mut host).step, PhaseStep::Completed);
        host.persist = Some(Err(ClusterError::Superseded(3)));
        assert!(matches!(PersistLayout::run(s, &mut host).step, PhaseStep::Failed(_)));
    }

    #[test]
    fn with_nothing_staged_it_stalls_with_the_refusal() {
        let out = PersistLayout::run(state(2, None), &mut ScriptedHost::default());
        assert!(matches!(&out.step, PhaseStep::Stalled(r) if r.contains("before a layout was staged")), "{:?}", out.step);
    }
}
