//! One process per data directory.
//!
//! Every process that keeps state in a `--data` directory (a coordinator, a
//! worker, a demo given `--data`) takes an exclusive `flock` on the file
//! `LOCK` in it for as long as it runs, and writes its process id there. A
//! second process on the same directory is refused at start with the pid
//! that holds it: two coordinators on one directory would each keep their
//! own copy of the epoch counter, two workers would interleave their
//! journals. The kernel drops the lock when the holder exits, however it
//! exits, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside a data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Why a data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process holds the directory.
    #[error("{dir} is in use by another ratchet process{}", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held {
        /// The directory.
        dir: PathBuf,
        /// The holder's process id, as it wrote it in the lock file.
        holder: Option<u32>,
    },
    /// The directory or its lock file cannot be created, opened or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// An exclusive hold on a data directory, released when dropped (or when
/// the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    dir: PathBuf,
    // Held open: closing the file releases the lock.
    _file: File,
}

impl DataDirLock {
    /// Takes `dir` (creating it if it does not exist) for this process, or
    /// answers [`DataDirError::Held`] naming the process that has it.
    pub fn acquire(dir: &Path) -> Result<Self, DataDirError> {
        std::fs::create_dir_all(dir).map_err(|source| DataDirError::Io { path: dir.to_path_buf(), source })?;
        let path = dir.join(LOCK_FILE);
        let io = |source| DataDirError::Io { path: path.clone(), source };
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The pid is only for the message: a holder that has not
                // written it yet leaves the message without one.
                let holder = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
                return Err(DataDirError::Held { dir: dir.to_path_buf(), holder });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirLock { dir: dir.to_path_buf(), _file: file })
    }

    /// The directory held.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_hold_on_a_directory_is_refused_with_the_holders_pid_until_the_first_ends() {
        let dir = std::env::temp_dir().join(format!("ratchet-lock-{}", std::process::id()));
        let first = DataDirLock::acquire(&dir).expect("the first hold");
        match DataDirLock::acquire(&dir) {
            Err(DataDirError::Held { dir: held, holder }) => {
                assert_eq!(held, dir);
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("a second hold must be refused, got {other:?}"),
        }
        let message = DataDirLock::acquire(&dir).expect_err("held").to_string();
        assert!(message.contains(&dir.display().to_string()) && message.contains("pid"), "{message}");
        drop(first);
        let again = DataDirLock::acquire(&dir).expect("free once the first hold ends");
        assert_eq!(again.dir(), dir);
        drop(again);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
