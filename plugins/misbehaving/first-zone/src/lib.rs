//! A placement policy that prefers the lowest-named zone for everything. It
//! spreads a new team over zones only because `min-distinct-zones` demands
//! it; a replacement for one lost replica (a group of one, which may go
//! anywhere) lands in the first zone even when the team already has a
//! replica there. Replacement by replacement, teams collapse into one zone,
//! and a zone failure then takes a whole team: the simulator's experiments
//! must catch it.

use ratchet_guest::PlacementPolicy;
use ratchet_guest::placement::greedy;
use ratchet_guest::types::{Assignment, PlacementError, PlacementRequest};

/// The zone-blind policy.
pub struct FirstZone;

impl PlacementPolicy for FirstZone {
    fn place(request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        greedy(&request, |node, load| (node.zone.clone(), load))
    }
}

ratchet_guest::export_placement_policy!(FirstZone, wit = "../../../wit");
