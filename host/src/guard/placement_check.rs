//! The host's check of a placement answer.
//!
//! A placement policy is a plugin like any other: the host never acts on
//! its answer before checking it against the request. An answer that fails
//! here is refused with the rule it broke (prefixed `host-check:`), the
//! phase that asked sees a placement error, and the attempt stalls with that
//! reason. It is never a crash.

use std::collections::{BTreeMap, BTreeSet};

use crate::bindings::types::{Assignment, Node, PlacementError, PlacementRequest};

/// Checks `answer` against `request`:
///
/// - every group is answered exactly once, with exactly `count` nodes;
/// - every node exists, is healthy, is capable of the group's kind and of
///   every required capability, is not excluded, and has room for all the
///   workers the answer puts on it;
/// - where `distinct-nodes` is set, no node is picked twice in a group or
///   picked from the team's current members;
/// - the chosen nodes and the team's current members span at least
///   `min-distinct-zones` zones.
///
/// Costs O(n log n) in the size of the request and the answer.
pub fn check(request: &PlacementRequest, answer: &[Assignment]) -> Result<(), PlacementError> {
    let nodes: BTreeMap<&str, (usize, &Node)> = request.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), (i, n))).collect();
    let mut members: BTreeMap<(u32, &str), Vec<&str>> = BTreeMap::new();
    for team in &request.teams {
        members.entry((team.team, crate::bindings::kind_name(team.kind))).or_default().extend(team.nodes.iter().map(String::as_str));
    }

    let mut answers: Vec<Option<&Assignment>> = vec![None; request.vacancies.len()];
    for assignment in answer {
        let Some(slot) = answers.get_mut(assignment.vacancy as usize) else {
            return Err(refused(
                assignment.vacancy,
                "complete",
                format!("answers group {} but the request has {} groups", assignment.vacancy, request.vacancies.len()),
            ));
        };
        if slot.replace(assignment).is_some() {
            return Err(refused(assignment.vacancy, "complete", "the group is answered twice".into()));
        }
    }

    // Workers this answer puts on each node, for the capacity check.
    let mut added = vec![0u32; request.nodes.len()];
    for (index, group) in request.vacancies.iter().enumerate() {
        let index = index as u32;
        let Some(assignment) = answers[index as usize] else {
            return Err(refused(index, "complete", "the policy left this group unplaced".into()));
        };
        if assignment.nodes.len() != group.count as usize {
            return Err(refused(index, "count", format!("{} nodes for {} vacancies", assignment.nodes.len(), group.count)));
        }
        let team: &[&str] = group.team.and_then(|t| members.get(&(t, crate::bindings::kind_name(group.kind)))).map_or(&[], Vec::as_slice);
        let mut zones: BTreeSet<&str> = team.iter().filter_map(|id| nodes.get(id)).map(|(_, n)| n.zone.as_str()).collect();
        let mut picked: BTreeSet<&str> = BTreeSet::new();
        let constraints = &group.constraints;
        for id in &assignment.nodes {
            let Some(&(i, node)) = nodes.get(id.as_str()) else {
                return Err(refused(index, "exists", format!("node {id} is not in the request")));
            };
            if !node.healthy {
                return Err(refused(index, "healthy", format!("node {id} is down")));
            }
            if !node.capabilities.contains(&group.kind) {
                return Err(refused(index, "capable", format!("node {id} cannot host a {}", crate::bindings::kind_name(group.kind))));
            }
            if let Some(missing) = constraints.required_capabilities.iter().find(|c| !node.capabilities.contains(c)) {
                return Err(refused(
                    index,
                    "required-capabilities",
                    format!("node {id} lacks the required capability {}", crate::bindings::kind_name(*missing)),
                ));
            }
            if constraints.exclude_nodes.contains(id) {
                return Err(refused(index, "exclude-nodes", format!("node {id} is excluded")));
            }
            if constraints.distinct_nodes && (!picked.insert(id.as_str()) || team.contains(&id.as_str())) {
                return Err(refused(index, "distinct-nodes", format!("node {id} is picked twice or already serves the team")));
            }
            added[i] += 1;
            if node.load.saturating_add(added[i]) > node.capacity {
                return Err(refused(
                    index,
                    "capacity",
                    format!("node {id} holds {} of {} workers and this answer adds {}", node.load, node.capacity, added[i]),
                ));
            }
            zones.insert(node.zone.as_str());
        }
        if (zones.len() as u32) < constraints.min_distinct_zones {
            return Err(refused(
                index,
                "min-distinct-zones",
                format!("the team spans {} zones; at least {} are required", zones.len(), constraints.min_distinct_zones),
            ));
        }
    }
    Ok(())
}

fn refused(vacancy: u32, constraint: &str, message: String) -> PlacementError {
    PlacementError { vacancy, constraint: format!("host-check: {constraint}"), message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{PlacementConstraints, PlacementVacancy, ServiceKind, TeamMembers};

    fn node(id: &str, zone: &str) -> Node {
        Node {
            id: id.into(),
            zone: zone.into(),
            capabilities: vec![ServiceKind::Storage],
            load: 1,
            capacity: 2,
            healthy: true,
            last_seen_ms: 0,
        }
    }

    fn request() -> PlacementRequest {
        PlacementRequest {
            vacancies: vec![PlacementVacancy {
                kind: ServiceKind::Storage,
                count: 2,
                team: Some(4),
                constraints: PlacementConstraints {
                    min_distinct_zones: 2,
                    exclude_nodes: vec!["c1".into()],
                    required_capabilities: vec![],
                    distinct_nodes: true,
                },
            }],
            nodes: vec![node("a1", "a"), node("a2", "a"), node("b1", "b"), node("c1", "c")],
            teams: vec![],
        }
    }

    fn answer(nodes: &[&str]) -> Vec<Assignment> {
        vec![Assignment { vacancy: 0, nodes: nodes.iter().map(|n| n.to_string()).collect() }]
    }

    fn rule(request: &PlacementRequest, nodes: &[&str]) -> String {
        check(request, &answer(nodes)).unwrap_err().constraint
    }

    #[test]
    fn a_valid_answer_passes() {
        check(&request(), &answer(&["a1", "b1"])).unwrap();
    }

    #[test]
    fn each_broken_rule_is_named() {
        let req = request();
        assert_eq!(rule(&req, &["a1", "zz"]), "host-check: exists");
        assert_eq!(rule(&req, &["a1", "a2"]), "host-check: min-distinct-zones");
        assert_eq!(rule(&req, &["a1", "a1"]), "host-check: distinct-nodes");
        assert_eq!(rule(&req, &["a1", "c1"]), "host-check: exclude-nodes");
        assert_eq!(rule(&req, &["a1"]), "host-check: count");
        let mut down = request();
        down.nodes[2].healthy = false;
        assert_eq!(rule(&down, &["a1", "b1"]), "host-check: healthy");
        let mut incapable = request();
        incapable.vacancies[0].kind = ServiceKind::Log;
        assert_eq!(rule(&incapable, &["a1", "b1"]), "host-check: capable");
        let mut required = request();
        required.vacancies[0].constraints.required_capabilities.push(ServiceKind::Resolver);
        assert_eq!(rule(&required, &["a1", "b1"]), "host-check: required-capabilities");
    }

    #[test]
    fn a_node_filled_past_capacity_is_refused() {
        let mut req = request();
        req.vacancies[0].constraints.distinct_nodes = false;
        req.vacancies[0].constraints.min_distinct_zones = 1;
        // a1 holds 1 of 2: one more fits, two do not.
        assert_eq!(rule(&req, &["a1", "a1"]), "host-check: capacity");
    }

    #[test]
    fn team_members_count_for_zones_and_distinctness() {
        let mut req = request();
        req.vacancies[0].count = 1;
        req.teams.push(TeamMembers { team: 4, kind: ServiceKind::Storage, nodes: vec!["b1".into()] });
        check(&req, &answer(&["a1"])).unwrap();
        assert_eq!(rule(&req, &["b1"]), "host-check: distinct-nodes");
    }

    #[test]
    fn missing_extra_and_repeated_groups_are_refused() {
        let req = request();
        assert_eq!(check(&req, &[]).unwrap_err().constraint, "host-check: complete");
        let mut twice = answer(&["a1", "b1"]);
        twice.push(twice[0].clone());
        assert_eq!(check(&req, &twice).unwrap_err().constraint, "host-check: complete");
        let mut extra = answer(&["a1", "b1"]);
        extra.push(Assignment { vacancy: 9, nodes: vec![] });
        assert_eq!(check(&req, &extra).unwrap_err().constraint, "host-check: complete");
    }
}
