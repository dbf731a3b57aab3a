//! Host-side bindings of the WIT package `ratchet:recovery@0.1.0`.
//!
//! The data types are generated once, from the `recovery-phase` world, and
//! shared with the `placement-policy` and `replica-recovery` worlds through
//! `with`. They derive serde
//! so that layouts and attempt states can be persisted and sent as is.

pub mod state_fields;

// Generated from the WIT, whose comments document the types; the
// generated glue (traits, instantiation helpers) carries none.
#[allow(missing_docs)]
mod phase_world {
    wasmtime::component::bindgen!({
        world: "ratchet:recovery/recovery-phase@0.1.0",
        path: "../wit",
        imports: { default: async },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

#[allow(missing_docs)]
mod policy_world {
    wasmtime::component::bindgen!({
        world: "ratchet:recovery/placement-policy@0.1.0",
        path: "../wit",
        imports: { default: async },
        exports: { default: async },
        with: {
            "ratchet:recovery/types@0.1.0": super::phase_world::ratchet::recovery::types,
            "ratchet:recovery/log@0.1.0": super::phase_world::ratchet::recovery::log,
        },
    });
}

#[allow(missing_docs)]
mod replica_world {
    wasmtime::component::bindgen!({
        world: "ratchet:recovery/replica-recovery@0.1.0",
        path: "../wit",
        imports: { default: async },
        exports: { default: async },
        with: {
            "ratchet:recovery/types@0.1.0": super::phase_world::ratchet::recovery::types,
            "ratchet:recovery/log@0.1.0": super::phase_world::ratchet::recovery::log,
        },
    });
}

pub use phase_world::ratchet::recovery::{clock, cluster, log, placement, types};
pub use phase_world::{RecoveryPhase, RecoveryPhasePre};
pub use policy_world::{PlacementPolicy, PlacementPolicyPre};
pub use replica_world::{ReplicaRecovery, ReplicaRecoveryPre};

impl Default for types::RecoveryConfig {
    /// A small cluster: 3 logs carrying every shard, 4 shards of 3 replicas,
    /// one commit proxy and one resolver.
    fn default() -> Self {
        types::RecoveryConfig {
            desired_logs: 3,
            replication_factor: 3,
            shards: 4,
            desired_proxies: 1,
            desired_resolvers: 1,
            log_replication: 3,
        }
    }
}

impl types::AttemptState {
    /// The state an attempt starts from: its epoch and number, the shape to
    /// recover towards, and the layout persisted by the previous generation.
    pub fn new(epoch: types::Epoch, attempt: u32, config: types::RecoveryConfig, old_layout: Option<types::Layout>) -> Self {
        types::AttemptState {
            epoch,
            attempt,
            config,
            old_layout,
            locked_logs: Vec::new(),
            locked_storage: Vec::new(),
            unreachable: Vec::new(),
            path: None,
            log_plan: Vec::new(),
            recovery_version: None,
            durable_version: None,
            degraded_teams: Vec::new(),
            vacancies: Vec::new(),
            recruits: Vec::new(),
            new_logs: Vec::new(),
            new_storage_teams: Vec::new(),
            sequencer: None,
            commit_proxies: Vec::new(),
            resolvers: Vec::new(),
            new_layout: None,
        }
    }
}

/// The WIT name of a service kind, for messages: `log`, `commit-proxy`, ...
pub fn kind_name(kind: types::ServiceKind) -> &'static str {
    use types::ServiceKind as K;
    match kind {
        K::Log => "log",
        K::Storage => "storage",
        K::Sequencer => "sequencer",
        K::CommitProxy => "commit-proxy",
        K::Resolver => "resolver",
    }
}
