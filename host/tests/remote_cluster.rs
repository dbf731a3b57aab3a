//! The director, its guard and the default wasm phases against worker
//! foremen reached over TCP on 127.0.0.1, each with its own data directory:
//! the same recovery as in process, through the real transport. A worker
//! that stops answering is skipped and recovered from; a worker restarted
//! on its data directory comes back with what it acknowledged.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ratchet::bindings::types::{Layout, RecoveryConfig};
use ratchet::cluster::{Cluster, NodeSpec, RemoteCluster};
use ratchet::coordinator::MemoryStore;
use ratchet::director::{Director, DirectorOptions, RecoveryReport};
use ratchet::registry::Registry;
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
        let foreman = Arc::new(Foreman::open(self.spec.clone(), self.dir.path(), self.addr.clone()).unwrap());
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
    let cluster = Arc::new(RemoteCluster::new(config()));
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
    let registry = Arc::new(Registry::with_defaults(common::runtime()).unwrap());
    let options = DirectorOptions { max_attempts: 4, initial_backoff: Duration::from_millis(5), ..Default::default() };
    let config = RecoveryConfig { shards: 3, ..RecoveryConfig::default() };
    Director::new(registry, cluster, Arc::new(MemoryStore::default()), config, options)
}

fn completed(report: &RecoveryReport) -> Layout {
    report.layout().cloned().unwrap_or_else(|| {
        let outcomes: Vec<_> = report.attempts.iter().map(|a| a.outcome.to_string()).collect();
        panic!("recovery did not complete: {outcomes:?}")
    })
}

fn node_of(layout: &Layout, id: &str) -> String {
    layout.services.iter().find(|s| s.id == id).unwrap().node.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_workers_over_tcp_recovers_from_a_dead_worker_without_loss() {
    let (mut workers, cluster) = six_workers().await;
    let director = director(cluster.clone());
    let first = completed(&director.recover().await.unwrap());
    assert_eq!(first.epoch, 1);
    assert_eq!(first.logs.len(), 3);

    let mut acked = Vec::new();
    for i in 0..200 {
        let write = (format!("{:08x}-{i}", (i as u32).wrapping_mul(2_654_435_761)), format!("v{i}"));
        cluster.commit(std::slice::from_ref(&write)).await.unwrap();
        acked.push(write);
        if i % 50 == 49 {
            cluster.pump().await;
        }
    }

    // Clients commit concurrently: the cluster orders their versions.
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

    let report = director.recover().await.unwrap();
    let second = completed(&report);
    assert_eq!(second.epoch, 2);
    assert!(second.services.iter().all(|s| s.node != dead), "nothing is placed on the dead worker");
    cluster.pump().await;
    let mut lost = Vec::new();
    for (key, value) in &acked {
        if cluster.read(key).await.as_deref() != Some(value.as_str()) {
            lost.push(key.clone());
        }
    }
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
