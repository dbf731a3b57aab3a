//! A determine-path that always chooses to initialize, even when the old
//! layout names logs. The host must refuse the initialize path (I5).

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep, RecoveryPath};
use ratchet_guest::{Host, Phase, outcome};

/// The reckless phase.
pub struct AlwaysInitialize;

impl Phase for AlwaysInitialize {
    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        state.path = Some(RecoveryPath::Initialize);
        outcome(state, PhaseStep::Next("initialize".into()))
    }
}

ratchet_guest::export_phase!(AlwaysInitialize, wit = "../../../wit");
