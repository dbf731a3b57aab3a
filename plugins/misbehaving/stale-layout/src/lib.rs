//! An assemble-layout that skips the work: it re-labels the old layout with
//! the new epoch, adds a service nobody locked, stages it and, ignoring the
//! refusal, moves on. The host must refuse the layout (I6), so nothing is
//! ever unlocked against it or persisted.

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep};
use ratchet_guest::{Host, Phase, outcome};

/// The lazy phase.
pub struct StaleLayout;

impl Phase for StaleLayout {
    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let Some(mut layout) = state.old_layout.clone() else {
            return outcome(state, PhaseStep::Failed("stale-layout needs an old layout".into()));
        };
        layout.epoch = state.epoch;
        if let Some(team) = layout.storage_teams.first_mut() {
            team.storage_ids.push("ghost-storage".into());
        }
        let _ignored = host.stage_layout(&layout);
        let ids: Vec<String> = layout.logs.iter().map(|l| l.id.clone()).collect();
        let _ignored = host.unlock(&ids);
        outcome(state, PhaseStep::Next("persist-layout".into()))
    }
}

ratchet_guest::export_phase!(StaleLayout, wit = "../../../wit");
