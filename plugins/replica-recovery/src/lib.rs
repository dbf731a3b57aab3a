//! **by-retention**, the default replica recovery policy.
//!
//! Decides how a storage replica is brought up to date from its durable
//! version `d` and its shard's history (`oldest` retained log version,
//! exclusive; `committed` version; optional trusted `checkpoint`):
//!
//! | condition | outcome |
//! |---|---|
//! | `d == committed` | zero-gap |
//! | `d > committed` | catch-up: truncate to `committed` |
//! | `d + 1 > oldest` (the first missing version is retained) | catch-up: replay `(d, committed]` |
//! | otherwise, `oldest <= checkpoint <= committed` | rebuild: snapshot at `checkpoint`, then the tail |
//! | otherwise | rebuild: full copy |
//!
//! The host refuses the last row's plan: a full copy from a teammate behind
//! retention would leave a tail no log holds. No plan can bring such a
//! replica up to date until a teammate within retention serves again, and
//! the recovery waits for one. Every plan carries the figures and a
//! one-line reason.

use ratchet_guest::ReplicaPolicy;
use ratchet_guest::types::{CatchUpPlan, RebuildPlan, ReplicaHistory, ReplicaOutcome, ReplicaPlan, VersionRange};

/// The default policy.
pub struct ByRetention;

impl ReplicaPolicy for ByRetention {
    fn decide(history: ReplicaHistory) -> ReplicaPlan {
        decide(history)
    }
}

ratchet_guest::export_replica_policy!(ByRetention);
ratchet_guest::use_call_arena!();

/// The rules of the table above.
pub fn decide(h: ReplicaHistory) -> ReplicaPlan {
    let (d, oldest, committed) = (h.durable_version, h.oldest_retained, h.committed_version);
    let (outcome, reason) = if d == committed {
        (ReplicaOutcome::ZeroGap, format!("durable {d} equals committed {committed}"))
    } else if d > committed {
        (
            ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(committed)),
            format!("durable {d} is ahead of committed {committed}: truncate to {committed}"),
        )
    } else if d >= oldest {
        (
            ReplicaOutcome::CatchUp(CatchUpPlan::Replay(VersionRange { after: d, through: committed })),
            format!("the logs retain every version after {oldest}, so ({d}, {committed}] can be replayed"),
        )
    } else {
        match h.checkpoint_version {
            Some(checkpoint) if checkpoint >= oldest && checkpoint <= committed => (
                ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(checkpoint)),
                format!(
                    "durable {d} is behind retention (versions after {oldest}); checkpoint {checkpoint} is within it: snapshot, then ({checkpoint}, {committed}]"
                ),
            ),
            Some(checkpoint) => (
                ReplicaOutcome::Rebuild(RebuildPlan::Full),
                format!(
                    "durable {d} is behind retention (versions after {oldest}) and checkpoint {checkpoint} is outside [{oldest}, {committed}]: full copy"
                ),
            ),
            None => (
                ReplicaOutcome::Rebuild(RebuildPlan::Full),
                format!("durable {d} is behind retention (versions after {oldest}) and there is no checkpoint: full copy"),
            ),
        }
    };
    ReplicaPlan { outcome, history: h, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(durable: u64, oldest: u64, committed: u64, checkpoint: Option<u64>) -> ReplicaHistory {
        ReplicaHistory {
            durable_version: durable,
            oldest_retained: oldest,
            head_version: committed,
            committed_version: committed,
            checkpoint_version: checkpoint,
        }
    }

    fn outcome(durable: u64, oldest: u64, committed: u64, checkpoint: Option<u64>) -> ReplicaOutcome {
        decide(history(durable, oldest, committed, checkpoint)).outcome
    }

    #[test]
    fn durable_equal_to_committed_is_zero_gap() {
        assert_eq!(outcome(50, 10, 50, None), ReplicaOutcome::ZeroGap);
        assert_eq!(outcome(0, 0, 0, None), ReplicaOutcome::ZeroGap, "an empty shard and an empty replica");
        assert_eq!(outcome(50, 90, 50, None), ReplicaOutcome::ZeroGap, "even when retention moved past it");
    }

    #[test]
    fn a_replica_ahead_of_committed_truncates_to_committed() {
        assert_eq!(outcome(51, 10, 50, None), ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(50)));
        assert_eq!(outcome(900, 10, 50, Some(40)), ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(50)));
    }

    #[test]
    fn catch_up_starts_exactly_where_retention_allows() {
        // oldest is exclusive: versions 11.. are retained, so durable 10
        // needs 11 onwards, which is there.
        assert_eq!(outcome(10, 10, 50, None), ReplicaOutcome::CatchUp(CatchUpPlan::Replay(VersionRange { after: 10, through: 50 })));
        assert_eq!(outcome(49, 10, 50, None), ReplicaOutcome::CatchUp(CatchUpPlan::Replay(VersionRange { after: 49, through: 50 })));
        // durable 9 needs version 10, which is gone.
        assert_eq!(outcome(9, 10, 50, None), ReplicaOutcome::Rebuild(RebuildPlan::Full));
    }

    #[test]
    fn a_rebuild_uses_a_checkpoint_only_within_retention() {
        assert_eq!(outcome(3, 10, 50, Some(10)), ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(10)));
        assert_eq!(outcome(3, 10, 50, Some(50)), ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(50)));
        assert_eq!(outcome(3, 10, 50, Some(9)), ReplicaOutcome::Rebuild(RebuildPlan::Full), "its tail is gone");
        assert_eq!(outcome(3, 10, 50, Some(51)), ReplicaOutcome::Rebuild(RebuildPlan::Full), "beyond committed");
        assert_eq!(outcome(3, 10, 50, None), ReplicaOutcome::Rebuild(RebuildPlan::Full));
    }

    #[test]
    fn the_proof_carries_the_figures_and_a_one_line_reason() {
        let h = history(9, 10, 50, Some(20));
        let plan = decide(h);
        assert_eq!(plan.history, h);
        assert!(!plan.reason.contains('\n'));
        for figure in ["9", "10", "20", "50"] {
            assert!(plan.reason.contains(figure), "{figure} in {}", plan.reason);
        }
    }
}
