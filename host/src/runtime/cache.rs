//! Compiled components, cached by the sha256 of their bytes: in memory for the
//! life of the runtime, and on disk across restarts.
//!
//! A disk entry lives at `DIR/<engine>/<sha256>.cwasm`, where `<engine>` hashes
//! the engine's compatibility hash, so an artifact built by another wasmtime
//! version or configuration is never even looked at.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a compiled component came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOrigin {
    /// Already compiled by this process.
    Memory,
    /// Loaded from the on-disk cache.
    Disk,
    /// Compiled now.
    Compiled,
}

/// The sha256 of a component's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest256(pub [u8; 32]);

impl Digest256 {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest256(Sha256::digest(bytes).into())
    }

    /// The digest as 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 12 hex digits, for logs.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }
}

impl std::fmt::Debug for Digest256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl std::fmt::Display for Digest256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

/// Feeds `Hash` output into sha256, so the engine's compatibility hash turns
/// into a name that is stable across processes.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is read")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The cache of compiled components.
pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<Digest256, Component>>,
}

impl ComponentCache {
    /// A cache whose disk entries live under `dir`, or in memory only.
    pub(crate) fn new(engine: &Engine, dir: Option<&Path>) -> Self {
        let dir = dir.map(|dir| {
            let mut hasher = ShaHasher(Sha256::new());
            engine.precompile_compatibility_hash().hash(&mut hasher);
            let engine_id: String =
                hasher.0.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
            dir.join(engine_id)
        });
        ComponentCache { dir, memory: Mutex::default() }
    }

    /// The compiled component for `bytes`, compiling it only if no cache
    /// holds it yet.
    pub(crate) fn get_or_compile(
        &self,
        engine: &Engine,
        digest: Digest256,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOrigin)> {
        // Loads are serialised: two loads of the same component never compile
        // it twice, and a compile is parallel inside wasmtime anyway. Calls
        // never come here; they use the slot's `InstancePre`.
        let mut memory = self.lock();
        if let Some(found) = memory.get(&digest) {
            return Ok((found.clone(), CacheOrigin::Memory));
        }
        let path = self.dir.as_ref().map(|dir| dir.join(format!("{digest}.cwasm")));
        if let Some(component) = path.as_deref().and_then(|p| load(engine, p)) {
            memory.insert(digest, component.clone());
            return Ok((component, CacheOrigin::Disk));
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = &path {
            // The cache is an optimisation: failing to write it is not an error.
            if let Err(err) = store(&component, path) {
                tracing::warn!(path = %path.display(), %err, "could not write the component cache");
            }
        }
        memory.insert(digest, component.clone());
        Ok((component, CacheOrigin::Compiled))
    }

    /// Drops every in-memory entry; the disk entries stay.
    pub(crate) fn clear_memory(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest256, Component>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn load(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the file was written by `store` below into the runtime's own
    // cache directory, under a name that pins both the source digest and the
    // engine's compatibility hash; wasmtime checks the header and the engine
    // configuration again and refuses a mismatch. The cache directory must be
    // as trusted as the binary itself.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(component) => Some(component),
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "ignoring an unusable cache entry");
            None
        }
    }
}

/// Writes the artifact atomically: a reader sees the old file or the whole new one.
fn store(component: &Component, path: &Path) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a directory");
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)
}
