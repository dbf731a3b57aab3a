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
//! rebuilt from a teammate. While a team has fewer replicas that count
//! than the replication factor, a replica that could not be locked and
//! that the host saw serve (`cluster.known-durable`) stays in the team as a
//! departing copy, if the logs still hold the versions after the one the
//! host saw it durable at: the plan keeps those too, and names it.
//! With no locked replica, the shard keeps all its logs hold. Its sources
//! are the locked logs of the shard that hold that whole range. A range with `first` above the
//! recovery version is empty: the shard's logs were popped through it, and
//! there is nothing to copy. Stalls when a shard has no locked log that
//! holds it: its data cannot be recovered yet, and the host retries when a
//! service comes back.

use std::collections::BTreeMap;

use ratchet_guest::collections::{IdMap, IdSet};
use ratchet_guest::types::{
    AttemptState, DepartingReplica, LogRecoveryInfo, PhaseOutcome, PhaseStep, ServiceDescriptor, ShardPlan, ShardTag, StateField, Version,
};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "create-vacancies";

/// The plan-log-recovery phase.
pub struct PlanLogRecovery;

/// The oldest version `info` holds of shard `tag`, if it holds the shard.
fn oldest_of(info: &LogRecoveryInfo, tag: ShardTag) -> Option<Version> {
    info.shards.iter().find(|s| s.tag == tag).map(|s| s.oldest_version)
}

/// The replicas of the old teams, not departing ones, that this attempt
/// did not lock: the host is asked what it last saw each of them hold
/// (departing ones carry what the old layout trusts them with).
pub fn unlocked_replicas(state: &AttemptState) -> Vec<String> {
    let Some(layout) = &state.old_layout else { return Vec::new() };
    let locked: IdSet<&str> = state.locked_storage.iter().map(|s| s.id.as_str()).collect();
    layout.storage_teams.iter().flat_map(|t| &t.storage_ids).filter(|id| !locked.contains(id.as_str())).cloned().collect()
}

/// The recovery version and the per-shard plans, or the reason recovery
/// must wait. `known` is what the host last saw unlocked replicas durable
/// at (see `unlocked_replicas`).
pub fn plan(state: &AttemptState, known: &IdMap<&str, Version>) -> Result<(Version, Vec<ShardPlan>), String> {
    let Some(layout) = &state.old_layout else { return Ok((0, Vec::new())) };
    let acknowledged = state.locked_logs.iter().map(|i| i.last_version).min().unwrap_or(0);
    let recovery_version = acknowledged.max(layout.recovery_version);
    let replication = state.config.replication_factor as usize;
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
    let services: IdMap<&str, &ServiceDescriptor> = layout.services.iter().map(|s| (s.id.as_str(), s)).collect();
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
        let caught_up = |d: &Version| d.saturating_add(1) >= oldest;
        // What every replica that can catch up from the logs has made
        // durable: the copy starts after it. A departing replica of the
        // old team that came back holds the shard through what the old
        // layout trusts it with, below the old recovery version as that
        // may be.
        let locked: Vec<Version> = team.storage_ids.iter().filter_map(|id| durable.get(id.as_str()).copied()).collect();
        let mut whole: Vec<Version> = locked.iter().copied().filter(|d| caught_up(d) && *d >= layout.recovery_version).collect();
        // A departing replica that came back may serve again only while
        // the team has fewer locked replicas than the replication factor
        // (create-vacancies chooses which); otherwise what it lacks is not
        // kept.
        if locked.len() < replication {
            let returned = team.departing.iter().filter_map(|d| Some(*durable.get(d.service.id.as_str())?.min(&d.durable_version)));
            whole.extend(returned.filter(caught_up));
        }
        // While the team holds fewer copies than the replication factor,
        // a replica that could not be locked stays a copy (departing) if
        // the logs still hold what it lacks: the plan keeps that too, and
        // its replacement joins after the layout persists.
        let seen = team.storage_ids.iter().filter_map(|id| {
            let service = services.get(id.as_str())?;
            Some(DepartingReplica { service: (*service).clone(), durable_version: *known.get(id.as_str())? })
        });
        let still = team.departing.iter().filter(|d| !durable.contains_key(d.service.id.as_str())).cloned();
        let mut absent: Vec<DepartingReplica> = seen.chain(still).filter(|d| caught_up(&d.durable_version)).collect();
        absent.sort_by(|a, b| b.durable_version.cmp(&a.durable_version).then_with(|| a.service.id.cmp(&b.service.id)));
        absent.truncate(replication.saturating_sub(whole.len()));
        whole.extend(absent.iter().map(|d| d.durable_version));
        let floor = whole.into_iter().map(|d| d.min(recovery_version)).min();
        let first = floor.map_or(oldest, |floor| oldest.max(floor + 1)).min(recovery_version.saturating_add(1));
        plans.push(ShardPlan {
            tag: team.tag,
            sources: holding.iter().filter(|(_, oldest)| *oldest <= first).map(|(info, _)| info.id.clone()).collect(),
            first_version: first,
            last_version: recovery_version,
            departing: absent,
        });
    }
    Ok((recovery_version, plans))
}

impl Phase for PlanLogRecovery {
    const READS: &'static [StateField] =
        &[StateField::OldLayout, StateField::OldServices, StateField::OldStorageTeams, StateField::LockedLogs, StateField::LockedStorage];
    const WRITES: &'static [StateField] = &[StateField::LogPlan, StateField::RecoveryVersion];

    fn run(mut state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let unlocked = unlocked_replicas(&state);
        let answers = if unlocked.is_empty() { Ok(Vec::new()) } else { host.known_durable(&unlocked) };
        let answers = match answers {
            Ok(answers) => answers,
            Err(err) => return outcome(state, PhaseStep::Stalled(format!("asking what unlocked replicas hold: {err:?}"))),
        };
        let known: IdMap<&str, Version> = unlocked.iter().zip(answers).filter_map(|(id, floor)| Some((id.as_str(), floor?))).collect();
        match plan(&state, &known) {
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
    use ratchet_guest::types::{DepartingReplica, LogRecoveryInfo, ShardRetention};

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
    fn a_replica_not_locked_stays_a_departing_copy_while_its_team_is_short_and_the_plan_keeps_what_it_lacks() {
        use ratchet_guest::types::StorageRecoveryInfo;
        let replica = |id: &str, durable| StorageRecoveryInfo { id: id.into(), durable_version: durable, oldest_durable_version: 0 };
        let mut s = state(2, Some(old_layout()));
        s.locked_logs = vec![info("log1", 2, 4_000, &[0, 1])];
        // st0-3 and st1-3 did not answer the lock; the host saw st0-3
        // durable at 3,500, and never saw st1-3 serve.
        s.locked_storage = ["st0-1", "st0-2", "st1-1", "st1-2"].iter().map(|id| replica(id, 3_990)).collect();
        let mut host = ScriptedHost::default();
        host.known_durable.insert("st0-3".into(), 3_500);
        let out = PlanLogRecovery::run(s.clone(), &mut host);
        assert_eq!(host.calls, ["known-durable st0-3 st1-3"], "only the replicas not locked are asked about");
        let plans: Vec<(u64, Vec<(&str, u64)>)> = out
            .state
            .log_plan
            .iter()
            .map(|p| (p.first_version, p.departing.iter().map(|d| (d.service.id.as_str(), d.durable_version)).collect()))
            .collect();
        assert_eq!(plans[0], (3_501, vec![("st0-3", 3_500)]), "the copy keeps what the departing replica lacks");
        assert_eq!(plans[1], (3_991, vec![]), "a replica whose data the host never saw is no copy");
        let st0_3 = s.old_layout.as_ref().unwrap().services.iter().find(|d| d.id == "st0-3").unwrap();
        assert_eq!(out.state.log_plan[0].departing[0].service, *st0_3, "described as the old layout does");

        // The next recovery: st0-3 is still away and keeps what the layout
        // trusts it with, without asking the host; st0-2's node, which
        // came back from a departure, holds more than the layout trusts
        // it with, and counts only for that.
        let mut next = s.clone();
        let layout = next.old_layout.as_mut().unwrap();
        let departed = |id: &str, through| DepartingReplica {
            service: layout.services.iter().find(|d| d.id == id).unwrap().clone(),
            durable_version: through,
        };
        let (gone, back) = (departed("st0-3", 3_500), departed("st0-2", 3_200));
        layout.storage_teams[0].storage_ids = vec!["st0-1".into()];
        layout.storage_teams[0].departing = vec![gone, back];
        let mut host = ScriptedHost::default();
        let out = PlanLogRecovery::run(next.clone(), &mut host);
        assert_eq!(host.calls, ["known-durable st1-3"]);
        let plan = &out.state.log_plan[0];
        assert_eq!(plan.first_version, 3_201, "st0-2 is trusted through 3,200 only");
        // Any departing replica that came back to a short team may serve
        // it (create-vacancies chooses): the plan keeps what each lacks.
        let mut both = next.clone();
        let layout = both.old_layout.as_mut().unwrap();
        layout.storage_teams[0].storage_ids = vec!["st0-1".into(), "st0-4".into()];
        layout.storage_teams[0].departing[0].durable_version = 3_100;
        both.locked_storage.push(replica("st0-3", 3_990));
        both.locked_storage.push(replica("st0-4", 3_990));
        let out = PlanLogRecovery::run(both, &mut ScriptedHost::default());
        assert_eq!(out.state.log_plan[0].first_version, 3_101, "both came back to a team one short: both are kept");
        assert_eq!(plan.departing.iter().map(|d| (d.service.id.as_str(), d.durable_version)).collect::<Vec<_>>(), [("st0-3", 3_500)]);

        // The logs popped what st0-3 lacks: it is no copy either.
        let mut popped = s.clone();
        popped.locked_logs = vec![info("log1", 3_700, 4_000, &[0, 1])];
        let out = PlanLogRecovery::run(popped, &mut host);
        assert_eq!((out.state.log_plan[0].first_version, out.state.log_plan[0].departing.len()), (3_991, 0));

        // A team whose locked replicas make the replication factor needs no
        // departing copy, and its copy does not reach back for one.
        let mut whole = s;
        whole.locked_storage.push(replica("st0-4", 3_990));
        whole.old_layout.as_mut().unwrap().storage_teams[0].storage_ids.push("st0-4".into());
        let out = PlanLogRecovery::run(whole, &mut host);
        assert_eq!((out.state.log_plan[0].first_version, out.state.log_plan[0].departing.len()), (3_991, 0));
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
