//! A lock-services that tries to lock every service in the directory, not
//! just those named in the old layout. The host must refuse the extra ones
//! (I3); the phase then carries on with what it got.

use ratchet_guest::types::{AttemptState, LockInfo, PhaseOutcome, PhaseStep};
use ratchet_guest::{Host, Phase, outcome};

/// The greedy phase.
pub struct GreedyLock;

impl Phase for GreedyLock {
    fn run(mut state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let ids: Vec<String> = host.services().into_iter().map(|s| s.id).collect();
        for (id, result) in ids.iter().zip(host.lock(&ids)) {
            match result {
                Ok(LockInfo::Log(info)) => state.locked_logs.push(info),
                Ok(LockInfo::Storage(info)) => state.locked_storage.push(info),
                Ok(LockInfo::Stateless(_)) => {}
                Err(_) => state.unreachable.push(id.clone()),
            }
        }
        outcome(state, PhaseStep::Next("determine-path".into()))
    }
}

ratchet_guest::export_phase!(GreedyLock, wit = "../../../wit");
