//! The named slots of the registry and the world each one requires.

use crate::runtime::World;

/// The default recovery pipeline, in order: one slot per phase. The guest
/// SDK holds the list, so that phases and the host name the same slots.
pub use ratchet_guest::PHASES;

/// The slot of the placement policy.
pub const PLACEMENT: &str = "placement";

/// The slot of the replica recovery policy.
pub const REPLICA: &str = "replica-recovery";

/// The world a slot requires, or `None` for a name that is not a slot.
pub fn world_of(slot: &str) -> Option<World> {
    if slot == PLACEMENT {
        Some(World::PlacementPolicy)
    } else if slot == REPLICA {
        Some(World::ReplicaRecovery)
    } else if PHASES.contains(&slot) {
        Some(World::RecoveryPhase)
    } else {
        None
    }
}

/// Every slot name, pipeline order first, then `placement` and
/// `replica-recovery`.
pub fn all() -> impl Iterator<Item = &'static str> {
    PHASES.into_iter().chain([PLACEMENT, REPLICA])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_placement_and_replica_recovery_is_a_slot_and_nothing_else() {
        assert_eq!(all().count(), 17);
        assert_eq!(world_of("placement"), Some(World::PlacementPolicy));
        assert_eq!(world_of("replica-recovery"), Some(World::ReplicaRecovery));
        assert_eq!(world_of("replay-logs"), Some(World::RecoveryPhase));
        assert_eq!(world_of("replay"), None);
    }
}
