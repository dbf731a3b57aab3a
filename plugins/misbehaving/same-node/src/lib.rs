//! A placement policy that does not look: every vacancy goes to the first
//! node of the request, whether it is down, full or already picked. The host
//! must refuse the answer (`host-check: ...`) and the attempt must stall with
//! that reason instead of creating workers.

use ratchet_guest::PlacementPolicy;
use ratchet_guest::types::{Assignment, PlacementError, PlacementRequest};

/// The careless policy.
pub struct SameNode;

impl PlacementPolicy for SameNode {
    fn place(request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        let first = request.nodes.first().map(|n| n.id.clone()).unwrap_or_default();
        Ok(request
            .vacancies
            .iter()
            .enumerate()
            .map(|(i, group)| Assignment { vacancy: i as u32, nodes: vec![first.clone(); group.count as usize] })
            .collect())
    }
}

ratchet_guest::export_placement_policy!(SameNode, wit = "../../../wit");
