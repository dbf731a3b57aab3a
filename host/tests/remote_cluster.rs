//! The director, its guard and the default wasm phases against worker
//! foremen reached over TCP on 127.0.0.1, each with its own data directory:
//! the same recovery as in process, through the real transport. A worker
//! that stops answering is skipped and recovered from; a worker restarted
//! on its data directory comes back with what it acknowledged.

mod common;

use common::{completed, node_of};

use std::sync::Arc;
use std::time::Duration;

use ratchet::bindings::types::ClusterError;
use ratchet::bindings::types::RecoveryConfig;
use ratchet::cluster::{Cluster, Health, RemoteCluster};
use ratchet::director::{Director, DirectorOptions};
use ratchet::registry::Registry;
use ratchet::services::Disk;
use ratchet::store::MemoryStore;
use ratchet::topology::NodeSpec;
use ratchet::transport::{TransportConfig, serve};
use ratchet::worker::{Foreman, WorkerProtocol};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

struct Worker {
    spec: NodeSpec,
    dir: tempfile::TempDir,
    addr: String,
    server: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts (or restarts) the foreman on its data directory and address.
    async fn start(&mut self) {
        let listener = TcpListener::bind(&self.addr).await.unwrap();
        let foreman = Arc::new(Foreman::open(self.spec.clone(), Disk::Dir(self.dir.path().into()), self.addr.clone()).unwrap());
        self.server = Some(tokio::spawn(serve::<WorkerProtocol, _>(listener, foreman, config())));
    }

    /// Stops the foreman: its connections close and it answers nothing.
    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }
}

fn config() -> TransportConfig {
    TransportConfig { call_timeout: Duration::from_millis(500), ..TransportConfig::default() }
}

/// Six workers over three zones, registered with a new remote cluster.
async fn six_workers() -> (Vec<Worker>, Arc<RemoteCluster>) {
    six_workers_of(RemoteCluster::new(config())).await
}

async fn six_workers_of(cluster: RemoteCluster) -> (Vec<Worker>, Arc<RemoteCluster>) {
    let cluster = Arc::new(cluster);
    let mut workers = Vec::new();
    for i in 0..6 {
        // Reserve a port, then let the foreman bind it.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
        let spec = NodeSpec { id: format!("n{}", i + 1), zone: format!("z{}", i % 3 + 1), capacity: 10 };
        let mut worker = Worker { spec, dir: tempfile::tempdir().unwrap(), addr, server: None };
        worker.start().await;
        cluster.register(&worker.spec.id, &worker.spec.zone, worker.spec.capacity, &worker.addr);
        workers.push(worker);
    }
    (workers, cluster)
}

fn director(cluster: Arc<RemoteCluster>) -> Director {
    // Three proxies: concurrent commits reach the logs out of order.
    director_with(cluster, RecoveryConfig { shards: 3, desired_proxies: 3, ..RecoveryConfig::default() })
}

fn director_with(cluster: Arc<RemoteCluster>, config: RecoveryConfig) -> Director {
    let registry = Arc::new(Registry::with_defaults(common::runtime()).unwrap());
    let options = DirectorOptions { max_attempts: 4, initial_backoff: Duration::from_millis(5), ..Default::default() };
    Director::new(registry, cluster, Arc::new(MemoryStore::default()), config, options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_workers_over_tcp_recovers_from_a_dead_worker_without_loss() {
    let (mut workers, cluster) = six_workers().await;
    let director = director(cluster.clone());
    let first = completed(&director.recover().await.unwrap());
    assert_eq!(first.epoch, 1);
    assert_eq!(first.logs.len(), 3);
    assert_eq!(first.commit_proxies.len(), 3);

    let mut acked = Vec::new();
    for i in 0..200 {
        let write = (format!("{:08x}-{i}", (i as u32).wrapping_mul(2_654_435_761)), format!("v{i}"));
        cluster.commit(std::slice::from_ref(&write)).await.unwrap();
        acked.push(write);
        if i % 50 == 49 {
            cluster.pump().await;
        }
    }

    // Clients commit concurrently, through three proxies in turn: a log
    // holds a push until the versions before it have arrived.
    let writers = (0..4).map(|w| {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25 {
                let write = (format!("w{w}-{i}"), format!("c{w}-{i}"));
                cluster.commit(std::slice::from_ref(&write)).await.expect("a concurrent commit is acknowledged");
                acked.push(write);
            }
            acked
        })
    });
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }

    // The worker hosting the first log dies, with everything on it.
    let dead = node_of(&first, &first.logs[0].id);
    let dead_index = workers.iter().position(|w| w.spec.id == dead).unwrap();
    workers[dead_index].stop().await;
    assert!(cluster.commit(&[("k".into(), "v".into())]).await.is_err(), "a generation missing a log cannot commit");
    if node_of(&first, first.sequencer.as_deref().unwrap()) != dead {
        // The proxy took a version it could not push: it reports its
        // generation broken, which is what makes the coordinator recover.
        cluster.services().await;
        assert_eq!(cluster.broken_proxies().len(), 1, "{:?}", cluster.broken_proxies());
    }

    // What `ratchet status` shows, from one question to each worker: the
    // dead node unhealthy, and none of its services.
    let (nodes, services) = cluster.survey().await;
    assert_eq!(nodes.len(), 6);
    assert!(nodes.iter().all(|n| n.healthy == (n.id != dead)), "{nodes:?}");
    assert!(services.iter().all(|s| s.node != dead), "{services:?}");
    let alive = first.services.iter().filter(|s| s.node != dead);
    assert!(alive.clone().count() > 0 && alive.clone().all(|s| services.iter().any(|t| t.id == s.id)), "{services:?}");
    assert_eq!(services.len(), cluster.services().await.len());

    let report = director.recover().await.unwrap();
    let second = completed(&report);
    assert_eq!(second.epoch, 2);
    assert!(second.services.iter().all(|s| s.node != dead), "nothing is placed on the dead worker");
    let lost = common::unreadable(&cluster, &acked).await;
    assert!(lost.is_empty(), "lost {} acknowledged writes: {lost:?}", lost.len());
    cluster.commit(&[("after".into(), "recovery".into())]).await.unwrap();

    // Restarted on its data directory, the dead worker's log comes back with
    // what it acknowledged, and refuses its old epoch.
    workers[dead_index].start().await;
    let log = first.logs[0].id.clone();
    let lock = cluster.lock(&log, 1).await;
    assert!(matches!(lock, Err(ratchet::bindings::types::ClusterError::Superseded(_))), "{lock:?}");
    let info = cluster.lock(&log, 3).await.unwrap();
    let ratchet::bindings::types::LockInfo::Log(info) = info else { panic!("not a log: {info:?}") };
    assert!(info.last_version >= 300, "the restarted log kept its acknowledged versions: {info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_holds_a_push_until_the_versions_before_it_arrive() {
    use ratchet::bindings::types::ServiceKind;
    use ratchet::services::Mutation;
    use ratchet::transport::Client;
    use ratchet::worker::{Serving, WorkerReply, WorkerRequest};

    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
    let spec = NodeSpec { id: "n1".into(), zone: "z1".into(), capacity: 4 };
    let mut worker = Worker { spec, dir: tempfile::tempdir().unwrap(), addr: addr.clone(), server: None };
    worker.start().await;
    // Longer than the second a push waits for the versions before it.
    let patient = TransportConfig { call_timeout: Duration::from_secs(3), ..TransportConfig::default() };
    let client = || Client::<WorkerProtocol>::new(addr.as_str(), patient.clone());
    let Ok(Ok(WorkerReply::Created(log))) = client().call(WorkerRequest::CreateWorker { kind: ServiceKind::Log, epoch: 1 }).await else {
        panic!("the log was not created");
    };
    let serving = Serving::Member { tags: vec![0], recovery_version: 0 };
    client().call(WorkerRequest::Unlock { id: log.id.clone(), epoch: 1, serving }).await.unwrap().unwrap();
    let push = |prev, version| {
        let mutations = vec![Mutation { tag: 0, key: format!("k{version}"), value: "v".into() }];
        let request = WorkerRequest::Push { id: log.id.clone(), epoch: 1, prev, version, mutations };
        let client = client();
        async move { client.call(request).await.unwrap() }
    };

    // Version 2 (after 1) arrives first, from one proxy; version 1 a little
    // later, from another. The log takes both, in order.
    let early = tokio::spawn(push(1, 2));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!early.is_finished(), "version 2 was answered before version 1 arrived");
    assert_eq!(push(0, 1).await, Ok(WorkerReply::Done));
    assert_eq!(early.await.unwrap(), Ok(WorkerReply::Done));

    // A gap that never fills is refused after the wait, and the log is intact.
    let refused = push(5, 6).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(push(2, 3).await, Ok(WorkerReply::Done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_and_a_replica_larger_than_a_frame_move_in_pages() {
    // Data moves over a transport of its own, bounded by the replica
    // session's budget, as a coordinator builds it: installing a copy of
    // 19 MB (written and fsynced whole) may take longer than the 500 ms
    // other calls get here.
    let bulk = TransportConfig { call_timeout: ratchet::replica::Budget::default().max_duration, ..TransportConfig::default() };
    let cluster = RemoteCluster::new(config()).with_bulk_transport(Arc::new(ratchet::transport::TcpTransport::new(bulk)));
    let (mut workers, cluster) = six_workers_of(cluster).await;
    // One shard: its log range and its replicas hold everything.
    let director = director_with(cluster.clone(), RecoveryConfig { shards: 1, ..RecoveryConfig::default() });
    let first = completed(&director.recover().await.unwrap());

    // About 19 MB of writes: more than one frame (16 MiB) can carry.
    let value = "x".repeat(8 << 10);
    let mut keys = Vec::new();
    for commit in 0..24 {
        let writes: Vec<(String, String)> =
            (0..100).map(|i| (format!("{:08x}-{commit}-{i}", (i as u32).wrapping_mul(2_654_435_761)), value.clone())).collect();
        cluster.commit(&writes).await.unwrap();
        keys.extend(writes.into_iter().map(|(k, _)| k));
    }
    assert!(keys.len() * value.len() > ratchet::transport::MAX_FRAME);

    // A log's worker dies before storage pulled anything: replay copies the
    // whole history into the new logs, a replica lost with the worker is
    // seeded from a teammate, and storage pulls what it lacks, each a page
    // at a time.
    cluster.pump().await;
    // Two nodes die, in two zones: one with a log, one with a replica.
    let zone = |node: &str| workers.iter().find(|w| w.spec.id == node).unwrap().spec.zone.clone();
    let log_node = node_of(&first, &first.logs[0].id);
    let replica_node = first.storage_teams[0]
        .storage_ids
        .iter()
        .map(|id| node_of(&first, id))
        .find(|n| *n != log_node && zone(n) != zone(&log_node))
        .expect("a replica in another zone");
    for dead in [log_node, replica_node] {
        workers.iter_mut().find(|w| w.spec.id == dead).unwrap().stop().await;
    }
    let second = completed(&director.recover().await.unwrap());
    assert!(second.epoch > first.epoch);
    for key in keys.iter().step_by(97) {
        assert_eq!(cluster.read(key).await.unwrap().as_deref(), Some(value.as_str()), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pump_pops_the_logs_to_their_retention_and_reports_a_replica_left_behind() {
    let (mut workers, cluster) = six_workers_of(RemoteCluster::new(config()).with_log_retention(10)).await;
    let director = director_with(cluster.clone(), RecoveryConfig { shards: 1, ..RecoveryConfig::default() });
    let layout = completed(&director.recover().await.unwrap());
    let retained = || async {
        let mut spans = Vec::new();
        for log in &layout.logs {
            spans.push(cluster.log_retained(&log.id, log.tags[0]).await.unwrap());
        }
        spans
    };

    // A replica whose node hosts nothing else the generation needs is
    // down while the others take 40 versions: the logs drop the history
    // it lacks, but never what no live replica holds.
    let hosts = |node: &str| layout.services.iter().filter(|s| s.node == node).count();
    let behind = layout.storage_teams[0].storage_ids.iter().find(|id| hosts(&node_of(&layout, id)) == 1).expect("a storage-only node");
    let node = node_of(&layout, behind);
    workers.iter_mut().find(|w| w.spec.id == node).unwrap().stop().await;
    let mut last = 0;
    for i in 0..40 {
        last = cluster.commit(&[(format!("k{i:02}"), format!("v{i}"))]).await.unwrap();
    }
    assert!(cluster.pump().await.is_empty(), "the live replicas caught up");
    assert_eq!(retained().await, vec![(last - 10, last); layout.logs.len()]);
    for i in 0..40 {
        assert_eq!(cluster.read(&format!("k{i:02}")).await.unwrap(), Some(format!("v{i}")), "storage holds what was popped");
    }

    // Back, it serves but cannot catch up from the logs: reported, so the
    // coordinator recovers and rebuilds it.
    workers.iter_mut().find(|w| w.spec.id == node).unwrap().start().await;
    assert_eq!(cluster.pump().await, vec![behind.clone()]);
    let more = cluster.commit(&[("k40".into(), "v40".into())]).await.unwrap();
    cluster.pump().await;
    assert_eq!(retained().await, vec![(more - 10, more); layout.logs.len()]);
}

/// A cluster whose failure detector fails a worker after `timeout`, its
/// other calls bounded by 10 s.
fn detected(timeout: Duration) -> RemoteCluster {
    let heartbeats = TransportConfig { call_timeout: timeout, ..TransportConfig::default() };
    let calls = TransportConfig { call_timeout: Duration::from_secs(10), ..TransportConfig::default() };
    RemoteCluster::new(calls).with_failure_detector(Arc::new(ratchet::transport::TcpTransport::new(heartbeats)), timeout)
}

/// Waits until the detector's verdict on `node` satisfies `wanted`; returns
/// how long that took.
async fn until_health(cluster: &RemoteCluster, node: &str, wanted: impl Fn(&Health) -> bool) -> Duration {
    let started = tokio::time::Instant::now();
    let detector = cluster.detector().expect("a detector");
    while !wanted(&detector.health(node)) {
        assert!(started.elapsed() < Duration::from_secs(10), "{node} is still {:?}", detector.health(node));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connection_drops_is_failed_at_once_and_answers_again_when_back() {
    // A failure timeout of 5 s: a failure seen sooner was seen by the drop.
    let (mut workers, cluster) = six_workers_of(detected(Duration::from_secs(5))).await;
    until_health(&cluster, "n1", |h| *h == Health::Alive).await;
    let mut registrations = cluster.registrations();

    workers[0].stop().await;
    let seen = until_health(&cluster, "n1", |h| h.failure().is_some()).await;
    assert!(seen < Duration::from_secs(1), "a dropped connection is seen at once, not after the timeout: {seen:?}");
    let started = tokio::time::Instant::now();
    let nodes = cluster.nodes().await;
    assert!(started.elapsed() < Duration::from_secs(1), "a failed node is not asked");
    assert!(!nodes.iter().find(|n| n.id == "n1").unwrap().healthy);
    assert!(nodes.iter().filter(|n| n.id != "n1").all(|n| n.healthy));
    let refused = cluster.create_worker("n1", ratchet::bindings::types::ServiceKind::Log, 1).await;
    assert!(matches!(&refused, Err(ClusterError::Unreachable(why)) if why.contains("n1")), "{refused:?}");

    workers[0].start().await;
    until_health(&cluster, "n1", |h| *h == Health::Alive).await;
    tokio::time::timeout(Duration::from_secs(5), registrations.changed()).await.expect("a node back wakes a stalled director");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_is_failed_after_the_timeout_ends_the_calls_in_flight_and_expires() {
    // A worker that accepts connections and never answers: a stopped
    // process, or a machine behind a cut link, whose sockets stay open.
    let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hung.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            open.push(stream);
        }
    });
    let (workers, cluster) = six_workers_of(detected(Duration::from_millis(300))).await;
    cluster.register("n7", "z1", 10, &addr);

    let started = tokio::time::Instant::now();
    let in_flight = cluster.create_worker("n7", ratchet::bindings::types::ServiceKind::Log, 1).await;
    let waited = started.elapsed();
    assert!(matches!(&in_flight, Err(ClusterError::Unreachable(why)) if why.contains("n7")), "{in_flight:?}");
    assert!(waited < Duration::from_secs(2), "the call ended when its node failed, not at its own 10 s timeout: {waited:?}");
    assert!(cluster.detector().unwrap().health("n7").failure().is_some());
    let nodes = cluster.nodes().await;
    assert!(!nodes.iter().find(|n| n.id == "n7").unwrap().healthy);

    // It stops registering: it leaves the directory, and `nodes` with it.
    // The six others stop registering too (their registrations held up on
    // the way, behind a hung coordinator say) but answer their heartbeats:
    // they stay.
    let expired = tokio::time::timeout(Duration::from_secs(10), async {
        while cluster.registered_nodes().contains("n7") {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    expired.await.expect("a worker that stops registering expires");
    assert!(cluster.nodes().await.iter().all(|n| n.id != "n7"));
    let nodes = cluster.nodes().await;
    assert_eq!(nodes.len(), 6, "the workers that answer their heartbeats stay");
    assert!(nodes.iter().all(|n| n.healthy));
    assert!(workers.iter().all(|w| cluster.registered_nodes().contains(&w.spec.id)));
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_whose_sequencer_hands_out_no_version_fails_the_probe_though_every_member_answers() {
    let (_workers, cluster) = six_workers_of(detected(Duration::from_millis(500))).await;
    let director = director(cluster.clone());
    let layout = completed(&director.recover().await.unwrap());
    let members = ratchet::guard::named_services(&layout);
    cluster.commit(&[("k".into(), "v".into())]).await.unwrap();
    cluster.check(&members, true).await.expect("a whole generation");
    cluster.probe(Duration::from_millis(500)).await.expect("a generation that commits passes the probe");

    // A newer epoch than this director ever took locks the sequencer (a
    // rival, or a restored store): it hands out no version again.
    let sequencer = layout.sequencer.clone().unwrap();
    cluster.lock(&sequencer, layout.epoch + 10).await.unwrap();
    cluster.check(&members, true).await.expect("every member still answers its Info");
    let probed = cluster.probe(Duration::from_millis(500)).await;
    assert!(
        matches!(&probed, Err(ratchet::cluster::Breakage::CannotCommit { proxy, .. }) if layout.commit_proxies.contains(proxy)),
        "{probed:?}"
    );
}
