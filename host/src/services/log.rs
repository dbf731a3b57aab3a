//! The log: versioned mutations, held until storage has them, behind an
//! epoch lock.
//!
//! A log knows, per shard it carries, the versions it holds of that shard:
//! a range `[oldest, through]`, every mutation of the shard in it present.
//! Everything it answers is checked against those ranges, so a log never
//! claims history it does not have: a pull, a copy or a lock reply covers
//! exactly what is there, or is refused.

use std::collections::BTreeMap;

use super::{EpochLock, Mutation, ServiceError};
use crate::bindings::types::{Epoch, LogRecoveryInfo, ShardRetention, ShardTag, Version};

/// The mutations of one version.
pub type VersionMutations = (Version, Vec<Mutation>);

/// The versions held of one shard: every mutation of it in `[oldest,
/// through]`. Empty when `oldest > through`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Held {
    oldest: Version,
    through: Version,
}

/// A log service.
///
/// It accepts pushes only from the generation it was unlocked for, and only
/// in version order without gaps. Locking it by a newer epoch stops it at once.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LogService {
    lock: EpochLock,
    /// The generation whose proxies may push, once unlocked.
    serving: Option<Epoch>,
    /// The shards this log carries, and what it holds of each. While it
    /// serves, every shard is held through `last`, whatever `through` says
    /// (a push does not touch every shard); locking it writes `last` back.
    shards: BTreeMap<ShardTag, Held>,
    entries: BTreeMap<Version, Vec<Mutation>>,
    /// The newest version received (or recovered).
    last: Version,
}

impl LogService {
    /// A new, empty log.
    pub fn new() -> Self {
        LogService::default()
    }

    /// About how many bytes its state takes in a checkpoint.
    pub fn approx_bytes(&self) -> u64 {
        let entries = self.entries.values().flatten().map(|m| m.key.len() + m.value.len() + 16).sum::<usize>();
        (entries + 16 * self.entries.len()) as u64
    }

    /// Locks the log at `epoch` and reports what it holds. It stops accepting
    /// pushes from its generation.
    pub fn lock(&mut self, epoch: Epoch, id: &str) -> Result<LogRecoveryInfo, ServiceError> {
        self.lock.lock(epoch)?;
        if self.serving.is_some_and(|serving| serving < epoch) {
            for held in self.shards.values_mut() {
                held.through = self.last;
            }
            self.serving = None;
        }
        // A shard held short of `last` (a recovery cut off half way) is
        // reported as holding nothing: nobody may copy a range it lacks.
        let shards: Vec<ShardRetention> = self
            .shards
            .iter()
            .map(|(tag, held)| ShardRetention {
                tag: *tag,
                oldest_version: if held.through == self.last { held.oldest } else { self.last.saturating_add(1) },
            })
            .collect();
        Ok(LogRecoveryInfo {
            id: id.to_string(),
            oldest_version: shards.iter().map(|s| s.oldest_version).min().unwrap_or(self.last.saturating_add(1)),
            last_version: self.last,
            shards,
        })
    }

    /// Accepts the mutations of `version`, which must follow `prev`, from a
    /// proxy of generation `epoch`.
    pub fn push(&mut self, epoch: Epoch, prev: Version, version: Version, mutations: Vec<Mutation>) -> Result<(), ServiceError> {
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
        if version <= prev {
            return Err(ServiceError::NotAfter { last: self.last, version });
        }
        let kept: Vec<Mutation> = mutations.into_iter().filter(|m| self.shards.contains_key(&m.tag)).collect();
        if !kept.is_empty() {
            self.entries.insert(version, kept);
        }
        self.last = version;
        Ok(())
    }

    /// The mutations of `tags` in `[first, last]`, for a log recovering from
    /// this one. Refuses a range this log does not hold whole for every tag.
    pub fn read_range(&self, tags: &[ShardTag], first: Version, last: Version) -> Result<Vec<(Version, Vec<Mutation>)>, ServiceError> {
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
    ) -> Result<(Vec<VersionMutations>, Version), ServiceError> {
        if first > last {
            return Err(ServiceError::InvertedRange { first, last });
        }
        for tag in tags {
            let held = self.holding(*tag)?;
            // No version 0 is ever issued: a range from 0 starts at 1.
            if first.max(1) < held.oldest || last > held.through {
                return Err(ServiceError::Missing { tag: *tag, oldest: held.oldest, last: held.through, first, wanted: last });
            }
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
    /// of `epoch`. For each tag the range must join what the log already
    /// holds of it (overlap or abut): a log holds one range per shard.
    /// Installing the same range twice changes nothing.
    pub fn install_range(
        &mut self,
        epoch: Epoch,
        tags: &[ShardTag],
        first: Version,
        last: Version,
        entries: Vec<(Version, Vec<Mutation>)>,
    ) -> Result<(), ServiceError> {
        self.lock.check(epoch)?;
        if let Some(serving) = self.serving {
            return Err(ServiceError::Fenced { serving, request: epoch });
        }
        if first > last {
            return Err(ServiceError::InvertedRange { first, last });
        }
        // Every tag is checked before anything changes.
        let mut merged = Vec::with_capacity(tags.len());
        for tag in tags {
            let held = match self.shards.get(tag) {
                None => Held { oldest: first, through: last },
                Some(held) if held.oldest > held.through => Held { oldest: first, through: last },
                Some(held) if first <= held.through.saturating_add(1) && last.saturating_add(1) >= held.oldest => {
                    Held { oldest: held.oldest.min(first), through: held.through.max(last) }
                }
                Some(held) => {
                    return Err(ServiceError::Disjoint { tag: *tag, oldest: held.oldest, through: held.through, first, last });
                }
            };
            merged.push((*tag, held));
        }
        // What the log held of these tags in the range is replaced by what
        // came, so a range delivered twice is not held twice.
        for mutations in self.entries.range_mut(first..=last).map(|(_, m)| m) {
            mutations.retain(|m| !tags.contains(&m.tag));
        }
        for (version, mutations) in entries {
            let kept: Vec<Mutation> =
                mutations.into_iter().filter(|m| tags.contains(&m.tag) && (first..=last).contains(&version)).collect();
            if !kept.is_empty() {
                self.entries.entry(version).or_default().extend(kept);
            }
        }
        self.entries.retain(|_, mutations| !mutations.is_empty());
        self.shards.extend(merged);
        self.last = self.last.max(last);
        Ok(())
    }

    /// Starts serving generation `epoch` for `tags`, after version `start`.
    /// Requires the lock of `epoch`. A shard not held through `start` is
    /// held from `start + 1` on: the log never claims versions it lacks.
    /// Refused when the log holds versions past `start`, which the
    /// generation will issue again.
    pub fn unlock(&mut self, epoch: Epoch, tags: &[ShardTag], start: Version) -> Result<(), ServiceError> {
        self.lock.check(epoch)?;
        if self.last > start {
            return Err(ServiceError::Ahead { last: self.last, start });
        }
        let empty = Held { oldest: start.saturating_add(1), through: start };
        self.shards = tags
            .iter()
            .map(|tag| {
                let held = match self.shards.get(tag) {
                    Some(held) if held.through == start && held.oldest <= start => *held,
                    _ => empty,
                };
                (*tag, held)
            })
            .collect();
        self.last = start;
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
        let held = self.holding(tag)?;
        if after.saturating_add(1) < held.oldest || upto > held.through {
            return Err(ServiceError::Missing {
                tag,
                oldest: held.oldest,
                last: held.through,
                first: after.saturating_add(1),
                wanted: upto,
            });
        }
        let mut size = 0;
        for (version, mutations) in self.entries.range(after.saturating_add(1)..=upto) {
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
    /// history. A replica that falls further behind must be rebuilt. A log
    /// that serves no generation (a recovery holds its lock) keeps its
    /// history as the recovery found it. Answers whether anything was
    /// discarded.
    pub fn pop(&mut self, through: Version) -> bool {
        if self.serving.is_none() {
            return false;
        }
        let through = through.min(self.last);
        let mut changed = false;
        for held in self.shards.values_mut() {
            if held.oldest <= through {
                held.oldest = through.saturating_add(1);
                changed = true;
            }
        }
        let kept = self.entries.split_off(&(through.saturating_add(1)));
        changed |= !self.entries.is_empty();
        self.entries = kept;
        changed
    }

    /// The versions it retains of `tag`, as replica recovery counts them:
    /// every version after the first figure through the second. Refused
    /// for a shard it does not carry.
    pub fn retained(&self, tag: ShardTag) -> Result<(Version, Version), ServiceError> {
        let held = self.holding(tag)?;
        Ok((held.oldest.saturating_sub(1), held.through))
    }

    /// The versions it retains of every shard it carries: after the first
    /// figure (the oldest kept of any shard, less one) through its last.
    pub fn span(&self) -> (Version, Version) {
        let oldest = self.shards.values().map(|h| h.oldest).min().unwrap_or(self.last.saturating_add(1));
        (oldest.saturating_sub(1), self.last)
    }

    /// Whether the log holds a mutation of shard `tag` setting `key` to
    /// `value`, in the versions it holds of the shard.
    pub fn holds_write(&self, tag: ShardTag, key: &str, value: &str) -> bool {
        let Ok(held) = self.holding(tag) else { return false };
        if held.oldest > held.through {
            return false;
        }
        let mut versions = self.entries.range(held.oldest..=held.through).flat_map(|(_, m)| m);
        versions.any(|m| m.tag == tag && m.key == key && m.value == value)
    }

    fn holding(&self, tag: ShardTag) -> Result<Held, ServiceError> {
        let held = self.shards.get(&tag).copied().ok_or(ServiceError::NotCarried { tag })?;
        Ok(if self.serving.is_some() { Held { through: self.last, ..held } } else { held })
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

    fn oldest_of(info: &LogRecoveryInfo) -> Vec<(ShardTag, Version)> {
        info.shards.iter().map(|s| (s.tag, s.oldest_version)).collect()
    }

    #[test]
    fn pushes_follow_versions_without_gaps_and_keep_only_its_tags() {
        let mut log = serving_log(1);
        log.push(1, 0, 5, vec![m(0, "a"), m(7, "x")]).unwrap();
        assert_eq!(log.push(1, 0, 6, vec![]), Err(ServiceError::Gap { last: 5, prev: 0 }));
        assert_eq!(log.push(1, 5, 5, vec![]), Err(ServiceError::NotAfter { last: 5, version: 5 }));
        log.push(1, 5, 9, vec![m(1, "b")]).unwrap();
        assert_eq!(log.pull(0, 0, 9).unwrap(), vec![(5, m(0, "a"))]);
        assert_eq!(log.read_range(&[0, 1], 1, 9).unwrap().len(), 2);
        assert_eq!(log.read_range(&[7], 1, 9), Err(ServiceError::NotCarried { tag: 7 }), "a shard it does not carry");
    }

    #[test]
    fn a_newer_lock_stops_the_old_generation() {
        let mut log = serving_log(1);
        log.push(1, 0, 3, vec![m(0, "a")]).unwrap();
        let info = log.lock(2, "log").unwrap();
        assert_eq!(info.last_version, 3);
        assert_eq!(oldest_of(&info), [(0, 1), (1, 1)]);
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
        new.install_range(2, &[0, 1], 1, 4, entries.clone()).unwrap();
        new.install_range(2, &[0, 1], 1, 4, entries).unwrap();
        new.unlock(2, &[0, 1], 4).unwrap();
        assert_eq!(new.last_version(), 4);
        assert_eq!(new.pull(1, 0, 4).unwrap(), vec![(4, m(1, "b"))], "a range delivered twice is held once");
        assert!(old.read_range(&[0], 1, 9).is_err(), "a range beyond the log is refused");
    }

    #[test]
    fn inverted_ranges_are_refused_not_a_panic() {
        let mut log = serving_log(1);
        log.push(1, 0, 3, vec![m(0, "a")]).unwrap();
        assert_eq!(log.read_range(&[0], 3, 2), Err(ServiceError::InvertedRange { first: 3, last: 2 }));
        log.lock(2, "log").unwrap();
        assert_eq!(log.install_range(2, &[0], 9, 1, vec![]), Err(ServiceError::InvertedRange { first: 9, last: 1 }));
        // A log popped through its last version holds nothing, and says so.
        let mut empty = serving_log(1);
        empty.pop(0);
        let info = empty.lock(2, "empty").unwrap();
        assert_eq!((info.oldest_version, info.last_version), (1, 0));
        assert!(!empty.pop(0) && empty.retained(0) == Ok((0, 0)), "a locked log is not popped");
    }

    #[test]
    fn each_shard_keeps_its_own_history() {
        // A new log recovering shard 0 from version 5 and shard 1, whose
        // logs were popped through 9, from nothing.
        let mut log = LogService::new();
        log.lock(2, "new").unwrap();
        log.install_range(2, &[0], 5, 9, vec![(6, vec![m(0, "a")])]).unwrap();
        log.unlock(2, &[0, 1], 9).unwrap();
        assert_eq!(log.retained(0), Ok((4, 9)));
        assert_eq!(log.retained(1), Ok((9, 9)), "shard 1 is held from version 10 only");
        assert!(matches!(log.pull(1, 5, 9), Err(ServiceError::Missing { tag: 1, .. })), "no claim on shard 1's past");
        assert_eq!(log.pull(0, 4, 9).unwrap(), vec![(6, m(0, "a"))]);
        let info = log.lock(3, "new").unwrap();
        assert_eq!(oldest_of(&info), [(0, 5), (1, 10)]);
        assert_eq!(info.oldest_version, 5);
    }

    #[test]
    fn a_range_must_join_what_a_shard_holds() {
        let mut log = LogService::new();
        log.lock(2, "new").unwrap();
        log.install_range(2, &[0], 10, 20, vec![]).unwrap();
        log.install_range(2, &[0], 21, 30, vec![]).unwrap();
        assert_eq!(
            log.install_range(2, &[0], 40, 50, vec![]),
            Err(ServiceError::Disjoint { tag: 0, oldest: 10, through: 30, first: 40, last: 50 })
        );
        // Held short of the start: the shard holds nothing before it.
        log.install_range(2, &[1], 10, 25, vec![]).unwrap();
        log.unlock(2, &[0, 1], 30).unwrap();
        assert_eq!((log.retained(0), log.retained(1)), (Ok((9, 30)), Ok((30, 30))));
    }

    #[test]
    fn a_log_holding_versions_past_the_start_is_not_unlocked() {
        let mut log = LogService::new();
        log.lock(2, "new").unwrap();
        log.install_range(2, &[0], 1, 20, vec![]).unwrap();
        assert_eq!(log.unlock(2, &[0], 15), Err(ServiceError::Ahead { last: 20, start: 15 }));
        assert!(!log.serves(2));
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
        assert_eq!(log.retained(0), Ok((0, 10)));
        assert!(log.pop(6));
        assert_eq!(log.retained(0), Ok((6, 10)));
        assert_eq!(log.span(), (6, 10));
        assert_eq!(log.pull(0, 6, 10).unwrap().len(), 4);
        assert!(matches!(log.pull(0, 5, 10), Err(ServiceError::Missing { .. })), "version 6 is gone");
        assert!(matches!(log.read_range(&[0], 6, 10), Err(ServiceError::Missing { .. })));
        assert!(!log.pop(3));
        assert_eq!(log.retained(0), Ok((6, 10)), "a pop never brings history back");
        log.pop(99);
        assert_eq!(log.retained(0), Ok((10, 10)), "nor goes past the last version");
    }
}
