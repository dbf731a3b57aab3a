//! Named fault profiles: which faults a seed may draw, and how often.
//!
//! The per-tick probabilities apply once per simulated tick (10 ms of
//! virtual time) while faults are on; the per-message ones to every message
//! of the worker protocol: the director's and the clients' requests, and
//! the proxies' to the sequencers and logs. A recovery sends about a hundred
//! messages, so a per-message rate of 1 % already fails most attempts once.

use std::fmt;

/// How often each fault happens under one profile.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FaultProfile {
    /// The profile's name, as given to `--faults`.
    pub name: &'static str,
    /// What the profile is for, shown by `--faults help`.
    pub summary: &'static str,
    /// Per tick: the node of a worker crashes (every role it hosts with
    /// it), and restarts later with its disk.
    pub crash: f64,
    /// Per tick: a whole node goes down, and comes back later.
    pub node_crash: f64,
    /// Per tick: a node is cut off from every other node and the clients.
    pub partition: f64,
    /// Per tick: a node's disk turns slow for a while: every request that
    /// needs it is carried out past the caller's timeout, while the node
    /// answers its heartbeats at once.
    pub slow_disk: f64,
    /// Per tick, before any zone is lost: a storage replica is lost for good
    /// (its disk with it), from a team whose replicas are all alive and
    /// whose other replicas span two zones, so faults stay within the
    /// replication budget.
    pub replica_loss: f64,
    /// Once per run, from a time the seed picks: every node of one zone is
    /// lost for good. The zone is one whose loss leaves the persisted
    /// generation a log of every shard and a replica of every team (a
    /// generation placed while zones were down may stand in fewer zones),
    /// at the first tick at which there is one.
    pub zone_loss: bool,
    /// Per message: the reply comes late (possibly past the call's timeout).
    pub slow_reply: f64,
    /// Per message: the request is lost; the caller times out.
    pub lost_request: f64,
    /// Per message: the request is carried out but its reply is lost.
    pub lost_reply: f64,
    /// Per message of a request safe to repeat: it is delivered twice.
    pub duplicate: f64,
    /// Per lock: the caller times out, and the lock arrives later.
    pub lock_timeout: f64,
    /// Per recovery: a second director, with its own epoch, races the first.
    pub competing_director: f64,
    /// Per phase call: the plugin traps.
    pub plugin_trap: f64,
}

impl FaultProfile {
    /// Every named profile.
    pub const ALL: &'static [FaultProfile] = &[NONE, DEFAULT, CRASH, NETWORK, ZONE_LOSS, SLOW_DISK, CHAOS];

    /// The profile called `name`.
    pub fn named(name: &str) -> Result<FaultProfile, UnknownProfile> {
        Self::ALL.iter().find(|p| p.name == name).cloned().ok_or_else(|| UnknownProfile(name.to_string()))
    }
}

/// A `--faults` name that is not a profile.
#[derive(Debug, thiserror::Error)]
#[error("unknown fault profile `{0}` (known: {known})", known = FaultProfile::ALL.iter().map(|p| p.name).collect::<Vec<_>>().join(", "))]
pub struct UnknownProfile(pub String);

impl fmt::Display for FaultProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<10} {}", self.name, self.summary)
    }
}

const QUIET: FaultProfile = FaultProfile {
    name: "",
    summary: "",
    crash: 0.0,
    node_crash: 0.0,
    partition: 0.0,
    slow_disk: 0.0,
    replica_loss: 0.0,
    zone_loss: false,
    slow_reply: 0.0,
    lost_request: 0.0,
    lost_reply: 0.0,
    duplicate: 0.0,
    lock_timeout: 0.0,
    competing_director: 0.0,
    plugin_trap: 0.0,
};

const NONE: FaultProfile = FaultProfile { name: "none", summary: "one log crash and nothing else: the baseline recovery", ..QUIET };

const DEFAULT: FaultProfile = FaultProfile {
    name: "default",
    summary: "every fault, at rates a recovery should ride out",
    crash: 0.02,
    node_crash: 0.004,
    partition: 0.006,
    slow_reply: 0.003,
    lost_request: 0.001,
    lost_reply: 0.001,
    duplicate: 0.002,
    lock_timeout: 0.003,
    competing_director: 0.25,
    plugin_trap: 0.01,
    ..QUIET
};

const CRASH: FaultProfile =
    FaultProfile { name: "crash", summary: "node crashes with restarts, during recovery too", crash: 0.05, node_crash: 0.01, ..QUIET };

const NETWORK: FaultProfile = FaultProfile {
    name: "network",
    summary: "partitions and slow, lost, duplicated or late replies",
    partition: 0.02,
    slow_reply: 0.01,
    lost_request: 0.004,
    lost_reply: 0.004,
    duplicate: 0.008,
    lock_timeout: 0.01,
    ..QUIET
};

const ZONE_LOSS: FaultProfile = FaultProfile {
    name: "zone-loss",
    summary: "storage replicas lost for good, then a whole zone lost for good",
    crash: 0.01,
    replica_loss: 0.005,
    zone_loss: true,
    ..QUIET
};

const SLOW_DISK: FaultProfile = FaultProfile {
    name: "slow-disk",
    summary: "nodes whose disks turn slow while they answer their heartbeats, and node crashes",
    slow_disk: 0.02,
    crash: 0.01,
    ..QUIET
};

const CHAOS: FaultProfile = FaultProfile {
    name: "chaos",
    summary: "every fault but a zone's loss, several times the default rates",
    crash: 0.06,
    node_crash: 0.015,
    partition: 0.02,
    slow_disk: 0.01,
    replica_loss: 0.01,
    slow_reply: 0.01,
    lost_request: 0.004,
    lost_reply: 0.004,
    duplicate: 0.008,
    lock_timeout: 0.01,
    competing_director: 0.6,
    plugin_trap: 0.04,
    ..QUIET
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_found_by_name_and_unknown_names_list_the_known_ones() {
        assert_eq!(FaultProfile::named("default").unwrap().name, "default");
        let err = FaultProfile::named("hurricane").unwrap_err().to_string();
        assert!(err.contains("`hurricane`") && err.contains("zone-loss"), "{err}");
    }
}
