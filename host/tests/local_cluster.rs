//! The in-process cluster made of what the worker processes ship: foremen on
//! in-memory disks behind the in-memory transport, reached by the one
//! cluster client. The director, its guard and the default wasm phases
//! recover it on a single-threaded runtime, as the simulator runs; a node
//! that crashes loses its stateless roles and comes back with its journals.

mod common;

use common::{completed, node_of};

use std::sync::Arc;
use std::time::Duration;

use ratchet::bindings::types::{ClusterError, LockInfo, RecoveryConfig};
use ratchet::cluster::{Cluster, LocalCluster, RemoteCluster};
use ratchet::director::{Director, DirectorOptions};
use ratchet::registry::Registry;
use ratchet::store::MemoryStore;

fn director(cluster: Arc<RemoteCluster>) -> Director {
    let registry = Arc::new(Registry::with_defaults(common::runtime()).unwrap());
    let options = DirectorOptions { max_attempts: 4, initial_backoff: Duration::from_millis(5), ..Default::default() };
    let config = RecoveryConfig { shards: 3, desired_proxies: 3, ..RecoveryConfig::default() };
    Director::new(registry, cluster, Arc::new(MemoryStore::default()), config, options)
}

#[tokio::test(flavor = "current_thread")]
async fn foremen_in_memory_recover_from_a_crashed_node_without_loss() {
    let local = LocalCluster::with_zones(6, 3, 10).unwrap();
    let cluster = local.client();
    let director = director(cluster.clone());
    let first = completed(&director.recover().await.unwrap());
    assert_eq!((first.epoch, first.logs.len(), first.commit_proxies.len()), (1, 3, 3));
    assert!(first.services.iter().all(|s| s.address == LocalCluster::address(&s.node)), "{:?}", first.services);

    // Commits go through the foremen's commit path: a proxy takes a version
    // from the sequencer's foreman and pushes to each log's.
    let mut acked = Vec::new();
    for i in 0..150 {
        let write = (format!("{:08x}-{i}", (i as u32).wrapping_mul(2_654_435_761)), format!("v{i}"));
        cluster.commit(std::slice::from_ref(&write)).await.unwrap();
        acked.push(write);
        if i % 50 == 49 {
            assert!(cluster.pump().await.is_empty());
        }
    }

    assert_eq!(local.unserving_member(&first), None, "a whole generation serves");
    let dead = node_of(&first, &first.logs[0].id);
    assert!(local.crash(&dead) && !local.is_up(&dead));
    let unserving = local.unserving_member(&first).expect("a member is down");
    assert_eq!(node_of(&first, &unserving), dead, "the first member found is one the crash took");
    assert!(cluster.commit(&[("k".into(), "v".into())]).await.is_err(), "a generation missing a log cannot commit");

    let second = completed(&director.recover().await.unwrap());
    assert_eq!(second.epoch, 2);
    assert!(second.services.iter().all(|s| s.node != dead), "nothing is placed on the crashed node");
    let lost = common::unreadable(&cluster, &acked).await;
    assert!(lost.is_empty(), "lost {} acknowledged writes: {lost:?}", lost.len());
    // Seen from outside the protocol: the new generation serves, the
    // replica recruited in place of the crashed node's joins it once
    // persisted, the replicas agree, and every write is kept where its
    // layout says.
    assert_eq!(local.unserving_member(&second), None);
    director.joined().await;
    assert_eq!(local.joining_member(&second), None, "every replacement joined its team");
    assert!(cluster.pump().await.is_empty());
    for (tag, members) in local.team_contents(&second) {
        assert_eq!(members.len(), 3, "team {tag}");
        assert!(members.iter().all(|(_, v, data)| (v, data) == (&members[0].1, &members[0].2)), "team {tag} disagrees");
    }
    assert!(acked.iter().all(|(k, v)| local.kept_at_rest(&second, k, v)));
    assert!(!local.kept_at_rest(&second, &acked[0].0, "another value"));
    cluster.commit(&[("after".into(), "recovery".into())]).await.unwrap();

    // Restarted, the node replays its journals: its log is back with what it
    // acknowledged and refuses its old epoch; its stateless roles are gone.
    local.start(&dead).unwrap();
    let log = first.logs[0].id.clone();
    let lock = cluster.lock(&log, 1).await;
    assert!(matches!(lock, Err(ClusterError::Superseded(_))), "{lock:?}");
    let Ok(LockInfo::Log(info)) = cluster.lock(&log, 3).await else { panic!("the log did not come back") };
    assert!(info.last_version >= 150, "the restarted log kept its acknowledged versions: {info:?}");
    let hosted: Vec<_> = cluster.services().await.into_iter().filter(|s| s.node == dead).collect();
    assert!(
        hosted
            .iter()
            .all(|s| matches!(s.kind, ratchet::bindings::types::ServiceKind::Log | ratchet::bindings::types::ServiceKind::Storage)),
        "a restarted node hosts only what it journaled: {hosted:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_node_that_is_down_is_reported_unhealthy_and_an_unknown_one_is_an_error() {
    let local = LocalCluster::with_zones(3, 3, 4).unwrap();
    local.crash("n2");
    let nodes = local.client().nodes().await;
    let health: Vec<(String, bool)> = nodes.iter().map(|n| (n.id.clone(), n.healthy)).collect();
    assert_eq!(health, [("n1".into(), true), ("n2".into(), false), ("n3".into(), true)]);
    let err = local.start("n9").unwrap_err();
    assert_eq!(err.to_string(), "no node n9");
}

#[tokio::test(flavor = "current_thread")]
async fn an_unlock_carries_the_layout_to_proxies_only() {
    use ratchet::worker::{Serving, WorkerReply, WorkerRequest};
    let local = LocalCluster::with_zones(6, 3, 10).unwrap();
    let layout = completed(&director(local.client()).recover().await.unwrap());
    let encoded = |serving: &Serving| postcard::to_stdvec(serving).unwrap().len();
    let whole = postcard::to_stdvec(&layout).unwrap().len();
    for service in &layout.services {
        let serving = Serving::of(&layout, &service.id);
        match (&serving, layout.logs.iter().find(|l| l.id == service.id)) {
            (Serving::Proxy(sent), None) => {
                assert!(layout.commit_proxies.contains(&service.id), "{} is not a proxy", service.id);
                assert_eq!(**sent, layout);
            }
            (Serving::Member { tags, recovery_version }, log) => {
                assert!(!layout.commit_proxies.contains(&service.id), "proxy {} is sent no layout", service.id);
                assert_eq!(tags, &log.map(|l| l.tags.clone()).unwrap_or_default(), "{}", service.id);
                assert_eq!(*recovery_version, layout.recovery_version);
                assert!(encoded(&serving) * 10 < whole, "{}: {} bytes of a {whole}-byte layout", service.id, encoded(&serving));
            }
            (other, log) => panic!("{}: {other:?} (log: {log:?})", service.id),
        }
    }

    // A proxy that is not given the layout it commits through is refused,
    // and commits nothing.
    let spec = ratchet::topology::NodeSpec { id: "n9".into(), zone: "z1".into(), capacity: 4 };
    let foreman = ratchet::worker::Foreman::open(spec, ratchet::services::Disk::memory(), "mem://n9").unwrap();
    let Ok(WorkerReply::Created(proxy)) =
        foreman.answer(WorkerRequest::StartRole { kind: ratchet::bindings::types::ServiceKind::CommitProxy, epoch: 1, start: 0 })
    else {
        panic!("the proxy was not created");
    };
    let bare = Serving::Member { tags: vec![], recovery_version: 0 };
    let refused = foreman.answer(WorkerRequest::Unlock { id: proxy.id.clone(), epoch: 1, serving: bare });
    assert!(matches!(&refused, Err(ClusterError::Failed(why)) if why.contains("without the layout")), "{refused:?}");
    assert!(!foreman.serves(&proxy.id, 1), "a proxy refused its unlock does not serve");
}

/// The in-memory transport, except that the first reply of a sequencer
/// handing out a version is lost on its way back.
struct LoseFirstVersionReply {
    inner: Arc<dyn ratchet::transport::Transport<ratchet::worker::WorkerProtocol>>,
    lost: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl ratchet::transport::Transport<ratchet::worker::WorkerProtocol> for LoseFirstVersionReply {
    async fn call(
        &self,
        endpoint: &str,
        request: ratchet::worker::WorkerRequest,
    ) -> Result<Result<ratchet::worker::WorkerReply, ClusterError>, ratchet::transport::TransportError> {
        let taking = matches!(request, ratchet::worker::WorkerRequest::NextVersion { .. });
        let reply = self.inner.call(endpoint, request).await;
        if taking && !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(ratchet::transport::TransportError::Timeout { addr: endpoint.into(), after: Duration::from_millis(250) });
        }
        reply
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_version_whose_reply_was_lost_breaks_the_generation_and_recovery_mends_it() {
    use ratchet::topology::NodeSpec;
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let armed = lost.clone();
    let wire: ratchet::cluster::Wire = Arc::new(move |_from: Option<&str>, inner| {
        let transport: Arc<dyn ratchet::transport::Transport<ratchet::worker::WorkerProtocol>> =
            Arc::new(LoseFirstVersionReply { inner, lost: armed.clone() });
        transport
    });
    let local = LocalCluster::wired(NodeSpec::spread(6, 3, 10), None, wire, Duration::from_secs(5)).unwrap();
    let cluster = local.client();
    let director = director(cluster.clone());
    let first = completed(&director.recover().await.unwrap());
    cluster.commit(&[("a".into(), "1".into())]).await.unwrap();

    // The sequencer hands out a version whose reply never reaches the
    // proxy: no log will ever be pushed it, so no later version can be
    // made durable. The proxy must take its generation for broken.
    lost.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(cluster.commit(&[("b".into(), "2".into())]).await.is_err(), "the commit had no version");
    let broken = local.unserving_member(&first).expect("the generation is reported broken");
    assert!(first.commit_proxies.contains(&broken), "{broken} is a proxy of the generation");

    let second = completed(&director.recover().await.unwrap());
    assert!(second.epoch > first.epoch);
    cluster.commit(&[("c".into(), "3".into())]).await.expect("the recovered generation commits");
    assert_eq!(cluster.read("a").await.unwrap().as_deref(), Some("1"), "the write acknowledged before survives");
}

/// The in-memory transport, except that every request to the node in
/// `slow` but its heartbeat times out (`late` is `None`: a disk too slow to
/// do any work on a machine that still answers), or is answered only after
/// `late` (a disk slow enough to answer just in time).
struct SlowDisk {
    inner: Arc<dyn ratchet::transport::Transport<ratchet::worker::WorkerProtocol>>,
    slow: Arc<std::sync::Mutex<Option<String>>>,
    late: Option<Duration>,
}

#[async_trait::async_trait]
impl ratchet::transport::Transport<ratchet::worker::WorkerProtocol> for SlowDisk {
    async fn call(
        &self,
        endpoint: &str,
        request: ratchet::worker::WorkerRequest,
    ) -> Result<Result<ratchet::worker::WorkerReply, ClusterError>, ratchet::transport::TransportError> {
        let slow = self.slow.lock().unwrap().clone();
        let heartbeat = matches!(request, ratchet::worker::WorkerRequest::Info { .. });
        if !heartbeat && slow.is_some() && LocalCluster::node_at(endpoint) == slow.as_deref() {
            let Some(late) = self.late else {
                return Err(ratchet::transport::TransportError::Timeout { addr: endpoint.into(), after: CALL_TIMEOUT });
            };
            tokio::time::sleep(late).await;
        }
        self.inner.call(endpoint, request).await
    }
}

/// The call timeout of the clusters wired with [`SlowDisk`]: a strike lasts
/// five of them.
const CALL_TIMEOUT: Duration = Duration::from_millis(40);

#[tokio::test(flavor = "current_thread")]
async fn a_node_whose_calls_time_out_while_it_answers_is_degraded_and_recovery_goes_around_it() {
    recovery_goes_around_a_slow_disk(None, "no reply").await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_node_whose_calls_take_most_of_their_timeout_is_degraded_and_recovery_goes_around_it() {
    recovery_goes_around_a_slow_disk(Some(CALL_TIMEOUT * 3 / 4), "answered after").await;
}

/// A log's node whose disk turns slow (its calls time out, or are answered
/// after `late`) while it answers its heartbeats: the recovery goes around
/// it in one attempt, and it is offered again once its strike is over.
async fn recovery_goes_around_a_slow_disk(late: Option<Duration>, why_degraded: &str) {
    use ratchet::topology::NodeSpec;
    let slow = Arc::new(std::sync::Mutex::new(None::<String>));
    let shared = slow.clone();
    let wire: ratchet::cluster::Wire = Arc::new(move |_from: Option<&str>, inner| {
        let transport: Arc<dyn ratchet::transport::Transport<ratchet::worker::WorkerProtocol>> =
            Arc::new(SlowDisk { inner, slow: shared.clone(), late });
        transport
    });
    let local = LocalCluster::wired(NodeSpec::spread(6, 3, 10), None, wire, CALL_TIMEOUT).unwrap();
    let cluster = local.client();
    let director = director(cluster.clone());
    let first = completed(&director.recover().await.unwrap());
    cluster.commit(&[("a".into(), "1".into())]).await.unwrap();

    // The disk of a log's node turns slow: the node still answers, so it
    // looks healthy until one of its calls times out.
    let node = node_of(&first, &first.logs[0].id);
    *slow.lock().unwrap() = Some(node.clone());
    let healthy = |nodes: &[ratchet::bindings::types::Node]| nodes.iter().find(|n| n.id == node).map(|n| n.healthy);
    assert_eq!(healthy(&cluster.nodes().await), Some(true), "{node} answers its heartbeat");
    if late.is_none() {
        assert!(cluster.commit(&[("b".into(), "2".into())]).await.is_err(), "a log's node cannot do its work");
    }

    // One attempt: the lock of its log times out or is slow, and the
    // recruitment that follows places nothing there.
    let report = director.recover().await.unwrap();
    let second = completed(&report);
    assert_eq!(report.attempts.len(), 1, "{:?}", report.attempts.iter().map(|a| a.outcome.to_string()).collect::<Vec<_>>());
    let on_node: Vec<&String> = second.services.iter().filter(|s| s.node == node).map(|s| &s.id).collect();
    let recruited: Vec<&&String> = on_node.iter().filter(|id| !first.services.iter().any(|s| s.id == ***id)).collect();
    assert!(recruited.is_empty(), "nothing recruited on {node}: {recruited:?}");
    if late.is_none() {
        assert!(on_node.is_empty(), "nothing of the new generation on {node}: {on_node:?}");
    }
    assert_eq!(healthy(&cluster.nodes().await), Some(false), "{node} is reported unhealthy while degraded");
    let degraded = cluster.degraded();
    assert!(degraded.iter().any(|(n, why)| *n == node && why.contains(why_degraded)), "{degraded:?}");
    cluster.commit(&[("c".into(), "3".into())]).await.expect("the new generation commits");
    assert_eq!(cluster.read("a").await.unwrap().as_deref(), Some("1"), "the write acknowledged before survives");

    // Its disk fast again, it is offered for work once the strike is over.
    *slow.lock().unwrap() = None;
    tokio::time::sleep(CALL_TIMEOUT * 6).await;
    assert_eq!(healthy(&cluster.nodes().await), Some(true), "{node} is healthy again");
    assert!(cluster.degraded().is_empty());
}
