//! The host's check of a replica recovery plan: a policy is a plugin like
//! any other, and the host never acts on its answer before checking that
//! the plan fits the figures, so that no replica is ever told to claim data
//! it does not have.

use crate::bindings::types::{CatchUpPlan, RebuildPlan, ReplicaHistory, ReplicaOutcome, ReplicaPlan};

/// Checks `plan`, made from the host's figures `given`: its proof must carry
/// exactly those figures, and the plan must fit them:
///
/// - zero-gap only when the durable version is the committed one;
/// - a truncation only for a replica ahead of committed, and to committed;
/// - a replay of exactly `(durable, committed]`, all of it retained by the
///   logs (`durable >= oldest`, `head >= committed`);
/// - a snapshot+tail only from the trusted checkpoint, within retention and
///   at most committed;
/// - a full rebuild only when the trusted checkpoint (the most recent
///   teammate) is within retention: a rebuild replaces the replica's data
///   whole before its tail is replayed, and a tail the logs no longer hold
///   would leave it with less than it had.
pub fn check_plan(given: &ReplicaHistory, plan: &ReplicaPlan) -> Result<(), String> {
    if &plan.history != given {
        return Err(format!("the proof carries figures {:?}, not the host's {given:?}", plan.history));
    }
    let h = &plan.history;
    let (d, oldest, head, committed) = (h.durable_version, h.oldest_retained, h.head_version, h.committed_version);
    if oldest > head || committed > head {
        return Err(format!("inconsistent figures: oldest {oldest}, head {head}, committed {committed}"));
    }
    match &plan.outcome {
        ReplicaOutcome::ZeroGap if d == committed => Ok(()),
        ReplicaOutcome::ZeroGap => Err(format!("zero-gap, but durable {d} is not committed {committed}")),
        ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(to)) if d > committed && *to == committed => Ok(()),
        ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(to)) => {
            Err(format!("truncation to {to}, but durable {d} and committed {committed} call for none or for {committed}"))
        }
        ReplicaOutcome::CatchUp(CatchUpPlan::Replay(range)) => {
            if range.after != d || range.through != committed {
                Err(format!("replay of ({}, {}], but the gap is ({d}, {committed}]", range.after, range.through))
            } else if d >= committed {
                Err(format!("replay, but durable {d} is not behind committed {committed}"))
            } else if d < oldest {
                Err(format!("replay from {d}, but the logs retain only the versions after {oldest}"))
            } else {
                Ok(())
            }
        }
        ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(at)) => {
            if h.checkpoint_version != Some(*at) {
                Err(format!("snapshot at {at}, but the trusted checkpoint is {:?}", h.checkpoint_version))
            } else if *at < oldest || *at > committed {
                Err(format!("snapshot at {at} is outside [{oldest}, {committed}]: its tail is not retained"))
            } else {
                Ok(())
            }
        }
        ReplicaOutcome::Rebuild(RebuildPlan::Full) => match h.checkpoint_version {
            Some(at) if at >= oldest && at <= committed => Ok(()),
            at => Err(format!(
                "full copy, but no teammate is within retention (checkpoint {at:?}, logs retain after {oldest}): the tail after the copy could not be replayed"
            )),
        },
    }
}

/// Whether any plan fits `h`: the replica is at or past committed, the
/// logs retain what it lacks, or a teammate within retention can seed it.
/// Otherwise the versions it lacks are held by no log and no teammate
/// that serves, and no policy can bring it up to date.
pub fn recoverable(h: &ReplicaHistory) -> bool {
    let (d, oldest, committed) = (h.durable_version, h.oldest_retained, h.committed_version);
    d >= committed || d >= oldest || h.checkpoint_version.is_some_and(|at| at >= oldest && at <= committed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::VersionRange;

    fn plan(outcome: ReplicaOutcome, durable: u64, oldest: u64, committed: u64, checkpoint: Option<u64>) -> ReplicaPlan {
        let history = ReplicaHistory {
            durable_version: durable,
            oldest_retained: oldest,
            head_version: committed,
            committed_version: committed,
            checkpoint_version: checkpoint,
        };
        ReplicaPlan { outcome, history, reason: String::new() }
    }

    fn check(plan: &ReplicaPlan) -> Result<(), String> {
        check_plan(&plan.history, plan)
    }

    fn replay(after: u64, through: u64) -> ReplicaOutcome {
        ReplicaOutcome::CatchUp(CatchUpPlan::Replay(VersionRange { after, through }))
    }

    #[test]
    fn plans_that_fit_their_figures_pass() {
        assert!(check(&plan(ReplicaOutcome::ZeroGap, 50, 10, 50, None)).is_ok());
        assert!(check(&plan(ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(50)), 60, 10, 50, None)).is_ok());
        assert!(check(&plan(replay(10, 50), 10, 10, 50, None)).is_ok());
        assert!(check(&plan(ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(10)), 3, 10, 50, Some(10))).is_ok());
        assert!(check(&plan(ReplicaOutcome::Rebuild(RebuildPlan::Full), 50, 10, 50, Some(10))).is_ok());
    }

    #[test]
    fn plans_that_would_claim_data_the_replica_lacks_are_refused() {
        let refused = |p: ReplicaPlan| check(&p).unwrap_err();
        assert!(refused(plan(ReplicaOutcome::ZeroGap, 40, 10, 50, None)).contains("zero-gap"));
        assert!(refused(plan(replay(9, 50), 9, 10, 50, None)).contains("retain only"));
        assert!(refused(plan(replay(10, 40), 10, 10, 50, None)).contains("the gap is (10, 50]"));
        assert!(refused(plan(ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(55)), 60, 10, 50, None)).contains("truncation"));
        assert!(refused(plan(ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(9)), 3, 10, 50, Some(9))).contains("outside"));
        assert!(refused(plan(ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(20)), 3, 10, 50, Some(30))).contains("trusted"));
        let mut inconsistent = plan(ReplicaOutcome::Rebuild(RebuildPlan::Full), 3, 10, 50, None);
        inconsistent.history.head_version = 40;
        assert!(refused(inconsistent).contains("inconsistent"));
        assert!(refused(plan(ReplicaOutcome::Rebuild(RebuildPlan::Full), 3, 10, 50, Some(9))).contains("no teammate is within retention"));
        assert!(refused(plan(ReplicaOutcome::Rebuild(RebuildPlan::Full), 3, 10, 50, None)).contains("no teammate"));
        let honest = plan(ReplicaOutcome::Rebuild(RebuildPlan::Full), 3, 10, 50, Some(20));
        let mut forged = honest.clone();
        forged.history.durable_version = 9;
        assert!(check_plan(&honest.history, &forged).unwrap_err().contains("not the host's"));
    }
}
