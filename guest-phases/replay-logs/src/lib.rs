//! Phase 10, **replay-logs**: the new logs take over the kept versions.
//!
//! Decides: nothing new; it carries out the plan. Each new log recovers, for
//! every shard it carries, the kept range `[first, last]` of that shard from
//! the shard's quorum of old logs. The host checks that the target and the
//! sources are locked by this epoch (I4). A new cluster has nothing to
//! replay. Stalls when a copy fails.

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep, RecoveryPath};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "start-sequencer";

/// The replay-logs phase.
pub struct ReplayLogs;

impl Phase for ReplayLogs {
    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        if state.path != Some(RecoveryPath::Recover) {
            return outcome(state, PhaseStep::Next(NEXT.into()));
        }
        for log in &state.new_logs {
            for tag in &log.tags {
                let Some(plan) = state.log_plan.iter().find(|p| p.tag == *tag) else {
                    let reason = format!("log {} carries shard {tag}, which has no recovery plan", log.id);
                    return outcome(state, PhaseStep::Failed(reason));
                };
                if let Err(err) =
                    host.recover_log(&log.id, &plan.sources, &[*tag], plan.first_version, plan.last_version)
                {
                    let reason = format!("{} could not recover shard {tag}: {err:?}", log.id);
                    return outcome(state, PhaseStep::Stalled(reason));
                }
            }
        }
        outcome(state, PhaseStep::Next(NEXT.into()))
    }
}

ratchet_guest::export_phase!(ReplayLogs);

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};
    use ratchet_guest::types::{LogAssignment, ShardPlan};

    #[test]
    fn every_new_log_recovers_every_shard_it_carries() {
        let mut s = state(2, Some(old_layout()));
        s.path = Some(RecoveryPath::Recover);
        s.log_plan = vec![
            ShardPlan { tag: 0, sources: vec!["log1".into()], first_version: 1, last_version: 9 },
            ShardPlan { tag: 1, sources: vec!["log2".into()], first_version: 2, last_version: 9 },
        ];
        s.new_logs = vec![LogAssignment { id: "new".into(), tags: vec![0, 1] }];
        let mut host = ScriptedHost::default();
        let out = ReplayLogs::run(s, &mut host);
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        assert_eq!(host.calls, ["recover new from log1 tags [0] [1, 9]", "recover new from log2 tags [1] [2, 9]"]);
    }

    #[test]
    fn a_new_cluster_replays_nothing() {
        let mut s = state(1, None);
        s.path = Some(RecoveryPath::Initialize);
        let mut host = ScriptedHost::default();
        ReplayLogs::run(s, &mut host);
        assert!(host.calls.is_empty());
    }
}
