//! The coordinator store: the durable cluster state the director works from.
//!
//! It holds the epoch counter, the service directory and the current layout.
//! [`CoordinatorStore`] is the seam for other backends (a replicated one can
//! come later); [`FileStore`] is the embedded default, [`MemoryStore`] keeps
//! everything in memory for tests and simulation.

mod file;
mod memory;

pub use file::FileStore;
pub use memory::MemoryStore;

use serde::{Deserialize, Serialize};

use crate::bindings::types::{Epoch, Layout, ServiceDescriptor};

/// Why the store refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// I7: a layout may only be written by the newest epoch issued.
    #[error("layout of epoch {layout_epoch} is fenced: epoch {current} has been issued since")]
    Fenced {
        /// The epoch of the layout that was refused.
        layout_epoch: Epoch,
        /// The newest epoch issued.
        current: Epoch,
    },
    /// The state could not be read or written.
    #[error("coordinator state at {path}: {source}")]
    Io {
        /// The state file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file exists but cannot be decoded.
    #[error("coordinator state at {path} is corrupt: {reason}")]
    Corrupt {
        /// The state file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Everything the coordinator keeps durable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CoordinatorState {
    /// The highest epoch ever issued (0: none yet).
    pub epoch: Epoch,
    /// Every registered service.
    pub services: Vec<ServiceDescriptor>,
    /// The layout persisted by the newest generation.
    pub layout: Option<Layout>,
}

/// The durable state behind the coordinator.
pub trait CoordinatorStore: Send + Sync {
    /// I1: issues a new epoch, strictly above every epoch issued before, and
    /// makes it durable before returning it.
    fn next_epoch(&self) -> Result<Epoch, StoreError>;

    /// A copy of the whole state.
    fn state(&self) -> Result<CoordinatorState, StoreError>;

    /// I7: writes `layout` if and only if `layout.epoch` is the newest epoch
    /// issued (compare-and-swap on the epoch).
    fn persist_layout(&self, layout: &Layout) -> Result<(), StoreError>;

    /// Adds or replaces a service in the directory.
    fn register_service(&self, service: ServiceDescriptor) -> Result<(), StoreError>;
}

/// The rules every backend applies to a state; the backends differ only in
/// where the state lives.
pub(crate) mod rules {
    use super::*;

    pub(crate) fn next_epoch(state: &mut CoordinatorState) -> Epoch {
        state.epoch += 1;
        state.epoch
    }

    pub(crate) fn persist_layout(state: &mut CoordinatorState, layout: &Layout) -> Result<(), StoreError> {
        if layout.epoch != state.epoch {
            return Err(StoreError::Fenced { layout_epoch: layout.epoch, current: state.epoch });
        }
        state.layout = Some(layout.clone());
        Ok(())
    }

    pub(crate) fn register_service(state: &mut CoordinatorState, service: ServiceDescriptor) {
        match state.services.iter_mut().find(|s| s.id == service.id) {
            Some(existing) => *existing = service,
            None => state.services.push(service),
        }
    }
}
