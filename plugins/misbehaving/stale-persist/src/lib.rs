//! A persist-layout that tries to write the layout under the previous epoch,
//! as a director that lost track of its epoch would: it stages the assembled
//! layout again with the epoch before its own, then once more as it was,
//! and persists whatever happened. The host must refuse both: a layout
//! carries its attempt's epoch, and the staged one is fixed once services
//! were unlocked against it (I6). What lands is the layout they were handed.

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep};
use ratchet_guest::{Host, Phase, outcome};

/// The stale phase.
pub struct StalePersist;

impl Phase for StalePersist {
    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let Some(layout) = state.new_layout.clone() else {
            return outcome(state, PhaseStep::Failed("no layout".into()));
        };
        let stale = ratchet_guest::types::Layout { epoch: state.epoch.saturating_sub(1), ..layout.clone() };
        // The refusals are ignored: the phase persists regardless.
        let _ignored = host.stage_layout(&stale);
        let _ignored = host.stage_layout(&layout);
        let step = match host.persist_layout() {
            Ok(()) => PhaseStep::Completed,
            Err(err) => PhaseStep::Stalled(format!("persist refused: {err:?}")),
        };
        outcome(state, step)
    }
}

ratchet_guest::export_phase!(StalePersist, wit = "../../../wit");
