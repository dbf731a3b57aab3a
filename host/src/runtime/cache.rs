//! Compiled components, cached by the sha256 of their bytes: in memory for the
//! life of the runtime, and on disk across restarts.
//!
//! A disk entry lives at `DIR/<engine>/<sha256>.cwasm`, where `<engine>` hashes
//! the engine's compatibility hash, so an artifact built by another wasmtime
//! version or configuration is never even looked at.
//!
//! An entry is native code the process will run, so the disk is not trusted
//! blindly: the cache is used only from a directory the user owns that no
//! one else may write to, and each entry starts with a keyed digest
//! (HMAC-SHA256, under `DIR/key`, 32 random bytes readable by the user
//! alone) of the component's sha256 and the artifact. A file planted in
//! the cache, or one that changed on disk, fails the digest and is
//! compiled again, never loaded.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
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
    disk: Option<Disk>,
    memory: Mutex<HashMap<Digest256, Component>>,
}

/// The on-disk half of the cache: its engine's directory and the key of
/// its entries' digests.
struct Disk {
    dir: PathBuf,
    key: [u8; KEY_BYTES],
}

/// Bytes of the digest key, and of the keyed digest heading an entry.
const KEY_BYTES: usize = 32;
const MAC_BYTES: usize = 32;

impl ComponentCache {
    /// A cache whose disk entries live under `dir`, or in memory only. A
    /// directory that is not safe to load native code from (not the user's,
    /// or writable by others) is not used: the cache stays in memory, and a
    /// warning says why.
    pub(crate) fn new(engine: &Engine, dir: Option<&Path>) -> Self {
        let disk = dir.and_then(|root| {
            let mut hasher = ShaHasher(Sha256::new());
            engine.precompile_compatibility_hash().hash(&mut hasher);
            let engine_id: String = hasher.0.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
            match Disk::open(root, &engine_id) {
                Ok(disk) => Some(disk),
                Err(reason) => {
                    tracing::warn!(dir = %root.display(), %reason, "not using the compiled-component cache: compiling in memory only");
                    None
                }
            }
        });
        ComponentCache { disk, memory: Mutex::default() }
    }

    /// The compiled component for `bytes`, compiling it only if no cache
    /// holds it yet.
    pub(crate) fn get_or_compile(&self, engine: &Engine, digest: Digest256, bytes: &[u8]) -> wasmtime::Result<(Component, CacheOrigin)> {
        // Loads are serialised: two loads of the same component never compile
        // it twice, and a compile is parallel inside wasmtime anyway. Calls
        // never come here; they use the slot's `InstancePre`.
        let mut memory = self.lock();
        if let Some(found) = memory.get(&digest) {
            return Ok((found.clone(), CacheOrigin::Memory));
        }
        if let Some(component) = self.disk.as_ref().and_then(|disk| disk.load(engine, digest)) {
            memory.insert(digest, component.clone());
            return Ok((component, CacheOrigin::Disk));
        }
        let component = Component::new(engine, bytes)?;
        if let Some(disk) = &self.disk {
            // The cache is an optimisation: failing to write it is not an error.
            if let Err(err) = disk.store(&component, digest) {
                tracing::warn!(dir = %disk.dir.display(), %err, "could not write the component cache");
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

impl Disk {
    /// The engine directory `engine_id` under `root`, created private if
    /// missing, and the key, made on first use: each refused unless the
    /// user owns it and no one else may change it.
    fn open(root: &Path, engine_id: &str) -> Result<Disk, String> {
        let dir = root.join(engine_id);
        for dir in [root, dir.as_path()] {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            private(dir, false)?;
        }
        let key = read_or_make_key(&root.join("key"))?;
        Ok(Disk { dir, key })
    }

    fn path(&self, digest: Digest256) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    /// The keyed digest of an entry for the component of sha256 `digest`.
    fn mac(&self, digest: Digest256, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(&digest.0);
        mac.update(artifact);
        mac
    }

    /// The entry for `digest`, if there is one whose keyed digest holds.
    fn load(&self, engine: &Engine, digest: Digest256) -> Option<Component> {
        let path = self.path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "cannot read a cache entry: compiling again");
                return None;
            }
        };
        let Some((tag, artifact)) = bytes.split_first_chunk::<MAC_BYTES>() else {
            tracing::warn!(path = %path.display(), "a cache entry too short to carry its digest: compiling again");
            return None;
        };
        if self.mac(digest, artifact).verify_slice(tag).is_err() {
            tracing::warn!(path = %path.display(), "a cache entry this cache did not write (its keyed digest does not match): compiling again");
            return None;
        }
        // SAFETY: the artifact carries a digest keyed by a secret only this
        // user can read, over the component's sha256 and the artifact: this
        // cache serialised it from that component with an engine of the
        // same compatibility hash (its directory's name), and it has not
        // changed since. wasmtime checks the header and the engine
        // configuration again and refuses a mismatch.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "ignoring an unusable cache entry");
                None
            }
        }
    }

    /// Writes the entry atomically, its keyed digest first: a reader sees
    /// the old file or the whole new one.
    fn store(&self, component: &Component, digest: Digest256) -> std::io::Result<()> {
        let path = self.path(digest);
        let artifact = component.serialize().map_err(std::io::Error::other)?;
        let mut bytes = self.mac(digest, &artifact).finalize().into_bytes().to_vec();
        bytes.extend_from_slice(&artifact);
        let tmp = self.dir.join(format!(".{digest}.cwasm.{}.tmp", std::process::id()));
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?.write_all(&bytes)?;
        std::fs::rename(&tmp, path)
    }
}

/// Refuses `path` unless the user owns it and neither its group nor others
/// may write it (nor, for a `secret`, read it).
fn private(path: &Path, secret: bool) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!("{} is owned by uid {}, not this user (uid {me})", path.display(), meta.uid()));
    }
    let open = if secret { 0o077 } else { 0o022 };
    if meta.mode() & open != 0 {
        return Err(format!("{} has mode {:o}: others may change it", path.display(), meta.mode() & 0o7777));
    }
    Ok(())
}

/// The key at `path`: read if it is there (and private), else made from the
/// system's randomness and written readable by the user alone.
fn read_or_make_key(path: &Path) -> Result<[u8; KEY_BYTES], String> {
    let bad = |e: std::io::Error| format!("{}: {e}", path.display());
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut file) => {
            let mut key = [0u8; KEY_BYTES];
            std::fs::File::open("/dev/urandom").and_then(|mut r| r.read_exact(&mut key)).map_err(bad)?;
            file.write_all(&key).and_then(|()| file.sync_all()).map_err(bad)?;
            Ok(key)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            private(path, true)?;
            let bytes = std::fs::read(path).map_err(bad)?;
            bytes.try_into().map_err(|b: Vec<u8>| format!("{}: {} bytes, not a key of {KEY_BYTES}", path.display(), b.len()))
        }
        Err(err) => Err(bad(err)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::runtime::engine::{self, EngineConfig};

    fn compile(cache: &ComponentCache, engine: &Engine, bytes: &[u8]) -> CacheOrigin {
        cache.get_or_compile(engine, Digest256::of(bytes), bytes).expect("compiles").1
    }

    #[test]
    fn only_entries_this_cache_wrote_are_loaded_and_only_from_a_private_directory() {
        let engine = engine::build(&EngineConfig::default()).unwrap();
        let (one, two) = (crate::components::DEFAULTS[0].bytes, crate::components::DEFAULTS[1].bytes);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache");
        assert_eq!(compile(&ComponentCache::new(&engine, Some(&dir)), &engine, one), CacheOrigin::Compiled);
        assert_eq!(compile(&ComponentCache::new(&engine, Some(&dir)), &engine, one), CacheOrigin::Disk);
        let key = std::fs::metadata(dir.join("key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);

        // A planted entry: another component's artifact, well-formed, under
        // the first one's name, and the same with one byte changed.
        assert_eq!(compile(&ComponentCache::new(&engine, Some(&dir)), &engine, two), CacheOrigin::Compiled);
        let entries: Vec<PathBuf> = std::fs::read_dir(dir.read_dir().unwrap().flatten().find(|e| e.path().is_dir()).unwrap().path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        let name = |bytes: &[u8]| format!("{}.cwasm", Digest256::of(bytes));
        let path_of = |bytes: &[u8]| entries.iter().find(|p| p.ends_with(name(bytes))).unwrap().clone();
        let unkeyed = Component::new(&engine, two).unwrap().serialize().unwrap();
        std::fs::write(path_of(one), [vec![0u8; MAC_BYTES], unkeyed].concat()).unwrap();
        assert_eq!(compile(&ComponentCache::new(&engine, Some(&dir)), &engine, one), CacheOrigin::Compiled);
        let mut flipped = std::fs::read(path_of(two)).unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(path_of(two), flipped).unwrap();
        assert_eq!(compile(&ComponentCache::new(&engine, Some(&dir)), &engine, two), CacheOrigin::Compiled);
        assert_eq!(compile(&ComponentCache::new(&engine, Some(&dir)), &engine, two), CacheOrigin::Disk, "rewritten whole");

        // A directory others may write to is not used at all.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let open = ComponentCache::new(&engine, Some(&dir));
        assert!(open.disk.is_none());
        assert_eq!(compile(&open, &engine, one), CacheOrigin::Compiled);
        // Nor a key others may read.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(dir.join("key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(ComponentCache::new(&engine, Some(&dir)).disk.is_none());
    }
}
