//! A persist-layout that writes the assembled layout under the previous
//! epoch, as a director that lost track of its epoch would. The host must
//! refuse it: a layout is written only by, and for, the newest epoch (I6, I7).

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep};
use ratchet_guest::{Host, Phase, outcome};

/// The stale phase.
pub struct StalePersist;

impl Phase for StalePersist {
    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let Some(mut layout) = state.new_layout.clone() else {
            return outcome(state, PhaseStep::Failed("no layout".into()));
        };
        layout.epoch = state.epoch.saturating_sub(1);
        let step = match host.persist_layout(&layout) {
            Ok(()) => PhaseStep::Completed,
            Err(err) => PhaseStep::Stalled(format!("persist refused: {err:?}")),
        };
        outcome(state, step)
    }
}

ratchet_guest::export_phase!(StalePersist, wit = "../../../wit");
