//! Phase 5, **plan-log-recovery**: which versions survive, and from where.
//!
//! Decides: per shard, the quorum of old logs to copy from and the version
//! range `[max oldest, min last]` over that quorum; the recovery version is
//! the smallest `last` over all shards. A commit is acknowledged only when
//! every log of its shard accepted it, so any one locked log of a shard holds
//! every acknowledged version: the quorum is one log, and using every locked
//! log of the shard only narrows the range to what all of them hold.
//! Stalls when a shard has no locked log: its data cannot be recovered yet,
//! and the host retries when a service comes back.

use std::collections::BTreeMap;

use ratchet_guest::collections::IdMap;
use ratchet_guest::types::{AttemptState, LogRecoveryInfo, PhaseOutcome, PhaseStep, ShardPlan, ShardTag, StateField};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "create-vacancies";

/// Locked logs a shard needs: see the module documentation.
pub const QUORUM: usize = 1;

/// The plan-log-recovery phase.
pub struct PlanLogRecovery;

/// The per-shard plans, or the reason recovery must wait.
pub fn plan(state: &AttemptState) -> Result<Vec<ShardPlan>, String> {
    let Some(layout) = &state.old_layout else { return Ok(Vec::new()) };
    // Indexed once: a thousand-node cluster has thousands of shards, each
    // carried by a few of dozens of logs.
    let mut carriers_of: BTreeMap<ShardTag, Vec<&str>> = BTreeMap::new();
    for log in &layout.logs {
        for tag in &log.tags {
            carriers_of.entry(*tag).or_default().push(log.id.as_str());
        }
    }
    let locked: IdMap<&str, &LogRecoveryInfo> = state.locked_logs.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut plans = Vec::new();
    for team in &layout.storage_teams {
        let carriers = carriers_of.get(&team.tag).map(Vec::as_slice).unwrap_or_default();
        let quorum: Vec<&LogRecoveryInfo> = carriers.iter().filter_map(|id| locked.get(id).copied()).collect();
        if quorum.len() < QUORUM {
            return Err(format!(
                "shard {}: none of its {} logs ({}) could be locked",
                team.tag,
                carriers.len(),
                carriers.join(", ")
            ));
        }
        plans.push(ShardPlan {
            tag: team.tag,
            sources: quorum.iter().map(|i| i.id.clone()).collect(),
            first_version: quorum.iter().map(|i| i.oldest_version).max().unwrap_or(0),
            last_version: quorum.iter().map(|i| i.last_version).min().unwrap_or(0),
        });
    }
    Ok(plans)
}

impl Phase for PlanLogRecovery {
    const READS: &'static [StateField] = &[StateField::OldLayout, StateField::OldStorageTeams, StateField::LockedLogs];
    const WRITES: &'static [StateField] = &[StateField::LogPlan, StateField::RecoveryVersion];

    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        match plan(&state) {
            Err(reason) => outcome(state, PhaseStep::Stalled(reason)),
            Ok(plans) => {
                state.recovery_version = plans.iter().map(|p| p.last_version).min().or(Some(0));
                state.log_plan = plans;
                outcome(state, PhaseStep::Next(NEXT.into()))
            }
        }
    }
}

ratchet_guest::export_phase!(PlanLogRecovery);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};
    use ratchet_guest::types::LogRecoveryInfo;

    fn info(id: &str, oldest: u64, last: u64) -> LogRecoveryInfo {
        LogRecoveryInfo { id: id.into(), oldest_version: oldest, last_version: last, min_durable_version: 0 }
    }

    #[test]
    fn the_kept_range_is_max_oldest_to_min_last_over_the_quorum() {
        let mut s = state(2, Some(old_layout()));
        s.locked_logs = vec![info("log1", 2, 40), info("log3", 5, 39)];
        let out = PlanLogRecovery::run(s, &mut ScriptedHost::default());
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        let plan = &out.state.log_plan[0];
        assert_eq!((plan.first_version, plan.last_version), (5, 39));
        assert_eq!(plan.sources, ["log1", "log3"]);
        assert_eq!(out.state.recovery_version, Some(39));
    }

    #[test]
    fn the_quorum_is_per_shard() {
        let mut layout = old_layout();
        layout.logs[0].tags = vec![0];
        layout.logs[1].tags = vec![0];
        layout.logs[2].tags = vec![1];
        let mut s = state(2, Some(layout));
        s.locked_logs = vec![info("log1", 0, 10)];
        let out = PlanLogRecovery::run(s, &mut ScriptedHost::default());
        assert_eq!(out.step, PhaseStep::Stalled("shard 1: none of its 1 logs (log3) could be locked".into()));
    }

    #[test]
    fn no_locked_log_stalls() {
        let out = PlanLogRecovery::run(state(2, Some(old_layout())), &mut ScriptedHost::default());
        assert!(matches!(out.step, PhaseStep::Stalled(reason) if reason.starts_with("shard 0")));
    }
}
