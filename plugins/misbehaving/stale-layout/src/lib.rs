//! An assemble-layout that skips the work: it re-labels the old layout with
//! the new epoch and adds a service nobody locked. The host must refuse to
//! persist it (I6).

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep};
use ratchet_guest::{Host, Phase, outcome};

/// The lazy phase.
pub struct StaleLayout;

impl Phase for StaleLayout {
    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        let Some(mut layout) = state.old_layout.clone() else {
            return outcome(state, PhaseStep::Failed("stale-layout needs an old layout".into()));
        };
        layout.epoch = state.epoch;
        if let Some(team) = layout.storage_teams.first_mut() {
            team.storage_ids.push("ghost-storage".into());
        }
        state.new_layout = Some(layout);
        outcome(state, PhaseStep::Next("persist-layout".into()))
    }
}

ratchet_guest::export_phase!(StaleLayout, wit = "../../../wit");
