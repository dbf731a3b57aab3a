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
use ratchet_guest::placement::eligible;
use ratchet_guest::types::{Assignment, Node, PlacementError, PlacementRequest, PlacementVacancy};

/// The spread-zones policy.
pub struct SpreadZones;

impl PlacementPolicy for SpreadZones {
    fn place(request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        place(&request)
    }
}

ratchet_guest::export_placement_policy!(SpreadZones);
ratchet_guest::use_call_arena!();

/// Answers a placement request; see the module documentation.
///
/// Nodes are indexed per zone by `(load, id)`, so a pick looks at the best
/// candidate of each zone instead of scanning every node: placing 10,000
/// vacancies over 1,000 nodes costs a few hundred thousand set operations.
pub fn place(request: &PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
    let mut index = ZoneIndex::new(&request.nodes);
    let mut answer = Vec::with_capacity(request.vacancies.len());
    for (position, group) in request.vacancies.iter().enumerate() {
        let position = position as u32;
        let members: Vec<&str> = request
            .teams
            .iter()
            .filter(|t| Some(t.team) == group.team && t.kind == group.kind)
            .flat_map(|t| t.nodes.iter().map(String::as_str))
            .collect();
        let mut used_zones: BTreeSet<&str> = members.iter().filter_map(|n| index.zone_of(n)).collect();
        let mut taken: BTreeSet<&str> = members.iter().copied().collect();
        let mut chosen = Vec::with_capacity(group.count as usize);
        for _ in 0..group.count {
            let pick = index.best(group, &used_zones, &taken).ok_or_else(|| PlacementError {
                vacancy: position,
                constraint: "capacity".into(),
                message: format!(
                    "only {} of {} {} vacancies could be placed on healthy, capable nodes with room",
                    chosen.len(),
                    group.count,
                    ratchet_guest::kind_name(group.kind)
                ),
            })?;
            let node = index.take(pick);
            used_zones.insert(node.zone.as_str());
            taken.insert(node.id.as_str());
            chosen.push(node.id.clone());
        }
        if (used_zones.len() as u32) < group.constraints.min_distinct_zones {
            return Err(PlacementError {
                vacancy: position,
                constraint: "min-distinct-zones".into(),
                message: format!(
                    "needs {} distinct zones but only {} are available",
                    group.constraints.min_distinct_zones,
                    used_zones.len()
                ),
            });
        }
        answer.push(Assignment { vacancy: position, nodes: chosen });
    }
    Ok(answer)
}

/// Healthy nodes with room, per zone, ordered by `(load, id)`.
struct ZoneIndex<'a> {
    all: &'a [Node],
    by_id: BTreeMap<&'a str, usize>,
    load: Vec<u32>,
    zones: BTreeMap<&'a str, BTreeSet<(u32, &'a str, usize)>>,
}

impl<'a> ZoneIndex<'a> {
    fn new(all: &'a [Node]) -> Self {
        let mut zones: BTreeMap<&str, BTreeSet<(u32, &str, usize)>> = BTreeMap::new();
        for (i, node) in all.iter().enumerate() {
            if node.healthy && node.load < node.capacity {
                zones.entry(node.zone.as_str()).or_default().insert((node.load, node.id.as_str(), i));
            }
        }
        ZoneIndex {
            all,
            by_id: all.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect(),
            load: all.iter().map(|n| n.load).collect(),
            zones,
        }
    }

    fn zone_of(&self, id: &str) -> Option<&'a str> {
        let all = self.all;
        self.by_id.get(id).map(|i| all[*i].zone.as_str())
    }

    /// The best node for one more vacancy of `group`: the least loaded
    /// eligible node of a zone the team does not use yet, else of any zone.
    fn best(&self, group: &PlacementVacancy, used_zones: &BTreeSet<&str>, taken: &BTreeSet<&str>) -> Option<usize> {
        let mut best: Option<(bool, u32, &str, usize)> = None;
        for (zone, candidates) in &self.zones {
            let first = candidates.iter().find(|(_, id, i)| {
                eligible(&self.all[*i], self.load[*i], group) && !(group.constraints.distinct_nodes && taken.contains(id))
            });
            if let Some(&(load, id, i)) = first {
                let key = (used_zones.contains(zone), load, id, i);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        }
        best.map(|(_, _, _, i)| i)
    }

    /// Records one more worker on node `i` and returns it.
    fn take(&mut self, i: usize) -> &'a Node {
        let node = &self.all[i];
        if let Some(zone) = self.zones.get_mut(node.zone.as_str()) {
            zone.remove(&(self.load[i], node.id.as_str(), i));
            self.load[i] += 1;
            if self.load[i] < node.capacity {
                zone.insert((self.load[i], node.id.as_str(), i));
            }
        }
        node
    }
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
        vec![node("a1", "a", 0), node("a2", "a", 0), node("b1", "b", 2), node("b2", "b", 1), node("c1", "c", 3)]
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
