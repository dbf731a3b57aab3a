//! The fields of the attempt state that cross into a phase (the ones it
//! reads) and back out (the ones it wrote): see `phase.reads` and
//! `phase-outcome.written` in the WIT.

use super::types::{AttemptState, Layout, StateField};

/// What a phase that reads `fields` receives: the identity, the
/// configuration and `fields` of `state`; every other field empty. Only the
/// fields sent are copied.
pub fn masked(state: &AttemptState, fields: &[StateField]) -> AttemptState {
    let has = |field| fields.contains(&field);
    fn copy<T: Clone + Default>(sent: bool, value: &T) -> T {
        if sent { value.clone() } else { T::default() }
    }
    use StateField as F;
    AttemptState {
        epoch: state.epoch,
        attempt: state.attempt,
        config: state.config.clone(),
        old_layout: match &state.old_layout {
            Some(layout) if has(F::OldLayout) => Some(without_services(layout, has(F::OldServices))),
            _ => None,
        },
        locked_logs: copy(has(F::LockedLogs), &state.locked_logs),
        locked_storage: copy(has(F::LockedStorage), &state.locked_storage),
        unreachable: copy(has(F::Unreachable), &state.unreachable),
        path: copy(has(F::Path), &state.path),
        log_plan: copy(has(F::LogPlan), &state.log_plan),
        recovery_version: copy(has(F::RecoveryVersion), &state.recovery_version),
        durable_version: copy(has(F::DurableVersion), &state.durable_version),
        degraded_teams: copy(has(F::DegradedTeams), &state.degraded_teams),
        vacancies: copy(has(F::Vacancies), &state.vacancies),
        recruits: copy(has(F::Recruits), &state.recruits),
        new_logs: copy(has(F::NewLogs), &state.new_logs),
        new_storage_teams: copy(has(F::NewStorageTeams), &state.new_storage_teams),
        sequencer: copy(has(F::Sequencer), &state.sequencer),
        commit_proxies: copy(has(F::CommitProxies), &state.commit_proxies),
        resolvers: copy(has(F::Resolvers), &state.resolvers),
        new_layout: copy(has(F::NewLayout), &state.new_layout),
    }
}

/// A copy of `layout`, with its services only if `services`.
pub fn without_services(layout: &Layout, services: bool) -> Layout {
    Layout {
        epoch: layout.epoch,
        sequencer: layout.sequencer.clone(),
        commit_proxies: layout.commit_proxies.clone(),
        resolvers: layout.resolvers.clone(),
        logs: layout.logs.clone(),
        storage_teams: layout.storage_teams.clone(),
        services: if services { layout.services.clone() } else { Vec::new() },
        recovery_version: layout.recovery_version,
    }
}

/// Moves the `written` fields of `returned` into `current`, leaving every
/// other field of `current` as it was. The old layout and its services are
/// not among them: the director checks them and never takes them (see
/// `take_returned`).
pub fn take_written(current: &mut AttemptState, returned: &mut AttemptState, written: &[StateField]) {
    use std::mem::take;
    use StateField as F;
    for field in written {
        match field {
            F::OldLayout | F::OldServices => {}
            F::LockedLogs => current.locked_logs = take(&mut returned.locked_logs),
            F::LockedStorage => current.locked_storage = take(&mut returned.locked_storage),
            F::Unreachable => current.unreachable = take(&mut returned.unreachable),
            F::Path => current.path = returned.path.take(),
            F::LogPlan => current.log_plan = take(&mut returned.log_plan),
            F::RecoveryVersion => current.recovery_version = returned.recovery_version.take(),
            F::DurableVersion => current.durable_version = returned.durable_version.take(),
            F::DegradedTeams => current.degraded_teams = take(&mut returned.degraded_teams),
            F::Vacancies => current.vacancies = take(&mut returned.vacancies),
            F::Recruits => current.recruits = take(&mut returned.recruits),
            F::NewLogs => current.new_logs = take(&mut returned.new_logs),
            F::NewStorageTeams => current.new_storage_teams = take(&mut returned.new_storage_teams),
            F::Sequencer => current.sequencer = returned.sequencer.take(),
            F::CommitProxies => current.commit_proxies = take(&mut returned.commit_proxies),
            F::Resolvers => current.resolvers = take(&mut returned.resolvers),
            F::NewLayout => current.new_layout = returned.new_layout.take(),
        }
    }
}
