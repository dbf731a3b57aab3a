//! **headroom**: put each worker on the node with the most free slots
//! (capacity minus load), so big nodes take more work than small ones.
//!
//! The SDK's `greedy` placer does the rest: it skips nodes that are down,
//! full, excluded or not capable, keeps a team's nodes distinct, counts the
//! load of earlier picks, and moves to a new zone whenever the request's
//! `min-distinct-zones` requires it. So this file is only the preference.

use std::cmp::Reverse;

use ratchet_guest::PlacementPolicy;
use ratchet_guest::placement::greedy;
use ratchet_guest::types::{Assignment, Node, PlacementError, PlacementRequest};

/// The headroom policy.
pub struct Headroom;

/// Free slots on `node` at `load`; more is better, so the key is reversed.
pub fn headroom(node: &Node, load: u32) -> Reverse<u32> {
    Reverse(node.capacity.saturating_sub(load))
}

impl PlacementPolicy for Headroom {
    fn place(request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        greedy(&request, headroom)
    }
}

// The WIT glue: exports `Headroom` as the `placement-policy` world when the
// crate is built for wasm32-wasip2 (the WIT is read from ../../wit).
ratchet_guest::export_placement_policy!(Headroom);
