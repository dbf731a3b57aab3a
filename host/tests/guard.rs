//! The guard against the attacks that once got through: each phase here is
//! a real default component whose calls are tampered with on their way to
//! the host, as a plugin written against the public WIT could make them.
//! Safety comes from the guard alone: every attack is refused with its
//! rule, nothing acknowledged is lost, and the defaults then recover.

mod common;

use common::Harness;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratchet::bindings::types::{
    Assignment, AttemptState, Layout, PhaseOutcome, PhaseStep, PlacementError, PlacementRequest, RecoveryPath, ReplicaHistory, ReplicaPlan,
    ServiceKind, StateField,
};
use ratchet::components::fixtures;
use ratchet::director::{AttemptOutcome, RecoveryReport};
use ratchet::guard::Invariant;
use ratchet::registry::{CallObserver, CallOutcome, InvokeError, Plugins, Registry};
use ratchet::runtime::{HostCall, HostReply, Limits, PluginHost};
use ratchet::store::CoordinatorStore;

/// How a slot's calls are tampered with.
#[derive(Clone, Copy)]
enum Tamper {
    /// lock-services locks nothing, lays out a new cluster's vacancies as
    /// initialize does, sets the path to initialize and goes on to
    /// recruit-logs.
    SkipLocks,
    /// Every layout staged is edited so.
    EditStaged(fn(&mut Layout)),
    /// Every copy asks for its range upside down.
    InvertRanges,
    /// Every unlock leaves out the new generation's first log.
    SkipFirstLog,
    /// Every batch of copies makes its last copy into its first target.
    RepeatCopyTarget,
    /// Every batch of workers asks for a sequencer last.
    SequencerInBatch,
}

/// The registry, with one slot's host calls tampered with.
struct Tampered {
    registry: Arc<Registry>,
    slot: &'static str,
    tamper: Tamper,
}

#[async_trait::async_trait]
impl Plugins for Tampered {
    async fn run_phase(&self, slot: &str, state: &AttemptState, host: Arc<dyn PluginHost>) -> Result<PhaseOutcome, InvokeError> {
        if slot != self.slot {
            return self.registry.run_phase(slot, state, host).await;
        }
        if let Tamper::SkipLocks = self.tamper {
            let mut outcome = self.registry.run_phase("initialize", state, host).await?;
            outcome.state.path = Some(RecoveryPath::Initialize);
            outcome.written.push(StateField::Path);
            outcome.step = PhaseStep::Next("recruit-logs".into());
            return Ok(outcome);
        }
        let host = Arc::new(Intercept { inner: host, tamper: self.tamper });
        self.registry.run_phase(slot, state, host).await
    }

    async fn place(&self, request: &PlacementRequest) -> Result<Result<Vec<Assignment>, PlacementError>, InvokeError> {
        self.registry.place(request).await
    }

    async fn replica_plan(&self, history: &ReplicaHistory) -> Result<ReplicaPlan, InvokeError> {
        self.registry.replica_plan(history).await
    }
}

/// A host that edits what a phase asks before the guard sees it.
struct Intercept {
    inner: Arc<dyn PluginHost>,
    tamper: Tamper,
}

#[async_trait::async_trait]
impl PluginHost for Intercept {
    async fn answer(&self, call: HostCall) -> HostReply {
        match (self.tamper, call) {
            (Tamper::InvertRanges, HostCall::RecoverLog { target, sources, tags, first, last }) => {
                let (first, last) = (last.max(first) + 1, first.min(last));
                self.inner.answer(HostCall::RecoverLog { target, sources, tags, first, last }).await
            }
            (Tamper::InvertRanges, HostCall::RecoverLogs { mut copies }) => {
                for copy in &mut copies {
                    (copy.first, copy.last) = (copy.last.max(copy.first) + 1, copy.first.min(copy.last));
                }
                self.inner.answer(HostCall::RecoverLogs { copies }).await
            }
            (Tamper::RepeatCopyTarget, HostCall::RecoverLogs { mut copies }) => {
                if let Some(first) = copies.first().map(|c| c.target.clone())
                    && let Some(last) = copies.last_mut()
                {
                    last.target = first;
                }
                self.inner.answer(HostCall::RecoverLogs { copies }).await
            }
            (Tamper::SequencerInBatch, HostCall::CreateWorkers { mut requests }) => {
                if let Some(last) = requests.last_mut() {
                    last.1 = ServiceKind::Sequencer;
                }
                self.inner.answer(HostCall::CreateWorkers { requests }).await
            }
            (Tamper::EditStaged(edit), HostCall::StageLayout(mut layout)) => {
                edit(&mut layout);
                self.inner.answer(HostCall::StageLayout(layout)).await
            }
            (Tamper::SkipFirstLog, HostCall::Unlock { ids }) if ids.iter().any(|id| id.starts_with("log-")) => {
                let first = ids.iter().position(|id| id.starts_with("log-")).unwrap_or(0);
                let mut rest = ids.clone();
                rest.remove(first);
                match self.inner.answer(HostCall::Unlock { ids: rest }).await {
                    HostReply::Unlocked(mut results) => {
                        results.insert(first, Ok(()));
                        HostReply::Unlocked(results)
                    }
                    other => other,
                }
            }
            (_, call) => self.inner.answer(call).await,
        }
    }
}

/// A recovery with one slot's calls tampered with.
async fn tampered(h: &Harness, slot: &'static str, tamper: Tamper) -> RecoveryReport {
    h.recover_with(Arc::new(Tampered { registry: h.registry.clone(), slot, tamper })).await
}

/// Boots, commits 300 writes and kills the first log: a recovery is due.
async fn loaded_and_failed(h: &Harness) -> (Layout, Vec<(String, String)>) {
    let old = h.boot().await;
    let acked = h.write(0, 300).await;
    assert_eq!(acked.len(), 300);
    h.crash_node_of(&old, &old.logs[0].id);
    (old, acked)
}

/// Every refusal of `rule` over a report.
fn refusals(report: &RecoveryReport, rule: Invariant) -> Vec<String> {
    report.attempts.iter().flat_map(|a| &a.refusals).filter(|r| r.rule == rule).map(|r| r.message.clone()).collect()
}

#[tokio::test]
async fn s4_a_lock_services_that_locks_nothing_and_initializes_persists_nothing() {
    let h = Harness::with_capacity(20);
    let (old, acked) = loaded_and_failed(&h).await;
    let report = tampered(&h, "lock-services", Tamper::SkipLocks).await;
    assert!(report.layout().is_none(), "a new cluster laid over the old one must not be persisted");
    let refused = refusals(&report, Invariant::KnownAcknowledgements);
    assert!(refused.iter().any(|r| r.starts_with("shard 0: no log of it")), "{refused:?}");
    assert_eq!(h.store.state().unwrap().layout.unwrap(), old, "the old generation stays the cluster's");

    let layout = h.recover().await.layout().cloned().expect("the defaults recover");
    assert!(layout.epoch > old.epoch);
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn s3_an_assemble_layout_that_forges_the_layout_is_refused() {
    type Forgery = (&'static str, fn(&mut Layout));
    let cases: [Forgery; 4] = [
        ("the descriptor of", |l| {
            let proxy = l.commit_proxies[0].clone();
            let described = l.services.iter_mut().find(|s| s.id == proxy).unwrap();
            described.address = "10.66.66.66:6666".into();
        }),
        ("lists storage-", |l| {
            let team = &mut l.storage_teams[0];
            let one = team.storage_ids[0].clone();
            team.storage_ids = vec![one.clone(), one.clone(), one];
        }),
        ("is dropped", |l| {
            let gone = l.storage_teams.remove(1).tag;
            for log in &mut l.logs {
                log.tags.retain(|t| *t != gone);
            }
        }),
        ("carries shard", |l| l.logs[0].tags.push(99)),
    ];
    for (expected, edit) in cases {
        let h = Harness::with_capacity(20);
        let (old, acked) = loaded_and_failed(&h).await;
        let report = tampered(&h, "assemble-layout", Tamper::EditStaged(edit)).await;
        assert!(report.layout().is_none(), "{expected}: persisted");
        let refused = refusals(&report, Invariant::FaithfulLayout);
        assert!(
            refused.iter().any(|r| r.contains(expected) && (!expected.starts_with("lists") || r.ends_with("twice"))),
            "{expected}: {refused:?}"
        );
        assert_eq!(h.store.state().unwrap().layout.unwrap(), old);
        assert!(h.recover().await.layout().is_some(), "{expected}: the defaults recover");
        assert_eq!(h.lost(&acked).await, 0, "{expected}");
    }
}

/// A recovery whose `slot` is tampered with persists nothing and leaves
/// the old layout, the guard refuses a call as S6 with a reason `refused`
/// accepts, and the defaults then recover without loss.
async fn refused_as_bad_arguments(slot: &'static str, tamper: Tamper, refused: impl Fn(&str) -> bool) {
    let h = Harness::with_capacity(20);
    let (old, acked) = loaded_and_failed(&h).await;
    let report = tampered(&h, slot, tamper).await;
    assert!(report.layout().is_none());
    let refusals = refusals(&report, Invariant::ArgumentsChecked);
    assert!(refusals.iter().any(|r| refused(r)), "{refusals:?}");
    assert_eq!(h.store.state().unwrap().layout.unwrap(), old);
    assert!(h.recover().await.layout().is_some());
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn s6_an_inverted_range_is_refused_with_its_rule_and_the_host_keeps_serving() {
    refused_as_bad_arguments("replay-logs", Tamper::InvertRanges, |r| r.starts_with("inverted version range")).await;
}

#[tokio::test]
async fn s6_a_batch_is_checked_call_by_call_and_a_bad_one_is_refused_with_its_rule() {
    // Two copies into one log in one batch: the second is refused.
    refused_as_bad_arguments("replay-logs", Tamper::RepeatCopyTarget, |r| r.contains("is the target of two copies in one call")).await;
    // A sequencer among the logs of a batch: it alone is refused.
    let sequencer = |r: &str| r.starts_with("create-worker makes logs and storage servers; a sequencer");
    refused_as_bad_arguments("recruit-logs", Tamper::SequencerInBatch, sequencer).await;
}

#[tokio::test]
async fn i6_a_generation_is_persisted_only_once_every_service_it_names_serves_it() {
    let h = Harness::with_capacity(20);
    let (old, acked) = loaded_and_failed(&h).await;
    // A log never unlocked holds nothing and would answer a later lock with
    // version 0: a recovery from it must not take that for what was kept.
    let report = tampered(&h, "assemble-layout", Tamper::SkipFirstLog).await;
    assert!(report.layout().is_none());
    let refused = refusals(&report, Invariant::LayoutClosure);
    assert!(refused.iter().any(|r| r.starts_with("persist before log-") && r.contains("was unlocked")), "{refused:?}");
    assert_eq!(h.store.state().unwrap().layout.unwrap(), old);
    assert!(h.recover().await.layout().is_some());
    assert_eq!(h.lost(&acked).await, 0);
}

/// Counts the outcome of every plugin call, by slot.
#[derive(Default)]
struct Calls(Mutex<BTreeMap<(String, &'static str), usize>>);

impl CallObserver for Calls {
    fn call_ended(&self, slot: &str, _version: u32, outcome: CallOutcome) {
        *self.0.lock().unwrap().entry((slot.to_string(), outcome.label())).or_default() += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_placement_policy_is_blamed_for_the_stall_not_the_phase_that_asked() {
    let h = Harness::with_capacity(20);
    h.registry.load_file("placement", std::path::Path::new(fixtures::LOOPING_PLACEMENT)).unwrap();
    // The phase's own deadline is the shorter: were the policy's time
    // charged to it, the phase would time out first.
    h.registry.set_limits("recruit-logs", Limits { deadline: Duration::from_millis(300), ..Limits::default() }).unwrap();
    h.registry.set_limits("placement", Limits { deadline: Duration::from_millis(800), ..Limits::default() }).unwrap();
    let calls = Arc::new(Calls::default());
    h.registry.set_observer(calls.clone());

    let report = h.recover().await;
    assert!(report.layout().is_none());
    for attempt in &report.attempts {
        match &attempt.outcome {
            AttemptOutcome::Stalled(reason) => {
                assert!(reason.starts_with("placement: "), "{reason}");
                assert!(reason.contains("deadline of 800ms exceeded") && reason.contains("asked by recruit-logs"), "{reason}");
            }
            other => panic!("expected a stall, got {other}"),
        }
    }
    let calls = calls.0.lock().unwrap();
    assert_eq!(calls.get(&("placement".to_string(), "timeout")), Some(&report.attempts.len()), "{calls:?}");
    assert_eq!(calls.get(&("recruit-logs".to_string(), "timeout")), None, "{calls:?}");
    assert_eq!(calls.get(&("recruit-logs".to_string(), "ok")), Some(&report.attempts.len()), "{calls:?}");
}
