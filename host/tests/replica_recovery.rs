//! Replica recovery carried out by the real host on the in-process cluster
//! of foremen: the default component in the `replica-recovery` slot
//! decides, and the replica is caught up, truncated or rebuilt before it
//! serves its new generation, under the host's session rules.

mod common;

use common::{completed, node_of};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use ratchet::bindings::types::{
    ClusterError, Epoch, Layout, LockInfo, Node, RecoveryConfig, ServiceDescriptor, ServiceKind, ShardTag, Version,
};
use ratchet::cluster::{Cluster, LocalCluster, PulledPage, RegistrationWatch, RemoteCluster, SnapshotPage};
use ratchet::director::{AttemptOutcome, Director, DirectorOptions, RecoveryReport};
use ratchet::registry::Registry;
use ratchet::replica::{Budget, ReplicaEvent, SessionError, Sessions};
use ratchet::services::Mutation;
use ratchet::store::{CoordinatorStore, MemoryStore};
use ratchet::topology::{NodeSpec, tag_of};

struct Harness {
    local: LocalCluster,
    cluster: Arc<RemoteCluster>,
    store: Arc<MemoryStore>,
    registry: Arc<Registry>,
    /// The sessions every director of the harness runs replicas through,
    /// as a coordinator's directors do.
    sessions: Arc<Mutex<Sessions>>,
}

impl Harness {
    /// 30 nodes in 3 zones that each host one service, so that crashing a
    /// node takes down exactly one replica; logs keep `retention` versions.
    fn new(retention: Option<Version>) -> Self {
        Self::with_budget(retention, Budget::default())
    }

    fn with_budget(retention: Option<Version>, budget: Budget) -> Self {
        let nodes = (0..30).map(|i| NodeSpec { id: format!("n{}", i + 1), zone: format!("z{}", i % 3 + 1), capacity: 1 });
        let local = LocalCluster::with_retention(nodes, retention).unwrap();
        Harness {
            cluster: local.client(),
            local,
            store: Arc::new(MemoryStore::default()),
            registry: Arc::new(Registry::with_defaults(common::runtime()).unwrap()),
            sessions: Arc::new(Mutex::new(Sessions::new(budget))),
        }
    }

    async fn recover_through(&self, cluster: Arc<dyn Cluster>) -> RecoveryReport {
        let options = DirectorOptions { max_attempts: 4, initial_backoff: Duration::from_millis(1), ..DirectorOptions::default() };
        let director = Director::new(self.registry.clone(), cluster, self.store.clone(), RecoveryConfig::default(), options)
            .with_replica_sessions(self.sessions.clone());
        let report = director.recover().await.unwrap();
        // Replicas that join after the persist (replacements of departing
        // replicas) are part of the recovery the tests look at.
        director.joined().await;
        report
    }

    async fn recover(&self) -> RecoveryReport {
        self.recover_through(self.cluster.clone()).await
    }

    /// Commits `count` writes from `start`, pumping every 20.
    async fn write(&self, start: usize, count: usize) -> Vec<(String, String)> {
        let acked = common::commit_writes(&self.cluster, start, count, 20).await;
        self.cluster.pump().await;
        acked
    }

    /// Releases what the live generation does not keep, as a
    /// coordinator's housekeeping does: the nodes host one service each.
    async fn release_strays(&self) {
        let layout = self.cluster.live_layout().unwrap();
        let kept = ratchet::guard::kept_services(&layout);
        for service in self.cluster.services().await.into_iter().filter(|s| !kept.contains(&s.id)) {
            self.cluster.release(&service.id, layout.epoch).await;
        }
    }

    async fn read(&self, key: &str) -> Option<String> {
        self.cluster.read(key).await.ok().flatten()
    }

    async fn lost(&self, acked: &[(String, String)]) -> usize {
        common::unreadable(&self.cluster, acked).await.len()
    }

    fn events_of(&self, replica: &str) -> Vec<ReplicaEvent> {
        let sessions = self.sessions.lock().unwrap();
        sessions.events().iter().filter(|e| e.replica == replica).cloned().collect()
    }

    /// Boots, commits 100 writes, and crashes the node of the first replica
    /// of team 1; answers the first layout and the writes.
    async fn boot_and_lose_a_replica(&self) -> (Layout, Vec<(String, String)>) {
        let boot = completed(&self.recover().await).clone();
        let acked = self.write(0, 100).await;
        self.local.crash(&node_of(&boot, &boot.storage_teams[1].storage_ids[0]));
        (boot, acked)
    }

    /// A replica's durable version and its whole data, page by page.
    async fn contents(&self, id: &str) -> (Version, BTreeMap<String, String>) {
        let mut data = BTreeMap::new();
        let mut after = None;
        loop {
            let page = self.cluster.snapshot_page(id, Epoch::MAX, after.clone(), Version::MAX).await.unwrap();
            data.extend(page.entries);
            after = page.resume;
            if after.is_none() {
                return (page.version, data);
            }
        }
    }

    /// Every replica of every team holds the same data at the same version.
    async fn assert_teams_identical(&self) {
        self.cluster.pump().await;
        let layout = self.cluster.live_layout().unwrap();
        for team in &layout.storage_teams {
            let first = &team.storage_ids[0];
            let (version, data) = self.contents(first).await;
            for id in &team.storage_ids[1..] {
                let (v, d) = self.contents(id).await;
                assert_eq!((v, d.len()), (version, data.len()), "team {}: {id} differs from {first}", team.tag);
                assert!(d == data, "team {}: {id} holds other data than {first}", team.tag);
            }
        }
    }

    /// The node of a replica of team 1 crashes, `writes` more are
    /// acknowledged without it, and it restarts: the replica rejoins behind
    /// its teammates.
    async fn replica_left_behind(&self, writes: usize) -> (String, Vec<(String, String)>) {
        let boot = completed(&self.recover().await).clone();
        let mut acked = self.write(0, 100).await;
        let replica = boot.storage_teams[1].storage_ids[0].clone();
        let node = node_of(&boot, &replica);
        self.local.crash(&node);
        acked.extend(self.write(100, writes).await);
        self.local.start(&node).unwrap();
        (replica, acked)
    }

    /// Replica `id` applies `writes` at `version`, which the cluster never
    /// acknowledged, as a replica that pulled from a log ahead of a commit
    /// that then failed. Requires the lock of `epoch`.
    async fn apply_unacknowledged(&self, id: &str, epoch: Epoch, version: Version, writes: &[(String, String)]) {
        let layout = self.cluster.live_layout().unwrap();
        let mutations = writes
            .iter()
            .map(|(key, value)| (version, Mutation { tag: tag_of(&layout, key), key: key.clone(), value: value.clone() }))
            .collect();
        self.cluster.recover_apply(id, epoch, mutations, version).await.unwrap();
    }
}

fn kinds(events: &[ReplicaEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

#[tokio::test]
async fn a_replica_that_rejoins_behind_catches_up_from_the_logs_before_serving() {
    let h = Harness::new(None);
    let (replica, acked) = h.replica_left_behind(150).await;
    let layout = completed(&h.recover().await).clone();
    assert!(layout.storage_teams[1].storage_ids.contains(&replica), "the replica rejoined its team");

    let events = h.events_of(&replica);
    let opened = &events[0];
    assert!(opened.detail.starts_with("catch-up: replay (100, "), "{opened}");
    assert_eq!(kinds(&events).last(), Some(&"completed"));
    assert!(kinds(&events).contains(&"progress"));
    assert!(events.iter().all(|e| e.epoch == layout.epoch));
    h.assert_teams_identical().await;
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn a_replica_behind_retention_is_rebuilt_from_a_teammate_after_its_generation_persists_and_serves() {
    let h = Harness::new(Some(40));
    let (replica, mut acked) = h.replica_left_behind(200).await;
    // The copy from a teammate waits until the gate opens. The logs cannot
    // catch the replica up, so it is rebuilt either way; the layout names
    // the same copies before and after, so it persists first and the
    // generation serves while the replica is copied.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let director = gated_director(&h, &gate);
    let recovered = tokio::time::timeout(Duration::from_secs(20), director.recover()).await.expect("the recovery waited for a copy");
    let layout = completed(&recovered.unwrap()).clone();
    assert!(layout.storage_teams[1].storage_ids.contains(&replica), "the replica keeps its place in its team");
    assert_eq!(h.store.state().unwrap().layout.map(|l| l.epoch), Some(layout.epoch), "persisted before the copy");
    assert_eq!(h.local.joining_member(&layout), Some(replica.clone()));
    acked.extend(h.write(300, 50).await);
    assert_eq!(h.lost(&acked).await, 0);

    gate.add_permits(1_000);
    director.joined().await;
    assert_eq!(h.local.joining_member(&layout), None, "the replica serves");
    let events = h.events_of(&replica);
    assert!(events[0].detail.starts_with("rebuild: snapshot at "), "{}", events[0]);
    assert_eq!(kinds(&events).last(), Some(&"completed"));
    assert!(events.iter().all(|e| e.epoch == layout.epoch));
    h.assert_teams_identical().await;
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn a_catch_up_over_its_entry_budget_escalates_to_a_rebuild() {
    let budget = Budget { max_entries: 25, ..Budget::default() };
    let h = Harness::with_budget(None, budget);
    let (replica, acked) = h.replica_left_behind(150).await;
    completed(&h.recover().await);

    let events = h.events_of(&replica);
    let escalated = events.iter().position(|e| e.event == "escalated").expect("the catch-up escalated");
    assert!(events[escalated].detail.contains("over the budget of 25"), "{}", events[escalated]);
    let rebuild = &events[escalated + 1];
    assert_eq!(rebuild.event, "opened");
    assert!(rebuild.detail.starts_with("rebuild: ") && rebuild.detail.contains("escalated by the host"), "{rebuild}");
    assert_eq!(kinds(&events).last(), Some(&"completed"));
    h.assert_teams_identical().await;
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn a_replica_ahead_of_committed_is_truncated_before_it_serves() {
    let h = Harness::new(None);
    let boot = completed(&h.recover().await).clone();
    let acked = h.write(0, 100).await;
    let replica = boot.storage_teams[1].storage_ids[0].clone();
    let committed = h.cluster.committed_version();
    // Versions the cluster never acknowledged, as from a log ahead of a
    // commit that then failed.
    let ghost = [("zz-ghost".to_string(), "never acknowledged".to_string())];
    h.apply_unacknowledged(&replica, boot.epoch, committed + 3, &ghost).await;

    completed(&h.recover().await);
    let events = h.events_of(&replica);
    assert!(events[0].detail.starts_with(&format!("catch-up: truncate to {committed}")), "{}", events[0]);
    assert_eq!(kinds(&events), ["opened", "truncated", "completed"]);
    h.assert_teams_identical().await;
    assert_eq!(h.read("zz-ghost").await, None);
    assert_eq!(h.lost(&acked).await, 0);
}

/// What runs before the n-th catch-up page is applied.
type ApplyHook = Box<dyn Fn(u32, Arc<RemoteCluster>, String) -> BoxFuture<'static, ()> + Send + Sync>;

/// The endpoint reported for a replica, from the one it has.
type EndpointHook = Box<dyn Fn(&str, String) -> String + Send + Sync>;

/// The cluster client, with a hook on the calls replica recovery makes.
struct Hooked {
    inner: Arc<RemoteCluster>,
    applies: AtomicU32,
    /// Runs before the n-th catch-up page is applied (from 1), with the
    /// replica's id.
    on_apply: ApplyHook,
    /// The endpoint reported for a replica, from the one it has.
    endpoint: EndpointHook,
    /// Each snapshot page waits for a permit of this gate, if set.
    copy_gate: Option<Arc<tokio::sync::Semaphore>>,
    /// How many times each replica was asked its state.
    states_asked: Mutex<BTreeMap<String, u32>>,
    /// How many times each log was asked what it retains of each shard.
    retained_asked: Mutex<BTreeMap<(String, ShardTag), u32>>,
}

impl Hooked {
    fn new(inner: Arc<RemoteCluster>) -> Self {
        Hooked {
            inner,
            applies: AtomicU32::new(0),
            on_apply: Box::new(|_, _, _| Box::pin(async {})),
            endpoint: Box::new(|_, endpoint| endpoint),
            copy_gate: None,
            states_asked: Mutex::default(),
            retained_asked: Mutex::default(),
        }
    }
}

#[async_trait::async_trait]
impl Cluster for Hooked {
    async fn nodes(&self) -> Vec<Node> {
        self.inner.nodes().await
    }
    async fn services(&self) -> Vec<ServiceDescriptor> {
        self.inner.services().await
    }
    async fn lock(&self, id: &str, epoch: Epoch) -> Result<LockInfo, ClusterError> {
        self.inner.lock(id, epoch).await
    }
    async fn create_worker(&self, node: &str, kind: ServiceKind, epoch: Epoch) -> Result<ServiceDescriptor, ClusterError> {
        self.inner.create_worker(node, kind, epoch).await
    }
    async fn recover_log(
        &self,
        epoch: Epoch,
        target: &str,
        sources: &[String],
        tags: &[ShardTag],
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError> {
        self.inner.recover_log(epoch, target, sources, tags, first, last).await
    }
    async fn start_role(&self, node: &str, kind: ServiceKind, epoch: Epoch, start: Version) -> Result<ServiceDescriptor, ClusterError> {
        self.inner.start_role(node, kind, epoch, start).await
    }
    async fn unlock(&self, id: &str, epoch: Epoch, layout: &Layout) -> Result<(), ClusterError> {
        self.inner.unlock(id, epoch, layout).await
    }
    async fn adopt(&self, layout: &Layout) {
        self.inner.adopt(layout).await
    }
    async fn release(&self, id: &str, epoch: Epoch) {
        self.inner.release(id, epoch).await
    }
    fn known_durable(&self, id: &str) -> Option<Version> {
        self.inner.known_durable(id)
    }
    fn registrations(&self) -> RegistrationWatch {
        self.inner.registrations()
    }
    async fn replica_state(&self, id: &str) -> Result<(Version, String), ClusterError> {
        *self.states_asked.lock().unwrap().entry(id.to_string()).or_default() += 1;
        let (version, endpoint) = self.inner.replica_state(id).await?;
        Ok((version, (self.endpoint)(id, endpoint)))
    }
    async fn log_retained(&self, id: &str, tag: ShardTag) -> Result<(Version, Version), ClusterError> {
        *self.retained_asked.lock().unwrap().entry((id.to_string(), tag)).or_default() += 1;
        self.inner.log_retained(id, tag).await
    }
    async fn pull(&self, log: &str, tag: ShardTag, after: Version, upto: Version) -> Result<PulledPage, ClusterError> {
        self.inner.pull(log, tag, after, upto).await
    }
    async fn recover_apply(&self, id: &str, epoch: Epoch, mutations: Vec<(Version, Mutation)>, upto: Version) -> Result<(), ClusterError> {
        let n = self.applies.fetch_add(1, Ordering::SeqCst) + 1;
        (self.on_apply)(n, self.inner.clone(), id.to_string()).await;
        self.inner.recover_apply(id, epoch, mutations, upto).await
    }
    async fn truncate(&self, id: &str, epoch: Epoch, to: Version) -> Result<(), ClusterError> {
        self.inner.truncate(id, epoch, to).await
    }
    async fn snapshot_page(&self, id: &str, epoch: Epoch, after: Option<String>, as_of: Version) -> Result<SnapshotPage, ClusterError> {
        if let Some(gate) = &self.copy_gate {
            gate.acquire().await.expect("the gate stays open").forget();
        }
        self.inner.snapshot_page(id, epoch, after, as_of).await
    }
    async fn rebuild_page(
        &self,
        id: &str,
        epoch: Epoch,
        version: Version,
        entries: Vec<(String, String)>,
        first: bool,
        last: bool,
    ) -> Result<(), ClusterError> {
        self.inner.rebuild_page(id, epoch, version, entries, first, last).await
    }
}

#[tokio::test]
async fn an_epoch_bump_mid_catch_up_voids_the_session_and_the_newer_epoch_finishes() {
    let h = Harness::new(None);
    let (replica, acked) = h.replica_left_behind(150).await;
    let mut hooked = Hooked::new(h.cluster.clone());
    let bumped = Arc::new(Mutex::new(None::<Epoch>));
    let seen = bumped.clone();
    // Once the catch-up has begun, a newer recovery takes an epoch and
    // locks the replica before its first page lands.
    let store = h.store.clone();
    hooked.on_apply = Box::new(move |n, cluster, id| {
        let (store, seen) = (store.clone(), seen.clone());
        Box::pin(async move {
            if n == 1 {
                let epoch = store.next_epoch().unwrap();
                cluster.lock(&id, epoch).await.unwrap();
                *seen.lock().unwrap() = Some(epoch);
            }
        })
    });
    let report = h.recover_through(Arc::new(hooked)).await;
    let first = &report.attempts[0];
    assert!(matches!(first.outcome, AttemptOutcome::Superseded(_)), "{}", first.outcome);

    let events = h.events_of(&replica);
    let voided = events.iter().find(|e| e.event == "invalidated").expect("the session was invalidated");
    assert!(voided.detail.contains("began"), "{voided}");
    let stale = h.sessions.lock().unwrap().progress(voided.session, voided.epoch, 1, 1);
    assert!(matches!(stale, Err(SessionError::Stale { .. })), "{stale:?}");
    assert!(bumped.lock().unwrap().is_some());

    // The next recovery, above the bump, brings the replica up to date.
    let layout = completed(&h.recover().await).clone();
    let events = h.events_of(&replica);
    let last = events.last().unwrap();
    assert_eq!((last.event.as_str(), last.epoch), ("completed", layout.epoch));
    h.assert_teams_identical().await;
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn an_endpoint_change_mid_session_voids_it_and_the_retry_keeps_what_was_made_durable() {
    let h = Harness::new(None);
    let (replica, acked) = h.replica_left_behind(120).await;
    let mut hooked = Hooked::new(h.cluster.clone());
    let target = replica.clone();
    let asked = AtomicU32::new(0);
    // The replica answers from a new endpoint from its second state query
    // on, as a worker restarted on another address would.
    hooked.endpoint =
        Box::new(
            move |id, endpoint| {
                if id == target && asked.fetch_add(1, Ordering::SeqCst) >= 1 { format!("{endpoint}-moved") } else { endpoint }
            },
        );
    let report = h.recover_through(Arc::new(hooked)).await;
    completed(&report);
    assert!(matches!(report.attempts[0].outcome, AttemptOutcome::Stalled(_)), "{}", report.attempts[0].outcome);

    let events = h.events_of(&replica);
    let voided = events.last().unwrap();
    assert_eq!(voided.event, "invalidated", "the session could not complete: {events:?}");
    assert!(voided.detail.contains("endpoint changed"), "{voided}");
    assert!(events.iter().all(|e| e.event != "completed"));
    // What the voided session applied was made durable page by page, with
    // its true version: the retry finds the replica at the committed version.
    let stale = h.sessions.lock().unwrap().complete(voided.session, voided.epoch);
    assert!(matches!(stale, Err(SessionError::Stale { .. })), "{stale:?}");
    h.assert_teams_identical().await;
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn a_truncation_beyond_the_replicas_undo_window_escalates_to_a_rebuild() {
    let h = Harness::new(None);
    let boot = completed(&h.recover().await).clone();
    let acked = h.write(0, 100).await;
    let replica = boot.storage_teams[1].storage_ids[0].clone();
    let committed = h.cluster.committed_version();
    // So far ahead that the replica keeps no undo entries back to committed.
    let ahead = committed + ratchet::services::UNDO_VERSIONS + 5;
    let ghost = [("zz-ghost".to_string(), "never acknowledged".to_string())];
    h.apply_unacknowledged(&replica, boot.epoch, ahead, &ghost).await;

    completed(&h.recover().await);
    let events = h.events_of(&replica);
    assert_eq!(kinds(&events), ["opened", "escalated", "opened", "progress", "completed"], "{events:#?}");
    assert!(events[1].detail.contains("cannot truncate"), "{}", events[1]);
    assert!(events[2].detail.starts_with("rebuild: snapshot at"), "{}", events[2]);
    h.assert_teams_identical().await;
    assert_eq!(h.read("zz-ghost").await, None);
    assert_eq!(h.lost(&acked).await, 0);
}

/// A director whose replica copies wait for `gate`.
/// The replica of team 1 in `layout` that `boot` did not name: the
/// replacement of the one [`Harness::boot_and_lose_a_replica`] lost.
fn replacement_in_team_1(boot: &Layout, layout: &Layout) -> String {
    layout.storage_teams[1].storage_ids.iter().find(|id| !boot.storage_teams[1].storage_ids.contains(id)).unwrap().clone()
}

fn gated_director(h: &Harness, gate: &Arc<tokio::sync::Semaphore>) -> Director {
    let mut hooked = Hooked::new(h.cluster.clone());
    hooked.copy_gate = Some(gate.clone());
    let options = DirectorOptions { max_attempts: 4, initial_backoff: Duration::from_millis(1), ..DirectorOptions::default() };
    Director::new(h.registry.clone(), Arc::new(hooked), h.store.clone(), RecoveryConfig::default(), options)
        .with_replica_sessions(h.sessions.clone())
}

#[tokio::test]
async fn a_lost_replica_departs_and_its_replacement_is_seeded_from_a_copy_as_of_one_version_after_the_generation_persists() {
    let h = Harness::new(None);
    let (boot, acked) = h.boot_and_lose_a_replica().await;
    let lost = boot.storage_teams[1].storage_ids[0].clone();
    // The copies that seed a replacement wait until the gate opens. The
    // lost replica stays in its team as a departing copy (the logs keep
    // what it lacks), so the team keeps its replication factor's copies and
    // the generation persists without waiting for the copy.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let director = gated_director(&h, &gate);
    let recovered = tokio::time::timeout(Duration::from_secs(10), director.recover()).await;
    let second = completed(&recovered.expect("the generation persists before its replacement is seeded").unwrap()).clone();
    let team = &second.storage_teams[1];
    assert_eq!(team.departing.iter().map(|d| d.service.id.as_str()).collect::<Vec<_>>(), [lost.as_str()]);
    assert_eq!(team.departing[0].service, *boot.services.iter().find(|s| s.id == lost).unwrap());
    // Pumped before its node crashed, it held every acknowledged write.
    assert_eq!(team.departing[0].durable_version, second.recovery_version);
    let replacement = replacement_in_team_1(&boot, &second);
    assert_eq!(h.local.joining_member(&second), Some(replacement.clone()));
    assert_eq!(h.lost(&acked).await, 0, "its teammates serve every acknowledged write");
    gate.add_permits(1_000);
    director.joined().await;
    let events = h.events_of(&replacement);
    assert_eq!(kinds(&events), ["opened", "progress", "completed"], "{events:#?}");
    assert!(events[0].detail.starts_with("rebuild: snapshot at "), "{}", events[0]);
    assert_eq!(h.local.joining_member(&second), None);
    h.assert_teams_identical().await;
    assert_eq!(h.lost(&acked).await, 0);
    // Once the replacement holds the shard, the next recovery drops the
    // departing replica.
    h.release_strays().await;
    let third = completed(&h.recover().await).clone();
    let team = &third.storage_teams[1];
    assert!(team.departing.is_empty() && !team.storage_ids.contains(&lost), "{team:?}");
    assert!(team.storage_ids.contains(&replacement));
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn a_departing_replica_that_comes_back_serves_again_when_its_teammates_are_lost_before_its_replacement_joins() {
    // Logs keeping 2 versions: the pump pops them as soon as two live
    // replicas hold a version, but not past what a departing replica lacks
    // while its replacement joins.
    let h = Harness::new(Some(2));
    let (boot, mut acked) = h.boot_and_lose_a_replica().await;
    let team = boot.storage_teams[1].storage_ids.clone();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let director = gated_director(&h, &gate);
    let recovered = tokio::time::timeout(Duration::from_secs(10), director.recover()).await;
    let second = completed(&recovered.expect("the generation persists before its replacement is seeded").unwrap()).clone();
    assert_eq!(second.storage_teams[1].departing.len(), 1);
    acked.extend(h.write(100, 60).await);
    // Both teammates are lost for good before the replacement is seeded,
    // and the departing replica's node comes back: it is the one copy of
    // the shard's older versions, and the logs kept the rest.
    for id in &team[1..] {
        assert!(h.local.lose(id), "{id} is hosted");
    }
    h.local.start(&node_of(&boot, &team[0])).unwrap();
    // It also brings back more than the layout trusts it with: the version
    // after its floor, as an attempt that never persisted could have
    // left it, which the second generation issued again with other data.
    let through = second.storage_teams[1].departing[0].durable_version;
    let (key, _) = acked.iter().find(|(key, _)| tag_of(&boot, key) == boot.storage_teams[1].tag).unwrap().clone();
    h.apply_unacknowledged(&team[0], boot.epoch, through + 1, &[(key.clone(), "never acknowledged".into())]).await;
    h.release_strays().await;
    let third = completed(&h.recover().await).clone();
    assert!(third.storage_teams[1].storage_ids.contains(&team[0]), "{:?}", third.storage_teams[1]);
    let events = h.events_of(&team[0]);
    assert!(events.iter().any(|e| e.event == "truncated" && e.detail == format!("to {through}")), "{events:#?}");
    gate.add_permits(1_000);
    director.joined().await;
    assert_ne!(h.read(&key).await.as_deref(), Some("never acknowledged"));
    h.assert_teams_identical().await;
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn a_recovery_asks_each_log_and_replica_for_its_figures_once_and_nothing_of_a_replica_locked_at_the_recovery_version() {
    let h = Harness::new(None);
    let (boot, acked) = h.boot_and_lose_a_replica().await;
    let hooked = Arc::new(Hooked::new(h.cluster.clone()));
    let second = completed(&h.recover_through(hooked.clone()).await).clone();
    let replacement = replacement_in_team_1(&boot, &second);
    let states = hooked.states_asked.lock().unwrap().clone();
    // The replacement is asked where it starts and, as its session ends,
    // that it is still there; its teammates once, as the sources of its
    // copy, and only by it.
    assert_eq!(states.get(&replacement), Some(&2), "{states:?}");
    for mate in second.storage_teams[1].storage_ids.iter().filter(|id| **id != replacement) {
        assert_eq!(states.get(mate), Some(&1), "{mate}: {states:?}");
    }
    // Every other replica was locked at the recovery version: its lock
    // said all there is to know.
    for team in second.storage_teams.iter().filter(|t| t.tag != second.storage_teams[1].tag) {
        for id in &team.storage_ids {
            assert_eq!(states.get(id), None, "{id} was asked its state: {states:?}");
        }
    }
    let retained = hooked.retained_asked.lock().unwrap().clone();
    assert!(!retained.is_empty() && retained.values().all(|n| *n == 1), "{retained:?}");
    assert!(retained.keys().all(|(_, tag)| *tag == second.storage_teams[1].tag), "{retained:?}");
    h.assert_teams_identical().await;
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn replicas_of_one_team_brought_up_together_share_the_figures_they_ask_for() {
    let h = Harness::new(None);
    let boot = completed(&h.recover().await).clone();
    let mut acked = h.write(0, 100).await;
    // Acknowledged and not pumped: every replica is behind the logs.
    acked.extend(common::commit_writes(&h.cluster, 100, 20, 1_000).await);
    h.local.crash(&node_of(&boot, &boot.storage_teams[1].storage_ids[0]));
    let hooked = Arc::new(Hooked::new(h.cluster.clone()));
    let second = completed(&h.recover_through(hooked.clone()).await).clone();
    // Each replica the unlock brings up is asked where it starts, once
    // whoever asks, and as its session ends that it is still there. The
    // replacement of the lost replica joins after the persist: it is
    // asked once more where it starts and as its own session ends, and
    // its teammates once more, since they moved.
    let states = hooked.states_asked.lock().unwrap().clone();
    let lost = &boot.storage_teams[1].storage_ids[0];
    assert_eq!(second.storage_teams[1].departing.iter().map(|d| &d.service.id).collect::<Vec<_>>(), [lost]);
    let replacement = &replacement_in_team_1(&boot, &second);
    for team in &second.storage_teams {
        for id in &team.storage_ids {
            let expected = if id == replacement || team.tag == second.storage_teams[1].tag { 3 } else { 2 };
            assert_eq!(states.get(id), Some(&expected), "{id}: {states:?}");
        }
    }
    // What a log retains of a shard is asked once for the whole team, and
    // once more by the replacement.
    let retained = hooked.retained_asked.lock().unwrap().clone();
    let carried: usize = second.logs.iter().map(|l| l.tags.len()).sum();
    assert_eq!(retained.len(), carried, "{retained:?}");
    let joined = second.storage_teams[1].tag;
    assert!(retained.iter().all(|((_, tag), n)| *n == if *tag == joined { 2 } else { 1 }), "{retained:?}");
    h.assert_teams_identical().await;
    assert_eq!(h.lost(&acked).await, 0);
}

#[tokio::test]
async fn the_logs_keep_what_only_one_live_replica_holds_so_losing_it_for_good_loses_nothing() {
    // Logs keeping 2 versions: a team's two other replicas go down, writes
    // go on with one live replica, and then that one is lost for good.
    let h = Harness::new(Some(2));
    let boot = completed(&h.recover().await).clone();
    let mut acked = h.write(0, 100).await;
    let team = boot.storage_teams[1].storage_ids.clone();
    for id in &team[1..] {
        h.local.crash(&node_of(&boot, id));
    }
    acked.extend(h.write(100, 60).await);
    assert!(h.local.lose(&team[0]), "{} is hosted", team[0]);
    for id in &team[1..] {
        h.local.start(&node_of(&boot, id)).unwrap();
    }
    // The two that come back catch up from the logs: nothing was popped
    // that only the lost replica held.
    let second = completed(&h.recover().await).clone();
    assert!(second.storage_teams[1].storage_ids.iter().all(|id| *id != team[0]));
    h.assert_teams_identical().await;
    assert_eq!(h.lost(&acked).await, 0);
}
