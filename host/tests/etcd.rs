//! The coordinator store on a real etcd (Debian's `etcd-server`, which
//! `.ci/run` installs), started on loopback for each test: one member, or a
//! cluster of three. Never a mock: the epoch transactions, the layout's
//! guard and the leader lease are etcd's own.

#[path = "support/etcd.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ratchet::bindings::types::{Layout, ServiceDescriptor, ServiceKind};
use ratchet::store::{CoordinatorStore, EtcdStore, KeepAlive, StoreError};

use support::{etcd, etcd_tls, free_port, url};

fn layout(epoch: u64) -> Layout {
    Layout {
        epoch,
        sequencer: Some(format!("sequencer-n1-e{epoch}-1")),
        commit_proxies: vec![],
        resolvers: vec![],
        logs: vec![],
        storage_teams: vec![],
        services: vec![],
        recovery_version: epoch * 10,
    }
}

#[test]
fn epochs_are_issued_once_across_coordinators_sharing_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let members = etcd(dir.path(), 1);
    let stores: Vec<Arc<EtcdStore>> = (0..3).map(|_| Arc::new(EtcdStore::connect(&url(&members)).unwrap())).collect();
    let issued: Vec<u64> = std::thread::scope(|scope| {
        let racers: Vec<_> =
            stores.iter().map(|store| scope.spawn(move || (0..40).map(|_| store.next_epoch().unwrap()).collect::<Vec<_>>())).collect();
        racers.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    let mut sorted = issued.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 120, "no epoch issued twice");
    assert_eq!(sorted, (1..=120).collect::<Vec<_>>());
    // Durable: a store connected later goes on above them.
    let later = EtcdStore::connect(&url(&members)).unwrap();
    assert_eq!(later.next_epoch().unwrap(), 121);
}

#[test]
fn a_layout_is_persisted_only_by_the_newest_epoch_and_the_directory_is_held_in_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let members = etcd(dir.path(), 1);
    let store = EtcdStore::connect(&url(&members)).unwrap();
    let older = store.next_epoch().unwrap();
    let newer = store.next_epoch().unwrap();
    let refused = store.persist_layout(&layout(older)).unwrap_err();
    assert!(matches!(refused, StoreError::Fenced { layout_epoch, current } if layout_epoch == older && current == newer), "{refused}");
    store.persist_layout(&layout(newer)).unwrap();
    let service = ServiceDescriptor { id: "log-n1-e2-1".into(), kind: ServiceKind::Log, node: "n1".into(), address: "127.0.0.1:9".into() };
    store.register_service(service.clone()).unwrap();

    // Another coordinator (or this one, restarted) reads the same state.
    let other = EtcdStore::connect(&url(&members)).unwrap();
    let state = other.state().unwrap();
    assert_eq!(state.epoch, newer);
    assert_eq!(state.layout, Some(layout(newer)));
    assert_eq!(state.services, vec![service]);
    // A newer epoch issued elsewhere fences the first store's layout.
    let newest = other.next_epoch().unwrap();
    let refused = store.persist_layout(&layout(newer)).unwrap_err();
    assert!(matches!(refused, StoreError::Fenced { current, .. } if current == newest), "{refused}");
    assert_eq!(other.state().unwrap().layout, Some(layout(newer)), "the refused write changed nothing");
}

#[test]
fn only_the_leader_changes_the_state_and_a_leader_whose_lease_lapsed_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let members = etcd(dir.path(), 1);
    let ttl = Duration::from_secs(2);
    let first = Arc::new(EtcdStore::connect(&url(&members)).unwrap());
    let second = Arc::new(EtcdStore::connect(&url(&members)).unwrap());
    first.campaign("first", ttl, Duration::from_millis(50)).unwrap();
    assert_eq!(first.leader_id().unwrap().as_deref(), Some("first"));
    let epoch = first.next_epoch().unwrap();
    first.persist_layout(&layout(epoch)).unwrap();

    // The second stands by while the first renews its lease...
    let standby = {
        let second = second.clone();
        std::thread::spawn(move || {
            second.campaign("second", ttl, Duration::from_millis(50)).unwrap();
            Instant::now()
        })
    };
    for _ in 0..4 {
        std::thread::sleep(ttl / 2);
        assert_eq!(first.keep_alive(), KeepAlive::Renewed);
    }
    assert!(!standby.is_finished(), "the standby took over from a live leader");

    // ...and takes over once the first stops renewing it (a pause).
    let paused = Instant::now();
    let took_over = standby.join().unwrap();
    assert!(took_over.duration_since(paused) <= ttl + Duration::from_secs(2), "took over after {:?}", took_over - paused);
    assert_eq!(second.leader_id().unwrap().as_deref(), Some("second"));
    let successor = second.next_epoch().unwrap();
    assert!(successor > epoch);

    // The old leader comes back: it can neither issue an epoch nor persist.
    let refused = first.next_epoch().unwrap_err();
    assert!(matches!(&refused, StoreError::NotLeader { holder: Some(h), .. } if h == "second"), "{refused}");
    let refused = first.persist_layout(&layout(successor)).unwrap_err();
    assert!(matches!(refused, StoreError::NotLeader { .. }), "{refused}");
    assert_eq!(first.keep_alive(), KeepAlive::Lost);
    second.persist_layout(&layout(successor)).unwrap();
    assert_eq!(second.state().unwrap().layout, Some(layout(successor)));

    // Resigning hands over at once.
    second.resign().unwrap();
    assert_eq!(first.leader_id().unwrap(), None);
}

#[test]
fn an_unreachable_etcd_or_a_bad_url_is_a_clear_error_at_start() {
    let port = free_port();
    let err = EtcdStore::connect(&format!("etcd://127.0.0.1:{port}")).err().expect("nothing listens there");
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")) && err.to_string().contains("no member answered"), "{err}");
    for bad in ["127.0.0.1:2379", "etcd://127.0.0.1", "etcd://127.0.0.1:notaport"] {
        let err = EtcdStore::connect(bad).err().expect("a bad URL");
        assert!(matches!(err, StoreError::BadUrl { .. }), "{bad}: {err}");
    }
}

#[test]
fn over_etcds_the_store_needs_the_clusters_certificates() {
    use ratchet::transport::{Role, TlsFiles, certs};
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("certs");
    certs::init(&ca).unwrap();
    certs::issue(&ca, Role::Coordinator, None, certs::DEFAULT_DAYS).unwrap();
    certs::issue_etcd(&ca, &["127.0.0.1".into()], certs::DEFAULT_DAYS).unwrap();
    let stranger = dir.path().join("stranger");
    certs::init(&stranger).unwrap();
    certs::issue(&stranger, Role::Coordinator, None, certs::DEFAULT_DAYS).unwrap();
    let (mut member, url) = etcd_tls(dir.path(), &ca);
    let files =
        |dir: &std::path::Path| TlsFiles { ca: ca.join("ca.pem"), cert: dir.join("coordinator.pem"), key: dir.join("coordinator.key") };
    let deadline = Instant::now() + Duration::from_secs(30);
    let store = loop {
        match EtcdStore::connect_with(&url, Some(&files(&ca))) {
            Ok(store) => break store,
            Err(err) => {
                assert!(Instant::now() < deadline && member.child.try_wait().unwrap().is_none(), "etcd over TLS: {err}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let epoch = store.next_epoch().unwrap();
    assert_eq!(store.state().unwrap().epoch, epoch);
    // Without the files, and with another CA's certificate, nothing.
    let err = EtcdStore::connect(&url).err().expect("etcds:// without certificates");
    assert!(matches!(err, StoreError::BadUrl { .. }) && err.to_string().contains("--store-tls-ca"), "{err}");
    let err = EtcdStore::connect_with(&url, Some(&files(&stranger))).err().expect("another CA's certificate");
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
}

#[test]
fn a_three_member_etcd_serves_the_store_with_one_member_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = etcd(dir.path(), 3);
    let store = EtcdStore::connect(&url(&members)).unwrap();
    let before = store.next_epoch().unwrap();
    store.persist_layout(&layout(before)).unwrap();
    // Kill the member the store asks first.
    drop(members.remove(0));
    let after = store.next_epoch().unwrap();
    assert_eq!(after, before + 1);
    store.persist_layout(&layout(after)).unwrap();
    assert_eq!(store.state().unwrap().layout, Some(layout(after)));
    // A second member down: no quorum, and the store says so.
    drop(members.remove(0));
    let err = store.next_epoch().unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. } | StoreError::Etcd { .. }), "{err}");
}

#[test]
fn a_campaign_whose_winning_answer_was_lost_sees_its_own_id_and_leads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let members = etcd(dir.path(), 1);
    let ttl = Duration::from_secs(30);
    // The first round's transaction was applied, but its answer never came
    // back: the process campaigns again, on a store that knows nothing.
    let applied = EtcdStore::connect(&url(&members)).unwrap();
    let first_round = applied.campaign("coordinator@10.0.0.1:7400#42", ttl, Duration::from_millis(50)).unwrap();
    let retried = EtcdStore::connect(&url(&members)).unwrap();
    let started = Instant::now();
    let leadership = retried.campaign("coordinator@10.0.0.1:7400#42", ttl, Duration::from_millis(50)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "it did not wait for its own lease to expire");
    assert_eq!(leadership.lease, first_round.lease, "it leads on the lease that holds the key");
    assert_eq!(retried.keep_alive(), KeepAlive::Renewed);
    let epoch = retried.next_epoch().unwrap();
    retried.persist_layout(&layout(epoch)).unwrap();

    // Another id still waits.
    let other = Arc::new(EtcdStore::connect(&url(&members)).unwrap());
    let waiting = std::thread::spawn(move || other.campaign("another", Duration::from_secs(2), Duration::from_millis(50)));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiting.is_finished(), "another id does not take a held key");
    retried.resign().unwrap();
    waiting.join().unwrap().unwrap();
}

#[test]
fn a_leader_whose_lease_is_not_renewed_in_time_may_not_release_or_pop() {
    let dir = tempfile::tempdir().unwrap();
    let members = etcd(dir.path(), 1);
    let ttl = Duration::from_secs(3);
    let store = EtcdStore::connect(&url(&members)).unwrap();
    store.may_act().expect("a store that never led acts for its only coordinator");
    store.campaign("leader", ttl, Duration::from_millis(50)).unwrap();
    store.may_act().expect("a lease just won");
    // No renewal for two thirds of the lease: it may have lapsed.
    std::thread::sleep(ttl * 2 / 3 + Duration::from_millis(100));
    let held_back = store.may_act().unwrap_err();
    assert!(matches!(&held_back, StoreError::LeaseUncertain { id, .. } if id == "leader"), "{held_back}");
    assert_eq!(store.keep_alive(), KeepAlive::Renewed);
    store.may_act().expect("renewed again");
    assert_eq!(store.next_epoch_above(40).unwrap(), 41, "above an epoch the cluster holds");
    store.resign().unwrap();
    assert!(store.may_act().is_err(), "a leader that resigned acts on nothing");
}
