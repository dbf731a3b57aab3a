//! A placement policy that loops forever. It is asked from inside a phase
//! (recruit-logs, say): the policy's own deadline must end the call, the
//! stall must name the policy, and automatic rollback must count the
//! failure against the `placement` slot, not against the phase that asked.

use ratchet_guest::PlacementPolicy;
use ratchet_guest::types::{Assignment, PlacementError, PlacementRequest};

/// The policy that never answers.
pub struct LoopingPlacement;

impl PlacementPolicy for LoopingPlacement {
    fn place(request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        let mut spins: u64 = request.vacancies.len() as u64;
        loop {
            spins = std::hint::black_box(spins.wrapping_mul(6364136223846793005).wrapping_add(1));
            if spins == 0 && request.nodes.len() == usize::MAX {
                return Ok(Vec::new());
            }
        }
    }
}

ratchet_guest::export_placement_policy!(LoopingPlacement, wit = "../../../wit");
