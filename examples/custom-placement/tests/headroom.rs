//! The policy's logic, natively: no wasm needed to test a policy.

use custom_placement::Headroom;
use ratchet_guest::PlacementPolicy;
use ratchet_guest::types::{Node, PlacementConstraints, PlacementRequest, PlacementVacancy, ServiceKind};

fn node(id: &str, zone: &str, load: u32, capacity: u32) -> Node {
    Node { id: id.into(), zone: zone.into(), capabilities: vec![ServiceKind::Storage], load, capacity, healthy: true, last_seen_ms: 0 }
}

fn request(count: u32, zones: u32) -> PlacementRequest {
    PlacementRequest {
        vacancies: vec![PlacementVacancy {
            kind: ServiceKind::Storage,
            count,
            team: Some(1),
            constraints: PlacementConstraints {
                min_distinct_zones: zones,
                exclude_nodes: vec![],
                required_capabilities: vec![],
                distinct_nodes: true,
            },
        }],
        // big has 6 free slots, small 1, mid 3.
        nodes: vec![node("big", "a", 2, 8), node("small", "a", 0, 1), node("mid", "b", 1, 4)],
        teams: vec![],
    }
}

#[test]
fn the_node_with_the_most_free_slots_wins() {
    assert_eq!(Headroom::place(request(1, 1)).unwrap()[0].nodes, ["big"]);
}

#[test]
fn zone_minimums_still_hold() {
    // Two zones for two replicas: big (zone a), then the best of zone b.
    assert_eq!(Headroom::place(request(2, 2)).unwrap()[0].nodes, ["big", "mid"]);
}

#[test]
fn a_down_node_is_skipped() {
    let mut req = request(1, 1);
    req.nodes[0].healthy = false;
    assert_eq!(Headroom::place(req).unwrap()[0].nodes, ["mid"]);
}
