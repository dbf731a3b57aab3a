//! What workers and clients ask the coordinator process.

use serde::{Deserialize, Serialize};

use crate::bindings::types::{Epoch, Layout, Node, ServiceDescriptor, Version};
use crate::transport::Protocol;

/// The coordinator protocol.
pub struct CoordinatorProtocol;

impl Protocol for CoordinatorProtocol {
    const SERVICE: &'static str = "coordinator";
    type Request = CoordinatorRequest;
    type Response = Result<CoordinatorReply, String>;
}

/// A request to the coordinator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CoordinatorRequest {
    /// A worker announces itself; sent again every second as its heartbeat.
    Register {
        /// The node.
        node: String,
        /// Its zone.
        zone: String,
        /// Workers it may host.
        capacity: u32,
        /// Where its foreman listens.
        addr: String,
    },
    /// The live generation's layout, with the address of every service, so
    /// a client commits through its proxies directly.
    Generation,
    /// Read a key from a serving replica of its team.
    Read {
        /// The key.
        key: String,
    },
    /// The coordinator's state and the last recovery.
    Status,
}

/// The coordinator's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CoordinatorReply {
    /// For [`CoordinatorRequest::Register`].
    Registered,
    /// For [`CoordinatorRequest::Generation`]: none before the first
    /// recovery completes.
    Generation(Option<Box<Layout>>),
    /// For [`CoordinatorRequest::Read`].
    Value(Option<String>),
    /// For [`CoordinatorRequest::Status`].
    Status(Box<Status>),
}

/// What `ratchet status` shows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// The epoch of the persisted layout.
    pub epoch: Option<Epoch>,
    /// The persisted layout.
    pub layout: Option<Layout>,
    /// What the director is doing: `recovering`, `serving`, ...
    pub state: String,
    /// The newest acknowledged version.
    pub committed: Version,
    /// The registered nodes, with their health.
    pub nodes: Vec<Node>,
    /// Every service the live workers host, of any generation.
    pub services: Vec<ServiceDescriptor>,
    /// What started the last recovery: `boot`, or the failure detected.
    pub trigger: String,
    /// Wall time of the last recovery, from the detected failure (or the
    /// first attempt, at boot) to the persisted layout, in milliseconds.
    pub recovery_millis: Option<f64>,
    /// The attempts of the last recovery, in order.
    pub last_recovery: Vec<AttemptSummary>,
    /// The newest replica recovery events (every transition of every
    /// replica's sessions), oldest first.
    #[serde(default)]
    pub replica_events: Vec<crate::replica::ReplicaEvent>,
}

/// One attempt, as `ratchet status` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttemptSummary {
    /// Its epoch.
    pub epoch: Epoch,
    /// Its number.
    pub attempt: u32,
    /// How it ended.
    pub outcome: String,
    /// Its wall time, in milliseconds.
    pub millis: f64,
    /// Its phases: name, milliseconds, outcome.
    pub phases: Vec<(String, f64, String)>,
}
