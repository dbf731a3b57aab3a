//! **spread-zones**, the default placement policy.
//!
//! For each vacancy group, in order, it picks nodes one at a time: first a
//! node in a zone the team does not use yet, then the least loaded one, ties
//! broken by node id so the answer is deterministic. Nodes that are down,
//! full, excluded or lack a required capability are skipped, never fatal.
//! Load placed by earlier picks of the same request counts, so one request
//! spreads its own vacancies too.

use std::collections::{BTreeMap, BTreeSet};

use ratchet_guest::PlacementPolicy;
use ratchet_guest::types::{Assignment, Node, PlacementError, PlacementRequest, PlacementVacancy};

/// The spread-zones policy.
pub struct SpreadZones;

impl PlacementPolicy for SpreadZones {
    fn place(request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        place(&request)
    }
}

ratchet_guest::export_placement_policy!(SpreadZones);

/// Answers a placement request; see the module documentation.
pub fn place(request: &PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
    let zones: BTreeMap<&str, &str> =
        request.nodes.iter().map(|n| (n.id.as_str(), n.zone.as_str())).collect();
    let mut extra_load: BTreeMap<&str, u32> = BTreeMap::new();
    let mut answer = Vec::with_capacity(request.vacancies.len());
    for (index, group) in request.vacancies.iter().enumerate() {
        let index = index as u32;
        let members: Vec<&str> = request
            .teams
            .iter()
            .filter(|t| Some(t.team) == group.team && t.kind == group.kind)
            .flat_map(|t| t.nodes.iter().map(String::as_str))
            .collect();
        let mut used_zones: BTreeSet<&str> =
            members.iter().filter_map(|n| zones.get(n).copied()).collect();
        let mut taken: BTreeSet<&str> = members.iter().copied().collect();
        let mut chosen = Vec::with_capacity(group.count as usize);
        for _ in 0..group.count {
            let pick = request
                .nodes
                .iter()
                .filter(|n| eligible(n, group, extra_load.get(n.id.as_str()).copied()))
                .filter(|n| !group.constraints.distinct_nodes || !taken.contains(n.id.as_str()))
                .min_by_key(|n| {
                    let load = n.load + extra_load.get(n.id.as_str()).copied().unwrap_or(0);
                    (used_zones.contains(n.zone.as_str()), load, n.id.as_str())
                })
                .ok_or_else(|| PlacementError {
                    vacancy: index,
                    constraint: "capacity".into(),
                    message: format!(
                        "only {} of {} {} vacancies could be placed on healthy, capable nodes with room",
                        chosen.len(),
                        group.count,
                        ratchet_guest::kind_name(group.kind)
                    ),
                })?;
            used_zones.insert(pick.zone.as_str());
            taken.insert(pick.id.as_str());
            *extra_load.entry(pick.id.as_str()).or_default() += 1;
            chosen.push(pick.id.clone());
        }
        if (used_zones.len() as u32) < group.constraints.min_distinct_zones {
            return Err(PlacementError {
                vacancy: index,
                constraint: "min-distinct-zones".into(),
                message: format!(
                    "needs {} distinct zones but only {} are available",
                    group.constraints.min_distinct_zones,
                    used_zones.len()
                ),
            });
        }
        answer.push(Assignment { vacancy: index, nodes: chosen });
    }
    Ok(answer)
}

/// Whether `node` may take one more worker for `group`.
fn eligible(node: &Node, group: &PlacementVacancy, extra_load: Option<u32>) -> bool {
    let constraints = &group.constraints;
    node.healthy
        && node.load + extra_load.unwrap_or(0) < node.capacity
        && node.capabilities.contains(&group.kind)
        && constraints.required_capabilities.iter().all(|c| node.capabilities.contains(c))
        && !constraints.exclude_nodes.contains(&node.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::types::{PlacementConstraints, ServiceKind, TeamMembers};

    fn node(id: &str, zone: &str, load: u32) -> Node {
        Node {
            id: id.into(),
            zone: zone.into(),
            capabilities: vec![ServiceKind::Log, ServiceKind::Storage],
            load,
            capacity: 4,
            healthy: true,
            last_seen_ms: 0,
        }
    }

    fn group(count: u32, zones: u32) -> PlacementVacancy {
        PlacementVacancy {
            kind: ServiceKind::Storage,
            count,
            team: Some(1),
            constraints: PlacementConstraints {
                min_distinct_zones: zones,
                exclude_nodes: vec![],
                required_capabilities: vec![],
                distinct_nodes: true,
            },
        }
    }

    fn nodes() -> Vec<Node> {
        vec![
            node("a1", "a", 0),
            node("a2", "a", 0),
            node("b1", "b", 2),
            node("b2", "b", 1),
            node("c1", "c", 3),
        ]
    }

    fn request(vacancies: Vec<PlacementVacancy>) -> PlacementRequest {
        PlacementRequest { vacancies, nodes: nodes(), teams: vec![] }
    }

    #[test]
    fn a_team_spans_every_zone_before_reusing_one() {
        let answer = place(&request(vec![group(3, 3)])).unwrap();
        assert_eq!(answer[0].nodes, ["a1", "b2", "c1"]);
    }

    #[test]
    fn the_least_loaded_node_of_an_unused_zone_wins() {
        let answer = place(&request(vec![group(4, 3)])).unwrap();
        assert_eq!(answer[0].nodes, ["a1", "b2", "c1", "a2"]);
    }

    #[test]
    fn current_members_count_for_anti_affinity() {
        let mut req = request(vec![group(1, 2)]);
        req.teams.push(TeamMembers { team: 1, kind: ServiceKind::Storage, nodes: vec!["a1".into()] });
        assert_eq!(place(&req).unwrap()[0].nodes, ["b2"]);
    }

    #[test]
    fn down_full_and_excluded_nodes_are_skipped() {
        let mut req = request(vec![group(2, 1)]);
        req.nodes[0].healthy = false;
        req.nodes[1].load = 4;
        req.vacancies[0].constraints.exclude_nodes = vec!["b2".into()];
        assert_eq!(place(&req).unwrap()[0].nodes, ["b1", "c1"]);
    }

    #[test]
    fn too_few_zones_names_the_constraint() {
        let mut req = request(vec![group(2, 3)]);
        req.nodes.retain(|n| n.zone != "c");
        let err = place(&req).unwrap_err();
        assert_eq!((err.vacancy, err.constraint.as_str()), (0, "min-distinct-zones"));
    }

    #[test]
    fn too_few_nodes_names_capacity() {
        let err = place(&request(vec![group(6, 1)])).unwrap_err();
        assert_eq!(err.constraint, "capacity");
    }

    #[test]
    fn earlier_picks_in_a_request_count_as_load() {
        let mut one = group(1, 1);
        one.team = None;
        let answer = place(&request(vec![one.clone(), one])).unwrap();
        assert_eq!((answer[0].nodes[0].as_str(), answer[1].nodes[0].as_str()), ("a1", "a2"));
    }
}
