//! The adversary in the placement and replica-recovery slots: answers that
//! look like answers, with a flaw now and then.

use ratchet_guest::types::{
    Assignment, CatchUpPlan, PlacementError, PlacementRequest, RebuildPlan, ReplicaHistory, ReplicaOutcome, ReplicaPlan, VersionRange,
};

use crate::rng::Rng;

/// A placement answer: mostly a node per vacancy picked at random from the
/// request (healthy or not, repeated or not), sometimes short, long,
/// duplicated, out of range, naming nodes that do not exist, or an error.
pub fn place(seed: u64, request: &PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
    let mut rng = Rng::new(seed);
    if rng.chance(0.05) {
        return Err(PlacementError { vacancy: 0, constraint: "adversary".into(), message: "the adversary refuses".into() });
    }
    let nodes: Vec<String> = request.nodes.iter().map(|n| n.id.clone()).collect();
    let mut answer: Vec<Assignment> = request
        .vacancies
        .iter()
        .enumerate()
        .map(|(index, group)| {
            let mut count = group.count.min(64) as usize;
            if rng.chance(0.05) {
                count += 1;
            }
            let chosen = (0..count)
                .map(|_| match rng.below(20) {
                    0 => "n-ghost".to_string(),
                    _ => rng.pick(&nodes).cloned().unwrap_or_default(),
                })
                .collect();
            Assignment { vacancy: index as u32, nodes: chosen }
        })
        .collect();
    match rng.below(20) {
        0 => {
            answer.pop();
        }
        1 => {
            let again = answer.first().cloned();
            answer.extend(again);
        }
        2 => answer.push(Assignment { vacancy: u32::MAX, nodes: Vec::new() }),
        _ => {}
    }
    Ok(answer)
}

/// A replica plan: any outcome, with figures near the given ones, and now
/// and then a proof that carries other figures than the host's.
pub fn decide(seed: u64, history: ReplicaHistory) -> ReplicaPlan {
    let mut rng = Rng::new(seed);
    let h = history;
    let near = |rng: &mut Rng, v: u64| match rng.below(6) {
        0 => v.saturating_add(1),
        1 => v.saturating_sub(1),
        2 => 0,
        _ => v,
    };
    let outcome = match rng.below(5) {
        0 => ReplicaOutcome::ZeroGap,
        1 => ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(near(&mut rng, h.committed_version))),
        2 => ReplicaOutcome::CatchUp(CatchUpPlan::Replay(VersionRange {
            after: near(&mut rng, h.durable_version),
            through: near(&mut rng, h.committed_version),
        })),
        3 => ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(near(&mut rng, h.checkpoint_version.unwrap_or(h.oldest_retained)))),
        _ => ReplicaOutcome::Rebuild(RebuildPlan::Full),
    };
    let mut proof = h;
    if rng.chance(0.1) {
        proof.durable_version = near(&mut rng, proof.committed_version);
    }
    if rng.chance(0.1) {
        proof.oldest_retained = 0;
    }
    ReplicaPlan { outcome, history: proof, reason: "the adversary decides".into() }
}
