//! Mutual TLS on the cluster's ports, against strangers and against members
//! acting beyond their role: a worker served over TLS, and peers holding no
//! certificate, another CA's, a client's, another node's, or the
//! coordinator's. Each gets exactly what its certificate allows, and the
//! worker serves on.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ratchet::bindings::types::{ClusterError, ServiceKind};
use ratchet::services::Disk;
use ratchet::topology::NodeSpec;
use ratchet::transport::certs;
use ratchet::transport::{Client, Role, TlsFiles, TlsIdentity, TransportConfig, TransportError, serve};
use ratchet::wire::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest, WorkerReply, WorkerRequest};
use ratchet::worker::{Foreman, WorkerProtocol};
use tokio::net::TcpListener;

fn identity(dir: &Path, stem: &str) -> Arc<TlsIdentity> {
    let files = TlsFiles { ca: dir.join(certs::CA_CERT), cert: dir.join(format!("{stem}.pem")), key: dir.join(format!("{stem}.key")) };
    Arc::new(TlsIdentity::load(&files).unwrap())
}

fn config(tls: Option<Arc<TlsIdentity>>) -> TransportConfig {
    TransportConfig { call_timeout: Duration::from_secs(5), tls, ..TransportConfig::default() }
}

/// A CA with the coordinator, workers n1 and n2 and a client issued.
fn cluster_ca(dir: &Path) {
    certs::init(dir).unwrap();
    certs::issue(dir, Role::Coordinator, None).unwrap();
    certs::issue(dir, Role::Worker, Some("n1")).unwrap();
    certs::issue(dir, Role::Worker, Some("n2")).unwrap();
    certs::issue(dir, Role::Client, None).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_peer_gets_what_its_certificate_allows_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    cluster_ca(&ca);
    let stranger_ca = dir.path().join("stranger");
    certs::init(&stranger_ca).unwrap();
    certs::issue(&stranger_ca, Role::Coordinator, None).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let spec = NodeSpec { id: "n1".into(), zone: "z1".into(), capacity: 8 };
    let foreman = Arc::new(Foreman::open(spec, Disk::memory(), addr.clone()).unwrap());
    tokio::spawn(serve::<WorkerProtocol, _>(listener, foreman.clone(), config(Some(identity(&ca, "worker-n1")))));

    let as_peer = |tls: Option<Arc<TlsIdentity>>| Client::<WorkerProtocol>::new(&addr, config(tls));
    let create = WorkerRequest::CreateWorker { kind: ServiceKind::Storage, epoch: 3 };

    // No certificate at all, and one from another CA: no connection.
    for (who, tls) in [("plain TCP", None), ("another CA", Some(identity(&stranger_ca, "coordinator")))] {
        let err = as_peer(tls).call(create.clone()).await.unwrap_err();
        assert!(matches!(err, TransportError::Handshake { .. } | TransportError::Frame { .. }), "{who}: {err}");
    }
    // A client commits and reads, but may not recruit, lock or release.
    let client = as_peer(Some(identity(&ca, "client")));
    for request in [create.clone(), WorkerRequest::Lock { id: "x".into(), epoch: u64::MAX }, WorkerRequest::Release { id: "x".into(), epoch: u64::MAX }] {
        match client.call(request).await {
            Err(TransportError::Remote { reason, .. }) => {
                assert!(reason.starts_with("forbidden:") && reason.contains("only by a coordinator") && reason.contains("client"), "{reason}");
            }
            other => panic!("a client's recovery request must be forbidden, got {other:?}"),
        }
    }
    assert!(matches!(client.call(WorkerRequest::Read { id: "x".into(), key: "k".into() }).await, Ok(Err(ClusterError::NotFound(_)))));
    // A worker may push to a log, not lock one.
    let n2 = as_peer(Some(identity(&ca, "worker-n2")));
    assert!(matches!(n2.call(WorkerRequest::Lock { id: "x".into(), epoch: 9 }).await, Err(TransportError::Remote { .. })));
    // The coordinator drives recovery.
    let coordinator = as_peer(Some(identity(&ca, "coordinator")));
    match coordinator.call(create).await.unwrap() {
        Ok(WorkerReply::Created(descriptor)) => assert!(foreman.hosts(&descriptor.id)),
        other => panic!("the coordinator recruits, got {other:?}"),
    }
    match coordinator.call(WorkerRequest::Info { hold_ms: 0 }).await.unwrap() {
        Ok(WorkerReply::Info { services, .. }) => assert_eq!(services.len(), 1, "only the coordinator's request changed anything"),
        other => panic!("{other:?}"),
    }
}

/// A coordinator handler over TLS, as `ratchet coordinator` serves it:
/// a worker registers only as the node its certificate names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_registers_only_as_the_node_its_certificate_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    cluster_ca(&ca);
    let data = dir.path().join("coordinator");
    let bin = env!("CARGO_BIN_EXE_ratchet");
    let tls = |stem: &str| {
        vec![
            "--tls-ca".to_string(),
            ca.join(certs::CA_CERT).display().to_string(),
            "--tls-cert".into(),
            ca.join(format!("{stem}.pem")).display().to_string(),
            "--tls-key".into(),
            ca.join(format!("{stem}.key")).display().to_string(),
        ]
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut coordinator = std::process::Command::new(bin)
        .args(["--no-cache", "coordinator", "--data", data.to_str().unwrap(), "--listen", &addr, "--admin", "127.0.0.1:0"])
        .args(tls("coordinator"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let register = |node: &str| CoordinatorRequest::Register { node: node.into(), zone: "z1".into(), capacity: 8, addr: "127.0.0.1:1".into() };
    let n1 = Client::<CoordinatorProtocol>::new(&addr, config(Some(identity(&ca, "worker-n1"))));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let answer = loop {
        match n1.call(register("n1")).await {
            Err(TransportError::Connect { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other,
        }
    };
    assert!(matches!(answer, Ok(Ok(CoordinatorReply::Registered))), "{answer:?}");
    match n1.call(register("n2")).await {
        Err(TransportError::Remote { reason, .. }) => assert!(reason.contains("registering as node n2"), "{reason}"),
        other => panic!("n1 registering as n2 must be forbidden, got {other:?}"),
    }
    let client = Client::<CoordinatorProtocol>::new(&addr, config(Some(identity(&ca, "client"))));
    assert!(matches!(client.call(register("n1")).await, Err(TransportError::Remote { .. })), "a client registers as no node");
    assert!(matches!(client.call(CoordinatorRequest::Generation).await, Ok(Ok(CoordinatorReply::Generation(_)))));
    let plain = Client::<CoordinatorProtocol>::new(&addr, config(None));
    assert!(plain.call(CoordinatorRequest::Generation).await.is_err(), "plain TCP gets nothing");
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
}
