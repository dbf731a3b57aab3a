//! Phase 9, **recruit-storage**: top every storage team up.
//!
//! Decides: where each team's storage vacancies go. One placement request
//! carries every team's group with the team's current members, so the policy
//! can keep a team out of the zones it already uses. The foremen create the
//! replicas, which the host locks at creation; a new replica is seeded from a
//! teammate when the layout is unlocked. Stalls when placement or a foreman
//! fails.

use std::collections::BTreeMap;

use ratchet_guest::collections::IdMap;
use ratchet_guest::layout::descriptors;
use ratchet_guest::recruit::{place, team_group};
use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep, Recruit, ServiceKind, ShardTag, StateField, TeamMembers};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "replay-logs";

/// The recruit-storage phase.
pub struct RecruitStorage;

impl Phase for RecruitStorage {
    const READS: &'static [StateField] = &[
        StateField::Vacancies,
        StateField::OldLayout,
        StateField::OldServices,
        StateField::OldStorageTeams,
        StateField::NewStorageTeams,
        StateField::Recruits,
    ];
    const WRITES: &'static [StateField] = &[StateField::Vacancies, StateField::NewStorageTeams, StateField::Recruits];

    fn run(mut state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let mut wanted: BTreeMap<ShardTag, Vec<String>> = BTreeMap::new();
        for vacancy in state.vacancies.iter().filter(|v| v.kind == ServiceKind::Storage) {
            wanted.entry(vacancy.tag.unwrap_or(0)).or_default().push(vacancy.id.clone());
        }
        if wanted.is_empty() {
            return outcome(state, PhaseStep::Next(NEXT.into()));
        }
        // A departing replica of the old layout may serve again.
        let nodes_by_service: IdMap<&str, &str> =
            state.old_layout.iter().flat_map(descriptors).map(|s| (s.id.as_str(), s.node.as_str())).collect();
        let node_of = |id: &String| nodes_by_service.get(id.as_str()).map(|n| n.to_string());
        let nodes = host.nodes();
        let members: Vec<TeamMembers> = wanted
            .keys()
            .map(|tag| TeamMembers {
                team: *tag,
                kind: ServiceKind::Storage,
                nodes: state
                    .new_storage_teams
                    .iter()
                    .filter(|t| t.tag == *tag)
                    .flat_map(|t| t.storage_ids.iter().filter_map(node_of))
                    .collect(),
            })
            .collect();
        let replication = state.config.replication_factor;
        let groups = wanted
            .iter()
            .zip(&members)
            .map(|((tag, ids), team)| team_group(ids.len() as u32, *tag, replication, &nodes, &team.nodes))
            .collect();
        let placed = match place(host, nodes, groups, members) {
            Ok(placed) => placed,
            Err(reason) => return outcome(state, PhaseStep::Stalled(reason)),
        };
        // Every replica at once, each vacancy with the node placed for it.
        let mut filling: Vec<(ShardTag, &String, String)> = Vec::new();
        for ((tag, vacancies), nodes) in wanted.iter().zip(placed) {
            filling.extend(vacancies.iter().zip(nodes).map(|(vacancy, node)| (*tag, vacancy, node)));
        }
        let requests: Vec<(String, ServiceKind)> = filling.iter().map(|(_, _, node)| (node.clone(), ServiceKind::Storage)).collect();
        let created = host.create_workers(&requests);
        if let Some((node, err)) = requests.iter().zip(&created).find_map(|((node, _), r)| r.as_ref().err().map(|e| (node, e))) {
            return outcome(state, PhaseStep::Stalled(format!("creating storage on {node}: {err:?}")));
        }
        for ((tag, vacancy, _), service) in filling.into_iter().zip(created.into_iter().flatten()) {
            if let Some(team) = state.new_storage_teams.iter_mut().find(|t| t.tag == tag) {
                team.storage_ids.push(service.id.clone());
            }
            state.recruits.push(Recruit { vacancy_id: vacancy.clone(), service });
        }
        state.vacancies.retain(|v| v.kind != ServiceKind::Storage);
        outcome(state, PhaseStep::Next(NEXT.into()))
    }
}

ratchet_guest::export_phase!(RecruitStorage);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};
    use ratchet_guest::types::Vacancy;

    #[test]
    fn fills_each_teams_vacancies_and_joins_the_team() {
        let mut host = ScriptedHost::with_nodes(9, 3);
        let mut s = state(2, Some(old_layout()));
        s.new_storage_teams = old_layout().storage_teams;
        s.new_storage_teams[0].storage_ids.truncate(1);
        s.vacancies = vec![
            Vacancy { id: "storage-0-1".into(), kind: ServiceKind::Storage, tag: Some(0) },
            Vacancy { id: "storage-0-2".into(), kind: ServiceKind::Storage, tag: Some(0) },
        ];
        let out = RecruitStorage::run(s, &mut host);
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        assert_eq!(out.state.new_storage_teams[0].storage_ids.len(), 3);
        assert_eq!(out.state.recruits.len(), 2);
        assert_eq!(host.calls.iter().filter(|c| c.ends_with("storage")).count(), 2);
        assert!(out.state.vacancies.is_empty());
    }

    #[test]
    fn a_replacement_asks_for_the_teams_zones_not_just_its_own() {
        let mut host = ScriptedHost::with_nodes(9, 3);
        let mut s = state(2, Some(old_layout()));
        s.new_storage_teams = old_layout().storage_teams;
        s.new_storage_teams[0].storage_ids.truncate(2);
        s.vacancies = vec![Vacancy { id: "storage-0-2".into(), kind: ServiceKind::Storage, tag: Some(0) }];
        // The team's two members stand on n4 and n5, in two zones: with one
        // new replica it can span three.
        assert_eq!(RecruitStorage::run(s, &mut host).step, PhaseStep::Next(NEXT.into()));
        let asked = &host.requests[0];
        assert_eq!(asked.teams[0].nodes, ["n4", "n5"]);
        assert_eq!(asked.vacancies[0].constraints.min_distinct_zones, 3, "not the one zone a lone replica needs");
        let crowded = team_group(1, 0, 3, &host.nodes, &["n1".into(), "n4".into()]);
        assert_eq!(crowded.constraints.min_distinct_zones, 2, "two members in one zone reach two at most");
    }
}
