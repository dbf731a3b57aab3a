//! A coordinator store in memory, for tests and the simulator.

use std::sync::Mutex;

use super::{CoordinatorState, CoordinatorStore, StoreError, rules};
use crate::bindings::types::{Epoch, Layout, ServiceDescriptor};

/// The coordinator state in memory: the same rules as [`super::FileStore`],
/// without durability.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<CoordinatorState>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, CoordinatorState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CoordinatorStore for MemoryStore {
    fn next_epoch_above(&self, seen: Epoch) -> Result<Epoch, StoreError> {
        Ok(rules::next_epoch_above(&mut self.lock(), seen))
    }

    fn state(&self) -> Result<CoordinatorState, StoreError> {
        Ok(self.lock().clone())
    }

    fn persist_layout(&self, layout: &Layout) -> Result<(), StoreError> {
        rules::persist_layout(&mut self.lock(), layout)
    }

    fn register_service(&self, service: ServiceDescriptor) -> Result<(), StoreError> {
        rules::register_service(&mut self.lock(), service);
        Ok(())
    }

    fn remove_service(&self, id: &str) -> Result<(), StoreError> {
        rules::remove_service(&mut self.lock(), id);
        Ok(())
    }
}
