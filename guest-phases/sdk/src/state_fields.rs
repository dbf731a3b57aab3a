//! The fields of the attempt state, as a phase declares what it reads and
//! writes (see [`Phase::READS`](crate::Phase::READS)).

use crate::types::{AttemptState, StateField};

/// Every field, in the order of the WIT record.
pub const ALL: &[StateField] = &[
    StateField::OldLayout,
    StateField::OldServices,
    StateField::OldStorageTeams,
    StateField::LockedLogs,
    StateField::LockedStorage,
    StateField::Unreachable,
    StateField::Path,
    StateField::LogPlan,
    StateField::RecoveryVersion,
    StateField::DurableVersion,
    StateField::DegradedTeams,
    StateField::Vacancies,
    StateField::Recruits,
    StateField::NewLogs,
    StateField::NewStorageTeams,
    StateField::Sequencer,
    StateField::CommitProxies,
    StateField::Resolvers,
    StateField::NewLayout,
];

/// Empties every field of `state` not in `fields`: `none`, or an empty list.
/// The epoch, the attempt number and the configuration are kept.
pub fn keep(state: &mut AttemptState, fields: &[StateField]) {
    for field in ALL {
        if !fields.contains(field) {
            clear(state, *field);
        }
    }
}

/// Empties one field of `state`.
pub fn clear(state: &mut AttemptState, field: StateField) {
    empty::<false>(state, field);
}

/// [`keep`] for a phase's outcome as it leaves the guest: in a wasm build
/// what the emptied fields held is left unfreed. The host throws a plugin's
/// instance away after each call, so freeing it would only walk it,
/// touching memory and code a fresh instance has cold
/// (docs/perf/cluster-recovery.md).
pub(crate) fn keep_in_outcome(state: &mut AttemptState, fields: &[StateField]) {
    for field in ALL {
        if !fields.contains(field) {
            empty::<true>(state, *field);
        }
    }
}

/// Empties one field of `state`; its old value is left unfreed if `LEAVE`
/// (see [`keep_in_outcome`]).
fn empty<const LEAVE: bool>(state: &mut AttemptState, field: StateField) {
    use StateField as F;
    match field {
        F::OldLayout => discard::<LEAVE, _>(&mut state.old_layout),
        F::OldServices => {
            if let Some(layout) = &mut state.old_layout {
                discard::<LEAVE, _>(&mut layout.services);
            }
        }
        F::OldStorageTeams => {
            if let Some(layout) = &mut state.old_layout {
                discard::<LEAVE, _>(&mut layout.storage_teams);
            }
        }
        F::LockedLogs => discard::<LEAVE, _>(&mut state.locked_logs),
        F::LockedStorage => discard::<LEAVE, _>(&mut state.locked_storage),
        F::Unreachable => discard::<LEAVE, _>(&mut state.unreachable),
        F::Path => discard::<LEAVE, _>(&mut state.path),
        F::LogPlan => discard::<LEAVE, _>(&mut state.log_plan),
        F::RecoveryVersion => discard::<LEAVE, _>(&mut state.recovery_version),
        F::DurableVersion => discard::<LEAVE, _>(&mut state.durable_version),
        F::DegradedTeams => discard::<LEAVE, _>(&mut state.degraded_teams),
        F::Vacancies => discard::<LEAVE, _>(&mut state.vacancies),
        F::Recruits => discard::<LEAVE, _>(&mut state.recruits),
        F::NewLogs => discard::<LEAVE, _>(&mut state.new_logs),
        F::NewStorageTeams => discard::<LEAVE, _>(&mut state.new_storage_teams),
        F::Sequencer => discard::<LEAVE, _>(&mut state.sequencer),
        F::CommitProxies => discard::<LEAVE, _>(&mut state.commit_proxies),
        F::Resolvers => discard::<LEAVE, _>(&mut state.resolvers),
        F::NewLayout => discard::<LEAVE, _>(&mut state.new_layout),
    }
}

/// Empties `slot`, leaving its old value unfreed in a wasm build if
/// `LEAVE`; natively (tests, the simulator's native phases) it is dropped.
fn discard<const LEAVE: bool, T: Default>(slot: &mut T) {
    let old = std::mem::take(slot);
    if LEAVE && cfg!(target_arch = "wasm32") {
        std::mem::forget(old);
    }
}

/// A copy of `state` holding only `fields` (and the identity and
/// configuration): what a phase that reads `fields` receives.
pub fn masked(state: &AttemptState, fields: &[StateField]) -> AttemptState {
    let mut copy = state.clone();
    keep(&mut copy, fields);
    copy
}

/// Takes the `written` fields of `returned` into `current`, as the host does
/// with a phase's outcome: the old and the new layout are the host's, and
/// never taken (the new layout is what the phase staged).
pub fn merge(current: &mut AttemptState, mut returned: AttemptState, written: &[StateField]) {
    use StateField as F;
    for field in written {
        match field {
            F::OldLayout | F::OldServices | F::OldStorageTeams | F::NewLayout => {}
            F::LockedLogs => current.locked_logs = std::mem::take(&mut returned.locked_logs),
            F::LockedStorage => current.locked_storage = std::mem::take(&mut returned.locked_storage),
            F::Unreachable => current.unreachable = std::mem::take(&mut returned.unreachable),
            F::Path => current.path = returned.path.take(),
            F::LogPlan => current.log_plan = std::mem::take(&mut returned.log_plan),
            F::RecoveryVersion => current.recovery_version = returned.recovery_version.take(),
            F::DurableVersion => current.durable_version = returned.durable_version.take(),
            F::DegradedTeams => current.degraded_teams = std::mem::take(&mut returned.degraded_teams),
            F::Vacancies => current.vacancies = std::mem::take(&mut returned.vacancies),
            F::Recruits => current.recruits = std::mem::take(&mut returned.recruits),
            F::NewLogs => current.new_logs = std::mem::take(&mut returned.new_logs),
            F::NewStorageTeams => current.new_storage_teams = std::mem::take(&mut returned.new_storage_teams),
            F::Sequencer => current.sequencer = returned.sequencer.take(),
            F::CommitProxies => current.commit_proxies = std::mem::take(&mut returned.commit_proxies),
            F::Resolvers => current.resolvers = std::mem::take(&mut returned.resolvers),
        }
    }
}
