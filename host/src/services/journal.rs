//! An append-only journal of a service's state-machine inputs, fsynced
//! before the input is acknowledged (on a [`Disk::Dir`]; a [`Disk::Memory`]
//! keeps the same bytes in memory). A restarted service replays its journal
//! through the same state machine, so what it reloads is exactly what it had
//! acknowledged.
//!
//! Each record is a length (4 bytes, big-endian), a CRC-32 of the body
//! (4 bytes, big-endian) and a postcard body. A crash can leave a torn last
//! record; [`Journal::open`] drops it (it was never acknowledged) and
//! truncates the file there. A damaged record anywhere before the tail is
//! corruption, and opening fails with its offset rather than silently losing
//! what follows.

use std::io::{self, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::disk::{Disk, OpenFile};

/// The largest record accepted, in bytes.
const MAX_RECORD: usize = 64 << 20;

/// Why a journal could not be opened or appended to.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be read, written or synced.
    #[error("journal {}: {source}", path.display())]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A record before the tail is damaged.
    #[error("journal {} is corrupt at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record read back was refused by the service it rebuilds: the
    /// journal does not hold what the service acknowledged.
    #[error("journal {}: record {record} ({input}) does not replay: {reason}", path.display())]
    Replay {
        /// The journal file.
        path: PathBuf,
        /// The record's place in the journal, from 1.
        record: usize,
        /// What the record asked.
        input: String,
        /// Why the service refused it.
        reason: String,
    },
    /// A record could not be encoded.
    #[error("journal {}: cannot encode a record: {reason}", path.display())]
    Encode {
        /// The journal file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// An append-only file of records of type `R`, fsynced on a [`Disk::Dir`].
pub struct Journal<R> {
    path: PathBuf,
    disk: Disk,
    name: String,
    file: OpenFile,
    /// Its length in bytes.
    len: u64,
    _records: PhantomData<fn(R)>,
}

impl<R: Serialize + DeserializeOwned> Journal<R> {
    /// Opens (or creates) the journal at `path` and returns it with every
    /// record it holds, in order. A torn tail is truncated away.
    pub fn open(path: &Path) -> Result<(Self, Vec<R>), JournalError> {
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        Self::open_on(&Disk::Dir(dir), name)
    }

    /// Opens (or creates) journal `name` on `disk`; see [`Journal::open`].
    pub fn open_on(disk: &Disk, name: &str) -> Result<(Self, Vec<R>), JournalError> {
        let path = disk.path(name);
        let (mut file, bytes) = disk.open(name)?;
        let (records, valid) = parse(&path, &bytes)?;
        if valid < bytes.len() {
            tracing::warn!(path = %path.display(), dropped = bytes.len() - valid, "journal: dropping a torn last record");
            file.truncate(valid).map_err(|source| JournalError::Io { path: path.clone(), source })?;
        }
        let journal = Journal { path, disk: disk.clone(), name: name.to_string(), file, len: valid as u64, _records: PhantomData };
        Ok((journal, records))
    }

    /// Creates journal `name` on `disk` empty, as scratch space: its
    /// creation and its appends cost no fsync, and a crash may leave any
    /// part of it. For a file nothing reads after a restart.
    pub fn scratch_on(disk: &Disk, name: &str) -> Result<Self, JournalError> {
        let file = disk.create_scratch(name)?;
        Ok(Journal { path: disk.path(name), disk: disk.clone(), name: name.to_string(), file, len: 0, _records: PhantomData })
    }

    /// Every record it holds, read back from its file, in order.
    pub fn records(&self) -> Result<Vec<R>, JournalError> {
        let bytes = self.disk.read(&self.name)?;
        let (records, valid) = parse(&self.path, &bytes)?;
        if valid < bytes.len() {
            return Err(JournalError::Corrupt { path: self.path.clone(), offset: valid as u64, reason: "a torn record".into() });
        }
        Ok(records)
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Replaces everything it holds by `records`, at once: they are written
    /// to a file beside it, synced, and renamed over it, so a crash leaves
    /// either the old journal or the new one whole. A service compacts its
    /// journal this way: the records of its state replace its history.
    pub fn rewrite<'a>(&mut self, records: impl IntoIterator<Item = &'a R>) -> Result<(), JournalError>
    where
        R: 'a,
    {
        let mut bytes = Vec::new();
        for record in records {
            bytes.extend_from_slice(&self.frame(record)?);
        }
        self.file = self.disk.replace(&self.name, &bytes)?;
        self.len = bytes.len() as u64;
        Ok(())
    }

    /// `record` framed: its length, its checksum and its body.
    fn frame(&self, record: &R) -> Result<Vec<u8>, JournalError> {
        let body = postcard::to_stdvec(record).map_err(|e| JournalError::Encode { path: self.path.clone(), reason: e.to_string() })?;
        if body.len() > MAX_RECORD {
            return Err(JournalError::Encode {
                path: self.path.clone(),
                reason: format!("{} bytes exceeds the record maximum of {MAX_RECORD}", body.len()),
            });
        }
        let mut frame = Vec::with_capacity(8 + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        frame.extend_from_slice(&body);
        Ok(frame)
    }

    /// Appends `record`, synced to disk before returning (unless it is a
    /// [scratch](Journal::scratch_on) journal).
    pub fn append(&mut self, record: &R) -> Result<(), JournalError> {
        let frame = self.frame(record)?;
        self.file.append(&frame).map_err(|source| JournalError::Io { path: self.path.clone(), source })?;
        self.len += frame.len() as u64;
        Ok(())
    }

    /// A journal on a read-only descriptor, whose every append fails: a
    /// dead disk, for tests of what a service does then.
    #[cfg(test)]
    pub(crate) fn read_only(path: &Path) -> io::Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let file = OpenFile::File(std::fs::File::open(path)?);
        Ok(Journal { path: path.to_path_buf(), disk: Disk::Dir(dir), name, file, len: 0, _records: PhantomData })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl OpenFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            OpenFile::File(file) => {
                file.write_all(bytes)?;
                file.sync_data()
            }
            OpenFile::Scratch(file) => file.write_all(bytes),
            OpenFile::Memory(file) => {
                file.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn truncate(&mut self, len: usize) -> io::Result<()> {
        match self {
            OpenFile::File(file) => {
                file.set_len(len as u64)?;
                file.sync_all()?;
                file.seek(SeekFrom::End(0)).map(drop)
            }
            OpenFile::Scratch(file) => {
                file.set_len(len as u64)?;
                file.seek(SeekFrom::End(0)).map(drop)
            }
            OpenFile::Memory(file) => {
                file.lock().unwrap_or_else(|e| e.into_inner()).truncate(len);
                Ok(())
            }
        }
    }
}

/// The records of `bytes` and the length of its valid prefix.
fn parse<R: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<(Vec<R>, usize), JournalError> {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + 8) else { break };
        let len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(header[4..].try_into().expect("4 bytes"));
        let corrupt = |reason: String| JournalError::Corrupt { path: path.to_path_buf(), offset: at as u64, reason };
        if len > MAX_RECORD {
            return Err(corrupt(format!("record length {len} exceeds the maximum")));
        }
        let Some(body) = bytes.get(at + 8..at + 8 + len) else { break };
        let last = at + 8 + len == bytes.len();
        if crc32fast::hash(body) != crc {
            // A torn write can only be the last record.
            if last {
                break;
            }
            return Err(corrupt("checksum mismatch".into()));
        }
        let record = postcard::from_bytes(body).map_err(|e| corrupt(format!("undecodable record: {e}")))?;
        records.push(record);
        at += 8 + len;
    }
    Ok((records, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Op {
        Lock(u64),
        Push(u64, String),
    }

    #[test]
    fn records_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.journal");
        let (mut journal, records) = Journal::<Op>::open(&path).unwrap();
        assert!(records.is_empty());
        journal.append(&Op::Lock(3)).unwrap();
        journal.append(&Op::Push(4, "a".into())).unwrap();
        drop(journal);
        let (mut journal, records) = Journal::<Op>::open(&path).unwrap();
        assert_eq!(records, [Op::Lock(3), Op::Push(4, "a".into())]);
        journal.append(&Op::Lock(5)).unwrap();
        assert_eq!(Journal::<Op>::open(&path).unwrap().1.len(), 3);
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = Journal::<Op>::open(&path).unwrap();
        journal.append(&Op::Lock(1)).unwrap();
        let first = std::fs::metadata(&path).unwrap().len();
        journal.append(&Op::Push(2, "hello".into())).unwrap();
        let full = std::fs::metadata(&path).unwrap().len();
        drop(journal);
        // Cut inside the body, the checksum and the length of the second record.
        for cut in [full - 1, first + 6, first + 2] {
            OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();
            let (mut journal, records) = Journal::<Op>::open(&path).unwrap();
            assert_eq!(records, [Op::Lock(1)], "cut at {cut}");
            assert_eq!(std::fs::metadata(&path).unwrap().len(), first, "truncated to the last whole record");
            journal.append(&Op::Push(2, "hello".into())).unwrap();
        }
    }

    #[test]
    fn damage_before_the_tail_is_corruption_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = Journal::<Op>::open(&path).unwrap();
        journal.append(&Op::Push(1, "first".into())).unwrap();
        journal.append(&Op::Push(2, "second".into())).unwrap();
        drop(journal);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = Journal::<Op>::open(&path).err().unwrap();
        assert!(matches!(err, JournalError::Corrupt { offset: 0, .. }), "{err}");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }
}
