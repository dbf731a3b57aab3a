//! A replay-logs that copies from every log of the old layout, including
//! those this attempt could not lock. The host must refuse a copy from a
//! source not locked by this epoch (I4).

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep};
use ratchet_guest::{Host, Phase, outcome};

/// The careless phase.
pub struct UnlockedSource;

impl Phase for UnlockedSource {
    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let sources: Vec<String> = state.old_layout.iter().flat_map(|l| l.logs.iter().map(|g| g.id.clone())).collect();
        let last = state.recovery_version.unwrap_or(0);
        for log in &state.new_logs {
            if let Err(err) = host.recover_log(&log.id, &sources, &log.tags, 0, last) {
                return outcome(state, PhaseStep::Stalled(format!("copy refused: {err:?}")));
            }
        }
        outcome(state, PhaseStep::Next("start-sequencer".into()))
    }
}

ratchet_guest::export_phase!(UnlockedSource, wit = "../../../wit");
