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

/// Dials `addr` over TLS trusting the cluster's CA but presenting no
/// certificate, says hello and waits for the answer.
async fn without_a_certificate(addr: &str, ca: &Path) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_file(ca.join(certs::CA_CERT)).unwrap()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("member.ratchet").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    // TLS 1.3 ends the client's handshake before the server checks it: the
    // refusal comes with the first read.
    let hello = ratchet::transport::rpc::Hello {
        magic: ratchet::transport::rpc::MAGIC,
        version: ratchet::transport::rpc::PROTOCOL_VERSION,
        service: "worker".into(),
    };
    ratchet::transport::frame::write(&mut tls, &hello, 1 << 10).await.map_err(|e| e.to_string())?;
    let mut byte = [0u8; 1];
    match tls.read(&mut byte).await {
        Ok(0) | Err(_) => Err("refused".into()),
        Ok(_) => {
            tls.shutdown().await.map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

fn config(tls: Option<Arc<TlsIdentity>>) -> TransportConfig {
    TransportConfig { call_timeout: Duration::from_secs(5), tls, ..TransportConfig::default() }
}

/// A CA with the coordinator, workers n1 and n2 and a client issued.
fn cluster_ca(dir: &Path) {
    certs::init(dir).unwrap();
    certs::issue(dir, Role::Coordinator, None, certs::DEFAULT_DAYS).unwrap();
    certs::issue(dir, Role::Worker, Some("n1"), certs::DEFAULT_DAYS).unwrap();
    certs::issue(dir, Role::Worker, Some("n2"), certs::DEFAULT_DAYS).unwrap();
    certs::issue(dir, Role::Client, None, certs::DEFAULT_DAYS).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_peer_gets_what_its_certificate_allows_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    cluster_ca(&ca);
    let stranger_ca = dir.path().join("stranger");
    certs::init(&stranger_ca).unwrap();
    certs::issue(&stranger_ca, Role::Coordinator, None, certs::DEFAULT_DAYS).unwrap();

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
    // A stranger that trusts the cluster's CA, so the server is the one to
    // refuse: with another CA's certificate, and with none at all.
    let posing =
        TlsFiles { ca: ca.join(certs::CA_CERT), cert: stranger_ca.join("coordinator.pem"), key: stranger_ca.join("coordinator.key") };
    let err = as_peer(Some(Arc::new(TlsIdentity::load(&posing).unwrap()))).call(create.clone()).await.unwrap_err();
    assert!(matches!(err, TransportError::Handshake { .. } | TransportError::Frame { .. }), "{err}");
    assert!(without_a_certificate(&addr, &ca).await.is_err(), "a client without a certificate is refused");
    // A client commits and reads, but may not recruit, lock or release.
    let client = as_peer(Some(identity(&ca, "client")));
    for request in [
        create.clone(),
        WorkerRequest::Lock { id: "x".into(), epoch: u64::MAX },
        WorkerRequest::Release { id: "x".into(), epoch: u64::MAX },
    ] {
        match client.call(request).await {
            Err(TransportError::Remote { reason, .. }) => {
                assert!(
                    reason.starts_with("forbidden:") && reason.contains("only by a coordinator") && reason.contains("client"),
                    "{reason}"
                );
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
    let register =
        |node: &str| CoordinatorRequest::Register { node: node.into(), zone: "z1".into(), capacity: 8, addr: "127.0.0.1:1".into() };
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
    for other in ["n2", "N1"] {
        match n1.call(register(other)).await {
            Err(TransportError::Remote { reason, .. }) => assert!(reason.contains(&format!("registering as node {other}")), "{reason}"),
            answer => panic!("n1 registering as {other} must be forbidden, got {answer:?}"),
        }
    }
    let client = Client::<CoordinatorProtocol>::new(&addr, config(Some(identity(&ca, "client"))));
    assert!(matches!(client.call(register("n1")).await, Err(TransportError::Remote { .. })), "a client registers as no node");
    assert!(matches!(client.call(CoordinatorRequest::Generation).await, Ok(Ok(CoordinatorReply::Generation(_)))));
    // A certificate of the CA that names no role (etcd's) asks nothing.
    certs::issue_etcd(&ca, &["127.0.0.1".into()], certs::DEFAULT_DAYS).unwrap();
    let roleless = Client::<CoordinatorProtocol>::new(&addr, config(Some(identity(&ca, "etcd"))));
    match roleless.call(CoordinatorRequest::Generation).await {
        Err(TransportError::Remote { reason, .. }) => assert!(reason.contains("names no role"), "{reason}"),
        other => panic!("a certificate naming no role must be refused, got {other:?}"),
    }
    let plain = Client::<CoordinatorProtocol>::new(&addr, config(None));
    assert!(plain.call(CoordinatorRequest::Generation).await.is_err(), "plain TCP gets nothing");
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
}

/// One request of every kind of the worker protocol, aimed at a service
/// that does not exist (so an allowed one changes nothing either).
fn one_of_each_kind() -> Vec<WorkerRequest> {
    use ratchet::services::Mutation;
    use ratchet::wire::Serving;
    let id = || "storage-none".to_string();
    let mutations = || vec![(1, Mutation { tag: 0, key: "k".into(), value: "v".into() })];
    vec![
        WorkerRequest::Info { hold_ms: 0 },
        WorkerRequest::Lock { id: id(), epoch: u64::MAX },
        WorkerRequest::CreateWorker { kind: ServiceKind::Log, epoch: u64::MAX },
        WorkerRequest::StartRole { kind: ServiceKind::Sequencer, epoch: u64::MAX, start: 0 },
        WorkerRequest::ReadRange { id: id(), epoch: 1, tags: vec![0], first: 0, last: 1 },
        WorkerRequest::InstallRange { id: id(), epoch: 1, tags: vec![0], first: 0, last: 1, entries: vec![] },
        WorkerRequest::Unlock { id: id(), epoch: 1, serving: Serving::Member { tags: vec![], recovery_version: 0 } },
        WorkerRequest::Release { id: id(), epoch: u64::MAX },
        WorkerRequest::Snapshot { id: id(), epoch: u64::MAX, after: None, as_of: 0 },
        WorkerRequest::Rebuild { id: id(), epoch: u64::MAX, version: 1, entries: vec![], first: true, last: true },
        WorkerRequest::RecoverApply { id: id(), epoch: u64::MAX, mutations: mutations(), upto: 1 },
        WorkerRequest::Truncate { id: id(), epoch: u64::MAX, to: 0 },
        WorkerRequest::Retained { id: id(), tag: None },
        WorkerRequest::Pop { id: id(), epoch: u64::MAX, through: 1 },
        WorkerRequest::Commit { id: id(), writes: vec![("k".into(), "v".into())] },
        WorkerRequest::ReadVersion { id: id() },
        WorkerRequest::NextVersion { id: id(), epoch: 1 },
        WorkerRequest::Resolve { id: id(), epoch: 1 },
        WorkerRequest::Push { id: id(), epoch: 1, prev: 0, version: 1, mutations: vec![] },
        WorkerRequest::Pull { id: id(), tag: 0, after: 0, upto: 1 },
        WorkerRequest::Apply { id: id(), epoch: u64::MAX, mutations: mutations(), upto: 1 },
        WorkerRequest::Read { id: id(), key: "k".into() },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_kind_is_forbidden_exactly_to_the_roles_it_is_not_for() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    cluster_ca(&ca);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let spec = NodeSpec { id: "n1".into(), zone: "z1".into(), capacity: 8 };
    let foreman = Arc::new(Foreman::open(spec, Disk::memory(), addr.clone()).unwrap());
    tokio::spawn(serve::<WorkerProtocol, _>(listener, foreman, config(Some(identity(&ca, "worker-n1")))));
    use ratchet::wire::RequestKind as K;
    let requests = one_of_each_kind();
    let kinds: std::collections::BTreeSet<_> = requests.iter().map(|r| r.kind()).collect();
    assert_eq!(kinds.len(), K::ALL.len(), "one request of every kind");
    // The rule, written out: whatever the code's table says.
    let callers = |kind: K| -> &'static [Role] {
        match kind {
            K::NextVersion | K::Resolve | K::Push => &[Role::Worker, Role::Coordinator],
            K::Commit | K::ReadVersion | K::Read => &[Role::Client, Role::Coordinator],
            _ => &[Role::Coordinator],
        }
    };
    for (stem, role) in [("client", Role::Client), ("worker-n2", Role::Worker), ("coordinator", Role::Coordinator)] {
        let peer = Client::<WorkerProtocol>::new(&addr, config(Some(identity(&ca, stem))));
        for request in one_of_each_kind() {
            let allowed = callers(request.kind()).contains(&role);
            let described = format!("{:?}", request.kind());
            match peer.call(request).await {
                Err(TransportError::Remote { reason, .. }) if reason.starts_with("forbidden:") => {
                    assert!(!allowed, "{stem}: {described} was forbidden: {reason}");
                }
                answered => assert!(allowed, "{stem}: {described} was not forbidden: {answered:?}"),
            }
        }
    }
}
