//! **least-loaded**: every vacancy goes to the eligible node with the fewest
//! workers, counting this request's own earlier picks; ties go to the lowest
//! node id. Zones are spread only as far as `min-distinct-zones` requires, so
//! unlike `spread-zones` a team may share a zone once its minimum is met.
//! Down, full, excluded and incapable nodes are skipped.

use ratchet_guest::PlacementPolicy;
use ratchet_guest::placement::greedy;
use ratchet_guest::types::{Assignment, PlacementError, PlacementRequest};

/// The least-loaded policy.
pub struct LeastLoaded;

impl PlacementPolicy for LeastLoaded {
    fn place(request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        greedy(&request, |_node, load| load)
    }
}

ratchet_guest::export_placement_policy!(LeastLoaded);

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::types::{Node, PlacementConstraints, PlacementVacancy, ServiceKind};

    fn node(id: &str, zone: &str, load: u32) -> Node {
        Node { id: id.into(), zone: zone.into(), capabilities: vec![ServiceKind::Log], load, capacity: 4, healthy: true, last_seen_ms: 0 }
    }

    fn request(count: u32, zones: u32) -> PlacementRequest {
        PlacementRequest {
            vacancies: vec![PlacementVacancy {
                kind: ServiceKind::Log,
                count,
                team: None,
                constraints: PlacementConstraints {
                    min_distinct_zones: zones,
                    exclude_nodes: vec![],
                    required_capabilities: vec![],
                    distinct_nodes: true,
                },
            }],
            nodes: vec![node("a1", "a", 1), node("a2", "a", 0), node("b1", "b", 3), node("b2", "b", 2)],
            teams: vec![],
        }
    }

    #[test]
    fn the_least_loaded_nodes_win_even_in_one_zone() {
        let answer = LeastLoaded::place(request(2, 1)).unwrap();
        assert_eq!(answer[0].nodes, ["a2", "a1"]);
    }

    #[test]
    fn a_zone_minimum_moves_the_last_pick() {
        let answer = LeastLoaded::place(request(2, 2)).unwrap();
        assert_eq!(answer[0].nodes, ["a2", "b2"]);
    }

    #[test]
    fn a_down_node_is_skipped() {
        let mut req = request(1, 1);
        req.nodes[1].healthy = false;
        assert_eq!(LeastLoaded::place(req).unwrap()[0].nodes, ["a1"]);
    }
}
