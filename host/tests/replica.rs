//! The `replica-recovery` slot through the real host: the default component
//! decides every outcome at its boundaries, and the host's sessions carry
//! its plans out under their rules.

mod common;

use ratchet::bindings::types::{CatchUpPlan, RebuildPlan, ReplicaHistory, ReplicaOutcome, ReplicaPlan, VersionRange};
use ratchet::registry::{REPLICA, Registry};
use ratchet::replica::{Budget, SessionError, SessionState, Sessions};
use ratchet::runtime::World;

fn history(durable: u64, oldest: u64, committed: u64, checkpoint: Option<u64>) -> ReplicaHistory {
    ReplicaHistory {
        durable_version: durable,
        oldest_retained: oldest,
        head_version: committed,
        committed_version: committed,
        checkpoint_version: checkpoint,
    }
}

async fn decide(registry: &Registry, h: ReplicaHistory) -> ReplicaPlan {
    let plan = registry.call_replica(&h).await.unwrap();
    assert_eq!(plan.history, h, "the proof carries the figures it was given");
    assert!(!plan.reason.is_empty() && !plan.reason.contains('\n'), "a one-line reason: {:?}", plan.reason);
    plan
}

#[tokio::test]
async fn the_default_component_decides_every_outcome_at_its_boundaries() {
    let registry = Registry::with_defaults(common::runtime()).unwrap();
    let active = registry.active(REPLICA).expect("the slot has a default");
    assert!(active.source.starts_with("embedded:"), "{}", active.source);

    let cases = [
        (history(50, 10, 50, None), ReplicaOutcome::ZeroGap),
        (history(51, 10, 50, None), ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(50))),
        (history(10, 10, 50, None), ReplicaOutcome::CatchUp(CatchUpPlan::Replay(VersionRange { after: 10, through: 50 }))),
        (history(9, 10, 50, None), ReplicaOutcome::Rebuild(RebuildPlan::Full)),
        (history(9, 10, 50, Some(10)), ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(10))),
        (history(9, 10, 50, Some(9)), ReplicaOutcome::Rebuild(RebuildPlan::Full)),
        (history(9, 10, 50, Some(51)), ReplicaOutcome::Rebuild(RebuildPlan::Full)),
    ];
    for (h, expected) in cases {
        let plan = decide(&registry, h).await;
        assert_eq!(plan.outcome, expected, "{h:?}: {}", plan.reason);
    }
}

#[tokio::test]
async fn a_swap_candidate_is_dry_run_at_every_boundary() {
    let registry = Registry::with_defaults(common::runtime()).unwrap();
    let passed = ratchet::admin::dry_run::run_replica(&registry).await.unwrap();
    assert_eq!(passed.attempts, 34, "8 durable versions x 5 checkpoints, less the 6 no plan fits");

    // A policy that always answers zero-gap would have a replica far behind
    // claim versions it never received: refused, with the figures.
    let trial = registry.fork();
    trial.load_file(REPLICA, std::path::Path::new(ratchet::components::fixtures::ALWAYS_ZERO_GAP)).unwrap();
    let reason = ratchet::admin::dry_run::run_replica(&trial).await.unwrap_err();
    assert!(reason.contains("zero-gap, but durable 0 is not committed 200"), "{reason}");
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_for_the_slot() {
    let registry = Registry::with_defaults(common::runtime()).unwrap();
    let pack = ratchet::components::bundled("pack").unwrap();
    let err = registry.load(REPLICA, pack.bytes, "pack").unwrap_err().to_string();
    assert!(err.contains("replica-recovery") && err.contains("ratchet:recovery/replica@0.1.0"), "{err}");
    assert_eq!(World::ALL.len(), 3);
}

#[tokio::test]
async fn sessions_carry_out_the_components_plans_under_the_hosts_rules() {
    let registry = Registry::with_defaults(common::runtime()).unwrap();
    let mut sessions = Sessions::new(Budget { max_entries: 30, ..Budget::default() });

    // A catch-up, frozen at committed 50 when it began.
    let h = history(20, 10, 50, None);
    let plan = decide(&registry, h).await;
    let id = sessions.open("storage-7", 4, "10.0.0.7:7100", &h, plan).unwrap();
    sessions.progress(id, 4, 35, 15).unwrap();
    assert_eq!(sessions.progress(id, 4, 55, 5), Err(SessionError::PastTarget { target: 50, asked: 55 }));
    sessions.progress(id, 4, 50, 15).unwrap();
    sessions.complete(id, 4).unwrap();

    // A replica ahead of committed cannot complete before it truncates.
    let h = history(70, 10, 50, None);
    let plan = decide(&registry, h).await;
    let id = sessions.open("storage-8", 4, "10.0.0.8:7100", &h, plan).unwrap();
    assert_eq!(sessions.complete(id, 4), Err(SessionError::TruncationMissing(50)));
    sessions.record_truncation(id, 4, 50).unwrap();
    sessions.complete(id, 4).unwrap();

    // A long catch-up breaks the entry budget and must become a rebuild.
    let h = history(10, 10, 500, Some(400));
    let plan = decide(&registry, h).await;
    let id = sessions.open("storage-9", 4, "10.0.0.9:7100", &h, plan.clone()).unwrap();
    assert!(matches!(sessions.progress(id, 4, 60, 50), Err(SessionError::Escalated(_))));
    assert!(matches!(sessions.open("storage-9", 4, "10.0.0.9:7100", &h, plan), Err(SessionError::MustRebuild { .. })));
    let behind = history(10, 450, 500, Some(460));
    let rebuild = decide(&registry, behind).await;
    assert_eq!(rebuild.outcome, ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(460)));
    let id = sessions.open("storage-9", 4, "10.0.0.9:7100", &behind, rebuild).unwrap();

    // An epoch bump ends it; its id is stale from then on.
    sessions.epoch_changed(5);
    assert!(matches!(sessions.get(id).unwrap().state, SessionState::Invalidated(_)));
    assert!(matches!(sessions.progress(id, 4, 460, 0), Err(SessionError::Stale { .. })));

    let log: Vec<String> = sessions.events().iter().map(|e| format!("{} {}", e.replica, e.event)).collect();
    for expected in ["storage-7 completed", "storage-8 refused", "storage-8 truncated", "storage-9 escalated", "storage-9 invalidated"] {
        assert!(log.iter().any(|l| l == expected), "{expected} in {log:?}");
    }
}
