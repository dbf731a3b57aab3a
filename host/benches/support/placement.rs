//! The placement request the placement benchmarks share.

/// 10,000 vacancies over 1,000 nodes in 10 zones: 3,333 storage teams of
/// three that must span three zones, and one sequencer.
pub fn large_placement_request() -> ratchet::bindings::types::PlacementRequest {
    use ratchet::bindings::types::{Node, PlacementConstraints, PlacementRequest, PlacementVacancy, ServiceKind};
    let kinds = vec![ServiceKind::Log, ServiceKind::Storage, ServiceKind::Sequencer, ServiceKind::CommitProxy, ServiceKind::Resolver];
    let nodes = (0..1_000)
        .map(|i| Node {
            id: format!("n{}", i + 1),
            zone: format!("z{}", i % 10 + 1),
            capabilities: kinds.clone(),
            load: (i % 7) as u32,
            capacity: 64,
            healthy: i % 97 != 0,
            last_seen_ms: 0,
        })
        .collect();
    let group = |kind, count, team| PlacementVacancy {
        kind,
        count,
        team,
        constraints: PlacementConstraints {
            min_distinct_zones: count,
            exclude_nodes: vec![],
            required_capabilities: vec![],
            distinct_nodes: true,
        },
    };
    let mut vacancies: Vec<PlacementVacancy> = (0..3_333).map(|t| group(ServiceKind::Storage, 3, Some(t))).collect();
    vacancies.push(group(ServiceKind::Sequencer, 1, None));
    PlacementRequest { vacancies, nodes, teams: vec![] }
}
