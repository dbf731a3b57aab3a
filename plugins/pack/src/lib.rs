//! **pack**: fill the fewest nodes. Every vacancy goes to the busiest
//! eligible node that still has room, so lightly used nodes stay empty (to be
//! drained or powered down); ties go to the lowest node id. Zones are spread
//! only as far as `min-distinct-zones` requires, and distinct nodes are kept
//! distinct. Down, full, excluded and incapable nodes are skipped.

use std::cmp::Reverse;

use ratchet_guest::PlacementPolicy;
use ratchet_guest::placement::greedy;
use ratchet_guest::types::{Assignment, PlacementError, PlacementRequest};

/// The pack policy.
pub struct Pack;

impl PlacementPolicy for Pack {
    fn place(request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        greedy(&request, |_node, load| Reverse(load))
    }
}

ratchet_guest::export_placement_policy!(Pack);

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::types::{Node, PlacementConstraints, PlacementVacancy, ServiceKind};

    fn node(id: &str, zone: &str, load: u32) -> Node {
        Node {
            id: id.into(),
            zone: zone.into(),
            capabilities: vec![ServiceKind::Resolver],
            load,
            capacity: 3,
            healthy: true,
            last_seen_ms: 0,
        }
    }

    fn request(groups: usize, distinct: bool) -> PlacementRequest {
        let group = PlacementVacancy {
            kind: ServiceKind::Resolver,
            count: 1,
            team: None,
            constraints: PlacementConstraints {
                min_distinct_zones: 1,
                exclude_nodes: vec![],
                required_capabilities: vec![],
                distinct_nodes: distinct,
            },
        };
        PlacementRequest {
            vacancies: vec![group; groups],
            nodes: vec![node("a1", "a", 1), node("a2", "a", 0), node("b1", "b", 0)],
            teams: vec![],
        }
    }

    #[test]
    fn the_busiest_node_with_room_fills_first() {
        let answer = Pack::place(request(3, false)).unwrap();
        let nodes: Vec<&str> = answer.iter().map(|a| a.nodes[0].as_str()).collect();
        // a1 goes from 1 to 3 (its capacity), then the next busiest takes over.
        assert_eq!(nodes, ["a1", "a1", "a2"]);
    }

    #[test]
    fn a_full_node_is_skipped() {
        let mut req = request(1, false);
        req.nodes[0].load = 3;
        assert_eq!(Pack::place(req).unwrap()[0].nodes, ["a2"]);
    }

    #[test]
    fn no_room_anywhere_names_capacity() {
        // Room for 2 + 3 + 3 workers: the ninth has nowhere to go.
        let err = Pack::place(request(9, false)).unwrap_err();
        assert_eq!((err.vacancy, err.constraint.as_str()), (8, "capacity"));
    }
}
