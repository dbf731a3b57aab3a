//! The failure detector of the worker processes: one long poll always in
//! flight to each registered worker, on connections of its own.
//!
//! Each worker is asked `Info` held for half the failure timeout, and must
//! answer within the whole of it. A worker whose connection drops (its
//! process died: the kernel closed its sockets) or refuses connections is
//! failed at once; one that stops answering (a hung process, a cut link)
//! is failed when the timeout runs out. Calls to a failed node end at once
//! as `unreachable`, and calls in flight end when it fails, so a recovery
//! never waits on a machine known to be gone. A failed worker that answers
//! again is alive again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Registrations;
use super::registrations::RegistrationWatch;
use crate::transport::{Transport, TransportError};
use crate::wire::{WorkerProtocol, WorkerReply, WorkerRequest};

/// What the detector knows of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// No answer yet since it registered.
    Unknown,
    /// It answered the last long poll in time.
    Alive,
    /// Why it is failed.
    Failed(String),
}

impl Health {
    /// Why the node is failed, if it is.
    pub fn failure(&self) -> Option<&str> {
        match self {
            Health::Failed(why) => Some(why),
            _ => None,
        }
    }
}

/// A watched node: where it is polled, its health, and the poll's task.
struct Watched {
    addr: String,
    health: watch::Sender<Health>,
    poll: JoinHandle<()>,
}

/// Watches every registered worker; see the module documentation.
pub struct FailureDetector {
    timeout: Duration,
    transport: Arc<dyn Transport<WorkerProtocol>>,
    nodes: Mutex<BTreeMap<String, Watched>>,
    signals: Arc<Signals>,
}

/// What the polls announce.
struct Signals {
    /// Rises when a node fails or a proxy's generation breaks.
    failures: Registrations,
    /// Rises when a failed node answers again: the cluster's
    /// registrations, so a stalled director retries at once.
    recoveries: Registrations,
}

impl FailureDetector {
    /// A detector that fails a worker after `timeout` without an answer,
    /// and announces on `recoveries` a failed worker that answers again.
    /// `transport` must be its own (its connections carry nothing but the
    /// long polls) with a call timeout of `timeout`.
    pub fn new(transport: Arc<dyn Transport<WorkerProtocol>>, timeout: Duration, recoveries: Registrations) -> Arc<Self> {
        let signals = Arc::new(Signals { failures: Registrations::new(), recoveries });
        Arc::new(FailureDetector { timeout, transport, nodes: Mutex::default(), signals })
    }

    /// The failure timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Starts watching `node` at `addr`, or moves the watch there.
    pub fn watch(&self, node: &str, addr: &str) {
        let mut nodes = lock(&self.nodes);
        if nodes.get(node).is_some_and(|w| w.addr == addr) {
            return;
        }
        let (health, _) = watch::channel(Health::Unknown);
        let poll = Poll {
            node: node.to_string(),
            addr: addr.to_string(),
            timeout: self.timeout,
            transport: self.transport.clone(),
            signals: self.signals.clone(),
        };
        let poll = tokio::spawn(poll.run(health.clone()));
        if let Some(old) = nodes.insert(node.to_string(), Watched { addr: addr.to_string(), health, poll }) {
            old.poll.abort();
        }
    }

    /// Stops watching `node` (it expired from the directory).
    pub fn forget(&self, node: &str) {
        if let Some(old) = lock(&self.nodes).remove(node) {
            old.poll.abort();
        }
    }

    /// What is known of `node`; a node not watched is unknown.
    pub fn health(&self, node: &str) -> Health {
        lock(&self.nodes).get(node).map_or(Health::Unknown, |w| w.health.borrow().clone())
    }

    /// Ends when `node` is failed (at once if it is already).
    pub async fn failed(&self, node: &str) {
        let receiver = lock(&self.nodes).get(node).map(|w| w.health.subscribe());
        let Some(mut receiver) = receiver else { return std::future::pending().await };
        // An error means the watch was dropped: the node was forgotten.
        if receiver.wait_for(|h| matches!(h, Health::Failed(_))).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Sees every failure, and every proxy whose generation broke, from
    /// now on.
    pub fn failures(&self) -> RegistrationWatch {
        self.signals.failures.subscribe()
    }

    /// Sees every failed node that answers again, from now on.
    pub fn recoveries(&self) -> RegistrationWatch {
        self.signals.recoveries.subscribe()
    }
}

/// The long poll of one node, until the node is forgotten or moves.
struct Poll {
    node: String,
    addr: String,
    timeout: Duration,
    transport: Arc<dyn Transport<WorkerProtocol>>,
    signals: Arc<Signals>,
}

impl Poll {
    async fn run(self, health: watch::Sender<Health>) {
        let Poll { node, addr, .. } = &self;
        let hold_ms = (self.timeout / 2).as_millis() as u64;
        loop {
            let answer = self.transport.call(addr, WorkerRequest::Info { hold_ms }).await;
            let now = match answer {
                Ok(Ok(WorkerReply::Info { broken, .. })) => {
                    if !broken.is_empty() {
                        self.signals.failures.announce();
                    }
                    Health::Alive
                }
                Ok(Ok(other)) => Health::Failed(format!("answered its heartbeat with {other:?}")),
                Ok(Err(err)) => Health::Failed(format!("refused its heartbeat: {err:?}")),
                Err(err @ TransportError::Timeout { .. }) => Health::Failed(format!("no heartbeat: {err}")),
                Err(err) => Health::Failed(format!("connection lost: {err}")),
            };
            let failed = now.failure().is_some();
            let before = health.send_replace(now.clone());
            match (before.failure().is_some(), now.failure()) {
                (false, Some(why)) => {
                    tracing::warn!(%node, %addr, reason = %why, "worker failed");
                    self.signals.failures.announce();
                }
                (true, None) => {
                    tracing::info!(%node, %addr, "worker answers again");
                    self.signals.recoveries.announce();
                }
                _ => {}
            }
            if failed {
                // A refused connection fails at once: do not spin on it.
                tokio::time::sleep(self.timeout / 10).await;
            }
        }
    }
}

impl Drop for FailureDetector {
    fn drop(&mut self) {
        for watched in lock(&self.nodes).values() {
            watched.poll.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
