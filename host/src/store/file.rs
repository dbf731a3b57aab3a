//! The embedded coordinator store: one file, rewritten atomically with fsync
//! on every change.
//!
//! A change is applied to a copy of the state, written to a temporary file,
//! fsynced, renamed over the state file, and the directory fsynced; only then
//! is the in-memory state replaced and the call answered. A crash at any
//! point leaves either the old state or the new one, never a mix, and an epoch
//! is never handed out before it is durable (I1).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{CoordinatorState, CoordinatorStore, StoreError, rules};
use crate::bindings::types::{Epoch, Layout, ServiceDescriptor};

/// Identifies the file format; bumped on incompatible changes.
const MAGIC: &[u8; 8] = b"RATCHET1";

/// The coordinator state in a file.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    state: Mutex<CoordinatorState>,
}

impl FileStore {
    /// Opens the state in `dir` (creating the directory and an empty state if
    /// there is none yet).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("coordinator.state");
        fs::create_dir_all(dir).map_err(|source| io(&path, source))?;
        let state = match fs::read(&path) {
            Ok(bytes) => decode(&path, &bytes)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => CoordinatorState::default(),
            Err(source) => return Err(io(&path, source)),
        };
        Ok(FileStore { path, state: Mutex::new(state) })
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies `change` to a copy of the state, makes the copy durable, then
    /// adopts it. A failed change or write leaves the state as it was.
    fn update<T>(&self, change: impl FnOnce(&mut CoordinatorState) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut current = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = current.clone();
        let value = change(&mut next)?;
        self.write(&next)?;
        *current = next;
        Ok(value)
    }

    fn write(&self, state: &CoordinatorState) -> Result<(), StoreError> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(postcard::to_stdvec(state).expect("the state always encodes"));
        let tmp = self.path.with_extension("state.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            File::open(self.path.parent().expect("the state file is in a directory"))?.sync_all()
        };
        write().map_err(|source| io(&self.path, source))
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io { path: path.display().to_string(), source }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<CoordinatorState, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { path: path.display().to_string(), reason };
    let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| corrupt("it does not start with the ratchet state header".into()))?;
    postcard::from_bytes(body).map_err(|e| corrupt(e.to_string()))
}

impl CoordinatorStore for FileStore {
    fn next_epoch_above(&self, seen: Epoch) -> Result<Epoch, StoreError> {
        self.update(|state| Ok(rules::next_epoch_above(state, seen)))
    }

    fn state(&self) -> Result<CoordinatorState, StoreError> {
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn persist_layout(&self, layout: &Layout) -> Result<(), StoreError> {
        self.update(|state| rules::persist_layout(state, layout))
    }

    fn register_service(&self, service: ServiceDescriptor) -> Result<(), StoreError> {
        self.update(|state| {
            rules::register_service(state, service);
            Ok(())
        })
    }

    fn remove_service(&self, id: &str) -> Result<(), StoreError> {
        self.update(|state| {
            rules::remove_service(state, id);
            Ok(())
        })
    }
}
