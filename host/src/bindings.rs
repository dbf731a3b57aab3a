//! Host-side bindings of the WIT package `ratchet:recovery@0.1.0`.
//!
//! The data types are generated once, from the `recovery-phase` world, and
//! shared with the `placement-policy` world through `with`. They derive serde
//! so that layouts and attempt states can be persisted and sent as is.

mod phase_world {
    wasmtime::component::bindgen!({
        world: "ratchet:recovery/recovery-phase@0.1.0",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

mod policy_world {
    wasmtime::component::bindgen!({
        world: "ratchet:recovery/placement-policy@0.1.0",
        path: "../wit",
        imports: { default: async | trappable },
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
