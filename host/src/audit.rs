//! The audit trail of plugin changes: every load, swap, shadow run,
//! promotion, rollback and refusal, one JSON line each, appended and fsynced
//! before the change is reported, so the trail survives restarts.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One entry of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, in RFC 3339 (UTC, milliseconds).
    pub time: String,
    /// What: `load`, `swap`, `shadow`, `promote`, `discard`, `rollback` or `refuse`.
    pub action: String,
    /// The slot.
    pub slot: String,
    /// The sha256 of the component concerned, when there is one.
    pub sha256: Option<String>,
    /// The version number it has (or had) in its slot, when it has one.
    pub version: Option<u32>,
    /// Who or what asked: `startup`, `admin`, `plugin-dir`, `auto-rollback`.
    pub trigger: String,
    /// `ok`, or why it was refused.
    pub result: String,
}

impl AuditEntry {
    /// An entry stamped with the current time.
    pub fn now(action: &str, slot: &str, trigger: &str, result: impl Into<String>) -> Self {
        AuditEntry {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            action: action.into(),
            slot: slot.into(),
            sha256: None,
            version: None,
            trigger: trigger.into(),
            result: result.into(),
        }
    }

    /// The same entry, naming a component.
    pub fn component(mut self, sha256: impl ToString, version: Option<u32>) -> Self {
        self.sha256 = Some(sha256.to_string());
        self.version = version;
        self
    }
}

/// Why the trail could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened, written or synced.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line in the middle of the file is not an entry.
    #[error("audit log {path}: line {line} is not an entry: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Its line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// An append-only audit file.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Trail>,
}

/// The open file and the length of its last whole line.
struct Trail {
    file: File,
    whole: u64,
}

impl AuditLog {
    /// Opens (or creates) the trail at `path`. A torn last line, left by a
    /// crash mid-append, is cut off so the next entry starts on its own line.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        let bytes = std::fs::read(path).map_err(io)?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) as u64;
        if whole < bytes.len() as u64 {
            file.set_len(whole).map_err(io)?;
        }
        Ok(AuditLog { path: path.to_path_buf(), file: Mutex::new(Trail { file, whole }) })
    }

    /// Appends `entry` and syncs it to disk: when this answers `Ok` the
    /// entry is durable. An append that fails part of the way is cut off
    /// again (now, or before the next append if the cut fails too), so a
    /// failed write never leaves a torn line between whole ones.
    pub fn record(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        let io = |source| AuditError::Io { path: self.path.clone(), source };
        let mut line = serde_json::to_string(entry).map_err(|e| io(std::io::Error::other(e)))?;
        line.push('\n');
        let mut trail = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let appended = trail.append(line.as_bytes());
        let cut = |trail: &mut Trail| match trail.file.metadata() {
            Ok(meta) if meta.len() > trail.whole => trail.file.set_len(trail.whole),
            Ok(_) => Ok(()),
            Err(err) => Err(err),
        };
        if appended.is_err()
            && let Err(err) = cut(&mut trail)
        {
            tracing::error!(%err, path = %self.path.display(), "cannot cut a failed append off the audit trail; retried on the next");
        }
        appended.map_err(io)
    }

    /// Every entry, oldest first. A torn last line (a crash mid-append) is
    /// skipped; a bad line before it is corruption.
    pub fn entries(&self) -> Result<Vec<AuditEntry>, AuditError> {
        let io = |source| AuditError::Io { path: self.path.clone(), source };
        let file = File::open(&self.path).map_err(io)?;
        let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>().map_err(io)?;
        let mut entries = Vec::with_capacity(lines.len());
        for (n, line) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(entry) => entries.push(entry),
                Err(_) if n + 1 == lines.len() => break,
                Err(err) => {
                    return Err(AuditError::Corrupt { path: self.path.clone(), line: n + 1, reason: err.to_string() });
                }
            }
        }
        Ok(entries)
    }
}

impl Trail {
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        // Where the last append failed and could not be cut off. A file
        // shorter than the trail knew (truncated from outside, by a log
        // rotation) is taken as it is, never padded.
        let len = self.file.metadata()?.len();
        if len > self.whole {
            self.file.set_len(self.whole)?;
        } else if len < self.whole {
            self.whole = len;
        }
        self.file.write_all(line)?;
        self.file.sync_data()?;
        self.whole += line.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let first = AuditEntry::now("swap", "placement", "admin", "ok").component("ab12", Some(2));
        AuditLog::open(&path).unwrap().record(&first).unwrap();
        let log = AuditLog::open(&path).unwrap();
        let second = AuditEntry::now("refuse", "placement", "admin", "dry run: trapped");
        log.record(&second).unwrap();
        assert_eq!(log.entries().unwrap(), vec![first.clone(), second.clone()]);

        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"time\":\"20").unwrap();
        assert_eq!(log.entries().unwrap(), vec![first.clone(), second.clone()]);
        // Reopened after the crash, the trail goes on from a whole line.
        let log = AuditLog::open(&path).unwrap();
        let third = AuditEntry::now("rollback", "placement", "admin", "ok");
        log.record(&third).unwrap();
        assert_eq!(log.entries().unwrap(), vec![first, second, third]);
    }

    #[test]
    fn a_failed_append_leaves_no_torn_line_between_whole_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let first = AuditEntry::now("swap", "placement", "admin", "ok");
        log.record(&first).unwrap();
        // An append that wrote part of its line and failed, its cut failed
        // too: the next append cuts it off first.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"time\":\"20").unwrap();
        let second = AuditEntry::now("rollback", "placement", "admin", "ok");
        log.record(&second).unwrap();
        assert_eq!(log.entries().unwrap(), vec![first.clone(), second.clone()]);
        // An append that cannot write at all answers the error and leaves
        // the trail as it was.
        log.file.lock().unwrap().file = File::open(&path).unwrap();
        let err = log.record(&AuditEntry::now("swap", "placement", "admin", "ok")).unwrap_err();
        assert!(err.to_string().contains("audit.jsonl"), "{err}");
        assert_eq!(AuditLog::open(&path).unwrap().entries().unwrap(), vec![first, second]);
    }

    #[test]
    fn a_bad_line_in_the_middle_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "not json\n").unwrap();
        let log = AuditLog::open(&path).unwrap();
        log.record(&AuditEntry::now("load", "placement", "startup", "ok")).unwrap();
        assert!(matches!(log.entries(), Err(AuditError::Corrupt { line: 1, .. })));
    }
}
