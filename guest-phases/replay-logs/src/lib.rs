//! Phase 10, **replay-logs**: the new logs take over the kept versions.
//!
//! Decides: nothing new; it carries out the plan. Each new log recovers, for
//! every shard it carries, the kept range `[first, last]` of that shard from
//! the old logs that hold it; an empty range (the shard's logs were popped
//! through the recovery version) is skipped. The host checks the target,
//! the sources and the range (I4, S3). A new cluster has nothing to replay.
//! Stalls when a copy fails.

use std::collections::BTreeMap;

use ratchet_guest::types::{AttemptState, LogCopy, PhaseOutcome, PhaseStep, RecoveryPath, ShardPlan, ShardTag, StateField, Version};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "start-sequencer";

/// The replay-logs phase.
pub struct ReplayLogs;

impl Phase for ReplayLogs {
    const READS: &'static [StateField] = &[StateField::Path, StateField::LogPlan, StateField::NewLogs];
    const WRITES: &'static [StateField] = &[];

    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        if state.path != Some(RecoveryPath::Recover) {
            return outcome(state, PhaseStep::Next(NEXT.into()));
        }
        let step = replay(&state, host).err().unwrap_or(PhaseStep::Next(NEXT.into()));
        outcome(state, step)
    }
}

/// Has every new log copy its shards' kept ranges; on error, the step that
/// ends the phase. The logs copy at once; a log with more than one range to
/// copy copies them one round after another.
fn replay(state: &AttemptState, host: &mut dyn Host) -> Result<(), PhaseStep> {
    let plans: BTreeMap<ShardTag, &ShardPlan> = state.log_plan.iter().map(|p| (p.tag, p)).collect();
    let mut rounds: Vec<Vec<LogCopy>> = Vec::new();
    for log in &state.new_logs {
        // Shards with the same sources and range are copied in one call: a
        // log of a large cluster carries hundreds of shards.
        let mut batches: BTreeMap<(&[String], Version, Version), Vec<ShardTag>> = BTreeMap::new();
        for tag in &log.tags {
            let Some(plan) = plans.get(tag) else {
                let reason = format!("log {} carries shard {tag}, which has no recovery plan", log.id);
                return Err(PhaseStep::Failed(reason));
            };
            if plan.first_version > plan.last_version {
                continue;
            }
            batches.entry((&plan.sources, plan.first_version, plan.last_version)).or_default().push(*tag);
        }
        for (round, ((sources, first, last), tags)) in batches.into_iter().enumerate() {
            if rounds.len() <= round {
                rounds.push(Vec::new());
            }
            rounds[round].push(LogCopy { target: log.id.clone(), sources: sources.to_vec(), tags, first, last });
        }
    }
    for copies in rounds {
        let results = host.recover_logs(&copies);
        if let Some((copy, err)) = copies.iter().zip(results).find_map(|(c, r)| r.err().map(|e| (c, e))) {
            let reason = format!("{} could not recover shards {:?}: {err:?}", copy.target, copy.tags);
            return Err(PhaseStep::Stalled(reason));
        }
    }
    Ok(())
}

ratchet_guest::export_phase!(ReplayLogs);
ratchet_guest::use_call_arena!();

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
            ShardPlan { tag: 0, sources: vec!["log1".into()], first_version: 1, last_version: 9, departing: vec![] },
            ShardPlan { tag: 1, sources: vec!["log2".into()], first_version: 2, last_version: 9, departing: vec![] },
        ];
        s.new_logs = vec![LogAssignment { id: "new".into(), tags: vec![0, 1] }];
        let mut host = ScriptedHost::default();
        let out = ReplayLogs::run(s, &mut host);
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        assert_eq!(host.calls, ["recover new from log1 tags [0] [1, 9]", "recover new from log2 tags [1] [2, 9]"]);
    }

    #[test]
    fn shards_with_the_same_sources_and_range_are_copied_in_one_call() {
        let mut s = state(2, Some(old_layout()));
        s.path = Some(RecoveryPath::Recover);
        let plan =
            |tag, source: &str| ShardPlan { tag, sources: vec![source.into()], first_version: 1, last_version: 9, departing: vec![] };
        s.log_plan = vec![plan(0, "log1"), plan(1, "log2"), plan(2, "log1")];
        s.new_logs = vec![LogAssignment { id: "new".into(), tags: vec![0, 1, 2] }];
        let mut host = ScriptedHost::default();
        let out = ReplayLogs::run(s, &mut host);
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        assert_eq!(host.calls, ["recover new from log1 tags [0, 2] [1, 9]", "recover new from log2 tags [1] [1, 9]"]);
    }

    #[test]
    fn an_empty_range_is_not_copied() {
        let mut s = state(2, Some(old_layout()));
        s.path = Some(RecoveryPath::Recover);
        s.log_plan = vec![ShardPlan { tag: 0, sources: vec!["log1".into()], first_version: 10, last_version: 9, departing: vec![] }];
        s.new_logs = vec![LogAssignment { id: "new".into(), tags: vec![0] }];
        let mut host = ScriptedHost::default();
        assert_eq!(ReplayLogs::run(s, &mut host).step, PhaseStep::Next(NEXT.into()));
        assert!(host.calls.is_empty());
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
