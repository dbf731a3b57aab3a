//! Storage: applies mutations from the logs and serves reads.

use std::collections::BTreeMap;

use super::{EpochLock, Mutation, ServiceError};
use crate::bindings::types::{Epoch, StorageRecoveryInfo, Version};

/// A storage replica: a key-value map with the version it is durable at.
#[derive(Clone, Debug, Default)]
pub struct StorageService {
    lock: EpochLock,
    /// The generation it serves, once unlocked.
    serving: Option<Epoch>,
    data: BTreeMap<String, String>,
    durable: Version,
}

/// A copy of a replica's data, to seed a new teammate.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The version the data is durable at.
    pub version: Version,
    /// The data.
    pub data: BTreeMap<String, String>,
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
        if self.serving.is_none() || upto <= self.durable {
            return;
        }
        for (version, mutation) in mutations {
            if version > self.durable && version <= upto {
                self.data.insert(mutation.key, mutation.value);
            }
        }
        self.durable = upto;
    }

    /// The replica's data, to seed a new teammate.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { version: self.durable, data: self.data.clone() }
    }

    /// A page of the replica's data: the keys after `after`, up to about
    /// `budget` bytes, with the version they are durable at and whether
    /// more keys follow. A teammate is seeded a page at a time.
    pub fn snapshot_page(&self, after: Option<&str>, budget: usize) -> (Version, Vec<(String, String)>, bool) {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = Vec::new();
        let mut size = 0;
        for (key, value) in self.data.range::<str, _>((start, Bound::Unbounded)) {
            if size >= budget {
                return (self.durable, page, true);
            }
            size += key.len() + value.len() + 16;
            page.push((key.clone(), value.clone()));
        }
        (self.durable, page, false)
    }

    /// Replaces an empty replica's data with a teammate's snapshot.
    pub fn install(&mut self, snapshot: Snapshot) {
        if self.durable < snapshot.version {
            self.data = snapshot.data;
            self.durable = snapshot.version;
        }
    }

    /// The value of `key`.
    pub fn read(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
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
    fn snapshot_pages_cover_every_key_once() {
        let mut storage = StorageService::new();
        let data: BTreeMap<String, String> = (0..50).map(|i| (format!("k{i:03}"), format!("v{i}"))).collect();
        storage.install(Snapshot { version: 7, data: data.clone() });
        let (mut copied, mut after) = (BTreeMap::new(), None::<String>);
        loop {
            let (version, page, more) = storage.snapshot_page(after.as_deref(), 100);
            assert_eq!(version, 7);
            assert!(!page.is_empty() && page.len() < 50, "{} keys in a page", page.len());
            after = page.last().map(|(k, _)| k.clone());
            copied.extend(page);
            if !more {
                break;
            }
        }
        assert_eq!(copied, data);
        assert_eq!(storage.snapshot_page(None, usize::MAX), (7, data.into_iter().collect(), false));
    }
}
