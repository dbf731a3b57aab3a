//! Placement policies through the real host on the in-process cluster of
//! foremen: the
//! bundled policies recover a cluster without loss and place as they promise,
//! down nodes are skipped, and a careless policy's answer is refused by the
//! host and stalls the attempt instead of creating workers.

mod common;

use common::completed;

use std::sync::Arc;
use std::time::Duration;

use ratchet::bindings::types::{Layout, RecoveryConfig};
use ratchet::cluster::{Cluster, LocalCluster, RemoteCluster};
use ratchet::components::fixtures;
use ratchet::director::{AttemptOutcome, Director, DirectorOptions};
use ratchet::quality::PlacementQuality;
use ratchet::registry::Registry;
use ratchet::store::MemoryStore;

struct Cluster9 {
    local: LocalCluster,
    cluster: Arc<RemoteCluster>,
    director: Director,
}

/// Crashes the node hosting service `id` of `layout`; returns the node.
fn crash_node_of(local: &LocalCluster, layout: &Layout, id: &str) -> String {
    let node = layout.services.iter().find(|s| s.id == id).unwrap().node.clone();
    local.crash(&node);
    node
}

/// 9 nodes in 3 zones with room for 10 workers each, and `policy` (a
/// `builtin:NAME`, a file, or `None` for the default) in the placement slot.
fn cluster(policy: Option<&str>) -> Cluster9 {
    let registry = Arc::new(Registry::with_defaults(common::runtime()).unwrap());
    if let Some(spec) = policy {
        registry.load_spec("placement", spec).unwrap();
    }
    let local = LocalCluster::with_zones(9, 3, 10).unwrap();
    let cluster = local.client();
    let options = DirectorOptions { max_attempts: 3, initial_backoff: Duration::from_millis(1), ..Default::default() };
    let director = Director::new(
        registry,
        cluster.clone(),
        Arc::new(MemoryStore::default()),
        RecoveryConfig { shards: 6, ..RecoveryConfig::default() },
        options,
    );
    Cluster9 { local, cluster, director }
}

/// Boots, writes, crashes the nodes of a log and of a storage replica,
/// recovers, and checks every acknowledged write. Returns the placement
/// quality of the new layout and how many nodes are still up.
async fn boot_fail_recover(policy: Option<&str>) -> (PlacementQuality, usize) {
    let c = cluster(policy);
    let first = completed(&c.director.recover().await.unwrap());
    let mut acked = Vec::new();
    for i in 0..300 {
        let write = (format!("{:08x}-{i}", (i as u32).wrapping_mul(2_654_435_761)), format!("v{i}"));
        c.cluster.commit(std::slice::from_ref(&write)).await.unwrap();
        acked.push(write);
    }
    c.cluster.pump().await;
    crash_node_of(&c.local, &first, &first.logs[0].id);
    crash_node_of(&c.local, &first, &first.storage_teams[0].storage_ids[0]);
    let second = completed(&c.director.recover().await.unwrap());
    assert_eq!(second.epoch, 2);
    c.cluster.pump().await;
    let mut lost = 0;
    for (key, value) in &acked {
        if c.cluster.read(key).await.ok().flatten().as_deref() != Some(value.as_str()) {
            lost += 1;
        }
    }
    assert_eq!(lost, 0, "{policy:?} lost acknowledged writes");
    let nodes = c.cluster.nodes().await;
    let up = nodes.iter().filter(|n| n.healthy).count();
    (PlacementQuality::of(&second, &nodes), up)
}

#[tokio::test]
async fn spread_zones_spreads_every_team_over_three_zones() {
    let (quality, up) = boot_fail_recover(None).await;
    assert_eq!(quality.under_spread().count(), 0, "{quality}");
    assert!(quality.teams.iter().all(|t| t.zones == 3), "{quality}");
    assert_eq!(quality.nodes_used, up, "spreading also uses every node that is up: {quality}");
}

#[tokio::test]
async fn pack_fills_fewer_nodes_than_least_loaded() {
    let (pack, _) = boot_fail_recover(Some("builtin:pack")).await;
    let (least, _) = boot_fail_recover(Some("builtin:least-loaded")).await;
    // The pipeline asks for as many zones as a team has members, so both
    // keep every team spread; they differ in how they use the nodes.
    assert_eq!(pack.under_spread().count(), 0, "{pack}");
    assert_eq!(least.under_spread().count(), 0, "{least}");
    assert!(pack.nodes_used < least.nodes_used, "pack {pack}\nleast-loaded {least}");
    assert!(least.max_node_load < pack.max_node_load, "pack {pack}\nleast-loaded {least}");
}

#[tokio::test]
async fn a_down_node_is_skipped_not_fatal() {
    let c = cluster(None);
    let first = completed(&c.director.recover().await.unwrap());
    // The node of the first log crashes, with everything on it.
    let node = crash_node_of(&c.local, &first, &first.logs[0].id);
    let report = c.director.recover().await.unwrap();
    let second = completed(&report);
    assert_eq!(report.attempts.len(), 1, "recovery needs no retry to avoid the down node");
    assert!(second.services.iter().all(|s| s.node != node), "nothing of the new layout is on the down node {node}");
}

#[tokio::test]
async fn a_careless_policys_answer_is_refused_and_stalls_the_attempt() {
    let c = cluster(Some(fixtures::SAME_NODE));
    let report = c.director.recover().await.unwrap();
    assert!(report.layout().is_none(), "nothing may complete on a refused placement");
    for attempt in &report.attempts {
        let AttemptOutcome::Stalled(reason) = &attempt.outcome else { panic!("expected a stall, got {}", attempt.outcome) };
        assert!(reason.contains("host-check: distinct-nodes"), "{reason}");
        assert!(attempt.refusals.iter().any(|r| r.message.contains("placement answer refused")), "{:?}", attempt.refusals);
        assert!(attempt.recruited.is_empty(), "no worker is created from a refused answer");
    }
    assert!(c.cluster.services().await.is_empty(), "the stalled attempts left no workers");
}

#[tokio::test]
async fn a_policy_swapped_in_takes_over_at_the_next_placement() {
    let registry = Arc::new(Registry::with_defaults(common::runtime()).unwrap());
    let local = LocalCluster::with_zones(9, 3, 10).unwrap();
    let cluster = local.client();
    let director = Director::new(
        registry.clone(),
        cluster.clone(),
        Arc::new(MemoryStore::default()),
        RecoveryConfig::default(),
        DirectorOptions::default(),
    );
    let spread = completed(&director.recover().await.unwrap());
    let spread_nodes = PlacementQuality::of(&spread, &cluster.nodes().await).nodes_used;
    registry.load_spec("placement", "builtin:pack").unwrap();
    crash_node_of(&local, &spread, &spread.logs[0].id);
    let packed = completed(&director.recover().await.unwrap());
    // Pack puts the new generation's recruits on the busiest nodes: fewer of
    // them than the spread boot used for the same roles.
    let recruits: std::collections::BTreeSet<&str> =
        packed.services.iter().filter(|s| !spread.services.iter().any(|o| o.id == s.id)).map(|s| s.node.as_str()).collect();
    assert!(recruits.len() < spread_nodes, "pack used {recruits:?}, spread-zones used {spread_nodes} nodes");
}

#[tokio::test]
async fn a_request_that_cannot_be_met_stalls_with_the_constraint_named() {
    // Two nodes cannot hold three logs on distinct nodes.
    let registry = Arc::new(Registry::with_defaults(common::runtime()).unwrap());
    let local = LocalCluster::with_zones(2, 2, 10).unwrap();
    let cluster = local.client();
    let options = DirectorOptions { max_attempts: 2, initial_backoff: Duration::from_millis(1), ..Default::default() };
    let director = Director::new(registry, cluster.clone(), Arc::new(MemoryStore::default()), RecoveryConfig::default(), options);
    let report = director.recover().await.unwrap();
    assert_eq!(report.attempts.len(), 2, "each attempt stalls and is retried");
    for attempt in &report.attempts {
        let AttemptOutcome::Stalled(reason) = &attempt.outcome else { panic!("expected a stall: {}", attempt.outcome) };
        assert!(reason.starts_with("recruit-logs: placement failed"), "{reason}");
        assert!(reason.contains("(capacity)"), "the policy names the constraint: {reason}");
    }
    assert!(cluster.services().await.is_empty());
}
