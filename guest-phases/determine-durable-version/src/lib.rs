//! Phase 7, **determine-durable-version**: what storage already holds.
//!
//! Decides: per storage team, the quorum-th highest durable version among its
//! locked replicas (quorum: a majority of the replication factor); the
//! cluster's durable version is the minimum across teams. A team with fewer
//! live replicas than the replication factor is marked degraded. Stalls when
//! a team has no live replica at all. Fails when the logs no longer hold the
//! versions between a team's durable version and the kept range, because
//! recovering would then lose data.

use std::collections::BTreeMap;

use ratchet_guest::collections::IdMap;
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
    const READS: &'static [StateField] = &[StateField::OldLayout, StateField::OldStorageTeams, StateField::LockedStorage, StateField::LogPlan];
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
    let durable_of: IdMap<&str, Version> =
        state.locked_storage.iter().map(|s| (s.id.as_str(), s.durable_version)).collect();
    let plans: BTreeMap<ShardTag, &ShardPlan> = state.log_plan.iter().map(|p| (p.tag, p)).collect();
    let mut degraded = Vec::new();
    let mut cluster: Option<Version> = None;
    for team in &layout.storage_teams {
        let durables: Vec<Version> =
            team.storage_ids.iter().filter_map(|id| durable_of.get(id.as_str()).copied()).collect();
        if (durables.len() as u32) < replication {
            degraded.push(team.tag);
        }
        let Some(durable) = team_durable(durables, replication) else {
            let reason = format!("storage team {} has no live replica", team.tag);
            return (degraded, Err(PhaseStep::Stalled(reason)));
        };
        if let Some(plan) = plans.get(&team.tag) {
            if plan.first_version > durable + 1 {
                let reason = format!(
                    "shard {}: storage is durable at {durable} but the logs keep only from {}",
                    team.tag, plan.first_version
                );
                return (degraded, Err(PhaseStep::Failed(reason)));
            }
        }
        cluster = Some(cluster.map_or(durable, |d| d.min(durable)));
    }
    (degraded, Ok(cluster.unwrap_or(0)))
}

ratchet_guest::export_phase!(DetermineDurableVersion);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};
    use ratchet_guest::types::StorageRecoveryInfo;

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
        s.locked_storage = vec![
            replica("st0-1", 10),
            replica("st0-2", 30),
            replica("st0-3", 20),
            replica("st1-1", 15),
            replica("st1-3", 12),
        ];
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
}
