//! A start-proxies that traps on every call: a version that should never
//! serve for long. The host rolls its slot back after a few consecutive
//! traps.

use ratchet_guest::types::{AttemptState, PhaseOutcome};
use ratchet_guest::{Host, Phase};

/// The trapping phase.
pub struct AlwaysTrap;

impl Phase for AlwaysTrap {
    fn run(state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        panic!("always-trap traps (epoch {}, attempt {})", state.epoch, state.attempt);
    }
}

ratchet_guest::export_phase!(AlwaysTrap, wit = "../../../wit");
