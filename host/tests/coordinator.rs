//! The embedded coordinator store: durable epochs (I1), fenced layouts (I7),
//! and nothing lost or half-written across restarts.

mod common;

use common::empty_layout as layout;
use ratchet::bindings::types::{ServiceDescriptor, ServiceKind};
use ratchet::store::{CoordinatorStore, FileStore, MemoryStore, StoreError};

#[test]
fn epochs_rise_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.next_epoch().unwrap(), 1);
    assert_eq!(store.next_epoch().unwrap(), 2);
    drop(store);
    let reopened = FileStore::open(dir.path()).unwrap();
    assert_eq!(reopened.state().unwrap().epoch, 2);
    assert_eq!(reopened.next_epoch().unwrap(), 3, "no epoch is reused after a restart");
    assert_eq!(reopened.next_epoch_above(10).unwrap(), 11, "above an epoch seen in the cluster");
    assert_eq!(reopened.next_epoch_above(5).unwrap(), 12, "and above every epoch issued");
}

#[test]
fn a_layout_is_written_only_by_the_newest_epoch() {
    let (_dir, file) = file_store();
    for store in [Box::new(MemoryStore::default()) as Box<dyn CoordinatorStore>, file] {
        let e1 = store.next_epoch().unwrap();
        let e2 = store.next_epoch().unwrap();
        match store.persist_layout(&layout(e1)) {
            Err(StoreError::Fenced { layout_epoch, current }) => assert_eq!((layout_epoch, current), (e1, e2)),
            other => panic!("a superseded director's write must fail, got {other:?}"),
        }
        assert_eq!(store.state().unwrap().layout, None);
        store.persist_layout(&layout(e2)).unwrap();
        assert_eq!(store.state().unwrap().layout.unwrap().epoch, e2);
    }
}

#[test]
fn layout_and_directory_survive_a_restart() {
    let (dir, store) = file_store();
    let service = ServiceDescriptor { id: "log-1".into(), kind: ServiceKind::Log, node: "n1".into(), address: "mem://log-1".into() };
    store.register_service(service.clone()).unwrap();
    let mut moved = service.clone();
    moved.node = "n2".into();
    store.register_service(moved.clone()).unwrap();
    let epoch = store.next_epoch().unwrap();
    store.persist_layout(&layout(epoch)).unwrap();
    drop(store);
    let state = FileStore::open(dir.path()).unwrap().state().unwrap();
    assert_eq!(state.services, vec![moved], "re-registering replaces, never duplicates");
    assert_eq!(state.layout.unwrap().epoch, epoch);
}

#[test]
fn a_corrupt_state_file_is_reported_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("coordinator.state"), b"garbage").unwrap();
    let err = FileStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("coordinator.state")).unwrap(), b"garbage");
}

fn file_store() -> (tempfile::TempDir, Box<dyn CoordinatorStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    (dir, Box::new(store))
}
