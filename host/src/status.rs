//! What `ratchet status`, the admin endpoint and the coordinator protocol
//! say of a cluster: a leaf, so that the processes and the admin endpoint
//! share it without importing each other.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bindings::types::{Epoch, Layout, Node, ServiceDescriptor, Version};

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
    /// The newest recoveries, oldest first (at most
    /// [`RECENT_RECOVERIES`]).
    pub recoveries: Vec<RecoverySummary>,
    /// The newest replica recovery events (every transition of every
    /// replica's sessions), oldest first.
    #[serde(default)]
    pub replica_events: Vec<ReplicaEvent>,
    /// The nodes that answer their heartbeats but whose calls time out
    /// (a slow disk), with why: reported unhealthy, so nothing new is
    /// placed on them, for a while.
    #[serde(default)]
    pub degraded: Vec<(String, String)>,
    /// The storage replicas of the live generation still joining it
    /// (seeded from a teammate after the layout persisted), as of the
    /// coordinator's last check.
    #[serde(default)]
    pub joining: Vec<String>,
}

/// How many recoveries [`Status::recoveries`] keeps.
pub const RECENT_RECOVERIES: usize = 8;

impl Status {
    /// The last recovery, if there was one.
    pub fn last_recovery(&self) -> Option<&RecoverySummary> {
        self.recoveries.last()
    }
}

/// One recovery, as `ratchet status` and the dashboard show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoverySummary {
    /// What started it: `boot`, or the failure detected.
    pub trigger: String,
    /// When it ended, in milliseconds since the Unix epoch.
    pub ended_unix_ms: u64,
    /// Its wall time, from the detected failure (or the first attempt, at
    /// boot) to the persisted layout, in milliseconds; none when it did not
    /// complete.
    pub millis: Option<f64>,
    /// Its attempts, in order.
    pub attempts: Vec<AttemptSummary>,
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
    /// Of its phases' time, what the host spent answering their calls (the
    /// rest ran in the plugins, placement policies included), in
    /// milliseconds.
    pub host_millis: f64,
    /// The time its phases ran inside the plugins, in milliseconds (see
    /// [`AttemptReport::wasm_time`](crate::director::AttemptReport::wasm_time)).
    #[serde(default)]
    pub plugin_millis: f64,
    /// Of that, the time inside wasm, the guest code alone, in
    /// milliseconds (see
    /// [`AttemptReport::guest_time`](crate::director::AttemptReport::guest_time)).
    #[serde(default)]
    pub guest_millis: f64,
    /// Its phases: name, milliseconds, outcome.
    pub phases: Vec<(String, f64, String)>,
}

/// One transition of a replica recovery session, for the event log
/// ([`crate::replica::Sessions`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaEvent {
    /// Milliseconds since the sessions began.
    pub at_ms: u64,
    /// The session.
    pub session: u64,
    /// The replica.
    pub replica: String,
    /// The epoch.
    pub epoch: Epoch,
    /// The new state: `opened`, `progress`, `truncated`, `completed`,
    /// `invalidated`, `escalated`, `abandoned`, `refused`.
    pub event: String,
    /// The figures or the reason.
    pub detail: String,
}

impl fmt::Display for ReplicaEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>8} ms  #{:<4} {:<18} e{:<4} {:<11} {}", self.at_ms, self.session, self.replica, self.epoch, self.event, self.detail)
    }
}
