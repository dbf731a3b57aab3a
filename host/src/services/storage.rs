//! Storage: applies mutations from the logs and serves reads.

use std::collections::BTreeMap;

use super::disk::Disk;
use super::journal::{Journal, JournalError};
use super::{EpochLock, Mutation, ServiceError};
use crate::bindings::types::{Epoch, StorageRecoveryInfo, Version};

/// How many of its newest versions a replica can roll back: a truncation
/// to an older version is refused (the replica must be rebuilt instead).
pub const UNDO_VERSIONS: Version = 1_000;

/// A storage replica: a key-value map with the version it is durable at.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct StorageService {
    lock: EpochLock,
    /// The generation it serves, once unlocked.
    serving: Option<Epoch>,
    data: BTreeMap<String, String>,
    durable: Version,
    /// For each recent version applied, the values its mutations replaced
    /// (`None`: the key was absent), so that a truncation can undo it.
    undo: BTreeMap<Version, Vec<(String, Option<String>)>>,
    /// Every version above this one has its undo entries.
    undo_floor: Version,
}

/// A copy of a replica's data, to seed a new teammate.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The version the data is durable at.
    pub version: Version,
    /// The data.
    pub data: BTreeMap<String, String>,
}

/// A page of a replica's data at one version.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotPage {
    /// The version the page is the data of.
    pub version: Version,
    /// Its keys and values, in key order.
    pub entries: Vec<(String, String)>,
    /// The last key the page covers, when more keys follow: the next page
    /// starts after it (the page itself may hold no key, when every key it
    /// covered was written after its version).
    pub resume: Option<String>,
}

/// Snapshot pages received so far, by the replica they are for, each
/// appended to a staging file on the replica's disk as it arrives (so a
/// shard of any size streams through without being held twice): a transfer
/// is staged, and handed over whole with its last page, so a replica never
/// holds pages of two versions, or half a snapshot.
pub struct StagedSnapshots {
    disk: Disk,
    /// The version each transfer in progress copies, and its staging file.
    staged: BTreeMap<String, (Version, Journal<StagedPage>)>,
}

/// One staged page, as the staging file holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StagedPage {
    version: Version,
    entries: Vec<(String, String)>,
}

/// Why a snapshot page could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// The page does not continue a transfer of its version.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The staging file could not be written or read back.
    #[error("staging a snapshot: {0}")]
    Journal(#[from] JournalError),
}

impl StagedSnapshots {
    /// No transfer yet; pages are staged on `disk`.
    pub fn on(disk: Disk) -> Self {
        StagedSnapshots { disk, staged: BTreeMap::new() }
    }

    /// The staging file of `id`'s transfer.
    pub fn file_of(id: &str) -> String {
        format!("{id}.staging")
    }

    /// Adds a page of the snapshot at `version` for `id`; `first` starts
    /// a transfer. Answers the whole snapshot with the `last` page.
    ///
    /// The staging file is scratch space: nothing reads it after a restart
    /// (a worker deletes staging files when it starts, and the transfer
    /// starts over), so staging costs no fsync; the snapshot is made
    /// durable once, when it is installed. A transfer of one page is not
    /// staged at all.
    pub fn page(
        &mut self,
        id: &str,
        version: Version,
        entries: Vec<(String, String)>,
        first: bool,
        last: bool,
    ) -> Result<Option<Snapshot>, StagingError> {
        let file = Self::file_of(id);
        if first {
            self.discard(id)?;
            if last {
                return Ok(Some(Snapshot { version, data: entries.into_iter().collect() }));
            }
            self.staged.insert(id.to_string(), (version, Journal::<StagedPage>::scratch_on(&self.disk, &file)?));
        }
        match self.staged.get_mut(id) {
            Some((staged, journal)) if *staged == version => journal.append(&StagedPage { version, entries })?,
            _ => return Err(ServiceError::OutOfTransfer { version }.into()),
        }
        if !last {
            return Ok(None);
        }
        let Some((_, journal)) = self.staged.remove(id) else { return Err(ServiceError::OutOfTransfer { version }.into()) };
        let mut snapshot = Snapshot { version, data: BTreeMap::new() };
        for page in journal.records()? {
            snapshot.data.extend(page.entries);
        }
        self.disk.remove(&file)?;
        Ok(Some(snapshot))
    }

    /// Drops `id`'s transfer, if any, and its staging file.
    pub fn discard(&mut self, id: &str) -> Result<(), JournalError> {
        self.staged.remove(id);
        self.disk.remove(&Self::file_of(id))
    }
}

impl StorageService {
    /// A new, empty replica.
    pub fn new() -> Self {
        StorageService::default()
    }

    /// Locks the replica at `epoch` and reports its durable version.
    pub fn lock(&mut self, epoch: Epoch, id: &str) -> Result<StorageRecoveryInfo, ServiceError> {
        self.lock.lock(epoch)?;
        if self.serving.is_some_and(|serving| serving < epoch) {
            self.serving = None;
        }
        Ok(StorageRecoveryInfo { id: id.to_string(), durable_version: self.durable, oldest_durable_version: 0 })
    }

    /// Starts serving generation `epoch`. Requires its lock.
    pub fn unlock(&mut self, epoch: Epoch) -> Result<(), ServiceError> {
        self.lock.check(epoch)?;
        self.serving = Some(epoch);
        Ok(())
    }

    /// Applies mutations pulled from a log, up to `upto`, which becomes durable.
    /// Only a serving replica applies; mutations at or below the durable
    /// version are already applied and are skipped.
    pub fn apply(&mut self, mutations: Vec<(Version, Mutation)>, upto: Version) {
        if self.serving.is_some() {
            self.apply_through(mutations, upto);
        }
    }

    /// Applies a page of a replica recovery's catch-up (or of a rebuild's
    /// tail) for recovery `epoch`, which must hold the lock: the replica is
    /// brought up to date before it serves.
    pub fn recover_apply(&mut self, epoch: Epoch, mutations: Vec<(Version, Mutation)>, upto: Version) -> Result<(), ServiceError> {
        self.lock.check(epoch)?;
        self.apply_through(mutations, upto);
        Ok(())
    }

    fn apply_through(&mut self, mutations: Vec<(Version, Mutation)>, upto: Version) {
        if upto <= self.durable {
            return;
        }
        for (version, mutation) in mutations {
            if version > self.durable && version <= upto {
                let old = self.data.insert(mutation.key.clone(), mutation.value);
                self.undo.entry(version).or_default().push((mutation.key, old));
            }
        }
        self.durable = upto;
        // Keep the undo entries of the newest versions only.
        let floor = upto.saturating_sub(UNDO_VERSIONS);
        if floor > self.undo_floor {
            self.undo = self.undo.split_off(&(floor + 1));
            self.undo_floor = floor;
        }
    }

    /// Rolls the replica back to `to`, for recovery `epoch`: a replica ahead
    /// of the committed version must drop what it applied past it. Refused
    /// below the oldest version it can undo.
    pub fn truncate(&mut self, epoch: Epoch, to: Version) -> Result<(), ServiceError> {
        self.check_not_serving(epoch)?;
        if to >= self.durable {
            return Ok(());
        }
        if to < self.undo_floor {
            return Err(ServiceError::CannotTruncate { to, floor: self.undo_floor });
        }
        for (_, changes) in self.undo.split_off(&(to + 1)).into_iter().rev() {
            for (key, old) in changes.into_iter().rev() {
                match old {
                    Some(value) => self.data.insert(key, value),
                    None => self.data.remove(&key),
                };
            }
        }
        self.durable = to;
        Ok(())
    }

    /// Replaces the replica's data, whatever it held, with a teammate's
    /// snapshot, for recovery `epoch`: the first half of a rebuild.
    pub fn rebuild(&mut self, epoch: Epoch, snapshot: Snapshot) -> Result<(), ServiceError> {
        self.check_rebuild(epoch)?;
        self.data = snapshot.data;
        self.durable = snapshot.version;
        self.undo.clear();
        self.undo_floor = snapshot.version;
        Ok(())
    }

    /// Whether a rebuild by `epoch` would be taken: it must hold the lock,
    /// and not serve `epoch` already.
    pub fn check_rebuild(&self, epoch: Epoch) -> Result<(), ServiceError> {
        self.check_not_serving(epoch)
    }

    /// A move that can take versions away (a truncation, a rebuild) needs
    /// `epoch`'s lock, and a replica that does not serve `epoch` yet: one
    /// that serves it has been applying the generation's commits since its
    /// unlock, which a late request of an abandoned session would roll
    /// back (the simulator's slow-disk seed 95,796 reinstalled a snapshot
    /// at 36 over a replica the pump had brought to 41). A catch-up only
    /// adds versions, and is taken.
    fn check_not_serving(&self, epoch: Epoch) -> Result<(), ServiceError> {
        self.lock.check(epoch)?;
        match self.serving {
            Some(serving) if serving == epoch => Err(ServiceError::ServingAlready(epoch)),
            _ => Ok(()),
        }
    }

    /// The replica's data, to seed a new teammate.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { version: self.durable, data: self.data.clone() }
    }

    /// A page of the replica's data as of `as_of` (or as it is, when it is
    /// not yet durable there): the keys after `after`, up to about `budget`
    /// bytes. A replica ahead of `as_of` answers from its undo entries, so a
    /// teammate that keeps applying while it is copied still gives one
    /// consistent version. Refused when `as_of` is older than what it can
    /// undo.
    pub fn snapshot_page(&self, after: Option<&str>, budget: usize, as_of: Version) -> Result<SnapshotPage, ServiceError> {
        use std::ops::Bound;
        if as_of < self.durable && as_of < self.undo_floor {
            return Err(ServiceError::CannotTruncate { to: as_of, floor: self.undo_floor });
        }
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = BTreeMap::new();
        let mut size = 0;
        let mut resume = None;
        for (key, value) in self.data.range::<str, _>((start, Bound::Unbounded)) {
            if size >= budget {
                resume = page.keys().next_back().cloned();
                break;
            }
            size += key.len() + value.len() + 16;
            page.insert(key.clone(), value.clone());
        }
        // The page covers the keys in (after, resume]: within them, undo
        // what was applied after `as_of`, newest first.
        let covers = |key: &str| after.is_none_or(|after| key > after) && resume.as_deref().is_none_or(|last| key <= last);
        for changes in self.undo.range(as_of.saturating_add(1)..).rev().map(|(_, changes)| changes) {
            for (key, old) in changes.iter().rev().filter(|(key, _)| covers(key)) {
                match old {
                    Some(value) => page.insert(key.clone(), value.clone()),
                    None => page.remove(key),
                };
            }
        }
        Ok(SnapshotPage { version: self.durable.min(as_of), entries: page.into_iter().collect(), resume })
    }

    /// Replaces an empty replica's data with a teammate's snapshot.
    pub fn install(&mut self, snapshot: Snapshot) {
        if self.durable < snapshot.version {
            self.data = snapshot.data;
            self.durable = snapshot.version;
            self.undo.clear();
            self.undo_floor = snapshot.version;
        }
    }

    /// The value of `key`.
    pub fn read(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }

    /// About how many bytes its state takes in a checkpoint.
    pub fn approx_bytes(&self) -> u64 {
        let data: usize = self.data.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
        let undo: usize = self.undo.values().flatten().map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len) + 8).sum();
        (data + undo) as u64
    }

    /// Every key and value, in order: to compare replicas.
    pub fn contents(&self) -> &BTreeMap<String, String> {
        &self.data
    }

    /// The version the replica is durable at.
    pub fn durable_version(&self) -> Version {
        self.durable
    }

    /// The epoch holding the lock.
    pub fn lock_holder(&self) -> Option<Epoch> {
        self.lock.holder()
    }

    /// Whether it serves a live generation.
    pub fn is_serving(&self) -> bool {
        self.serving.is_some()
    }

    /// Whether it serves generation `epoch`.
    pub fn serves(&self, epoch: Epoch) -> bool {
        self.serving == Some(epoch)
    }

    /// Whether it is joining generation `epoch`: locked by it, not serving
    /// yet (its recovery brings it up after the layout persists).
    pub fn joins(&self, epoch: Epoch) -> bool {
        self.lock.holder() == Some(epoch) && self.serving.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str, value: &str) -> Mutation {
        Mutation { tag: 0, key: key.into(), value: value.into() }
    }

    #[test]
    fn applies_in_order_and_never_twice() {
        let mut s = StorageService::new();
        s.lock(1, "s").unwrap();
        s.unlock(1).unwrap();
        s.apply(vec![(1, m("a", "1")), (2, m("a", "2"))], 2);
        s.apply(vec![(1, m("a", "old"))], 3);
        assert_eq!((s.read("a"), s.durable_version()), (Some("2"), 3));
    }

    #[test]
    fn a_locked_replica_stops_applying_and_reports_its_version() {
        let mut s = StorageService::new();
        s.lock(1, "s").unwrap();
        s.unlock(1).unwrap();
        s.apply(vec![(1, m("a", "1"))], 1);
        assert_eq!(s.lock(2, "s").unwrap().durable_version, 1);
        s.apply(vec![(2, m("a", "2"))], 2);
        assert_eq!(s.read("a"), Some("1"));
        let mut fresh = StorageService::new();
        fresh.install(s.snapshot());
        assert_eq!(fresh.read("a"), Some("1"));
    }

    #[test]
    fn recovery_applies_under_its_epochs_lock_before_serving() {
        let mut s = StorageService::new();
        s.lock(2, "s").unwrap();
        assert_eq!(s.recover_apply(1, vec![(1, m("a", "1"))], 1), Err(ServiceError::Superseded(2)));
        s.recover_apply(2, vec![(1, m("a", "1")), (2, m("b", "2"))], 2).unwrap();
        assert!(!s.is_serving());
        assert_eq!((s.read("a"), s.read("b"), s.durable_version()), (Some("1"), Some("2"), 2));
    }

    #[test]
    fn a_truncation_undoes_exactly_the_versions_past_it() {
        let mut s = StorageService::new();
        s.lock(1, "s").unwrap();
        s.recover_apply(1, vec![(1, m("a", "1")), (2, m("a", "2")), (2, m("b", "2")), (3, m("c", "3"))], 3).unwrap();
        let before: BTreeMap<String, String> = [("a", "1")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        s.truncate(1, 1).unwrap();
        assert_eq!((s.contents(), s.durable_version()), (&before, 1));
        assert_eq!(s.truncate(2, 0), Err(ServiceError::NotLocked { caller: 2, holder: Some(1) }));
    }

    #[test]
    fn a_truncation_below_the_undo_window_is_refused() {
        let mut s = StorageService::new();
        s.lock(1, "s").unwrap();
        let writes: Vec<(Version, Mutation)> = (1..=UNDO_VERSIONS + 10).map(|v| (v, m("k", &v.to_string()))).collect();
        s.recover_apply(1, writes, UNDO_VERSIONS + 10).unwrap();
        assert_eq!(s.truncate(1, 5), Err(ServiceError::CannotTruncate { to: 5, floor: 10 }));
        s.truncate(1, 10).unwrap();
        assert_eq!(s.read("k"), Some("10"));
    }

    #[test]
    fn a_late_truncation_or_rebuild_of_the_generation_it_serves_is_refused() {
        let mut s = StorageService::new();
        s.lock(3, "s").unwrap();
        s.rebuild(3, Snapshot { version: 36, data: [("a".to_string(), "36".to_string())].into() }).unwrap();
        s.unlock(3).unwrap();
        s.apply(vec![(41, m("a", "41"))], 41);
        // An abandoned session's requests arriving after the unlock: they
        // would take versions 37..41 away.
        let snapshot = Snapshot { version: 36, data: [("a".to_string(), "36".to_string())].into() };
        assert_eq!(s.rebuild(3, snapshot.clone()), Err(ServiceError::ServingAlready(3)));
        assert_eq!(s.check_rebuild(3), Err(ServiceError::ServingAlready(3)));
        assert_eq!(s.truncate(3, 36), Err(ServiceError::ServingAlready(3)));
        assert_eq!((s.read("a"), s.durable_version()), (Some("41"), 41));
        // A catch-up only adds versions, and is taken.
        s.recover_apply(3, vec![(42, m("b", "42"))], 42).unwrap();
        assert_eq!(s.durable_version(), 42);
        // A newer recovery locks it first: it serves nothing, and may cut it.
        s.lock(4, "s").unwrap();
        s.truncate(4, 41).unwrap();
        s.rebuild(4, snapshot).unwrap();
        assert_eq!(s.durable_version(), 36);
    }

    #[test]
    fn a_rebuild_replaces_whatever_the_replica_held() {
        let mut s = StorageService::new();
        s.lock(1, "s").unwrap();
        s.recover_apply(1, vec![(9, m("stale", "x"))], 9).unwrap();
        let data: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        s.rebuild(1, Snapshot { version: 4, data: data.clone() }).unwrap();
        assert_eq!((s.contents(), s.durable_version()), (&data, 4));
        assert_eq!(s.truncate(1, 3), Err(ServiceError::CannotTruncate { to: 3, floor: 4 }), "nothing before the snapshot to undo");
    }

    #[test]
    fn a_staged_transfer_is_handed_over_whole_and_only_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::Dir(dir.path().into());
        let mut staged = StagedSnapshots::on(disk.clone());
        let page = |k: &str| vec![(k.to_string(), "v".to_string())];
        let refused = |result: Result<Option<Snapshot>, StagingError>| match result {
            Err(StagingError::Service(ServiceError::OutOfTransfer { version })) => version,
            other => panic!("expected a page out of transfer, got {other:?}"),
        };
        assert_eq!(refused(staged.page("s", 3, page("a"), false, false)), 3);
        assert!(staged.page("s", 3, page("a"), true, false).unwrap().is_none());
        assert!(dir.path().join("s.staging").exists(), "the pages are staged on disk");
        assert_eq!(refused(staged.page("s", 4, page("b"), false, true)), 4);
        let whole = staged.page("s", 3, page("b"), false, true).unwrap().unwrap();
        assert_eq!((whole.version, whole.data.len()), (3, 2));
        assert!(!dir.path().join("s.staging").exists(), "the staging file is gone once handed over");
        assert_eq!(refused(staged.page("s", 3, page("c"), false, true)), 3, "handed over once");

        // A transfer started over drops what the last one staged; a
        // transfer of one page is handed over without being staged.
        assert!(staged.page("s", 6, page("d"), true, false).unwrap().is_none());
        let one = staged.page("s", 7, page("e"), true, true).unwrap().unwrap();
        assert_eq!((one.version, one.data.keys().map(String::as_str).collect::<Vec<_>>()), (7, vec!["e"]));
        assert!(!dir.path().join("s.staging").exists(), "a one-page transfer stages nothing");
        assert_eq!(refused(staged.page("s", 6, page("f"), false, true)), 6, "the transfer of 6 was dropped");
    }

    #[test]
    fn snapshot_pages_cover_every_key_once() {
        let mut storage = StorageService::new();
        let data: BTreeMap<String, String> = (0..50).map(|i| (format!("k{i:03}"), format!("v{i}"))).collect();
        storage.install(Snapshot { version: 7, data: data.clone() });
        let (mut copied, mut after) = (BTreeMap::new(), None::<String>);
        loop {
            let page = storage.snapshot_page(after.as_deref(), 100, 7).unwrap();
            assert_eq!(page.version, 7);
            assert!(!page.entries.is_empty() && page.entries.len() < 50, "{} keys in a page", page.entries.len());
            copied.extend(page.entries);
            after = page.resume;
            if after.is_none() {
                break;
            }
        }
        assert_eq!(copied, data);
        let whole = storage.snapshot_page(None, usize::MAX, Version::MAX).unwrap();
        assert_eq!(whole, SnapshotPage { version: 7, entries: data.into_iter().collect(), resume: None });
    }

    /// Copies `storage` as of `as_of` in pages of about `budget` bytes,
    /// applying `between` (a batch of writes at the next version) after
    /// each page, as a pump does to a teammate while it is copied.
    fn copy_while_writing(
        storage: &mut StorageService,
        as_of: Version,
        budget: usize,
        between: &mut dyn FnMut(usize) -> Vec<(String, String)>,
    ) -> BTreeMap<String, String> {
        let (mut copied, mut after, mut pages) = (BTreeMap::new(), None::<String>, 0);
        loop {
            let page = storage.snapshot_page(after.as_deref(), budget, as_of).unwrap();
            assert_eq!(page.version, as_of);
            copied.extend(page.entries);
            pages += 1;
            let next = storage.durable + 1;
            let writes = between(pages).into_iter().map(|(key, value)| (next, Mutation { tag: 0, key, value })).collect();
            storage.apply(writes, next);
            after = page.resume;
            if after.is_none() {
                return copied;
            }
        }
    }

    #[test]
    fn a_replica_that_moves_while_it_is_copied_gives_the_version_asked_for() {
        let mut storage = StorageService::new();
        storage.lock(1, "s").unwrap();
        storage.unlock(1).unwrap();
        let data: BTreeMap<String, String> = (0..60).map(|i| (format!("k{i:03}"), format!("v{i}"))).collect();
        storage.install(Snapshot { version: 10, data: data.clone() });
        // Between pages: overwrite keys on both sides of the cursor, and add
        // new keys (before it, after it, and past the last one).
        let mut writes = |page: usize| {
            vec![
                (format!("k{:03}", page * 7 % 60), format!("new{page}")),
                (format!("k{:03}", (page * 13 + 30) % 60), format!("new{page}")),
                (format!("k{:03}a", page * 11 % 60), "added".to_string()),
                (format!("z{page}"), "added".to_string()),
            ]
        };
        let copied = copy_while_writing(&mut storage, 10, 60, &mut writes);
        assert!(storage.durable > 12, "the replica moved on during the copy ({})", storage.durable);
        assert_eq!(copied, data, "exactly the data of version 10");
        // And a copy as of a later version that moved on too.
        let at = storage.durable;
        let expected = storage.data.clone();
        let copied = copy_while_writing(&mut storage, at, 80, &mut writes);
        assert_eq!(copied, expected);
    }

    #[test]
    fn a_copy_older_than_what_the_replica_can_undo_is_refused_and_a_newer_one_is_served_as_it_is() {
        let mut storage = StorageService::new();
        storage.lock(1, "s").unwrap();
        storage.unlock(1).unwrap();
        storage.install(Snapshot { version: 10, data: BTreeMap::from([("a".into(), "1".into())]) });
        let version = 10 + UNDO_VERSIONS + 5;
        storage.apply(vec![(version, Mutation { tag: 0, key: "a".into(), value: "2".into() })], version);
        let refused = storage.snapshot_page(None, usize::MAX, 10);
        assert!(matches!(refused, Err(ServiceError::CannotTruncate { to: 10, .. })), "{refused:?}");
        let ahead = storage.snapshot_page(None, usize::MAX, version + 100).unwrap();
        assert_eq!((ahead.version, ahead.entries), (version, vec![("a".into(), "2".into())]));
    }
}
