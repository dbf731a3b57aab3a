//! The recovery pipeline end to end: the 15 default phases as components,
//! driven by the director through the invariant guard against the in-process
//! cluster of foremen, whose nodes crash and restart as machines do. Each invariant has a test in which a misbehaving plugin tries to
//! break it (I7's second test: a director overtaken by a newer epoch).

mod common;

use common::completed;

use common::Harness;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ratchet::bindings::types::ServiceKind;
use ratchet::cluster::Cluster;
use ratchet::components::fixtures;
use ratchet::director::{AttemptOutcome, DirectorOptions};
use ratchet::guard::{Invariant, named_services};
use ratchet::registry::{Registry, unrecorded};
use ratchet::store::CoordinatorStore;

#[tokio::test]
async fn a_first_start_locks_nothing_and_names_only_recruits() {
    let h = Harness::new();
    // Services left on the nodes from before (created at epoch 0), that no
    // layout names.
    let mut idle = Vec::new();
    for (i, node) in ["n1", "n2", "n3", "n4", "n5", "n6"].iter().enumerate() {
        let kind = if i % 2 == 0 { ServiceKind::Log } else { ServiceKind::Storage };
        idle.push(h.cluster.create_worker(node, kind, 0).await.unwrap().id);
    }
    let report = h.recover().await;
    let layout = completed(&report);
    assert_eq!(layout.epoch, 1);
    let attempt = report.last().unwrap();
    assert!(attempt.locked.is_empty(), "nothing is locked before recruitment: {:?}", attempt.locked);
    for id in named_services(&layout) {
        assert!(!idle.contains(&id), "the layout names {id}, which it never recruited");
    }
    assert!(attempt.recruited.iter().all(|id| named_services(&layout).contains(id)));
    for id in &idle {
        assert_eq!(h.local.lock_holder(id), Some(0), "{id} was never locked by the boot");
    }
    assert_eq!(layout.logs.len(), 3);
    assert!(layout.storage_teams.iter().all(|t| t.storage_ids.len() == 3));
}

#[tokio::test]
async fn a_second_epoch_after_losing_a_log_keeps_every_acknowledged_write() {
    let h = Harness::new();
    let old = h.boot().await;
    let acked = h.write(0, 600).await;
    assert_eq!(acked.len(), 600);
    let dead_node = h.crash_node_of(&old, &old.logs[0].id);
    assert!(h.cluster.commit(&[("k".into(), "v".into())]).await.is_err(), "a generation missing a log cannot commit");

    let report = h.recover().await;
    let layout = completed(&report);
    assert_eq!(layout.epoch, 2);
    let attempt = report.last().unwrap();
    let on_dead: BTreeSet<&str> = old.services.iter().filter(|s| s.node == dead_node).map(|s| s.id.as_str()).collect();
    let expected: BTreeSet<String> = named_services(&old).into_iter().filter(|id| !on_dead.contains(id.as_str())).collect();
    assert_eq!(attempt.locked, expected, "exactly the old layout's reachable services are locked");
    let stateful: BTreeSet<&str> = layout
        .logs
        .iter()
        .map(|l| l.id.as_str())
        .chain(layout.storage_teams.iter().flat_map(|t| t.storage_ids.iter().map(String::as_str)))
        .collect();
    for id in attempt.recruited.iter().filter(|id| stateful.contains(id.as_str())) {
        assert_eq!(h.local.lock_holder(id), Some(2), "{id} was locked at recruitment");
    }
    assert!(layout.logs.iter().all(|l| attempt.recruited.contains(&l.id)), "a new generation has new logs");
    assert!(layout.recovery_version >= 600);
    assert_eq!(h.lost(&acked).await, 0);
    let more = h.write(600, 100).await;
    assert_eq!(more.len(), 100, "the new generation commits");
    assert_eq!(h.lost(&more).await, 0);
}

#[tokio::test]
async fn a_log_that_missed_a_push_breaks_its_generation_even_once_it_is_back() {
    // Found by a long seed run: a log down while a commit was refused
    // misses the version the sequencer issued for it; back up, it could
    // take no later push, yet its generation looked whole.
    let h = Harness::new();
    let old = h.boot().await;
    let acked = h.write(0, 50).await;
    let node = h.crash_node_of(&old, &old.logs[1].id);
    assert!(h.cluster.commit(&[("k".into(), "v".into())]).await.is_err(), "a generation missing a log cannot commit");
    h.local.start(&node).unwrap();
    assert!(h.cluster.commit(&[("k".into(), "v".into())]).await.is_err(), "the log lacks a version");
    assert!(h.cluster.check(&named_services(&old), true).await.is_err(), "the generation is broken until it is recovered");

    let layout = completed(&h.recover().await).clone();
    assert!(layout.epoch > old.epoch);
    h.cluster.check(&named_services(&layout), true).await.expect("the recovered generation is whole");
    let more = h.write(50, 20).await;
    assert_eq!(more.len(), 20, "the recovered generation commits");
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn losing_a_storage_replica_tops_the_team_up_from_a_teammate() {
    let h = Harness::new();
    let old = h.boot().await;
    let acked = h.write(0, 300).await;
    let victim = old.storage_teams[1].storage_ids[0].clone();
    let node = h.crash_node_of(&old, &victim);
    let report = h.recover().await;
    let layout = completed(&report);
    let team = layout.storage_teams.iter().find(|t| t.tag == 1).unwrap();
    assert_eq!(team.storage_ids.len(), 3);
    assert!(!team.storage_ids.contains(&victim));
    // Every team with a replica on the crashed node is degraded, team 1 too.
    let on_node = |id: &String| old.services.iter().any(|s| &s.id == id && s.node == node);
    let hit: Vec<u32> = old.storage_teams.iter().filter(|t| t.storage_ids.iter().any(on_node)).map(|t| t.tag).collect();
    assert!(hit.contains(&1));
    assert_eq!(report.last().unwrap().final_state.degraded_teams, hit);
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn with_no_lockable_log_recovery_stalls_and_never_initializes() {
    let h = Harness::new();
    let old = h.boot().await;
    let acked = h.write(0, 200).await;
    let nodes: Vec<String> = old.logs.iter().map(|log| h.crash_node_of(&old, &log.id)).collect();
    let stalled = h.director(Harness::quick()).run_attempt(1).await.unwrap();
    assert!(matches!(&stalled.outcome, AttemptOutcome::Stalled(r) if r.contains("could be locked")), "{}", stalled.outcome);
    assert!(stalled.timeline.iter().all(|p| p.phase != "initialize"));
    assert_eq!(h.store.state().unwrap().layout.unwrap().epoch, 1, "nothing was persisted");

    // A director waiting a full minute between attempts still retries at once
    // when a log comes back.
    let patient = DirectorOptions { initial_backoff: Duration::from_secs(60), ..Harness::quick() };
    let director = h.director(patient);
    let running = tokio::spawn(async move { director.recover().await });
    while h.store.state().unwrap().epoch < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.local.start(&nodes[1]).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(20), running).await.expect("woken by the registration").unwrap().unwrap();
    assert!(matches!(report.attempts[0].outcome, AttemptOutcome::Stalled(_)));
    completed(&report);
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn of_two_racing_directors_the_older_is_superseded() {
    let h = Harness::new();
    h.boot().await;
    let acked = h.write(0, 100).await;
    let older = h.store.next_epoch().unwrap();
    let newer = h.recover().await;
    assert_eq!(completed(&newer).epoch, older + 1);
    let late = h.director(Harness::quick()).run_attempt_at(older, 1).await.unwrap();
    assert_eq!(late.outcome, AttemptOutcome::Superseded(older + 1));
    assert!(late.timeline.is_empty() && late.locked.is_empty(), "the late director touched nothing");
    assert_eq!(h.store.state().unwrap().layout.unwrap().epoch, older + 1, "only e+1's layout is persisted");
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn a_director_superseded_by_an_epoch_its_store_never_issued_takes_the_next_one_above_it() {
    // The store issued epochs up to 1, but the cluster holds locks of epoch
    // 50 (the store was restored from an older copy): the director's next
    // attempt takes 51 at once, not one epoch a retry until it catches up.
    let h = Harness::new();
    let live = h.boot().await;
    let acked = h.write(0, 50).await;
    for id in named_services(&live) {
        h.cluster.lock(&id, 50).await.unwrap();
    }
    let director = h.director(Harness::quick());
    let first = director.recover().await.unwrap();
    assert_eq!(first.attempts.last().unwrap().outcome, AttemptOutcome::Superseded(50));
    let second = director.recover().await.unwrap();
    assert_eq!(second.attempts.len(), 1, "{:?}", second.attempts.iter().map(|a| a.outcome.to_string()).collect::<Vec<_>>());
    assert_eq!(completed(&second).epoch, 51);
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn a_superseded_directors_persist_is_fenced() {
    let h = Harness::new();
    h.boot().await;
    let older = h.store.next_epoch().unwrap();
    let _newer = h.store.next_epoch().unwrap();
    let before = h.live_ids().await;
    let late = h.director(Harness::quick()).run_attempt_at(older, 1).await.unwrap();
    assert_eq!(late.outcome, AttemptOutcome::Superseded(older + 1));
    assert_eq!(h.store.state().unwrap().layout.unwrap().epoch, 1);
    assert!(late.released > 0);
    assert!(h.live_ids().await.is_subset(&before), "the fenced attempt left no stray workers");
}

#[tokio::test]
async fn a_trapping_phase_stalls_the_attempt_and_the_rollback_leaves_no_strays() {
    let h = Harness::new();
    h.registry.load_file("start-proxies", std::path::Path::new(fixtures::FLAKY_PROXIES)).unwrap();
    let report = h.recover().await;
    let layout = completed(&report).clone();
    let first = &report.attempts[0];
    match &first.outcome {
        AttemptOutcome::Stalled(reason) => {
            assert!(reason.contains("trapped") && reason.contains("flaky-proxies traps on attempt 1"), "{reason}")
        }
        other => panic!("expected a stall, got {other}"),
    }
    assert!(first.released > 3 + 12, "logs, storage and the sequencer were released: {}", first.released);
    assert_eq!(h.live_ids().await, named_services(&layout), "only the live generation's workers remain");
}

#[tokio::test]
async fn i3_a_greedy_lock_services_cannot_lock_unnamed_services() {
    let h = Harness::new();
    let old = h.boot().await;
    let crashed = h.crash_node_of(&old, &old.logs[2].id);
    // A replica a boot on another node left behind, which no layout names.
    let spare = if crashed == "n9" { "n8" } else { "n9" };
    let idle = h.cluster.create_worker(spare, ServiceKind::Storage, 1).await.unwrap().id;
    h.registry.load_file("lock-services", std::path::Path::new(fixtures::GREEDY_LOCK)).unwrap();
    let report = h.recover().await;
    completed(&report);
    let attempt = report.last().unwrap();
    assert!(attempt.refusals.iter().any(|r| r.rule == Invariant::SelectiveLocking && r.message.contains(&idle)), "{:?}", attempt.refusals);
    assert_eq!(h.local.lock_holder(&idle), Some(1), "only the epoch that created it ever locked it");
    assert!(attempt.locked.iter().all(|id| named_services(&old).contains(id)));
}

#[tokio::test]
async fn i5_s4_a_cluster_with_logs_is_never_initialized_anew() {
    let h = Harness::new();
    let old = h.boot().await;
    let acked = h.write(0, 50).await;
    let nodes: Vec<String> = old.logs.iter().map(|log| h.crash_node_of(&old, &log.id)).collect();
    h.registry.load_file("determine-path", std::path::Path::new(fixtures::ALWAYS_INITIALIZE)).unwrap();
    let before = h.live_ids().await;
    let report = h.recover().await;
    assert!(report.layout().is_none());
    for attempt in &report.attempts {
        // The initialize path runs, but the layout it builds is refused:
        // no shard has a locked log, so what was acknowledged is unknown.
        let refusal = attempt.refusals.iter().find(|r| r.rule == Invariant::KnownAcknowledgements);
        assert!(refusal.is_some_and(|r| r.message.starts_with("shard 0: no log of it")), "{:?}", attempt.refusals);
        assert!(matches!(&attempt.outcome, AttemptOutcome::Stalled(r) if r.contains("S4: shard 0")), "{}", attempt.outcome);
    }
    assert_eq!(h.store.state().unwrap().layout.unwrap().epoch, 1);
    assert_eq!(h.live_ids().await, before);
    h.local.start(&nodes[0]).unwrap();
    h.registry.rollback("determine-path", None, &unrecorded).unwrap();
    completed(&h.recover().await);
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn i6_a_layout_naming_unlocked_services_is_never_staged_unlocked_or_persisted() {
    let h = Harness::new();
    let old = h.boot().await;
    h.crash_node_of(&old, &old.logs[0].id);
    h.registry.load_file("assemble-layout", std::path::Path::new(fixtures::STALE_LAYOUT)).unwrap();
    let report = h.recover().await;
    assert!(report.layout().is_none());
    let attempt = report.last().unwrap();
    let refused = |text: &str| attempt.refusals.iter().any(|r| r.rule == Invariant::LayoutClosure && r.message.contains(text));
    assert!(refused("neither locked nor recruited"), "the layout is refused when staged: {:?}", attempt.refusals);
    assert!(refused("unlock before a layout was staged"), "{:?}", attempt.refusals);
    assert!(refused("persist before a layout was staged"), "{:?}", attempt.refusals);
    assert_eq!(attempt.final_state.new_layout, None, "a refused layout never becomes the attempt's");
    assert_eq!(h.store.state().unwrap().layout.unwrap(), old, "the old layout stays");
}

#[tokio::test]
async fn i2_i8_a_phase_ignoring_a_newer_epoch_is_stopped() {
    let h = Harness::new();
    let old = h.boot().await;
    let older = h.store.next_epoch().unwrap();
    // A newer director has locked the old generation but not finished yet.
    let newer = h.store.next_epoch().unwrap();
    for id in named_services(&old) {
        h.cluster.lock(&id, newer).await.unwrap();
    }
    let stubborn = Harness {
        local: h.local.clone(),
        cluster: h.cluster.clone(),
        store: h.store.clone(),
        registry: Arc::new(Registry::with_defaults(common::runtime()).unwrap()),
    };
    stubborn.registry.load_file("lock-services", std::path::Path::new(fixtures::IGNORE_SUPERSEDED)).unwrap();
    let before = h.live_ids().await;
    let late = stubborn.director(Harness::quick()).run_attempt_at(older, 1).await.unwrap();
    assert_eq!(late.outcome, AttemptOutcome::Superseded(older + 1));
    assert!(
        late.final_state.unreachable.iter().any(|s| s.contains("create after superseded: Err(ClusterError::Superseded")),
        "a later call failed: {:?}",
        late.final_state.unreachable
    );
    assert_eq!(late.timeline.len(), 2, "the attempt ended right after the phase");
    assert_eq!(h.store.state().unwrap().layout.unwrap(), old);
    assert_eq!(h.live_ids().await, before, "the superseded attempt created nothing");
}

#[tokio::test]
async fn i1_a_phase_cannot_choose_its_own_epoch() {
    let h = Harness::new();
    h.boot().await;
    h.registry.load_file("validate-layout", std::path::Path::new(fixtures::FORGE_EPOCH)).unwrap();
    let report = h.recover().await;
    assert!(report.layout().is_none());
    for attempt in &report.attempts {
        assert!(
            matches!(&attempt.outcome, AttemptOutcome::Stalled(r) if r.contains("may not change the attempt's epoch")),
            "{}",
            attempt.outcome
        );
        assert!(attempt.locked.is_empty(), "nothing was locked with a forged epoch");
    }
    let epochs: Vec<u64> = report.attempts.iter().map(|a| a.epoch).collect();
    assert!(epochs.windows(2).all(|w| w[1] > w[0]), "each retry gets a fresh, higher epoch: {epochs:?}");
}

#[tokio::test]
async fn i4_a_copy_from_an_unlocked_log_is_refused() {
    let h = Harness::new();
    let old = h.boot().await;
    let acked = h.write(0, 100).await;
    h.crash_node_of(&old, &old.logs[1].id);
    h.registry.load_file("replay-logs", std::path::Path::new(fixtures::UNLOCKED_SOURCE)).unwrap();
    let report = h.recover().await;
    assert!(report.layout().is_none());
    let attempt = report.last().unwrap();
    assert!(
        attempt.refusals.iter().any(|r| r.rule == Invariant::LockedBeforeUse && r.message.contains(&old.logs[1].id)),
        "{:?}",
        attempt.refusals
    );
    h.registry.rollback("replay-logs", None, &unrecorded).unwrap();
    completed(&h.recover().await);
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn i6_a_layout_restaged_under_a_stale_epoch_is_never_written() {
    let h = Harness::new();
    let old = h.boot().await;
    h.crash_node_of(&old, &old.logs[0].id);
    h.registry.load_file("persist-layout", std::path::Path::new(fixtures::STALE_PERSIST)).unwrap();
    let report = h.recover().await;
    let attempt = report.last().unwrap();
    let refused = |text: &str| attempt.refusals.iter().any(|r| r.rule == Invariant::LayoutClosure && r.message.contains(text));
    let stale = format!("layout carries epoch {}, the attempt is {}", attempt.epoch - 1, attempt.epoch);
    assert!(refused(&stale), "{:?}", attempt.refusals);
    assert!(refused("fixed once an unlock"), "the services were handed the staged layout, so it cannot change: {:?}", attempt.refusals);
    // What lands is the layout the services were handed, under its own epoch.
    let layout = completed(&report);
    assert_eq!(layout.epoch, attempt.epoch);
    assert_eq!(attempt.final_state.new_layout.as_ref(), Some(&layout));
    assert_eq!(h.store.state().unwrap().layout.as_ref(), Some(&layout));
}

#[tokio::test]
async fn i7_a_director_overtaken_by_a_newer_epoch_never_writes_its_layout() {
    let h = Harness::new();
    let old = h.boot().await;
    let acked = h.write(0, 100).await;
    let before = h.live_ids().await;
    let older = h.store.next_epoch().unwrap();
    // A newer director has taken its epoch but not yet locked anything, so
    // only the store's compare-and-swap can stop the older one.
    let newer = h.store.next_epoch().unwrap();
    let late = h.director(Harness::quick()).run_attempt_at(older, 1).await.unwrap();
    assert_eq!(late.outcome, AttemptOutcome::Superseded(newer));
    assert_eq!(late.timeline.last().map(|p| p.phase.as_str()), Some("persist-layout"), "it got as far as the write");
    assert_eq!(h.store.state().unwrap().layout.unwrap(), old, "the fenced write never landed");
    assert!(late.released > 0, "its recruits were released");
    assert_eq!(h.live_ids().await, before);
    completed(&h.recover().await);
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn time_inside_wasm_counts_the_guests_code_and_not_the_host_calls_it_waits_on() {
    let h = Harness::new();
    // This start-sequencer sleeps 1.2 s in a host call before its work.
    h.registry.load_file("start-sequencer", std::path::Path::new(fixtures::SLOW_SEQUENCER)).unwrap();
    let report = h.recover().await;
    completed(&report);
    let attempt = report.last().unwrap();
    for phase in &attempt.timeline {
        assert!(phase.guest > Duration::ZERO, "{}: no time inside wasm", phase.phase);
        assert!(
            phase.guest <= phase.duration,
            "{}: {:?} inside wasm, longer than the call ({:?})",
            phase.phase,
            phase.guest,
            phase.duration
        );
    }
    let slow = attempt.timeline.iter().find(|p| p.phase == "start-sequencer").unwrap();
    assert!(slow.duration >= Duration::from_millis(1_200), "{:?}", slow.duration);
    assert!(slow.guest < Duration::from_millis(200), "the host's sleep was charged to the guest: {:?}", slow.guest);
    let sum: Duration = attempt.timeline.iter().map(|p| p.guest).sum();
    assert_eq!(attempt.guest_time(), sum);
}
