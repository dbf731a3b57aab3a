//! `--plugin-dir DIR`: a directory the coordinator watches. A file named
//! `SLOT.wasm` that appears or changes is validated, dry-run and swapped
//! in, exactly as an operator's swap (trigger `plugin-dir`); a bad file is
//! refused, with the reason logged and audited, and the slot keeps serving.
//!
//! The directory is scanned every `every` (one `read_dir` and a `stat` per
//! file: nothing a file-notification crate would save at this scale). A file
//! is read only once its size and modification time held still across two
//! scans, so a file still being copied in is never taken half-written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Admin;
use crate::runtime::Digest256;

/// What a file looked like at a scan.
type Stamp = (u64, Option<SystemTime>);

/// Watches `dir` until the process ends.
pub async fn watch(dir: PathBuf, admin: Arc<Admin>, every: Duration) {
    let mut watcher = Watcher::default();
    loop {
        watcher.scan(&dir, &admin).await;
        tokio::time::sleep(every).await;
    }
}

#[derive(Default)]
struct Watcher {
    /// Files seen changing at the last scan, waiting to hold still.
    settling: BTreeMap<PathBuf, Stamp>,
    /// The stamp of each file already acted on.
    done: BTreeMap<PathBuf, Stamp>,
}

impl Watcher {
    async fn scan(&mut self, dir: &Path, admin: &Admin) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::warn!(dir = %dir.display(), %err, "cannot read the plugin directory");
                return;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let stamp = (meta.len(), meta.modified().ok());
            if self.done.get(&path) == Some(&stamp) {
                continue;
            }
            if self.settling.insert(path.clone(), stamp) != Some(stamp) {
                continue;
            }
            self.settling.remove(&path);
            self.done.insert(path.clone(), stamp);
            take(&path, admin).await;
        }
    }
}

/// Swaps the component at `path` into the slot its name gives.
async fn take(path: &Path, admin: &Admin) {
    let slot = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
    let bytes = match crate::registry::file::read_component(path, admin.max_plugin_bytes) {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::warn!(file = %path.display(), %err, "cannot read a plugin file");
            return;
        }
    };
    if admin.registry.active(&slot).is_some_and(|v| v.sha256 == Digest256::of(&bytes)) {
        return;
    }
    match admin.swap(&slot, bytes, path.display().to_string(), "plugin-dir").await {
        Ok(swapped) => tracing::info!(file = %path.display(), slot, version = swapped.version.number, "plugin file swapped in"),
        Err(refused) => {
            tracing::warn!(file = %path.display(), slot, stage = refused.stage.as_str(), reason = %refused.reason, "plugin file refused")
        }
    }
}
