//! A lock-services that ignores a rejection from a newer epoch and keeps
//! going: it even tries to create a worker. The host must end the attempt as
//! superseded (I2) and fail every later call (I8).

use ratchet_guest::types::{AttemptState, LockInfo, PhaseOutcome, PhaseStep, ServiceKind};
use ratchet_guest::{Host, Phase, outcome};

/// The stubborn phase.
pub struct IgnoreSuperseded;

impl Phase for IgnoreSuperseded {
    fn run(mut state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let ids: Vec<String> = state.old_layout.iter().flat_map(|l| l.services.iter().map(|s| s.id.clone())).collect();
        for result in host.lock(&ids).into_iter().flatten() {
            match result {
                LockInfo::Log(info) => state.locked_logs.push(info),
                LockInfo::Storage(info) => state.locked_storage.push(info),
                LockInfo::Stateless(_) => {}
            }
        }
        if let Some(node) = host.nodes().first() {
            let created = host.create_worker(&node.id, ServiceKind::Log);
            state.unreachable.push(format!("create after superseded: {created:?}"));
        }
        outcome(state, PhaseStep::Next("determine-path".into()))
    }
}

ratchet_guest::export_phase!(IgnoreSuperseded, wit = "../../../wit");
