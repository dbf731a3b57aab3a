//! Where a worker keeps its journals: a directory on disk, or an in-memory
//! directory that outlives the foremen using it, so that a foreman of the
//! in-process cluster can crash and reopen its journals as a worker process
//! reopens its files.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::journal::JournalError;

/// The bytes of one in-memory journal file.
pub type MemoryFile = Arc<Mutex<Vec<u8>>>;

/// A directory of in-memory files. Clones share the files.
#[derive(Clone, Debug, Default)]
pub struct MemoryDir {
    files: Arc<Mutex<BTreeMap<String, MemoryFile>>>,
}

impl MemoryDir {
    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MemoryFile>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A worker's journal directory.
#[derive(Clone, Debug)]
pub enum Disk {
    /// Files in a directory, fsynced on every append.
    Dir(PathBuf),
    /// Files in memory.
    Memory(MemoryDir),
}

/// An open journal file and the bytes it held when opened.
pub(crate) enum OpenFile {
    /// A file on disk, each append synced.
    File(File),
    /// A scratch file on disk: appends are not synced (see
    /// [`Disk::create_scratch`]).
    Scratch(File),
    /// An in-memory file.
    Memory(MemoryFile),
}

impl Disk {
    /// A fresh in-memory directory.
    pub fn memory() -> Self {
        Disk::Memory(MemoryDir::default())
    }

    /// Whether an append waits for the device: the caller then keeps it off
    /// the async threads.
    pub fn blocks(&self) -> bool {
        matches!(self, Disk::Dir(_))
    }

    /// The path of file `name`, as errors name it.
    pub fn path(&self, name: &str) -> PathBuf {
        match self {
            Disk::Dir(dir) => dir.join(name),
            Disk::Memory(_) => Path::new("mem:").join(name),
        }
    }

    /// Creates the directory if it does not exist.
    pub fn ensure(&self) -> Result<(), JournalError> {
        match self {
            Disk::Dir(dir) => std::fs::create_dir_all(dir).map_err(|source| JournalError::Io { path: dir.clone(), source }),
            Disk::Memory(_) => Ok(()),
        }
    }

    /// The names of the files in the directory.
    pub fn names(&self) -> Result<Vec<String>, JournalError> {
        match self {
            Disk::Dir(dir) => {
                let io_err = |source| JournalError::Io { path: dir.clone(), source };
                let mut names = Vec::new();
                for entry in std::fs::read_dir(dir).map_err(io_err)? {
                    if let Some(name) = entry.map_err(io_err)?.file_name().to_str() {
                        names.push(name.to_string());
                    }
                }
                Ok(names)
            }
            Disk::Memory(dir) => Ok(dir.files().keys().cloned().collect()),
        }
    }

    /// Deletes file `name`; a file that does not exist is no error.
    pub fn remove(&self, name: &str) -> Result<(), JournalError> {
        match self {
            Disk::Dir(dir) => match std::fs::remove_file(dir.join(name)) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(JournalError::Io { path: dir.join(name), source: err }),
                _ => Ok(()),
            },
            Disk::Memory(dir) => {
                dir.files().remove(name);
                Ok(())
            }
        }
    }

    /// Replaces file `name` by `bytes` at once (a file beside it, synced,
    /// renamed over it, the directory synced) and opens it for appending.
    pub(crate) fn replace(&self, name: &str, bytes: &[u8]) -> Result<OpenFile, JournalError> {
        match self {
            Disk::Dir(dir) => {
                let (path, staged) = (dir.join(name), dir.join(format!("{name}.rewrite")));
                let io_err = |source| JournalError::Io { path: path.clone(), source };
                let mut file = File::create(&staged).map_err(io_err)?;
                file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_err)?;
                std::fs::rename(&staged, &path).map_err(io_err)?;
                File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
                let file = OpenOptions::new().append(true).open(&path).map_err(io_err)?;
                Ok(OpenFile::File(file))
            }
            Disk::Memory(dir) => {
                let file = dir.files().entry(name.to_string()).or_default().clone();
                *file.lock().unwrap_or_else(|e| e.into_inner()) = bytes.to_vec();
                Ok(OpenFile::Memory(file))
            }
        }
    }

    /// Creates file `name` empty (replacing any) as scratch space: neither
    /// its creation nor its appends are made durable, so it costs no
    /// fsync. Only for a file nothing reads after a restart (a worker
    /// deletes its scratch files when it starts).
    pub(crate) fn create_scratch(&self, name: &str) -> Result<OpenFile, JournalError> {
        match self {
            Disk::Dir(dir) => {
                let path = dir.join(name);
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(|source| JournalError::Io { path: path.clone(), source })?;
                Ok(OpenFile::Scratch(file))
            }
            Disk::Memory(dir) => {
                let file = MemoryFile::default();
                dir.files().insert(name.to_string(), file.clone());
                Ok(OpenFile::Memory(file))
            }
        }
    }

    /// What file `name` holds; a file that does not exist holds nothing.
    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>, JournalError> {
        match self {
            Disk::Dir(dir) => match std::fs::read(dir.join(name)) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                read => read.map_err(|source| JournalError::Io { path: dir.join(name), source }),
            },
            Disk::Memory(dir) => {
                Ok(dir.files().get(name).map(|file| file.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default())
            }
        }
    }

    /// Opens (or creates) file `name` for appending, with what it holds.
    pub(crate) fn open(&self, name: &str) -> Result<(OpenFile, Vec<u8>), JournalError> {
        match self {
            Disk::Dir(dir) => {
                let path = dir.join(name);
                let io_err = |source| JournalError::Io { path: path.clone(), source };
                let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io_err)?;
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).map_err(io_err)?;
                // Make the file's creation itself durable.
                File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
                Ok((OpenFile::File(file), bytes))
            }
            Disk::Memory(dir) => {
                let file = dir.files().entry(name.to_string()).or_default().clone();
                let bytes = file.lock().unwrap_or_else(|e| e.into_inner()).clone();
                Ok((OpenFile::Memory(file), bytes))
            }
        }
    }
}
