//! Phase 6, **create-vacancies**: the slots of the new generation.
//!
//! Decides: `desired-logs` fresh log vacancies (a new generation never reuses
//! the old logs), and for each old storage team, the replicas that survive
//! (locked ones, and a departing replica that came back while the team is
//! short) plus vacancies to top the team up to the replication factor; the
//! replicas the log plan keeps as departing copies stay in the team as
//! such while their replacements join. Never stalls.

use ratchet_guest::collections::{IdMap, IdSet};
use ratchet_guest::layout::descriptors;
use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep, ServiceDescriptor, ServiceKind, StateField, StorageTeam, Vacancy};
use ratchet_guest::{Host, Phase, numbered_id, outcome};

/// The phase run after this one.
pub const NEXT: &str = "determine-durable-version";

/// The create-vacancies phase.
pub struct CreateVacancies;

impl Phase for CreateVacancies {
    const READS: &'static [StateField] =
        &[StateField::OldLayout, StateField::OldServices, StateField::OldStorageTeams, StateField::LockedStorage, StateField::LogPlan];
    const WRITES: &'static [StateField] = &[StateField::Vacancies, StateField::NewStorageTeams];

    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        let Some(layout) = &state.old_layout else {
            return outcome(state, PhaseStep::Failed("create-vacancies needs an old layout".into()));
        };
        state.vacancies = (0..state.config.desired_logs)
            .map(|i| Vacancy { id: numbered_id("log", &[u64::from(i)]), kind: ServiceKind::Log, tag: None })
            .collect();
        state.new_storage_teams.clear();
        let locked: IdSet<&str> = state.locked_storage.iter().map(|s| s.id.as_str()).collect();
        let descriptors: IdMap<&str, &ServiceDescriptor> = descriptors(layout).map(|s| (s.id.as_str(), s)).collect();
        let replication = state.config.replication_factor as usize;
        for team in &layout.storage_teams {
            let mut live: Vec<String> = team.storage_ids.iter().filter(|id| locked.contains(id.as_str())).cloned().collect();
            // A departing replica that came back serves again while the
            // team is short of replicas: it holds the shard, and the logs
            // what it lacks. Not on a node a member stands on (its
            // replacement may have been placed there).
            let mut taken: IdSet<&str> = live.iter().filter_map(|id| descriptors.get(id.as_str()).map(|d| d.node.as_str())).collect();
            for returned in team.departing.iter().map(|d| &d.service).filter(|s| locked.contains(s.id.as_str())) {
                if live.len() < replication && taken.insert(returned.node.as_str()) {
                    live.push(returned.id.clone());
                }
            }
            for replica in live.len()..replication {
                state.vacancies.push(Vacancy {
                    id: numbered_id("storage", &[u64::from(team.tag), replica as u64]),
                    kind: ServiceKind::Storage,
                    tag: Some(team.tag),
                });
            }
            let departing = state.log_plan.iter().find(|p| p.tag == team.tag).map(|p| p.departing.clone()).unwrap_or_default();
            state.new_storage_teams.push(StorageTeam { tag: team.tag, key_range: team.key_range.clone(), storage_ids: live, departing });
        }
        outcome(state, PhaseStep::Next(NEXT.into()))
    }
}

ratchet_guest::export_phase!(CreateVacancies);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};
    use ratchet_guest::types::StorageRecoveryInfo;

    #[test]
    fn teams_keep_their_live_replicas_and_are_topped_up() {
        let mut s = state(2, Some(old_layout()));
        let live = ["st0-1", "st0-2", "st1-1", "st1-2", "st1-3"];
        s.locked_storage =
            live.iter().map(|id| StorageRecoveryInfo { id: id.to_string(), durable_version: 5, oldest_durable_version: 0 }).collect();
        let out = CreateVacancies::run(s, &mut ScriptedHost::default());
        assert_eq!(out.state.new_storage_teams[0].storage_ids, ["st0-1", "st0-2"]);
        assert_eq!(out.state.new_storage_teams[1].storage_ids.len(), 3);
        let storage: Vec<_> = out.state.vacancies.iter().filter(|v| v.kind == ServiceKind::Storage).collect();
        assert_eq!(storage.len(), 1);
        assert_eq!(storage[0].tag, Some(0));
        assert_eq!(out.state.vacancies.iter().filter(|v| v.kind == ServiceKind::Log).count(), 3);
    }

    #[test]
    fn a_departing_replica_is_kept_as_such_and_replaced_and_serves_again_when_it_comes_back_to_a_short_team() {
        use ratchet_guest::types::{DepartingReplica, ShardPlan};
        let locked = |ids: &[&str]| -> Vec<StorageRecoveryInfo> {
            ids.iter().map(|id| StorageRecoveryInfo { id: id.to_string(), durable_version: 5, oldest_durable_version: 0 }).collect()
        };
        let described =
            |id: &str| DepartingReplica { service: old_layout().services.into_iter().find(|d| d.id == id).unwrap(), durable_version: 4 };
        let plan = |tag, departing: &[&str]| ShardPlan {
            tag,
            sources: vec!["log1".into()],
            first_version: 1,
            last_version: 9,
            departing: departing.iter().map(|id| described(id)).collect(),
        };
        let mut s = state(2, Some(old_layout()));
        s.locked_storage = locked(&["st0-1", "st0-2", "st1-1", "st1-2", "st1-3"]);
        s.log_plan = vec![plan(0, &["st0-3"]), plan(1, &[])];
        let out = CreateVacancies::run(s, &mut ScriptedHost::default());
        let team = &out.state.new_storage_teams[0];
        assert_eq!(team.storage_ids, ["st0-1", "st0-2"]);
        assert_eq!(team.departing, [described("st0-3")], "as the plan keeps it");
        assert_eq!(out.state.vacancies.iter().filter(|v| v.tag == Some(0)).count(), 1, "it is replaced all the same");

        // The next recovery: st0-1 and st0-2 are gone, the departing st0-3
        // came back and is locked, the replacement st0-4 never joined.
        let mut next = old_layout();
        next.storage_teams[0].storage_ids = vec!["st0-1".into(), "st0-2".into(), "st0-4".into()];
        next.storage_teams[0].departing = vec![described("st0-3")];
        next.services.push(ratchet_guest::types::ServiceDescriptor {
            id: "st0-4".into(),
            kind: ServiceKind::Storage,
            node: "n20".into(),
            address: "test://st0-4".into(),
        });
        let mut s = state(3, Some(next));
        s.locked_storage = locked(&["st0-3", "st0-4", "st1-1", "st1-2", "st1-3"]);
        s.log_plan = vec![plan(0, &["st0-1", "st0-2"]), plan(1, &[])];
        let out = CreateVacancies::run(s.clone(), &mut ScriptedHost::default());
        let team = &out.state.new_storage_teams[0];
        assert_eq!(team.storage_ids, ["st0-4", "st0-3"], "back in a short team, it serves again");
        assert_eq!(team.departing.iter().map(|d| d.service.id.as_str()).collect::<Vec<_>>(), ["st0-1", "st0-2"]);
        assert_eq!(out.state.vacancies.iter().filter(|v| v.tag == Some(0)).count(), 1);

        // Not where its replacement stands.
        let mut crowded = s.clone();
        crowded.old_layout.as_mut().unwrap().services.last_mut().unwrap().node = described("st0-3").service.node;
        let out = CreateVacancies::run(crowded, &mut ScriptedHost::default());
        assert_eq!(out.state.new_storage_teams[0].storage_ids, ["st0-4"]);
        assert_eq!(out.state.vacancies.iter().filter(|v| v.tag == Some(0)).count(), 2);

        // Once the team's own replicas are locked, it is dropped.
        s.locked_storage = locked(&["st0-1", "st0-2", "st0-3", "st0-4", "st1-1", "st1-2", "st1-3"]);
        s.log_plan = vec![plan(0, &[]), plan(1, &[])];
        let out = CreateVacancies::run(s, &mut ScriptedHost::default());
        let team = &out.state.new_storage_teams[0];
        assert_eq!((team.storage_ids.as_slice(), team.departing.len()), (["st0-1", "st0-2", "st0-4"].map(String::from).as_slice(), 0));
    }
}
