//! A replay-logs that skips most of the kept range: each new log copies only
//! the last two versions of each shard. The new logs still end at the
//! recovery version, so the host's closure check (which looks at where a
//! copy ends) lets the layout through; but a storage replica that had not
//! yet pulled the skipped versions never finds them, and acknowledged
//! writes are lost. The simulator's checker must catch it.

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep, RecoveryPath};
use ratchet_guest::{Host, Phase, outcome};

/// The hasty phase.
pub struct TailReplay;

impl Phase for TailReplay {
    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        if state.path != Some(RecoveryPath::Recover) {
            return outcome(state, PhaseStep::Next("start-sequencer".into()));
        }
        for log in &state.new_logs {
            for tag in &log.tags {
                let Some(plan) = state.log_plan.iter().find(|p| p.tag == *tag) else { continue };
                let first = plan.first_version.max(plan.last_version.saturating_sub(1));
                if let Err(err) = host.recover_log(&log.id, &plan.sources, &[*tag], first, plan.last_version) {
                    return outcome(state, PhaseStep::Stalled(format!("copy failed: {err:?}")));
                }
            }
        }
        outcome(state, PhaseStep::Next("start-sequencer".into()))
    }
}

ratchet_guest::export_phase!(TailReplay, wit = "../../../wit");
