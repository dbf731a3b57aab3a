//! The coordinator store: the durable cluster state the director works from.
//!
//! It holds the epoch counter, the service directory and the current layout.
//! [`CoordinatorStore`] is the seam between backends: [`FileStore`] is the
//! embedded default, [`EtcdStore`] keeps the state under consensus in etcd
//! for clusters beyond one machine, [`MemoryStore`] keeps everything in
//! memory for tests and simulation.

mod etcd;
mod file;
mod memory;

pub use etcd::{EtcdStore, KeepAlive, Leadership, keep_leading};
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
        /// The state file (or key).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A store URL that cannot be used.
    #[error("coordinator store {url}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No member of the replicated store answered.
    #[error("coordinator store etcd://{endpoints}: no member answered ({reason})")]
    Unreachable {
        /// The members tried.
        endpoints: String,
        /// What each one said.
        reason: String,
    },
    /// The replicated store refused a request.
    #[error("coordinator store: etcd: {reason}")]
    Etcd {
        /// What etcd said.
        reason: String,
    },
    /// I8: this coordinator no longer leads, so it may change nothing.
    #[error("{id} no longer leads (the leader key is held by {holder:?})")]
    NotLeader {
        /// Who this coordinator was as a leader.
        id: String,
        /// Who holds the leader key now.
        holder: Option<String>,
    },
    /// I8: this coordinator's lease was not renewed recently enough to be
    /// sure it still leads, so it acts on nothing beyond its fenced writes.
    #[error("{id} may have lost its leadership: its lease was last renewed {since:?} ago")]
    LeaseUncertain {
        /// Who this coordinator was as a leader.
        id: String,
        /// How long ago the lease was last known to be renewed, if ever.
        since: Option<std::time::Duration>,
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
    fn next_epoch(&self) -> Result<Epoch, StoreError> {
        self.next_epoch_above(0)
    }

    /// I1: issues a new epoch strictly above every epoch issued before and
    /// above `seen`, an epoch the caller has seen in the cluster (one that
    /// superseded it: issued by a restored or older copy of this state, or
    /// a rival), and makes it durable before returning it.
    fn next_epoch_above(&self, seen: Epoch) -> Result<Epoch, StoreError>;

    /// A copy of the whole state.
    fn state(&self) -> Result<CoordinatorState, StoreError>;

    /// Whether this coordinator may act on the cluster beyond its writes
    /// here, which the store fences itself: release a service no generation
    /// needs, pop a log. A store shared by coordinators answers whether its
    /// leadership is certain now (its lease renewed within most of its time
    /// to live); a store of one coordinator always may.
    fn may_act(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// I7: writes `layout` if and only if `layout.epoch` is the newest epoch
    /// issued (compare-and-swap on the epoch).
    fn persist_layout(&self, layout: &Layout) -> Result<(), StoreError>;

    /// Adds or replaces a service in the directory.
    fn register_service(&self, service: ServiceDescriptor) -> Result<(), StoreError>;

    /// Removes a service from the directory (nothing when it is not there).
    fn remove_service(&self, id: &str) -> Result<(), StoreError>;

    /// Makes the directory hold exactly `hosted`, writing only what
    /// differs. Answers whether anything changed.
    fn sync_services(&self, hosted: &[ServiceDescriptor]) -> Result<bool, StoreError> {
        let known = self.state()?.services;
        let mut changed = false;
        for service in hosted.iter().filter(|s| !known.contains(s)) {
            self.register_service(service.clone())?;
            changed = true;
        }
        for gone in known.iter().filter(|k| !hosted.iter().any(|s| s.id == k.id)) {
            self.remove_service(&gone.id)?;
            changed = true;
        }
        Ok(changed)
    }
}

/// The rules every backend applies to a state; the backends differ only in
/// where the state lives.
pub(crate) mod rules {
    use super::*;

    pub(crate) fn next_epoch_above(state: &mut CoordinatorState, seen: Epoch) -> Epoch {
        state.epoch = state.epoch.max(seen) + 1;
        state.epoch
    }

    pub(crate) fn persist_layout(state: &mut CoordinatorState, layout: &Layout) -> Result<(), StoreError> {
        if layout.epoch != state.epoch {
            return Err(StoreError::Fenced { layout_epoch: layout.epoch, current: state.epoch });
        }
        state.layout = Some(layout.clone());
        Ok(())
    }

    pub(crate) fn remove_service(state: &mut CoordinatorState, id: &str) {
        state.services.retain(|s| s.id != id);
    }

    pub(crate) fn register_service(state: &mut CoordinatorState, service: ServiceDescriptor) {
        match state.services.iter_mut().find(|s| s.id == service.id) {
            Some(existing) => *existing = service,
            None => state.services.push(service),
        }
    }
}
