//! What a simulated run did: the event trace, stamped with virtual time, and
//! the facts the checker judges the run by.
//!
//! Everything is recorded where it happens (the store, the simulated
//! network, the client), independently of the invariant guard, so that the
//! checker is a second opinion and not the guard grading itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use crate::bindings::types::{Epoch, Layout, ServiceDescriptor};
use crate::store::{CoordinatorState, CoordinatorStore, MemoryStore, StoreError};
use crate::worker::RequestKind;

/// The record of one run. Shared by the parts of the simulation.
#[derive(Clone)]
pub struct History {
    origin: Instant,
    /// Whether [`History::event`] records anything.
    tracing: bool,
    inner: Arc<Mutex<Facts>>,
}

/// The facts of a run, read by the checker when the run ends.
#[derive(Default)]
pub struct Facts {
    /// The event trace, one line per event.
    pub trace: Vec<String>,
    /// Every epoch the store issued, in order.
    pub issued: Vec<Epoch>,
    /// Every layout the store persisted, in order.
    pub persisted: Vec<Layout>,
    /// Per epoch, the services a lock at that epoch took.
    pub locked: BTreeMap<Epoch, BTreeSet<String>>,
    /// Per epoch, the workers and roles created for it.
    pub recruited: BTreeMap<Epoch, BTreeSet<String>>,
    /// Per service, the newest epoch it accepted a lock from.
    pub lock_epoch: BTreeMap<String, Epoch>,
    /// Work a service accepted from an epoch older than one that had already
    /// locked it: each a violation of fencing.
    pub stale_work: Vec<String>,
    /// The descriptor of every worker and role, as the cluster created it:
    /// the record a persisted layout's descriptors must match.
    pub descriptors: BTreeMap<String, ServiceDescriptor>,
    /// Panics of the host (a director task), each a violation of S6.
    pub panics: Vec<String>,
}

impl History {
    /// An empty history whose clock starts now (virtual time zero), which
    /// records the event trace if `tracing`; the facts are always recorded.
    pub fn new(tracing: bool) -> Self {
        History { origin: Instant::now(), tracing, inner: Arc::default() }
    }

    /// The facts, for reading or recording.
    pub fn facts(&self) -> MutexGuard<'_, Facts> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Virtual time since the run began, in milliseconds.
    pub fn now_ms(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * 1e3
    }

    /// The virtual time of `at`, in milliseconds since the run began.
    pub fn ms_at(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.origin).as_secs_f64() * 1e3
    }

    /// Appends one event to the trace.
    pub fn event(&self, source: &str, what: impl Display) {
        if !self.tracing {
            return;
        }
        let line = format!("{:>11.3}ms {source:<9} {what}", self.now_ms());
        self.facts().trace.push(line);
    }

    /// `service` accepted `op` from `epoch`. A lock raises the service's
    /// fence; any work from below the fence is recorded as a violation.
    pub fn accepted(&self, service: &str, epoch: Epoch, op: RequestKind) {
        let at = self.now_ms();
        let mut facts = self.facts();
        let fence = facts.lock_epoch.get(service).copied().unwrap_or(0);
        if epoch < fence {
            facts
                .stale_work
                .push(format!("{service} accepted {} from epoch {epoch} at {at:.3}ms after epoch {fence} had locked it", op.name()));
        }
        if op == RequestKind::Lock {
            facts.lock_epoch.insert(service.to_string(), fence.max(epoch));
            facts.locked.entry(epoch).or_default().insert(service.to_string());
        }
    }

    /// A worker or role was created for `epoch`.
    pub fn recruited(&self, service: &ServiceDescriptor, epoch: Epoch) {
        let mut facts = self.facts();
        facts.lock_epoch.insert(service.id.clone(), epoch);
        facts.recruited.entry(epoch).or_default().insert(service.id.clone());
        facts.descriptors.insert(service.id.clone(), service.clone());
    }
}

/// The coordinator store of a simulated run: in memory, recording every
/// epoch it issues and every layout it persists.
pub struct RecordingStore {
    inner: MemoryStore,
    history: History,
}

impl RecordingStore {
    /// An empty store recording into `history`.
    pub fn new(history: History) -> Self {
        RecordingStore { inner: MemoryStore::default(), history }
    }
}

impl CoordinatorStore for RecordingStore {
    fn next_epoch_above(&self, seen: Epoch) -> Result<Epoch, StoreError> {
        let epoch = self.inner.next_epoch_above(seen)?;
        self.history.facts().issued.push(epoch);
        self.history.event("store", format_args!("issued epoch {epoch}"));
        Ok(epoch)
    }

    fn state(&self) -> Result<CoordinatorState, StoreError> {
        self.inner.state()
    }

    fn persist_layout(&self, layout: &Layout) -> Result<(), StoreError> {
        let result = self.inner.persist_layout(layout);
        match &result {
            Ok(()) => {
                self.history.facts().persisted.push(layout.clone());
                self.history.event("store", format_args!("persisted the layout of epoch {}", layout.epoch));
            }
            Err(err) => self.history.event("store", format_args!("refused the layout of epoch {}: {err}", layout.epoch)),
        }
        result
    }

    fn register_service(&self, service: crate::bindings::types::ServiceDescriptor) -> Result<(), StoreError> {
        self.inner.register_service(service)
    }

    fn remove_service(&self, id: &str) -> Result<(), StoreError> {
        self.inner.remove_service(id)
    }
}
