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

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep, Version};
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
    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        let Some(layout) = state.old_layout.clone() else {
            return outcome(state, PhaseStep::Next(NEXT.into()));
        };
        let replication = state.config.replication_factor;
        let mut cluster_durable: Option<Version> = None;
        state.degraded_teams.clear();
        let durable_of: BTreeMap<String, Version> =
            state.locked_storage.iter().map(|s| (s.id.clone(), s.durable_version)).collect();
        for team in &layout.storage_teams {
            let durables: Vec<Version> = team.storage_ids.iter().filter_map(|id| durable_of.get(id).copied()).collect();
            if (durables.len() as u32) < replication {
                state.degraded_teams.push(team.tag);
            }
            let Some(durable) = team_durable(durables, replication) else {
                let reason = format!("storage team {} has no live replica", team.tag);
                return outcome(state, PhaseStep::Stalled(reason));
            };
            if let Some(plan) = state.log_plan.iter().find(|p| p.tag == team.tag) {
                if plan.first_version > durable + 1 {
                    let reason = format!(
                        "shard {}: storage is durable at {durable} but the logs keep only from {}",
                        team.tag, plan.first_version
                    );
                    return outcome(state, PhaseStep::Failed(reason));
                }
            }
            cluster_durable = Some(cluster_durable.map_or(durable, |d| d.min(durable)));
        }
        state.durable_version = cluster_durable.or(Some(0));
        outcome(state, PhaseStep::Next(NEXT.into()))
    }
}

ratchet_guest::export_phase!(DetermineDurableVersion);

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
