//! The log and storage state machines made durable: every input is applied,
//! then journaled and fsynced, and only then acknowledged. On restart the
//! journal is replayed through the same machine.
//!
//! A restarted service also refuses locks at or below the epoch that held
//! it before the restart: an attempt of that epoch may have counted on
//! something the crash interrupted, so only a newer epoch may take over.
//! If a journal write fails the service is poisoned: it refuses everything,
//! as a crashed process would, rather than acknowledge what is not on disk.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::disk::Disk;
use super::journal::{Journal, JournalError};
use super::{LogService, Mutation, ServiceError, Snapshot, StorageService};
use crate::bindings::types::{Epoch, LogRecoveryInfo, ShardTag, StorageRecoveryInfo, Version};

/// Why a durable service refused a call.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// The state machine refused the input.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The input could not be made durable; the service is now poisoned.
    #[error("not durable: {0}")]
    Journal(#[from] JournalError),
    /// An earlier journal write failed: the service refuses everything.
    #[error("the service failed to write its journal earlier and serves nothing until restarted")]
    Poisoned,
}

/// The journal, the poison flag and the pre-restart lock floor shared by
/// both durable services.
struct Durability<R> {
    journal: Journal<R>,
    poisoned: bool,
    /// Locks at or below this epoch are refused (the holder before a restart).
    floor: Option<Epoch>,
    /// The journal's length when compaction was last considered.
    considered: u64,
}

/// Compaction is considered each time the journal has grown by this, and
/// done when the journal is more than twice the state's size: a restart
/// then reads about the state, not the history, and each byte of state is
/// rewritten a bounded number of times.
const COMPACT_AFTER: u64 = 16 << 20;

/// The most state one checkpoint record holds.
const CHECKPOINT_PART: usize = 4 << 20;

/// The records of a checkpoint of `state`: its postcard bytes in parts.
fn checkpoint_parts<S: Serialize>(state: &S, path: &Path) -> Result<Vec<(Vec<u8>, bool)>, JournalError> {
    let bytes =
        postcard::to_stdvec(state).map_err(|e| JournalError::Encode { path: path.to_path_buf(), reason: format!("checkpoint: {e}") })?;
    let mut parts: Vec<(Vec<u8>, bool)> = bytes.chunks(CHECKPOINT_PART).map(|part| (part.to_vec(), false)).collect();
    if parts.is_empty() {
        parts.push((Vec::new(), false));
    }
    if let Some(last) = parts.last_mut() {
        last.1 = true;
    }
    Ok(parts)
}

/// A checkpoint being read back from its parts.
#[derive(Default)]
struct Restoring(Vec<u8>);

impl Restoring {
    /// Adds a part; with the last, answers the state.
    fn part<S: for<'de> Deserialize<'de>>(
        &mut self,
        part: Vec<u8>,
        last: bool,
        path: &Path,
        index: usize,
    ) -> Result<Option<S>, JournalError> {
        self.0.extend_from_slice(&part);
        if !last {
            return Ok(None);
        }
        let bytes = std::mem::take(&mut self.0);
        postcard::from_bytes(&bytes).map(Some).map_err(|e| JournalError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: format!("the checkpoint ending at record {} does not decode: {e}", index + 1),
        })
    }
}

impl<R: Serialize + for<'de> Deserialize<'de>> Durability<R> {
    fn check(&self) -> Result<(), DurableError> {
        if self.poisoned { Err(DurableError::Poisoned) } else { Ok(()) }
    }

    fn check_lock(&self, epoch: Epoch) -> Result<(), DurableError> {
        self.check()?;
        match self.floor {
            Some(floor) if epoch <= floor => Err(ServiceError::Superseded(floor).into()),
            _ => Ok(()),
        }
    }

    fn record(&mut self, input: &R) -> Result<(), DurableError> {
        self.journal.append(input).map_err(|err| self.poison(err))
    }

    fn poison(&mut self, err: JournalError) -> DurableError {
        self.poisoned = true;
        tracing::error!(path = %self.journal.path().display(), %err, "journal write failed; service poisoned");
        DurableError::Journal(err)
    }

    /// Whether the journal, of a service whose state takes about
    /// `state_bytes`, is due for compaction. Looked at (`state_bytes`
    /// called) only once per [`COMPACT_AFTER`] of growth.
    fn due(&mut self, state_bytes: impl FnOnce() -> u64) -> bool {
        let len = self.journal.len();
        if len < self.considered + COMPACT_AFTER {
            return false;
        }
        self.considered = len;
        len > 2 * state_bytes()
    }

    /// Replaces the journal by a checkpoint of `state`, written as `parts`
    /// records. A failure poisons the service: what it acknowledged is in
    /// the old journal, which the rename either replaced whole or not at all.
    fn compact<S: Serialize>(&mut self, state: &S, part: fn(Vec<u8>, bool) -> R) -> Result<(), DurableError> {
        let parts = checkpoint_parts(state, self.journal.path()).map_err(|err| self.poison(err))?;
        let records: Vec<R> = parts.into_iter().map(|(bytes, last)| part(bytes, last)).collect();
        let before = self.journal.len();
        self.journal.rewrite(&records).map_err(|err| self.poison(err))?;
        self.considered = self.journal.len();
        tracing::info!(path = %self.journal.path().display(), before, after = self.considered, "journal compacted");
        Ok(())
    }
}

/// An input of a log, as journaled.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum LogInput {
    Lock(Epoch),
    Push {
        epoch: Epoch,
        prev: Version,
        version: Version,
        mutations: Vec<Mutation>,
    },
    Install {
        epoch: Epoch,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
        entries: Vec<(Version, Vec<Mutation>)>,
    },
    Unlock {
        epoch: Epoch,
        tags: Vec<ShardTag>,
        start: Version,
    },
    Pop(Version),
    /// A part of a checkpoint of the whole log, which replaces the records
    /// before it.
    Checkpoint {
        part: Vec<u8>,
        last: bool,
    },
}

impl LogInput {
    /// The record in a few words, for an error.
    fn describe(&self) -> String {
        match self {
            LogInput::Lock(epoch) => format!("lock at epoch {epoch}"),
            LogInput::Push { epoch, prev, version, mutations } => {
                format!("push of version {version} after {prev} at epoch {epoch}, {} mutations", mutations.len())
            }
            LogInput::Install { epoch, tags, first, last, .. } => {
                format!("install of versions {first}..={last} of shards {tags:?} at epoch {epoch}")
            }
            LogInput::Unlock { epoch, tags, start } => format!("unlock at epoch {epoch} of shards {tags:?} from version {start}"),
            LogInput::Pop(through) => format!("pop through version {through}"),
            LogInput::Checkpoint { part, last } => format!("checkpoint part of {} bytes (last: {last})", part.len()),
        }
    }
}

/// The error for record `index` (from 0) of the journal at `path`, which
/// the service refused on replay.
fn replay_error(path: &Path, index: usize, input: String, err: ServiceError) -> JournalError {
    JournalError::Replay { path: path.to_path_buf(), record: index + 1, input, reason: err.to_string() }
}

/// A log whose acknowledged inputs survive a crash.
pub struct DurableLog {
    log: LogService,
    durability: Durability<LogInput>,
}

impl DurableLog {
    /// Opens the log journaled at `path`, replaying what it holds.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::replay(Journal::<LogInput>::open(path)?)
    }

    /// Opens the log journaled in file `name` of `disk`, replaying what it holds.
    pub fn open_on(disk: &Disk, name: &str) -> Result<Self, JournalError> {
        Self::replay(Journal::<LogInput>::open_on(disk, name)?)
    }

    fn replay((journal, inputs): (Journal<LogInput>, Vec<LogInput>)) -> Result<Self, JournalError> {
        let path = journal.path().to_path_buf();
        let mut log = LogService::new();
        let mut restoring = Restoring::default();
        for (index, input) in inputs.into_iter().enumerate() {
            // Every journaled input was accepted once; it must be accepted again.
            let described = input.describe();
            let replayed = match input {
                LogInput::Lock(epoch) => log.lock(epoch, "").map(drop),
                LogInput::Push { epoch, prev, version, mutations } => log.push(epoch, prev, version, mutations),
                LogInput::Install { epoch, tags, first, last, entries } => log.install_range(epoch, &tags, first, last, entries),
                LogInput::Unlock { epoch, tags, start } => log.unlock(epoch, &tags, start),
                LogInput::Pop(through) => {
                    log.pop(through);
                    Ok(())
                }
                LogInput::Checkpoint { part, last } => {
                    if let Some(restored) = restoring.part(part, last, &path, index)? {
                        log = restored;
                    }
                    Ok(())
                }
            };
            replayed.map_err(|err| replay_error(&path, index, described, err))?;
        }
        let floor = log.lock_holder();
        let considered = journal.len();
        Ok(DurableLog { log, durability: Durability { journal, poisoned: false, floor, considered } })
    }

    /// Records `input`, then compacts the journal if it is due.
    fn record(&mut self, input: &LogInput) -> Result<(), DurableError> {
        self.durability.record(input)?;
        if self.durability.due(|| self.log.approx_bytes()) {
            self.durability.compact(&self.log, |part, last| LogInput::Checkpoint { part, last })?;
        }
        Ok(())
    }

    /// See [`LogService::lock`].
    pub fn lock(&mut self, epoch: Epoch, id: &str) -> Result<LogRecoveryInfo, DurableError> {
        self.durability.check_lock(epoch)?;
        let info = self.log.lock(epoch, id)?;
        self.record(&LogInput::Lock(epoch))?;
        Ok(info)
    }

    /// See [`LogService::push`]; acknowledged only once on disk.
    pub fn push(&mut self, epoch: Epoch, prev: Version, version: Version, mutations: Vec<Mutation>) -> Result<(), DurableError> {
        self.durability.check()?;
        self.log.push(epoch, prev, version, mutations.clone())?;
        self.record(&LogInput::Push { epoch, prev, version, mutations })
    }

    /// See [`LogService::install_range`].
    pub fn install_range(
        &mut self,
        epoch: Epoch,
        tags: &[ShardTag],
        first: Version,
        last: Version,
        entries: Vec<(Version, Vec<Mutation>)>,
    ) -> Result<(), DurableError> {
        self.durability.check()?;
        self.log.install_range(epoch, tags, first, last, entries.clone())?;
        self.record(&LogInput::Install { epoch, tags: tags.to_vec(), first, last, entries })
    }

    /// See [`LogService::unlock`].
    pub fn unlock(&mut self, epoch: Epoch, tags: &[ShardTag], start: Version) -> Result<(), DurableError> {
        self.durability.check()?;
        self.log.unlock(epoch, tags, start)?;
        self.record(&LogInput::Unlock { epoch, tags: tags.to_vec(), start })
    }

    /// See [`LogService::pop`]. A pop that discards nothing is not journaled.
    pub fn pop(&mut self, through: Version) -> Result<(), DurableError> {
        self.durability.check()?;
        if !self.log.pop(through) {
            return Ok(());
        }
        self.record(&LogInput::Pop(through))
    }

    /// The state machine, for reads (`read_range`, `pull`, versions).
    pub fn service(&self) -> &LogService {
        &self.log
    }
}

/// An input of a storage replica, as journaled.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum StorageInput {
    Lock(Epoch),
    Unlock(Epoch),
    Apply {
        mutations: Vec<(Version, Mutation)>,
        upto: Version,
    },
    /// Written by earlier versions, which seeded an empty replica; still
    /// replayed.
    Install(Snapshot),
    RecoverApply {
        epoch: Epoch,
        mutations: Vec<(Version, Mutation)>,
        upto: Version,
    },
    Truncate {
        epoch: Epoch,
        to: Version,
    },
    Rebuild {
        epoch: Epoch,
        snapshot: Snapshot,
    },
    /// A part of a checkpoint of the whole replica, which replaces the
    /// records before it.
    Checkpoint {
        part: Vec<u8>,
        last: bool,
    },
}

impl StorageInput {
    /// The record in a few words, for an error.
    fn describe(&self) -> String {
        match self {
            StorageInput::Lock(epoch) => format!("lock at epoch {epoch}"),
            StorageInput::Unlock(epoch) => format!("unlock at epoch {epoch}"),
            StorageInput::Apply { mutations, upto } => format!("apply through version {upto}, {} mutations", mutations.len()),
            StorageInput::Install(snapshot) => format!("install of a snapshot at version {}", snapshot.version),
            StorageInput::RecoverApply { epoch, mutations, upto } => {
                format!("catch-up through version {upto} at epoch {epoch}, {} mutations", mutations.len())
            }
            StorageInput::Truncate { epoch, to } => format!("truncation to version {to} at epoch {epoch}"),
            StorageInput::Rebuild { epoch, snapshot } => format!("rebuild at version {} at epoch {epoch}", snapshot.version),
            StorageInput::Checkpoint { part, last } => format!("checkpoint part of {} bytes (last: {last})", part.len()),
        }
    }
}

/// The mutations a replica durable at `before` applied from a page through
/// `upto`: only those are journaled.
fn newly_applied(mutations: Vec<(Version, Mutation)>, before: Version, upto: Version) -> Vec<(Version, Mutation)> {
    mutations.into_iter().filter(|(v, _)| *v > before && *v <= upto).collect()
}

/// A storage replica whose applied data and durable version survive a crash.
pub struct DurableStorage {
    storage: StorageService,
    durability: Durability<StorageInput>,
}

impl DurableStorage {
    /// Opens the replica journaled at `path`, replaying what it holds.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::replay(Journal::<StorageInput>::open(path)?)
    }

    /// Opens the replica journaled in file `name` of `disk`, replaying what it holds.
    pub fn open_on(disk: &Disk, name: &str) -> Result<Self, JournalError> {
        Self::replay(Journal::<StorageInput>::open_on(disk, name)?)
    }

    fn replay((journal, inputs): (Journal<StorageInput>, Vec<StorageInput>)) -> Result<Self, JournalError> {
        let path = journal.path().to_path_buf();
        let mut storage = StorageService::new();
        let mut restoring = Restoring::default();
        for (index, input) in inputs.into_iter().enumerate() {
            // Every journaled input was accepted once; it must be accepted again.
            let described = input.describe();
            let replayed = match input {
                StorageInput::Lock(epoch) => storage.lock(epoch, "").map(drop),
                StorageInput::Unlock(epoch) => storage.unlock(epoch),
                StorageInput::Apply { mutations, upto } => {
                    storage.apply(mutations, upto);
                    Ok(())
                }
                StorageInput::Install(snapshot) => {
                    storage.install(snapshot);
                    Ok(())
                }
                StorageInput::RecoverApply { epoch, mutations, upto } => storage.recover_apply(epoch, mutations, upto),
                StorageInput::Truncate { epoch, to } => storage.truncate(epoch, to),
                StorageInput::Rebuild { epoch, snapshot } => storage.rebuild(epoch, snapshot),
                StorageInput::Checkpoint { part, last } => {
                    if let Some(restored) = restoring.part(part, last, &path, index)? {
                        storage = restored;
                    }
                    Ok(())
                }
            };
            replayed.map_err(|err| replay_error(&path, index, described, err))?;
        }
        let floor = storage.lock_holder();
        let considered = journal.len();
        Ok(DurableStorage { storage, durability: Durability { journal, poisoned: false, floor, considered } })
    }

    /// Records `input`, then compacts the journal if it is due.
    fn record(&mut self, input: &StorageInput) -> Result<(), DurableError> {
        self.durability.record(input)?;
        if self.durability.due(|| self.storage.approx_bytes()) {
            self.compact()?;
        }
        Ok(())
    }

    /// Replaces the journal by a checkpoint of the replica.
    fn compact(&mut self) -> Result<(), DurableError> {
        self.durability.compact(&self.storage, |part, last| StorageInput::Checkpoint { part, last })
    }

    /// See [`StorageService::lock`].
    pub fn lock(&mut self, epoch: Epoch, id: &str) -> Result<StorageRecoveryInfo, DurableError> {
        self.durability.check_lock(epoch)?;
        let info = self.storage.lock(epoch, id)?;
        self.record(&StorageInput::Lock(epoch))?;
        Ok(info)
    }

    /// See [`StorageService::unlock`].
    pub fn unlock(&mut self, epoch: Epoch) -> Result<(), DurableError> {
        self.durability.check()?;
        self.storage.unlock(epoch)?;
        self.record(&StorageInput::Unlock(epoch))
    }

    /// See [`StorageService::apply`]; the new durable version is on disk
    /// when this returns, so whoever sent it knows the replica holds
    /// `upto`. Refused while the replica serves no generation. Inputs that
    /// change nothing are not journaled.
    pub fn apply(&mut self, mutations: Vec<(Version, Mutation)>, upto: Version) -> Result<(), DurableError> {
        self.durability.check()?;
        if !self.storage.is_serving() {
            return Err(ServiceError::NotServing.into());
        }
        let before = self.storage.durable_version();
        self.storage.apply(mutations.clone(), upto);
        if self.storage.durable_version() == before {
            return Ok(());
        }
        self.record(&StorageInput::Apply { mutations: newly_applied(mutations, before, upto), upto })
    }

    /// See [`StorageService::recover_apply`]; durable when this returns.
    pub fn recover_apply(&mut self, epoch: Epoch, mutations: Vec<(Version, Mutation)>, upto: Version) -> Result<(), DurableError> {
        self.durability.check()?;
        let before = self.storage.durable_version();
        self.storage.recover_apply(epoch, mutations.clone(), upto)?;
        if self.storage.durable_version() == before {
            return Ok(());
        }
        let mutations = newly_applied(mutations, before, upto);
        self.record(&StorageInput::RecoverApply { epoch, mutations, upto })
    }

    /// See [`StorageService::truncate`]; durable when this returns.
    pub fn truncate(&mut self, epoch: Epoch, to: Version) -> Result<(), DurableError> {
        self.durability.check()?;
        self.storage.truncate(epoch, to)?;
        self.record(&StorageInput::Truncate { epoch, to })
    }

    /// Whether a rebuild at `epoch` would be taken now (its pages are
    /// refused early otherwise).
    pub fn check_rebuild(&self, epoch: Epoch) -> Result<(), DurableError> {
        self.durability.check()?;
        Ok(self.storage.check_rebuild(epoch)?)
    }

    /// See [`StorageService::rebuild`]: the journal is replaced by a
    /// checkpoint of the rebuilt replica at once, so a crash leaves either
    /// the old data and version or the new ones, never a mix, and a
    /// snapshot of any size is installed (no single record holds it).
    pub fn rebuild(&mut self, epoch: Epoch, snapshot: Snapshot) -> Result<(), DurableError> {
        self.durability.check()?;
        self.storage.rebuild(epoch, snapshot)?;
        // A failure poisons the replica: it serves nothing more, and its
        // old journal, whole, still says the old data.
        self.compact()
    }

    /// The state machine, for reads.
    pub fn service(&self) -> &StorageService {
        &self.storage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(tag: ShardTag, key: &str) -> Mutation {
        Mutation { tag, key: key.into(), value: format!("v-{key}") }
    }

    #[test]
    fn a_journal_that_grows_is_compacted_and_a_reopened_log_reads_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-1.log");
        let value = "x".repeat(64 << 10);
        {
            let mut log = DurableLog::open(&path).unwrap();
            log.lock(1, "log-1").unwrap();
            log.unlock(1, &[0], 0).unwrap();
            for version in 1..=600u64 {
                let mutation = Mutation { tag: 0, key: format!("k{version}"), value: value.clone() };
                log.push(1, version - 1, version, vec![mutation]).unwrap();
                if version % 50 == 0 {
                    // Storage has it: keep only the newest versions.
                    log.pop(version - 20).unwrap();
                }
            }
        }
        // 600 pushes of 64 KiB: about 38 MiB written, of which the log keeps
        // 20 versions; the compacted journal holds about what it keeps.
        let bytes = std::fs::metadata(&path).unwrap().len();
        assert!(bytes < 24 << 20, "the journal was not compacted: {bytes} bytes");
        let log = DurableLog::open(&path).unwrap();
        assert_eq!(log.service().last_version(), 600);
        assert_eq!(log.service().retained(0).unwrap(), (580, 600));
        assert_eq!(log.service().pull(0, 599, 600).unwrap().len(), 1);
        let refused = DurableLog::open(&path).unwrap().lock(1, "log-1");
        assert!(refused.is_err(), "the lock floor survives the compaction: {refused:?}");
    }

    #[test]
    fn a_snapshot_larger_than_a_journal_record_is_installed_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("st-1.storage");
        // 80 MiB of data: more than the largest record (64 MiB).
        let data: std::collections::BTreeMap<String, String> = (0..80).map(|i| (format!("k{i:03}"), "y".repeat(1 << 20))).collect();
        {
            let mut storage = DurableStorage::open(&path).unwrap();
            storage.lock(2, "st-1").unwrap();
            storage.rebuild(2, Snapshot { version: 40, data: data.clone() }).unwrap();
            storage.recover_apply(2, vec![(41, m(0, "after"))], 41).unwrap();
        }
        let storage = DurableStorage::open(&path).unwrap();
        assert_eq!(storage.service().durable_version(), 41);
        assert_eq!(storage.service().contents().len(), 81);
        assert_eq!(storage.service().contents().get("k079"), data.get("k079"));
    }

    #[test]
    fn a_reopened_log_holds_what_it_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-1.journal");
        {
            let mut log = DurableLog::open(&path).unwrap();
            log.lock(1, "log-1").unwrap();
            log.unlock(1, &[0], 0).unwrap();
            log.push(1, 0, 3, vec![m(0, "a")]).unwrap();
            log.push(1, 3, 4, vec![m(0, "b")]).unwrap();
            assert!(log.push(1, 0, 9, vec![]).is_err(), "a refused push is not journaled");
        }
        let log = DurableLog::open(&path).unwrap();
        assert_eq!(log.service().last_version(), 4);
        assert_eq!(log.service().pull(0, 0, 4).unwrap(), vec![(3, m(0, "a")), (4, m(0, "b"))]);
    }

    #[test]
    fn a_journal_record_that_does_not_replay_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-1.journal");
        {
            // A push the log never accepted: it was never locked.
            let (mut journal, _) = Journal::<LogInput>::open(&path).unwrap();
            journal.append(&LogInput::Lock(1)).unwrap();
            journal.append(&LogInput::Push { epoch: 1, prev: 0, version: 3, mutations: vec![m(0, "a")] }).unwrap();
        }
        let err = DurableLog::open(&path).err().expect("the journal does not replay");
        let text = err.to_string();
        assert!(matches!(err, JournalError::Replay { record: 2, .. }), "{text}");
        assert!(text.contains("log-1.journal") && text.contains("record 2 (push of version 3 after 0 at epoch 1"), "{text}");

        let path = dir.path().join("storage-1.journal");
        {
            let (mut journal, _) = Journal::<StorageInput>::open(&path).unwrap();
            journal.append(&StorageInput::Lock(2)).unwrap();
            journal.append(&StorageInput::Truncate { epoch: 1, to: 0 }).unwrap();
        }
        let err = DurableStorage::open(&path).err().expect("the journal does not replay");
        assert!(err.to_string().contains("record 2 (truncation to version 0 at epoch 1)"), "{err}");
    }

    #[test]
    fn a_reopened_log_keeps_its_pops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-1.journal");
        {
            let mut log = DurableLog::open(&path).unwrap();
            log.lock(1, "log-1").unwrap();
            log.unlock(1, &[0], 0).unwrap();
            for v in 1..=5 {
                log.push(1, v - 1, v, vec![m(0, &format!("k{v}"))]).unwrap();
            }
            log.pop(3).unwrap();
        }
        let log = DurableLog::open(&path).unwrap();
        assert_eq!(log.service().retained(0), Ok((3, 5)));
        assert!(log.service().pull(0, 2, 5).is_err());
    }

    #[test]
    fn a_reopened_replica_keeps_what_its_recovery_did() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage-1.journal");
        let data: std::collections::BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        let expected = {
            let mut storage = DurableStorage::open(&path).unwrap();
            storage.lock(2, "storage-1").unwrap();
            storage.recover_apply(2, vec![(1, m(0, "stale"))], 1).unwrap();
            storage.rebuild(2, Snapshot { version: 5, data }).unwrap();
            storage.recover_apply(2, vec![(6, m(0, "b")), (7, m(0, "c"))], 7).unwrap();
            storage.truncate(2, 6).unwrap();
            assert!(storage.truncate(3, 5).is_err(), "a truncation needs the lock");
            storage.service().contents().clone()
        };
        let storage = DurableStorage::open(&path).unwrap();
        assert_eq!(storage.service().durable_version(), 6);
        assert_eq!(storage.service().contents(), &expected);
        assert_eq!(expected.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_restarted_log_refuses_locks_at_or_below_its_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.journal");
        DurableLog::open(&path).unwrap().lock(5, "log").unwrap();
        let mut log = DurableLog::open(&path).unwrap();
        assert!(matches!(log.lock(5, "log"), Err(DurableError::Service(ServiceError::Superseded(5)))));
        assert!(matches!(log.lock(4, "log"), Err(DurableError::Service(ServiceError::Superseded(5)))));
        assert_eq!(log.lock(6, "log").unwrap().last_version, 0);
        drop(log);
        assert_eq!(DurableLog::open(&path).unwrap().service().lock_holder(), Some(6));
    }

    #[test]
    fn a_reopened_replica_keeps_its_data_and_durable_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.journal");
        {
            let mut s = DurableStorage::open(&path).unwrap();
            s.lock(1, "s").unwrap();
            s.unlock(1).unwrap();
            s.apply(vec![(1, m(0, "a")), (2, m(0, "b"))], 2).unwrap();
            s.apply(vec![(2, m(0, "b"))], 2).unwrap();
        }
        let s = DurableStorage::open(&path).unwrap();
        assert_eq!(s.service().durable_version(), 2);
        assert_eq!(s.service().read("b"), Some("v-b"));
        assert!(s.service().is_serving());
    }

    #[test]
    fn a_failed_journal_write_poisons_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.journal");
        let mut log = DurableLog::open(&path).unwrap();
        log.lock(1, "log").unwrap();
        log.unlock(1, &[0], 0).unwrap();
        // From here on every write fails, as on a dead disk.
        log.durability.journal = Journal::read_only(&path).unwrap();
        assert!(matches!(log.push(1, 0, 1, vec![m(0, "a")]), Err(DurableError::Journal(_))));
        assert!(matches!(log.push(1, 1, 2, vec![]), Err(DurableError::Poisoned)));
        assert!(matches!(log.lock(2, "log"), Err(DurableError::Poisoned)));
        // What was not acknowledged is not there after a restart.
        assert_eq!(DurableLog::open(&path).unwrap().service().last_version(), 0);
    }
}
