//! Load, call, swap and rollback through the real registry and runtime.

mod common;

use std::sync::Arc;

use common::*;
use ratchet::bindings::types::PhaseStep;
use ratchet::registry::{InvokeError, Registry, RegistryError, unrecorded};
use ratchet::runtime::{CacheOrigin, Runtime, RuntimeConfig};

fn default_bytes(slot: &str) -> &'static [u8] {
    ratchet::components::default_for(slot).unwrap().bytes
}

#[tokio::test]
async fn the_default_validate_layout_runs_through_the_host() {
    let registry = Registry::with_defaults(runtime()).unwrap();
    let outcome = registry.call_phase("validate-layout", &new_cluster_state(), detached()).await.unwrap();
    assert_eq!(outcome.step, PhaseStep::Next("lock-services".into()));
    assert_eq!(outcome.state, new_cluster_state(), "a new cluster's state passes through unchanged");

    let mut state = new_cluster_state();
    state.epoch = 5;
    state.old_layout = Some(empty_layout(7));
    let outcome = registry.call_phase("validate-layout", &state, detached()).await.unwrap();
    assert_eq!(outcome.step, PhaseStep::Failed("old layout is invalid: layout epoch 7 is not below the attempt epoch 5".into()));
}

/// The recovery benchmark's floor calls this fixture once per plugin call and
/// relies on it taking nothing in and giving nothing back, whatever the state.
#[tokio::test]
async fn the_noop_fixture_reads_nothing_and_writes_nothing() {
    let registry = Registry::new(runtime());
    registry.load_file("validate-layout", std::path::Path::new(ratchet::components::fixtures::NOOP_PHASE)).unwrap();
    let mut state = new_cluster_state();
    state.epoch = 5;
    state.old_layout = Some(empty_layout(3));
    let outcome = registry.call_phase("validate-layout", &state, detached()).await.unwrap();
    assert_eq!(outcome.step, PhaseStep::Next("lock-services".into()));
    assert!(outcome.written.is_empty(), "wrote {:?}", outcome.written);
    assert_eq!(outcome.state.old_layout, None, "the old layout never crossed into it");
}

#[tokio::test]
async fn swap_and_rollback_change_what_the_next_call_runs() {
    let registry = Registry::with_defaults(runtime()).unwrap();
    let slot = "validate-layout";
    let v1 = registry.active(slot).unwrap();
    assert_eq!((v1.number, v1.source.as_str()), (1, "embedded:phase-validate-layout"));

    let v2 = registry.load(slot, &adversarial_bytes(), "adversary").unwrap();
    assert_eq!(v2.number, 2);
    assert_ne!(v2.sha256, v1.sha256);
    let step = registry.call_phase(slot, &new_cluster_state(), detached()).await.unwrap().step;
    assert_eq!(step, PhaseStep::Stalled("adversarial: idle".into()));

    assert_eq!(registry.rollback(slot, None, &unrecorded).unwrap().number, 1);
    let step = registry.call_phase(slot, &new_cluster_state(), detached()).await.unwrap().step;
    assert_eq!(step, PhaseStep::Next("lock-services".into()));

    assert_eq!(registry.rollback(slot, Some(2), &unrecorded).unwrap().number, 2);
    assert_eq!(registry.active(slot).unwrap().number, 2);
    let history = registry.history(slot);
    assert_eq!(history.iter().map(|v| v.number).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(history[1].size, adversarial_bytes().len());
    assert!(history[0].loaded_at <= history[1].loaded_at);
}

#[tokio::test]
async fn a_change_the_audit_trail_cannot_record_is_not_made() {
    let registry = Registry::with_defaults(runtime()).unwrap();
    let slot = "validate-layout";
    let full = |info: &ratchet::registry::VersionInfo| Err(format!("no room for v{}", info.number));
    let candidate = registry.prepare(slot, &adversarial_bytes(), "adversary").unwrap();
    let refused = registry.activate_recorded(candidate.clone(), &full).unwrap_err();
    assert_eq!(refused, RegistryError::Unrecorded("no room for v2".into()));
    assert!(refused.to_string().contains("not done: the audit trail cannot record it"), "{refused}");
    assert_eq!(registry.start_shadow(candidate.clone(), &full).unwrap_err(), RegistryError::Unrecorded("no room for v2".into()));
    assert_eq!(registry.history(slot).len(), 1, "no version was added");
    assert_eq!(registry.shadow(slot), None);

    // Recorded, the same changes are made, numbered as they were recorded.
    let recorded = std::sync::Mutex::new(Vec::new());
    let record = |info: &ratchet::registry::VersionInfo| {
        recorded.lock().unwrap().push(info.number);
        Ok(())
    };
    assert_eq!(registry.activate_recorded(candidate.clone(), &record).unwrap().number, 2);
    assert_eq!(registry.rollback(slot, None, &full).unwrap_err(), RegistryError::Unrecorded("no room for v1".into()));
    assert_eq!(registry.active(slot).unwrap().number, 2, "the refused rollback left v2 serving");
    assert_eq!(registry.start_shadow(candidate, &record).unwrap().number, 3);
    assert!(registry.promote_shadow(slot, &full).is_err());
    assert!(registry.discard_shadow(slot, &full).is_err());
    assert_eq!(registry.shadow(slot).map(|s| s.number), Some(3), "the shadow still runs");
    assert_eq!(registry.promote_shadow(slot, &record).unwrap().number, 3);
    assert_eq!(registry.active(slot).unwrap().number, 3);
    assert_eq!(*recorded.lock().unwrap(), [2, 3, 3]);
}

#[tokio::test]
async fn rollback_and_calls_fail_cleanly_on_bad_requests() {
    let registry = Registry::with_defaults(runtime()).unwrap();
    assert_eq!(registry.rollback("validate-layout", None, &unrecorded), Err(RegistryError::NothingToRollBack("validate-layout".into())));
    assert_eq!(
        registry.rollback("validate-layout", Some(9), &unrecorded),
        Err(RegistryError::NoSuchVersion { slot: "validate-layout".into(), version: 9 })
    );
    assert_eq!(registry.rollback("nope", None, &unrecorded), Err(RegistryError::UnknownSlot("nope".into())));
    let empty = Registry::new(runtime());
    let err = empty.call_phase("replay-logs", &new_cluster_state(), detached()).await.unwrap_err();
    assert_eq!(err, InvokeError::Registry(RegistryError::EmptySlot("replay-logs".into())));
    let err = empty.load("replay", default_bytes("validate-layout"), "x").unwrap_err().to_string();
    assert!(err.starts_with("unknown slot `replay` (slots: validate-layout, lock-services"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_finishes_on_the_version_it_started_with() {
    let registry = Arc::new(Registry::new(runtime()));
    let slot = "replay-logs";
    registry.load(slot, &adversarial_bytes(), "old").unwrap();
    let gate = Arc::new(Gate::default());

    let in_flight = tokio::spawn({
        let registry = registry.clone();
        let services = gate.clone();
        async move { registry.call_phase(slot, &command("sleep:5"), services).await }
    });
    gate.entered.notified().await;

    // The swap lands while the old version is parked inside a host call.
    let new = registry.load(slot, default_bytes("validate-layout"), "new").unwrap();
    assert_eq!(registry.active(slot).unwrap(), new);
    let next = registry.call_phase(slot, &command("sleep:5"), detached()).await.unwrap();
    assert_eq!(next.step, PhaseStep::Next("lock-services".into()), "the next call sees the new version");

    gate.release.notify_one();
    let finished = in_flight.await.unwrap().unwrap();
    assert_eq!(finished.step, PhaseStep::Stalled("adversarial: slept 5 ms".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_during_swaps_all_succeed_on_some_version() {
    let registry = Arc::new(Registry::with_defaults(runtime()).unwrap());
    let slot = "validate-layout";
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let registry = registry.clone();
            tokio::spawn(async move { registry.call_phase(slot, &new_cluster_state(), detached()).await })
        })
        .collect();
    for i in 0..10 {
        let bytes = if i % 2 == 0 { adversarial_bytes() } else { default_bytes(slot).to_vec() };
        registry.load(slot, &bytes, format!("swap {i}")).unwrap();
    }
    for call in calls {
        let step = call.await.unwrap().unwrap().step;
        assert!(step == PhaseStep::Next("lock-services".into()) || step == PhaseStep::Stalled("adversarial: idle".into()), "{step:?}");
    }
    assert_eq!(registry.history(slot).len(), 11);
}

#[test]
fn compiled_components_are_cached_on_disk_across_runtimes() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig { cache_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    let bytes = default_bytes("validate-layout");

    let first = Runtime::new(config.clone()).unwrap();
    assert_eq!(first.compile(bytes).unwrap().2, CacheOrigin::Compiled);
    assert_eq!(first.compile(bytes).unwrap().2, CacheOrigin::Memory);
    drop(first);

    let second = Runtime::new(config.clone()).unwrap();
    let (_, digest, origin) = second.compile(bytes).unwrap();
    assert_eq!(origin, CacheOrigin::Disk);
    drop(second);

    // A damaged entry is ignored and replaced, never trusted.
    let entry = walk(dir.path()).into_iter().find(|p| p.ends_with(format!("{digest}.cwasm"))).unwrap();
    std::fs::write(&entry, b"garbage").unwrap();
    let third = Runtime::new(config).unwrap();
    assert_eq!(third.compile(bytes).unwrap().2, CacheOrigin::Compiled);
    assert!(std::fs::read(&entry).unwrap().len() > 1000, "the entry was rewritten");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}
