//! The checks a placement policy written in another language passes, shared
//! by `python_policy.rs` and `js_policy.rs`: the same answers and errors as
//! the Rust spread-zones policy, across the component boundary, and a whole
//! recovery placed by it and checked by the host.

use std::path::Path;
use std::sync::Arc;

use ratchet::bindings::types::{Node, PlacementConstraints, PlacementRequest, PlacementVacancy, RecoveryConfig, ServiceKind};
use ratchet::cluster::{Cluster, LocalCluster};
use ratchet::director::{Director, DirectorOptions};
use ratchet::quality::PlacementQuality;
use ratchet::registry::Registry;
use ratchet::runtime::{Detached, Runtime};
use ratchet::store::MemoryStore;

pub fn node(id: &str, zone: &str, healthy: bool) -> Node {
    Node { id: id.into(), zone: zone.into(), capabilities: vec![ServiceKind::Storage], load: 0, capacity: 4, healthy, last_seen_ms: 0 }
}

pub fn storage_team(count: u32, zones: u32) -> PlacementVacancy {
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

/// Loads the policy at `wasm` over the default, checks its answers and
/// errors, and runs a boot and a recovery after a crash with every placement
/// decided by it.
pub async fn places_a_real_recovery(runtime: Arc<Runtime>, wasm: &Path) {
    let registry = Arc::new(Registry::with_defaults(runtime).unwrap());
    let version = registry.load_file("placement", wasm).expect("the component satisfies placement-policy");
    assert_eq!(version.number, 2, "loaded over the default");

    // Its answers and its errors cross the boundary as the WIT says.
    let request = PlacementRequest {
        vacancies: vec![storage_team(3, 3)],
        nodes: vec![node("a1", "a", true), node("a2", "a", true), node("b1", "b", true), node("c1", "c", false)],
        teams: vec![],
    };
    let err = registry.call_placement(&request, Arc::new(Detached::default())).await.unwrap().unwrap_err();
    assert_eq!((err.vacancy, err.constraint.as_str()), (0, "min-distinct-zones"), "{}", err.message);
    let mut healthy = request.clone();
    healthy.nodes[3].healthy = true;
    let answer = registry.call_placement(&healthy, Arc::new(Detached::default())).await.unwrap().unwrap();
    assert_eq!(answer[0].nodes, ["a1", "b1", "c1"], "one node per zone, the down node skipped once it is up");

    // A whole recovery, every placement decided in Python and checked by the host.
    let local = LocalCluster::with_zones(9, 3, 10).unwrap();
    let cluster = local.client();
    let director =
        Director::new(registry, cluster.clone(), Arc::new(MemoryStore::default()), RecoveryConfig::default(), DirectorOptions::default());
    let first = director.recover().await.unwrap();
    let first = first.layout().cloned().expect("boot completes with the Python policy");
    let node = first.services.iter().find(|s| s.id == first.logs[0].id).unwrap().node.clone();
    local.crash(&node);
    let report = director.recover().await.unwrap();
    let second = report.layout().expect("recovery completes with the Python policy");
    assert!(report.attempts.iter().all(|a| a.refusals.is_empty()), "the host refused nothing");
    let quality = PlacementQuality::of(second, &cluster.nodes().await);
    assert_eq!(quality.under_spread().count(), 0, "{quality}");
}
