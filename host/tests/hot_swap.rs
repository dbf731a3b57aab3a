//! Hot-swap logic through the real host and components, on the in-process
//! cluster of foremen (`LocalCluster`): automatic rollback of a version that keeps trapping, and a
//! candidate checked by the admin's swap path (validation and dry run).

mod common;

use std::sync::Arc;
use std::time::Duration;

use ratchet::admin::{Admin, AdminHost, AdminOptions, Stage};
use ratchet::audit::AuditLog;
use ratchet::bindings::types::{Node, RecoveryConfig};
use ratchet::cluster::{Cluster, LocalCluster, RemoteCluster};
use ratchet::components::fixtures;
use ratchet::director::{AttemptOutcome, Director, DirectorOptions};
use ratchet::metrics::Metrics;
use ratchet::registry::Registry;
use ratchet::status::Status;
use ratchet::store::MemoryStore;

/// The admin's view of an in-process cluster.
struct Host(Arc<RemoteCluster>);

#[async_trait::async_trait]
impl AdminHost for Host {
    async fn status(&self) -> Status {
        Status::default()
    }

    async fn nodes(&self) -> Vec<Node> {
        self.0.nodes().await
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    registry: Arc<Registry>,
    admin: Arc<Admin>,
    metrics: Arc<Metrics>,
    local: LocalCluster,
    cluster: Arc<RemoteCluster>,
}

fn setup(rollback_after: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::with_defaults(common::runtime()).unwrap());
    // Room for many recoveries: old generations' logs and replicas stay on
    // their nodes, and the storm runs dozens of recoveries.
    let local = LocalCluster::with_zones(9, 3, 1_000).unwrap();
    let cluster = local.client();
    let metrics = Arc::new(Metrics::new());
    let audit = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    let options = AdminOptions { rollback_after, ..AdminOptions::default() };
    let admin =
        Arc::new(Admin::new(registry.clone(), Arc::new(Host(cluster.clone())), audit, metrics.clone(), RecoveryConfig::default(), options));
    registry.set_observer(admin.clone());
    registry.set_shadow_sink(admin.clone());
    Setup { _dir: dir, registry, admin, metrics, local, cluster }
}

fn director(setup: &Setup, max_attempts: u32) -> Director {
    let options = DirectorOptions { max_attempts, initial_backoff: Duration::from_millis(1), ..DirectorOptions::default() };
    Director::new(setup.registry.clone(), setup.cluster.clone(), Arc::new(MemoryStore::default()), RecoveryConfig::default(), options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_traps_k_times_in_a_row_is_rolled_back_and_recovery_completes() {
    let setup = setup(3);
    // As if it had passed validation: loaded straight into the slot.
    let bytes = std::fs::read(fixtures::ALWAYS_TRAP).unwrap();
    let bad = setup.registry.load("start-proxies", &bytes, "always-trap").unwrap();
    assert_eq!(bad.number, 2);

    let report = director(&setup, 6).recover().await.unwrap();
    let outcomes: Vec<String> = report.attempts.iter().map(|a| a.outcome.to_string()).collect();
    // Three attempts trap in start-proxies, then the slot is back on v1.
    assert_eq!(report.attempts.len(), 4, "{outcomes:?}");
    for attempt in &report.attempts[..3] {
        assert!(matches!(&attempt.outcome, AttemptOutcome::Stalled(r) if r.contains("always-trap traps")), "{outcomes:?}");
    }
    assert!(report.layout().is_some(), "{outcomes:?}");
    assert_eq!(setup.registry.active("start-proxies").unwrap().number, 1);

    let rollbacks: Vec<_> = setup.admin.audit().entries().unwrap().into_iter().filter(|e| e.action == "rollback").collect();
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    assert_eq!(rollbacks[0].trigger, "auto-rollback");
    assert_eq!(rollbacks[0].version, Some(1));
    assert!(rollbacks[0].result.contains("v2 trapped or timed out 3 calls in a row"), "{:?}", rollbacks[0]);
    let metrics = setup.metrics.render();
    assert!(metrics.contains(r#"ratchet_plugin_rollbacks_total{slot="start-proxies",trigger="auto-rollback"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"ratchet_plugin_calls_total{outcome="trap",slot="start-proxies",version="2"} 3"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_automatic_rollback_the_trapping_version_stays() {
    let setup = setup(0);
    let bytes = std::fs::read(fixtures::ALWAYS_TRAP).unwrap();
    setup.registry.load("start-proxies", &bytes, "always-trap").unwrap();
    let report = director(&setup, 4).recover().await.unwrap();
    assert!(report.layout().is_none());
    assert_eq!(setup.registry.active("start-proxies").unwrap().number, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swap_path_refuses_a_trapping_phase_and_accepts_a_policy_that_passes() {
    let setup = setup(3);
    let bytes = std::fs::read(fixtures::ALWAYS_TRAP).unwrap();
    let refused = setup.admin.swap("start-proxies", bytes, "always-trap".into(), "test").await.unwrap_err();
    assert_eq!(refused.stage, Stage::DryRun);
    assert!(refused.reason.contains("trapped"), "{refused:?}");
    assert_eq!(setup.registry.active("start-proxies").unwrap().number, 1, "the active version keeps serving");

    let pack = ratchet::components::bundled("pack").unwrap().bytes.to_vec();
    let swapped = setup.admin.swap("placement", pack, "pack".into(), "test").await.unwrap();
    assert_eq!(swapped.version.number, 2);
    assert!(swapped.dry_run.writes > 0);
    assert_eq!(setup.registry.active("placement").unwrap().number, 2);
    // The next recovery places with it.
    let report = director(&setup, 4).recover().await.unwrap();
    assert!(report.layout().is_some());
    let metrics = setup.metrics.render();
    assert!(metrics.contains(r#"ratchet_plugin_calls_total{outcome="ok",slot="placement",version="2"}"#), "{metrics}");
    assert!(!metrics.contains(r#"slot="placement",version="1""#), "the dry run's calls are not counted: {metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_100_swaps_during_recoveries_fails_none_of_them() {
    let setup = setup(3);
    let director = director(&setup, 10);
    assert!(director.recover().await.unwrap().layout().is_some());

    let admin = setup.admin.clone();
    let storm = tokio::spawn(async move {
        let policies = [ratchet::components::bundled("pack").unwrap(), ratchet::components::bundled("least-loaded").unwrap()];
        for i in 0..100 {
            let policy = policies[i % 2];
            admin.swap("placement", policy.bytes.to_vec(), policy.name.into(), "storm").await.expect("a good policy passes");
        }
    });

    // Meanwhile: writes, a log lost, a recovery; again and again.
    let mut acked = Vec::new();
    let mut recoveries = 0;
    while !storm.is_finished() || recoveries < 3 {
        for i in 0..20 {
            let write = (format!("{:08x}-storm-{recoveries}-{i}", (i as u32).wrapping_mul(2_654_435_761)), format!("v{i}"));
            if setup.cluster.commit(std::slice::from_ref(&write)).await.is_ok() {
                acked.push(write);
            }
        }
        setup.cluster.pump().await;
        let layout = setup.cluster.live_layout().unwrap();
        let node = layout.services.iter().find(|s| s.id == layout.logs[0].id).unwrap().node.clone();
        setup.local.crash(&node);
        let report = director.recover().await.unwrap();
        let outcomes: Vec<String> = report.attempts.iter().map(|a| a.outcome.to_string()).collect();
        assert_eq!(outcomes.len(), 1, "recovery {recoveries} needed more than one attempt: {outcomes:?}");
        assert!(report.layout().is_some(), "{outcomes:?}");
        // The node restarts on its journals and is placed on again.
        setup.local.start(&node).unwrap();
        recoveries += 1;
    }
    storm.await.unwrap();
    assert_eq!(setup.registry.history("placement").len(), 101);
    setup.cluster.pump().await;
    let mut lost = 0;
    for (key, value) in &acked {
        if setup.cluster.read(key).await.ok().flatten().as_deref() != Some(value.as_str()) {
            lost += 1;
        }
    }
    assert_eq!(lost, 0, "of {} acknowledged writes over {recoveries} recoveries", acked.len());
    eprintln!("{recoveries} recoveries during 100 swaps");
}

/// Waits until the shadow of `slot` has made `calls` calls.
async fn shadow_calls(admin: &Admin, slot: &str, calls: u64) -> ratchet::admin::ShadowRecord {
    shadow_until(admin, slot, |record| record.calls >= calls).await
}

/// Waits until the shadow record of `slot` satisfies `done`. Shadow calls
/// run in the background, each on its own task, so they finish in any order.
async fn shadow_until(admin: &Admin, slot: &str, done: impl Fn(&ratchet::admin::ShadowRecord) -> bool) -> ratchet::admin::ShadowRecord {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let record = admin.shadow_report(slot).record;
        if done(&record) {
            return record;
        }
        assert!(std::time::Instant::now() < deadline, "{slot}: not yet after {} shadow calls: {record:?}", record.calls);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_reports_where_it_decides_differently_and_changes_nothing() {
    let setup = setup(3);
    let pack = ratchet::components::bundled("pack").unwrap().bytes.to_vec();
    let shadow = setup.admin.shadow("placement", pack, "pack".into(), "test").await.unwrap();
    assert_eq!(shadow.number, 2);
    // The default start-sequencer beside itself: replayed, it must agree.
    let same = ratchet::components::DEFAULTS.iter().find(|c| c.slot == "start-sequencer").unwrap().bytes.to_vec();
    setup.admin.shadow("start-sequencer", same, "itself".into(), "test").await.unwrap();
    // So must the default assemble-layout: it stages the layout and unlocks
    // against it, and the replayed calls must match the recorded ones.
    let assemble = ratchet::components::DEFAULTS.iter().find(|c| c.slot == "assemble-layout").unwrap().bytes.to_vec();
    setup.admin.shadow("assemble-layout", assemble, "itself".into(), "test").await.unwrap();
    // A start-proxies that traps: in shadow it breaks nothing.
    let trap = std::fs::read(fixtures::ALWAYS_TRAP).unwrap();
    setup.admin.shadow("start-proxies", trap, "always-trap".into(), "test").await.unwrap();

    let report = director(&setup, 4).recover().await.unwrap();
    assert_eq!(report.attempts.len(), 1, "the shadows do not touch the recovery");
    let layout = report.layout().unwrap().clone();
    let nodes = setup.cluster.nodes().await;
    let quality = ratchet::quality::PlacementQuality::of(&layout, &nodes);
    assert!(!quality.to_string().is_empty());
    for team in &layout.storage_teams {
        let zones: std::collections::BTreeSet<String> = team
            .storage_ids
            .iter()
            .map(|id| layout.services.iter().find(|s| s.id == *id).unwrap().node.clone())
            .map(|node| nodes.iter().find(|n| n.id == node).unwrap().zone.clone())
            .collect();
        assert_eq!(zones.len(), 3, "the active spread-zones placed team {}", team.tag);
    }

    // pack and spread-zones may agree on a small group (one sequencer among
    // equal nodes), and the shadow calls end in any order: wait for the
    // first divergence, not the first call.
    let placement = shadow_until(&setup.admin, "placement", |r| !r.divergences.is_empty()).await;
    let d = &placement.divergences[0];
    assert_eq!((d.active_version, d.shadow_version), (1, 2));
    assert_ne!(d.active, d.shadow);

    for slot in ["start-sequencer", "assemble-layout"] {
        let record = shadow_calls(&setup.admin, slot, 1).await;
        assert!(record.divergences.is_empty(), "{slot}: {:?}", record.divergences);
    }

    let proxies = shadow_calls(&setup.admin, "start-proxies", 1).await;
    assert_eq!(proxies.divergences.len(), 1);
    assert!(proxies.divergences[0].shadow.contains("always-trap traps"), "{:?}", proxies.divergences[0]);

    // Nothing is active that was not before.
    for slot in ["placement", "start-sequencer", "assemble-layout", "start-proxies"] {
        assert_eq!(setup.registry.active(slot).unwrap().number, 1, "{slot}");
    }
    // The operator promotes one and discards another.
    assert_eq!(setup.admin.end_shadow("placement", true, "test").await.unwrap().number, 2);
    assert_eq!(setup.registry.active("placement").unwrap().number, 2);
    setup.admin.end_shadow("start-proxies", false, "test").await.unwrap();
    assert_eq!(setup.registry.active("start-proxies").unwrap().number, 1);
    assert!(setup.admin.end_shadow("start-proxies", false, "test").await.is_err(), "no shadow left to discard");
    let actions: Vec<String> = setup.admin.audit().entries().unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["shadow", "shadow", "shadow", "shadow", "promote", "discard"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_is_promoted_only_through_the_dry_run_and_a_rollback_only_to_a_version_that_served() {
    let setup = setup(3);
    let trap = std::fs::read(fixtures::ALWAYS_TRAP).unwrap();
    let shadow = setup.admin.shadow("start-proxies", trap, "always-trap".into(), "test").await.unwrap();
    assert_eq!(shadow.number, 2);

    // Promoting it runs the swap's dry run, which it fails: it stays a shadow.
    let refused = setup.admin.end_shadow("start-proxies", true, "test").await.unwrap_err();
    assert_eq!(refused.stage, Stage::DryRun);
    assert!(refused.reason.contains("always-trap traps"), "{}", refused.reason);
    assert_eq!(setup.registry.active("start-proxies").unwrap().number, 1);
    assert_eq!(setup.registry.shadow("start-proxies").map(|v| v.number), Some(2));

    // Version 2 never served, so no rollback may make it active.
    let err = setup.admin.rollback("start-proxies", Some(2), "test").await.unwrap_err();
    assert!(err.to_string().contains("never active"), "{err}");
    setup.admin.end_shadow("start-proxies", false, "test").await.unwrap();
    assert_eq!(setup.registry.active("start-proxies").unwrap().number, 1);

    // A version that passed the dry run and served may serve again.
    let same = ratchet::components::DEFAULTS.iter().find(|c| c.slot == "start-proxies").unwrap().bytes.to_vec();
    let swapped = setup.admin.swap("start-proxies", same, "itself".into(), "test").await.unwrap();
    assert_eq!(swapped.version.number, 3);
    assert_eq!(setup.admin.rollback("start-proxies", Some(1), "test").await.unwrap().number, 1);
    assert_eq!(setup.admin.rollback("start-proxies", Some(3), "test").await.unwrap().number, 3);
    let actions: Vec<String> = setup.admin.audit().entries().unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["shadow", "refuse", "rollback", "discard", "swap", "rollback", "rollback"]);
}
