//! Phase 2, **lock-services**: stop what is left of the old generation.
//!
//! Decides: which old services are still reachable. It locks, in one parallel
//! request, only the services named in the old layout (the host refuses any
//! other, I3), records what each locked log and storage replica reports, and
//! lists the unreachable ones. Needs: the old layout. A newer epoch holding
//! any lock is fatal for this attempt (the host ends it as superseded, I2).

use ratchet_guest::types::{AttemptState, ClusterError, LockInfo, PhaseOutcome, PhaseStep, StateField};
use ratchet_guest::{Host, LogLevel, Phase, error_parts, outcome};

/// The phase run after this one.
pub const NEXT: &str = "determine-path";

/// The lock-services phase.
pub struct LockServices;

impl Phase for LockServices {
    const READS: &'static [StateField] = &[StateField::OldLayout, StateField::OldServices, StateField::OldStorageTeams];
    const WRITES: &'static [StateField] = &[StateField::LockedLogs, StateField::LockedStorage, StateField::Unreachable];

    fn run(mut state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let Some(layout) = &state.old_layout else {
            return outcome(state, PhaseStep::Next(NEXT.into()));
        };
        // Departing replicas too: one that came back may hold what the
        // team's others lost.
        let departing = layout.storage_teams.iter().flat_map(|t| t.departing.iter().map(|d| &d.service));
        let ids: Vec<String> = layout.services.iter().chain(departing).map(|s| s.id.clone()).collect();
        // This phase decides these lists (it writes them without reading them).
        state.locked_logs.clear();
        state.locked_storage.clear();
        state.unreachable.clear();
        let results = host.lock(&ids);
        for (id, result) in ids.into_iter().zip(results) {
            match result {
                Ok(LockInfo::Log(info)) => state.locked_logs.push(info),
                Ok(LockInfo::Storage(info)) => state.locked_storage.push(info),
                Ok(LockInfo::Stateless(_)) => {}
                Err(ClusterError::Superseded(newer)) => {
                    return outcome(state, PhaseStep::Failed(format!("{id} is locked by newer epoch {newer}")));
                }
                Err(err) => {
                    let (error, reason) = error_parts(&err);
                    let mut fields = vec![("id".into(), id.clone()), ("error".into(), error.into())];
                    fields.extend(reason.map(|reason| ("reason".into(), reason.into())));
                    host.log(LogLevel::Info, "service not locked", &fields);
                    state.unreachable.push(id);
                }
            }
        }
        outcome(state, PhaseStep::Next(NEXT.into()))
    }
}

ratchet_guest::export_phase!(LockServices);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};
    use ratchet_guest::types::{LogRecoveryInfo, ServiceKind};

    #[test]
    fn locks_exactly_the_old_layouts_services_and_lists_the_unreachable() {
        let mut host = ScriptedHost::default();
        let info = LogRecoveryInfo { id: "log1".into(), oldest_version: 0, last_version: 9, shards: vec![] };
        host.locks.insert("log1".into(), Ok(LockInfo::Log(info.clone())));
        host.locks.insert("seq".into(), Ok(LockInfo::Stateless(ServiceKind::Sequencer)));
        let out = LockServices::run(state(2, Some(old_layout())), &mut host);
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        assert_eq!(out.state.locked_logs, vec![info]);
        assert_eq!(host.calls.len(), old_layout().services.len());
        assert!(out.state.unreachable.contains(&"log2".to_string()));
        assert!(!out.state.unreachable.contains(&"seq".to_string()));
    }

    #[test]
    fn a_service_not_locked_is_logged_with_the_errors_case_and_reason() {
        let mut host = ScriptedHost::default();
        host.locks.insert("log1".into(), Err(ClusterError::Refused("I3: not in the old layout".into())));
        LockServices::run(state(2, Some(old_layout())), &mut host);
        let fields = |id: &str| host.logged.iter().find(|(_, f)| f[0].1 == id).map(|(_, f)| f.clone());
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(fields("log1"), Some(vec![pair("id", "log1"), pair("error", "refused"), pair("reason", "I3: not in the old layout")]));
        assert_eq!(fields("log2"), Some(vec![pair("id", "log2"), pair("error", "unreachable"), pair("reason", "log2")]));
    }

    #[test]
    fn a_new_cluster_locks_nothing() {
        let mut host = ScriptedHost::default();
        let out = LockServices::run(state(1, None), &mut host);
        assert_eq!((out.step, host.calls.len()), (PhaseStep::Next(NEXT.into()), 0));
    }

    #[test]
    fn a_newer_epoch_is_fatal() {
        let mut host = ScriptedHost::default();
        host.locks.insert("seq".into(), Err(ClusterError::Superseded(7)));
        let out = LockServices::run(state(2, Some(old_layout())), &mut host);
        assert!(matches!(out.step, PhaseStep::Failed(reason) if reason.contains("newer epoch 7")));
    }
}
