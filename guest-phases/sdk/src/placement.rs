//! Building blocks for placement policies.
//!
//! A policy is mostly a preference between nodes. [`greedy`] does the rest:
//! it skips nodes that are down, full, excluded or not capable, keeps the
//! nodes of a group distinct from each other and from the team's current
//! members when asked, counts the load its own earlier picks add, and moves
//! to a zone the team does not use yet whenever that is the only way left to
//! reach `min-distinct-zones`. What it returns passes the host's checks.

use crate::collections::{IdMap, IdSet};

use crate::types::{Assignment, Node, PlacementError, PlacementRequest, PlacementVacancy};

/// Whether `node` may host one more worker of `group` at `load`: healthy,
/// below capacity, capable of the kind and of every required capability, and
/// not excluded.
pub fn eligible(node: &Node, load: u32, group: &PlacementVacancy) -> bool {
    let constraints = &group.constraints;
    node.healthy
        && load < node.capacity
        && node.capabilities.contains(&group.kind)
        && constraints.required_capabilities.iter().all(|c| node.capabilities.contains(c))
        && !constraints.exclude_nodes.contains(&node.id)
}

/// The nodes already serving `group`'s team (same tag and kind).
pub fn members<'r>(request: &'r PlacementRequest, group: &PlacementVacancy) -> impl Iterator<Item = &'r str> {
    let (team, kind) = (group.team, group.kind);
    request.teams.iter().filter(move |t| team == Some(t.team) && t.kind == kind).flat_map(|t| t.nodes.iter().map(String::as_str))
}

/// Places every group one node at a time, taking among the eligible nodes the
/// one with the smallest `preference(node, load)`, where `load` includes this
/// request's earlier picks. Ties are broken by node id, so the answer is
/// deterministic. Costs one pass over the nodes per vacancy.
pub fn greedy<K: Ord>(request: &PlacementRequest, mut preference: impl FnMut(&Node, u32) -> K) -> Result<Vec<Assignment>, PlacementError> {
    let zone_of: IdMap<&str, &str> = request.nodes.iter().map(|n| (n.id.as_str(), n.zone.as_str())).collect();
    let mut load: Vec<u32> = request.nodes.iter().map(|n| n.load).collect();
    let mut answer = Vec::with_capacity(request.vacancies.len());
    for (position, group) in request.vacancies.iter().enumerate() {
        let position = position as u32;
        let mut taken: IdSet<&str> = members(request, group).collect();
        let mut zones: IdSet<&str> = taken.iter().filter_map(|id| zone_of.get(id).copied()).collect();
        let mut chosen = Vec::with_capacity(group.count as usize);
        for picked in 0..group.count {
            let zones_short = (group.constraints.min_distinct_zones as usize).saturating_sub(zones.len());
            // Only a new zone keeps the constraint reachable.
            let need_new_zone = zones_short > 0 && zones_short >= (group.count - picked) as usize;
            let eligible_here = |(i, node): &(usize, &Node)| {
                eligible(node, load[*i], group) && !(group.constraints.distinct_nodes && taken.contains(node.id.as_str()))
            };
            let best = request
                .nodes
                .iter()
                .enumerate()
                .filter(eligible_here)
                .filter(|(_, node)| !(need_new_zone && zones.contains(node.zone.as_str())))
                .min_by(|(i, a), (j, b)| preference(a, load[*i]).cmp(&preference(b, load[*j])).then(a.id.cmp(&b.id)));
            let Some((i, node)) = best else {
                let any_left = request.nodes.iter().enumerate().any(|n| eligible_here(&n));
                return Err(if any_left {
                    unplaceable(
                        position,
                        "min-distinct-zones",
                        format!(
                            "needs {} distinct zones; no eligible node is left outside the {} already used",
                            group.constraints.min_distinct_zones,
                            zones.len()
                        ),
                    )
                } else {
                    unplaceable(
                        position,
                        "capacity",
                        format!(
                            "only {picked} of {} {} vacancies could be placed on healthy, capable nodes with room",
                            group.count,
                            crate::kind_name(group.kind)
                        ),
                    )
                });
            };
            load[i] += 1;
            taken.insert(node.id.as_str());
            zones.insert(node.zone.as_str());
            chosen.push(node.id.clone());
        }
        answer.push(Assignment { vacancy: position, nodes: chosen });
    }
    Ok(answer)
}

fn unplaceable(vacancy: u32, constraint: &str, message: String) -> PlacementError {
    PlacementError { vacancy, constraint: constraint.into(), message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{PlacementConstraints, ServiceKind, TeamMembers};

    fn node(id: &str, zone: &str, load: u32) -> Node {
        Node {
            id: id.into(),
            zone: zone.into(),
            capabilities: vec![ServiceKind::Storage],
            load,
            capacity: 3,
            healthy: true,
            last_seen_ms: 0,
        }
    }

    fn request(count: u32, zones: u32) -> PlacementRequest {
        PlacementRequest {
            vacancies: vec![PlacementVacancy {
                kind: ServiceKind::Storage,
                count,
                team: Some(7),
                constraints: PlacementConstraints {
                    min_distinct_zones: zones,
                    exclude_nodes: vec![],
                    required_capabilities: vec![],
                    distinct_nodes: true,
                },
            }],
            nodes: vec![node("a1", "a", 0), node("a2", "a", 1), node("b1", "b", 2), node("c1", "c", 2)],
            teams: vec![],
        }
    }

    #[test]
    fn the_preferred_node_wins_until_zones_force_a_move() {
        // Least loaded first: a1 and a2 are both in zone a, but three zones
        // are required for three picks, so the second pick must leave a.
        let answer = greedy(&request(3, 3), |_, load| load).unwrap();
        assert_eq!(answer[0].nodes, ["a1", "b1", "c1"]);
        // With one zone required, the preference alone decides.
        let answer = greedy(&request(2, 1), |_, load| load).unwrap();
        assert_eq!(answer[0].nodes, ["a1", "a2"]);
    }

    #[test]
    fn team_members_are_avoided_and_count_as_zones() {
        let mut req = request(1, 2);
        req.teams.push(TeamMembers { team: 7, kind: ServiceKind::Storage, nodes: vec!["a1".into()] });
        assert_eq!(greedy(&req, |_, load| load).unwrap()[0].nodes, ["b1"]);
    }

    #[test]
    fn ineligible_nodes_are_skipped() {
        let mut req = request(1, 1);
        req.nodes[0].healthy = false;
        req.nodes[1].load = 3;
        req.vacancies[0].constraints.exclude_nodes.push("b1".into());
        assert_eq!(greedy(&req, |_, load| load).unwrap()[0].nodes, ["c1"]);
        req.vacancies[0].constraints.required_capabilities.push(ServiceKind::Log);
        assert_eq!(greedy(&req, |_, load| load).unwrap_err().constraint, "capacity");
    }

    #[test]
    fn an_unreachable_zone_count_names_the_constraint() {
        let mut req = request(2, 2);
        req.nodes.retain(|n| n.zone == "a");
        let err = greedy(&req, |_, load| load).unwrap_err();
        assert_eq!((err.vacancy, err.constraint.as_str()), (0, "min-distinct-zones"));
    }

    #[test]
    fn earlier_picks_add_load() {
        let mut req = request(1, 1);
        req.vacancies.push(req.vacancies[0].clone());
        req.vacancies[1].team = Some(8);
        let answer = greedy(&req, |_, load| load).unwrap();
        // a1 goes to 1 after the first pick, tying with a2; the id breaks the tie.
        assert_eq!((answer[0].nodes[0].as_str(), answer[1].nodes[0].as_str()), ("a1", "a1"));
    }
}
