//! Phase 5, **plan-log-recovery**: which versions survive, and from where.
//!
//! Decides: the recovery version and, per shard, the old logs to copy from
//! and the version range to keep. A commit is acknowledged only when every
//! log of its generation accepted it, so any locked log bounds what was
//! acknowledged: the recovery version is the smallest `last-version` over
//! the locked logs (never below the old layout's own recovery version,
//! which its generation kept), and no version above it is kept. Each shard
//! keeps `[first, recovery version]`, where `first` is the version after
//! what every locked replica of the shard has made durable (storage holds
//! the older ones, so the copy does not grow with the history), but never
//! before the oldest version any locked log of the shard still holds (older
//! versions were popped once the shard's storage had them). A replica
//! behind what the logs hold does not count, nor one below the old layout's
//! recovery version (it was still joining the old generation): each is
//! rebuilt from a teammate.
//! With no locked replica, the shard keeps all its logs hold. Its sources
//! are the locked logs of the shard that hold that whole range. A range with `first` above the
//! recovery version is empty: the shard's logs were popped through it, and
//! there is nothing to copy. Stalls when a shard has no locked log that
//! holds it: its data cannot be recovered yet, and the host retries when a
//! service comes back.

use std::collections::BTreeMap;

use ratchet_guest::collections::IdMap;
use ratchet_guest::types::{AttemptState, LogRecoveryInfo, PhaseOutcome, PhaseStep, ShardPlan, ShardTag, StateField, Version};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "create-vacancies";

/// The plan-log-recovery phase.
pub struct PlanLogRecovery;

/// The oldest version `info` holds of shard `tag`, if it holds the shard.
fn oldest_of(info: &LogRecoveryInfo, tag: ShardTag) -> Option<Version> {
    info.shards.iter().find(|s| s.tag == tag).map(|s| s.oldest_version)
}

/// The recovery version and the per-shard plans, or the reason recovery
/// must wait.
pub fn plan(state: &AttemptState) -> Result<(Version, Vec<ShardPlan>), String> {
    let Some(layout) = &state.old_layout else { return Ok((0, Vec::new())) };
    let acknowledged = state.locked_logs.iter().map(|i| i.last_version).min().unwrap_or(0);
    let recovery_version = acknowledged.max(layout.recovery_version);
    // Indexed once: a thousand-node cluster has thousands of shards, each
    // carried by a few of dozens of logs.
    let mut carriers_of: BTreeMap<ShardTag, Vec<&str>> = BTreeMap::new();
    for log in &layout.logs {
        for tag in &log.tags {
            carriers_of.entry(*tag).or_default().push(log.id.as_str());
        }
    }
    let locked: IdMap<&str, &LogRecoveryInfo> = state.locked_logs.iter().map(|i| (i.id.as_str(), i)).collect();
    let durable: IdMap<&str, Version> = state.locked_storage.iter().map(|s| (s.id.as_str(), s.durable_version)).collect();
    let mut plans = Vec::new();
    for team in &layout.storage_teams {
        let carriers = carriers_of.get(&team.tag).map(Vec::as_slice).unwrap_or_default();
        let holding: Vec<(&LogRecoveryInfo, Version)> = carriers
            .iter()
            .filter_map(|id| locked.get(id).copied())
            .filter(|info| info.last_version >= recovery_version)
            .filter_map(|info| Some((info, oldest_of(info, team.tag)?)))
            .collect();
        let Some(oldest) = holding.iter().map(|(_, oldest)| *oldest).min() else {
            return Err(format!("shard {}: none of its {} logs ({}) could be locked", team.tag, carriers.len(), carriers.join(", ")));
        };
        // What every replica that can catch up from the logs has made
        // durable: the copy starts after it.
        let floor = team
            .storage_ids
            .iter()
            .filter_map(|id| durable.get(id.as_str()).copied())
            .filter(|d| d.saturating_add(1) >= oldest && *d >= layout.recovery_version)
            .map(|d| d.min(recovery_version))
            .min();
        let first = floor.map_or(oldest, |floor| oldest.max(floor + 1)).min(recovery_version.saturating_add(1));
        plans.push(ShardPlan {
            tag: team.tag,
            sources: holding.iter().filter(|(_, oldest)| *oldest <= first).map(|(info, _)| info.id.clone()).collect(),
            first_version: first,
            last_version: recovery_version,
        });
    }
    Ok((recovery_version, plans))
}

impl Phase for PlanLogRecovery {
    const READS: &'static [StateField] =
        &[StateField::OldLayout, StateField::OldStorageTeams, StateField::LockedLogs, StateField::LockedStorage];
    const WRITES: &'static [StateField] = &[StateField::LogPlan, StateField::RecoveryVersion];

    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        match plan(&state) {
            Err(reason) => outcome(state, PhaseStep::Stalled(reason)),
            Ok((recovery_version, plans)) => {
                state.recovery_version = Some(recovery_version);
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
    use ratchet_guest::types::{LogRecoveryInfo, ShardRetention};

    /// A locked log holding `[oldest, last]` of every shard listed.
    fn info(id: &str, oldest: u64, last: u64, tags: &[ShardTag]) -> LogRecoveryInfo {
        let shards = tags.iter().map(|tag| ShardRetention { tag: *tag, oldest_version: oldest }).collect();
        LogRecoveryInfo { id: id.into(), oldest_version: oldest, last_version: last, shards }
    }

    #[test]
    fn a_shard_keeps_what_any_locked_log_holds_of_it_through_the_smallest_last() {
        let mut s = state(2, Some(old_layout()));
        s.locked_logs = vec![info("log1", 2, 40, &[0, 1]), info("log3", 5, 39, &[0, 1])];
        let out = PlanLogRecovery::run(s, &mut ScriptedHost::default());
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        let plan = &out.state.log_plan[0];
        assert_eq!((plan.first_version, plan.last_version), (2, 39));
        assert_eq!(plan.sources, ["log1"], "only a log holding the whole range is a source");
        assert_eq!(out.state.recovery_version, Some(39));
    }

    #[test]
    fn a_shard_keeps_only_what_its_storage_may_not_have_made_durable() {
        use ratchet_guest::types::StorageRecoveryInfo;
        let replica = |id: &str, durable| StorageRecoveryInfo { id: id.into(), durable_version: durable, oldest_durable_version: 0 };
        let layout = old_layout();
        let team = &layout.storage_teams[0];
        let mut s = state(2, Some(layout.clone()));
        s.locked_logs = vec![info("log1", 2, 4_000, &[0, 1]), info("log3", 5, 3_990, &[0, 1])];
        // Every replica of the first shard holds 3,900 or more; one of the
        // second shard lags behind what the logs hold and is left out.
        s.locked_storage = team.storage_ids.iter().enumerate().map(|(i, id)| replica(id, 3_900 + i as u64)).collect();
        let other = &layout.storage_teams[1];
        s.locked_storage.push(replica(&other.storage_ids[0], 0));
        s.locked_storage.push(replica(&other.storage_ids[1], 3_000));
        let out = PlanLogRecovery::run(s, &mut ScriptedHost::default());
        let plans: Vec<(u64, u64)> = out.state.log_plan.iter().map(|p| (p.first_version, p.last_version)).collect();
        assert_eq!(plans[0], (3_901, 3_990), "the copy starts after what every replica holds");
        assert_eq!(plans[1], (3_001, 3_990), "a replica behind the logs does not hold the copy back");
        assert_eq!(out.state.log_plan[0].sources, ["log1", "log3"], "both logs hold the shorter range");
    }

    #[test]
    fn every_shard_ends_at_the_one_recovery_version() {
        let mut layout = old_layout();
        layout.logs[0].tags = vec![0];
        layout.logs[1].tags = vec![0];
        layout.logs[2].tags = vec![1];
        let mut s = state(2, Some(layout));
        s.locked_logs = vec![info("log1", 1, 50, &[0]), info("log3", 1, 45, &[1])];
        let out = PlanLogRecovery::run(s, &mut ScriptedHost::default());
        let ends: Vec<u64> = out.state.log_plan.iter().map(|p| p.last_version).collect();
        assert_eq!(ends, [45, 45], "no shard keeps a version the new sequencer will issue again");
    }

    #[test]
    fn the_recovery_version_never_falls_below_what_the_old_generation_kept() {
        let mut layout = old_layout();
        layout.recovery_version = 30;
        let mut s = state(2, Some(layout));
        // log2 never served: it answers with version 0 and holds nothing.
        s.locked_logs = vec![info("log1", 1, 40, &[0, 1]), info("log2", 1, 0, &[])];
        let out = PlanLogRecovery::run(s, &mut ScriptedHost::default());
        assert_eq!(out.state.recovery_version, Some(30));
        let plan = &out.state.log_plan[0];
        assert_eq!((plan.first_version, plan.last_version, plan.sources.as_slice()), (1, 30, ["log1".to_string()].as_slice()));
    }

    #[test]
    fn a_shard_popped_through_the_recovery_version_keeps_an_empty_range() {
        let mut s = state(2, Some(old_layout()));
        s.locked_logs = vec![info("log1", 11, 10, &[0, 1])];
        let out = PlanLogRecovery::run(s, &mut ScriptedHost::default());
        let plan = &out.state.log_plan[0];
        assert_eq!((plan.first_version, plan.last_version), (11, 10));
    }

    #[test]
    fn the_quorum_is_per_shard() {
        let mut layout = old_layout();
        layout.logs[0].tags = vec![0];
        layout.logs[1].tags = vec![0];
        layout.logs[2].tags = vec![1];
        let mut s = state(2, Some(layout));
        s.locked_logs = vec![info("log1", 0, 10, &[0])];
        let out = PlanLogRecovery::run(s, &mut ScriptedHost::default());
        assert_eq!(out.step, PhaseStep::Stalled("shard 1: none of its 1 logs (log3) could be locked".into()));
    }

    #[test]
    fn no_locked_log_stalls() {
        let out = PlanLogRecovery::run(state(2, Some(old_layout())), &mut ScriptedHost::default());
        assert!(matches!(out.step, PhaseStep::Stalled(reason) if reason.starts_with("shard 0")));
    }
}
