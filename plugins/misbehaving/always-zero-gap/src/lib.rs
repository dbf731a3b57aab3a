//! A replica recovery policy that always answers zero-gap: a replica far
//! behind would then claim versions it never received. The host's plan
//! check must refuse it, and a swap's dry run with it.

use ratchet_guest::ReplicaPolicy;
use ratchet_guest::types::{ReplicaHistory, ReplicaOutcome, ReplicaPlan};

/// The optimistic policy.
pub struct AlwaysZeroGap;

impl ReplicaPolicy for AlwaysZeroGap {
    fn decide(history: ReplicaHistory) -> ReplicaPlan {
        ReplicaPlan { outcome: ReplicaOutcome::ZeroGap, history, reason: "nothing to do, surely".into() }
    }
}

ratchet_guest::export_replica_policy!(AlwaysZeroGap, wit = "../../../wit");
