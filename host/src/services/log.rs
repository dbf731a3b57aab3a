//! The log: versioned mutations, held until storage has them, behind an
//! epoch lock.

use std::collections::{BTreeMap, BTreeSet};

use super::{EpochLock, Mutation, ServiceError};
use crate::bindings::types::{Epoch, LogRecoveryInfo, ShardTag, Version};

/// A log service.
///
/// It accepts pushes only from the generation it was unlocked for, and only
/// in version order without gaps. Locking it by a newer epoch stops it at once.
#[derive(Clone, Debug, Default)]
pub struct LogService {
    lock: EpochLock,
    /// The generation whose proxies may push, once unlocked.
    serving: Option<Epoch>,
    /// The shards this log carries in its generation.
    tags: BTreeSet<ShardTag>,
    entries: BTreeMap<Version, Vec<Mutation>>,
    /// Every version up to here has been received (or replayed).
    last: Version,
    /// The oldest version held; versions below it were never held here.
    oldest: Version,
}

impl LogService {
    /// A new, empty log.
    pub fn new() -> Self {
        LogService::default()
    }

    /// Locks the log at `epoch` and reports what it holds. It stops accepting
    /// pushes from its generation.
    pub fn lock(&mut self, epoch: Epoch, id: &str) -> Result<LogRecoveryInfo, ServiceError> {
        self.lock.lock(epoch)?;
        if self.serving.is_some_and(|serving| serving < epoch) {
            self.serving = None;
        }
        Ok(LogRecoveryInfo {
            id: id.to_string(),
            oldest_version: self.oldest,
            last_version: self.last,
            min_durable_version: 0,
        })
    }

    /// Accepts the mutations of `version`, which must follow `prev`, from a
    /// proxy of generation `epoch`.
    pub fn push(
        &mut self,
        epoch: Epoch,
        prev: Version,
        version: Version,
        mutations: Vec<Mutation>,
    ) -> Result<(), ServiceError> {
        match self.serving {
            Some(serving) if serving == epoch => {}
            Some(serving) => return Err(ServiceError::Fenced { serving, request: epoch }),
            None => {
                return Err(match self.lock.holder() {
                    Some(holder) if holder > epoch => ServiceError::Superseded(holder),
                    holder => ServiceError::NotLocked { caller: epoch, holder },
                });
            }
        }
        if prev != self.last {
            return Err(ServiceError::Gap { last: self.last, prev });
        }
        let kept: Vec<Mutation> = mutations.into_iter().filter(|m| self.tags.contains(&m.tag)).collect();
        if !kept.is_empty() {
            self.entries.insert(version, kept);
        }
        self.last = version;
        Ok(())
    }

    /// The mutations of `tags` in `[first, last]`, for a log recovering from
    /// this one. Refuses a range this log does not hold whole.
    pub fn read_range(
        &self,
        tags: &[ShardTag],
        first: Version,
        last: Version,
    ) -> Result<Vec<(Version, Vec<Mutation>)>, ServiceError> {
        Ok(self.read_range_page(tags, first, last, usize::MAX)?.0)
    }

    /// Like [`LogService::read_range`], but stops after the version that brings the
    /// page to `budget` bytes (at least one version is always included), and
    /// also answers the last version the page covers: the caller asks again
    /// from the one after it. Keeps a transfer under the frame limit.
    pub fn read_range_page(
        &self,
        tags: &[ShardTag],
        first: Version,
        last: Version,
        budget: usize,
    ) -> Result<(Vec<(Version, Vec<Mutation>)>, Version), ServiceError> {
        if first < self.oldest || last > self.last {
            return Err(ServiceError::Missing { oldest: self.oldest, last: self.last, first, wanted: last });
        }
        let mut page = Vec::new();
        let mut size = 0;
        for (version, mutations) in self.entries.range(first..=last) {
            let kept: Vec<Mutation> = mutations.iter().filter(|m| tags.contains(&m.tag)).cloned().collect();
            if kept.is_empty() {
                continue;
            }
            size += kept.iter().map(Mutation::size).sum::<usize>();
            page.push((*version, kept));
            if size >= budget {
                return Ok((page, *version));
            }
        }
        Ok((page, last))
    }

    /// Installs a recovered range `[first, last]` of `tags`. Requires the lock
    /// of `epoch`.
    pub fn install_range(
        &mut self,
        epoch: Epoch,
        tags: &[ShardTag],
        first: Version,
        last: Version,
        entries: Vec<(Version, Vec<Mutation>)>,
    ) -> Result<(), ServiceError> {
        self.lock.check(epoch)?;
        let was_empty = self.last == 0 && self.entries.is_empty();
        self.tags.extend(tags.iter().copied());
        for (version, mutations) in entries {
            self.entries.entry(version).or_default().extend(mutations);
        }
        self.oldest = if was_empty { first } else { self.oldest.min(first) };
        self.last = self.last.max(last);
        Ok(())
    }

    /// Starts serving generation `epoch` for `tags`, after version `start`.
    /// Requires the lock of `epoch`.
    pub fn unlock(&mut self, epoch: Epoch, tags: &[ShardTag], start: Version) -> Result<(), ServiceError> {
        self.lock.check(epoch)?;
        self.tags = tags.iter().copied().collect();
        self.last = self.last.max(start);
        self.serving = Some(epoch);
        Ok(())
    }

    /// The mutations of `tag` with versions in `(after, upto]`, for storage.
    /// Refused when the log no longer (or never) held all of them.
    pub fn pull(&self, tag: ShardTag, after: Version, upto: Version) -> Result<Vec<(Version, Mutation)>, ServiceError> {
        Ok(self.pull_page(tag, after, upto, usize::MAX)?.0)
    }

    /// Like [`LogService::pull`], but stops after the version that brings the page
    /// to `budget` bytes, and answers the last version the page covers.
    pub fn pull_page(
        &self,
        tag: ShardTag,
        after: Version,
        upto: Version,
        budget: usize,
    ) -> Result<(Vec<(Version, Mutation)>, Version), ServiceError> {
        let mut page = Vec::new();
        if after >= upto {
            return Ok((page, upto));
        }
        let (retained_after, last) = self.retained();
        if after < retained_after || upto > last {
            return Err(ServiceError::Missing { oldest: self.oldest, last, first: after + 1, wanted: upto });
        }
        let mut size = 0;
        for (version, mutations) in self.entries.range(after + 1..=upto) {
            for mutation in mutations.iter().filter(|m| m.tag == tag) {
                size += mutation.size();
                page.push((*version, mutation.clone()));
            }
            if size >= budget {
                return Ok((page, *version));
            }
        }
        Ok((page, upto))
    }

    /// Discards every version through `through` (never past the last one
    /// received): storage holds them, and a log retains only a window of
    /// history. A replica that falls further behind must be rebuilt.
    pub fn pop(&mut self, through: Version) {
        let through = through.min(self.last);
        if through < self.oldest {
            return;
        }
        self.entries = self.entries.split_off(&(through + 1));
        self.oldest = through + 1;
    }

    /// The versions it retains, as replica recovery counts them: every
    /// version after the first figure through the second (`(oldest, last]`).
    pub fn retained(&self) -> (Version, Version) {
        (self.oldest.saturating_sub(1), self.last)
    }

    /// The last version received.
    pub fn last_version(&self) -> Version {
        self.last
    }

    /// The epoch holding the lock.
    pub fn lock_holder(&self) -> Option<Epoch> {
        self.lock.holder()
    }

    /// Whether it takes pushes from generation `epoch`.
    pub fn serves(&self, epoch: Epoch) -> bool {
        self.serving == Some(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(tag: ShardTag, key: &str) -> Mutation {
        Mutation { tag, key: key.into(), value: format!("v-{key}") }
    }

    fn serving_log(epoch: Epoch) -> LogService {
        let mut log = LogService::new();
        log.lock(epoch, "log").unwrap();
        log.unlock(epoch, &[0, 1], 0).unwrap();
        log
    }

    #[test]
    fn pushes_follow_versions_without_gaps_and_keep_only_its_tags() {
        let mut log = serving_log(1);
        log.push(1, 0, 5, vec![m(0, "a"), m(7, "x")]).unwrap();
        assert_eq!(log.push(1, 0, 6, vec![]), Err(ServiceError::Gap { last: 5, prev: 0 }));
        log.push(1, 5, 9, vec![m(1, "b")]).unwrap();
        assert_eq!(log.pull(0, 0, 9).unwrap(), vec![(5, m(0, "a"))]);
        assert_eq!(log.read_range(&[0, 1, 7], 1, 9).unwrap().len(), 2);
    }

    #[test]
    fn a_newer_lock_stops_the_old_generation() {
        let mut log = serving_log(1);
        log.push(1, 0, 3, vec![m(0, "a")]).unwrap();
        let info = log.lock(2, "log").unwrap();
        assert_eq!(info.last_version, 3);
        assert_eq!(log.push(1, 3, 4, vec![]), Err(ServiceError::Superseded(2)));
        assert_eq!(log.lock(1, "log").unwrap_err(), ServiceError::Superseded(2));
    }

    #[test]
    fn a_recovered_range_is_installed_only_under_the_lock() {
        let mut old = serving_log(1);
        old.push(1, 0, 3, vec![m(0, "a")]).unwrap();
        old.push(1, 3, 4, vec![m(1, "b")]).unwrap();
        let entries = old.read_range(&[0, 1], 1, 4).unwrap();
        let mut new = LogService::new();
        assert!(new.install_range(2, &[0, 1], 1, 4, entries.clone()).is_err());
        new.lock(2, "new").unwrap();
        new.install_range(2, &[0, 1], 1, 4, entries).unwrap();
        new.unlock(2, &[0, 1], 4).unwrap();
        assert_eq!(new.last_version(), 4);
        assert_eq!(new.pull(1, 0, 4).unwrap(), vec![(4, m(1, "b"))]);
        assert!(old.read_range(&[0], 1, 9).is_err(), "a range beyond the log is refused");
    }

    #[test]
    fn pages_cover_the_range_once_each_and_stop_at_the_budget() {
        let mut log = serving_log(1);
        for v in 1..=10 {
            log.push(1, v - 1, v, vec![m(0, &format!("k{v}")), m(1, &format!("other{v}"))]).unwrap();
        }
        let whole = log.read_range(&[0], 1, 10).unwrap();
        let one = m(0, "k1").size();
        let (mut paged, mut from) = (Vec::new(), 1);
        loop {
            let (page, through) = log.read_range_page(&[0], from, 10, 3 * one).unwrap();
            assert!(page.len() <= 3 && !page.is_empty(), "{page:?}");
            assert!(page.iter().all(|(v, _)| (from..=through).contains(v)));
            paged.extend(page);
            if through == 10 {
                break;
            }
            from = through + 1;
        }
        assert_eq!(paged, whole);

        let (page, through) = log.pull_page(0, 4, 10, 2 * one).unwrap();
        assert_eq!(through, 6);
        assert_eq!(page, log.pull(0, 4, 6).unwrap());
        assert_eq!(log.pull_page(0, 4, 10, usize::MAX).unwrap(), (log.pull(0, 4, 10).unwrap(), 10));
        assert_eq!(log.pull_page(0, 10, 10, 1).unwrap(), (vec![], 10));
    }

    #[test]
    fn a_popped_log_refuses_what_it_no_longer_holds() {
        let mut log = serving_log(1);
        for v in 1..=10 {
            log.push(1, v - 1, v, vec![m(0, &format!("k{v}"))]).unwrap();
        }
        assert_eq!(log.retained(), (0, 10));
        log.pop(6);
        assert_eq!(log.retained(), (6, 10));
        assert_eq!(log.pull(0, 6, 10).unwrap().len(), 4);
        assert!(matches!(log.pull(0, 5, 10), Err(ServiceError::Missing { .. })), "version 6 is gone");
        assert!(matches!(log.read_range(&[0], 6, 10), Err(ServiceError::Missing { .. })));
        log.pop(3);
        assert_eq!(log.retained(), (6, 10), "a pop never brings history back");
        log.pop(99);
        assert_eq!(log.retained(), (10, 10), "nor goes past the last version");
    }
}
