//! Phase 7, **determine-durable-version**: what storage already holds.
//!
//! Decides: per storage team, the quorum-th highest durable version among its
//! locked replicas (quorum: a majority of the replication factor); the
//! cluster's durable version is the minimum across teams. A team with fewer
//! live replicas than the replication factor is marked degraded. Stalls when
//! a team has no live replica at all.
//!
//! A replica behind the logs' kept range is rebuilt from a teammate by
//! replica recovery, so a team only needs one locked replica that reaches the
//! kept range. When none does, the versions between them are in no locked
//! service: the phase stalls while a replica of the team is still unlocked
//! (it may hold them), and fails when every replica is locked, because
//! recovering would then lose data.

use std::collections::BTreeMap;

use ratchet_guest::collections::IdMap;
use ratchet_guest::layout::replicas_of;
use ratchet_guest::types::{AttemptState, Layout, PhaseOutcome, PhaseStep, ShardPlan, ShardTag, StateField, Version};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "recruit-logs";

/// The determine-durable-version phase.
pub struct DetermineDurableVersion;

/// The quorum-th highest of `durables` (majority of `replication`), or the
/// lowest when fewer replicas than the quorum are live.
pub fn team_durable(mut durables: Vec<Version>, replication: u32) -> Option<Version> {
    let quorum = (replication / 2 + 1) as usize;
    durables.sort_unstable_by(|a, b| b.cmp(a));
    durables.get(quorum.min(durables.len()).checked_sub(1)?).copied()
}

impl Phase for DetermineDurableVersion {
    const READS: &'static [StateField] =
        &[StateField::OldLayout, StateField::OldStorageTeams, StateField::LockedStorage, StateField::LogPlan];
    const WRITES: &'static [StateField] = &[StateField::DegradedTeams, StateField::DurableVersion];

    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        let Some(layout) = &state.old_layout else {
            return outcome(state, PhaseStep::Next(NEXT.into()));
        };
        let (degraded, durable) = cluster_durable(&state, layout);
        state.degraded_teams = degraded;
        match durable {
            Ok(durable) => {
                state.durable_version = Some(durable);
                outcome(state, PhaseStep::Next(NEXT.into()))
            }
            Err(step) => outcome(state, step),
        }
    }
}

/// The degraded teams (up to the first team that stops the phase) and the
/// cluster's durable version, or the step that stops the phase.
fn cluster_durable(state: &AttemptState, layout: &Layout) -> (Vec<ShardTag>, Result<Version, PhaseStep>) {
    let replication = state.config.replication_factor;
    let durable_of: IdMap<&str, Version> = state.locked_storage.iter().map(|s| (s.id.as_str(), s.durable_version)).collect();
    let plans: BTreeMap<ShardTag, &ShardPlan> = state.log_plan.iter().map(|p| (p.tag, p)).collect();
    let mut degraded = Vec::new();
    let mut cluster: Option<Version> = None;
    for team in &layout.storage_teams {
        let durables: Vec<Version> = replicas_of(team).filter_map(|id| durable_of.get(id.as_str()).copied()).collect();
        if (durables.len() as u32) < replication {
            degraded.push(team.tag);
        }
        if let Some(plan) = plans.get(&team.tag)
            && let Some(step) = behind_retention(team.tag, &durables, replicas_of(team).count(), plan.first_version)
        {
            return (degraded, Err(step));
        }
        let Some(durable) = team_durable(durables, replication) else {
            let reason = format!("storage team {} has no live replica", team.tag);
            return (degraded, Err(PhaseStep::Stalled(reason)));
        };
        cluster = Some(cluster.map_or(durable, |d| d.min(durable)));
    }
    (degraded, Ok(cluster.unwrap_or(0)))
}

/// The step that stops the phase when no locked replica of shard `tag`
/// reaches the logs' first kept version `first`, or `None` when one does
/// (its teammates are then rebuilt from it).
fn behind_retention(tag: ShardTag, durables: &[Version], replicas: usize, first: Version) -> Option<PhaseStep> {
    let best = durables.iter().copied().max()?;
    if best.saturating_add(1) >= first {
        return None;
    }
    let gap = format!("shard {tag}: the best locked replica is durable at {best} but the logs keep only from {first}");
    Some(if durables.len() < replicas {
        PhaseStep::Stalled(format!("{gap}; waiting for the team's other replicas"))
    } else {
        PhaseStep::Failed(gap)
    })
}

ratchet_guest::export_phase!(DetermineDurableVersion);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};
    use ratchet_guest::types::{ShardPlan, StorageRecoveryInfo};

    fn replica(id: &str, durable: Version) -> StorageRecoveryInfo {
        StorageRecoveryInfo { id: id.into(), durable_version: durable, oldest_durable_version: 0 }
    }

    #[test]
    fn the_quorum_th_highest_is_the_team_durable_version() {
        assert_eq!(team_durable(vec![10, 30, 20], 3), Some(20));
        assert_eq!(team_durable(vec![10], 3), Some(10));
        assert_eq!(team_durable(vec![], 3), None);
        assert_eq!(team_durable(vec![5, 9, 7, 8, 6], 5), Some(7));
    }

    #[test]
    fn the_cluster_takes_the_minimum_and_marks_degraded_teams() {
        let mut s = state(2, Some(old_layout()));
        s.locked_storage =
            vec![replica("st0-1", 10), replica("st0-2", 30), replica("st0-3", 20), replica("st1-1", 15), replica("st1-3", 12)];
        let out = DetermineDurableVersion::run(s, &mut ScriptedHost::default());
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        assert_eq!(out.state.durable_version, Some(12));
        assert_eq!(out.state.degraded_teams, [1]);
    }

    #[test]
    fn a_team_without_replicas_stalls() {
        let mut s = state(2, Some(old_layout()));
        s.locked_storage = vec![replica("st0-1", 10)];
        let out = DetermineDurableVersion::run(s, &mut ScriptedHost::default());
        assert_eq!(out.step, PhaseStep::Stalled("storage team 1 has no live replica".into()));
    }

    /// Shard 1's logs keep versions from 32 on; shard 0's hold everything.
    fn popped(replicas: Vec<StorageRecoveryInfo>) -> AttemptState {
        let mut s = state(2, Some(old_layout()));
        s.locked_storage = replicas;
        s.log_plan = vec![
            ShardPlan { tag: 0, sources: vec!["log1".into()], first_version: 1, last_version: 40, departing: vec![] },
            ShardPlan { tag: 1, sources: vec!["log1".into()], first_version: 32, last_version: 40, departing: vec![] },
        ];
        s
    }

    #[test]
    fn one_replica_within_retention_is_enough_for_its_team() {
        // st1-1 and st1-2 are behind retention; st1-3 reaches it, and replica
        // recovery rebuilds the others from it.
        let s = popped(vec![
            replica("st0-1", 40),
            replica("st0-2", 40),
            replica("st0-3", 40),
            replica("st1-1", 21),
            replica("st1-2", 21),
            replica("st1-3", 31),
        ]);
        let out = DetermineDurableVersion::run(s, &mut ScriptedHost::default());
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        assert_eq!(out.state.durable_version, Some(21));
    }

    #[test]
    fn a_team_behind_retention_waits_for_its_unlocked_replicas() {
        let s = popped(vec![replica("st0-1", 40), replica("st0-2", 40), replica("st1-1", 21), replica("st1-2", 30)]);
        let out = DetermineDurableVersion::run(s, &mut ScriptedHost::default());
        let PhaseStep::Stalled(reason) = out.step else { panic!("expected a stall, got {:?}", out.step) };
        assert!(reason.contains("shard 1") && reason.contains("30") && reason.contains("32"), "{reason}");
    }

    #[test]
    fn a_team_whose_every_replica_is_behind_retention_fails() {
        let s = popped(vec![replica("st0-1", 40), replica("st1-1", 21), replica("st1-2", 30), replica("st1-3", 29)]);
        let out = DetermineDurableVersion::run(s, &mut ScriptedHost::default());
        let PhaseStep::Failed(reason) = out.step else { panic!("expected a failure, got {:?}", out.step) };
        assert!(reason.contains("shard 1"), "{reason}");
    }
}
