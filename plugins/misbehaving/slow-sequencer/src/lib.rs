//! A start-sequencer that waits before doing what the default one does, so
//! that a test against real processes can act in the middle of a recovery:
//! by the time it runs, recruit-logs and recruit-storage have created their
//! workers, and none of them is unlocked yet.

use ratchet_guest::recruit::start_phase;
use ratchet_guest::types::{AttemptState, PhaseOutcome, ServiceKind};
use ratchet_guest::{Host, Phase};

/// How long the phase waits, in host milliseconds; under the default call
/// deadline of 2 s.
pub const WAIT_MS: u64 = 1_200;

/// The slow phase.
pub struct SlowSequencer;

impl Phase for SlowSequencer {
    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        host.sleep_ms(WAIT_MS);
        start_phase(state, host, ServiceKind::Sequencer, 1, "start-proxies", |state, started| state.sequencer = started.into_iter().next())
    }
}

ratchet_guest::export_phase!(SlowSequencer, wit = "../../../wit");
