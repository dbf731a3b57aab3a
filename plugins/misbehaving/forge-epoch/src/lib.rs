//! A validate-layout that tries to pick its own epoch: it returns the state
//! with a far higher epoch, hoping the host will lock and persist with it.
//! Epochs come only from the coordinator (I1): the host must refuse.

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep};
use ratchet_guest::{Host, Phase, outcome};

/// The forging phase.
pub struct ForgeEpoch;

impl Phase for ForgeEpoch {
    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        state.epoch += 1_000;
        outcome(state, PhaseStep::Next("lock-services".into()))
    }
}

ratchet_guest::export_phase!(ForgeEpoch, wit = "../../../wit");
