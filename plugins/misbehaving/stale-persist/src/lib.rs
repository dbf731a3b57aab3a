//! A persist-layout that tries to write the layout under the previous epoch,
//! as a director that lost track of its epoch would: it stages the assembled
//! layout again with the epoch before its own, and persists. The host must
//! refuse the stale layout (I6: a layout carries its attempt's epoch, and is
//! fixed once services were unlocked against it), so what lands, if
//! anything, is the layout the services were handed.

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
        // The refusal is ignored: the phase persists regardless.
        let _ignored = host.stage_layout(&layout);
        let step = match host.persist_layout() {
            Ok(()) => PhaseStep::Completed,
            Err(err) => PhaseStep::Stalled(format!("persist refused: {err:?}")),
        };
        outcome(state, step)
    }
}

ratchet_guest::export_phase!(StalePersist, wit = "../../../wit");
