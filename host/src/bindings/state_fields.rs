//! The fields of the attempt state that cross into a phase (the ones it
//! reads) and back out (the ones it wrote): see `phase.reads` and
//! `phase-outcome.written` in the WIT.

use wasmtime::component::{ComponentType, Lower};

use super::types::{
    AttemptState, Layout, LogAssignment, LogRecoveryInfo, RecoveryConfig, RecoveryPath, Recruit, ServiceDescriptor, ServiceId, ShardPlan,
    ShardTag, StateField, StorageRecoveryInfo, StorageTeam, Vacancy, Version,
};

/// What a phase that reads `fields` receives: the identity, the
/// configuration and `fields` of `state`; every other field empty. Only the
/// fields sent are copied. A component is sent [`masked_view`] instead, which
/// copies nothing.
pub fn masked(state: &AttemptState, fields: &[StateField]) -> AttemptState {
    masked_view(state, fields).to_state()
}

/// What [`masked`] returns, borrowed rather than copied: the value a
/// component's `run` is called with. Lowering it writes the fields sent
/// straight from the host's state into the guest's memory; a masked copy
/// would first clone every string of them on the host (at a thousand nodes,
/// tens of thousands per phase) only to drop them after the call.
///
/// Its WIT shape is `attempt-state`'s: `Func::typed` checks it against the
/// component's `run` on every call, so a drift between the two is an error,
/// not a corrupt call.
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(record)]
pub struct MaskedState<'a> {
    epoch: u64,
    attempt: u32,
    config: &'a RecoveryConfig,
    #[component(name = "old-layout")]
    old_layout: Option<MaskedLayout<'a>>,
    #[component(name = "locked-logs")]
    locked_logs: &'a [LogRecoveryInfo],
    #[component(name = "locked-storage")]
    locked_storage: &'a [StorageRecoveryInfo],
    unreachable: &'a [ServiceId],
    path: Option<RecoveryPath>,
    #[component(name = "log-plan")]
    log_plan: &'a [ShardPlan],
    #[component(name = "recovery-version")]
    recovery_version: Option<Version>,
    #[component(name = "durable-version")]
    durable_version: Option<Version>,
    #[component(name = "degraded-teams")]
    degraded_teams: &'a [ShardTag],
    vacancies: &'a [Vacancy],
    recruits: &'a [Recruit],
    #[component(name = "new-logs")]
    new_logs: &'a [LogAssignment],
    #[component(name = "new-storage-teams")]
    new_storage_teams: &'a [StorageTeam],
    sequencer: Option<&'a ServiceDescriptor>,
    #[component(name = "commit-proxies")]
    commit_proxies: &'a [ServiceDescriptor],
    resolvers: &'a [ServiceDescriptor],
    #[component(name = "new-layout")]
    new_layout: Option<&'a Layout>,
}

/// The old layout as [`MaskedState`] sends it: `services` only if read.
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(record)]
pub struct MaskedLayout<'a> {
    epoch: u64,
    sequencer: Option<&'a ServiceId>,
    #[component(name = "commit-proxies")]
    commit_proxies: &'a [ServiceId],
    resolvers: &'a [ServiceId],
    logs: &'a [LogAssignment],
    #[component(name = "storage-teams")]
    storage_teams: &'a [StorageTeam],
    services: &'a [ServiceDescriptor],
    #[component(name = "recovery-version")]
    recovery_version: Version,
}

impl MaskedState<'_> {
    /// The state this view shows, copied.
    pub fn to_state(&self) -> AttemptState {
        AttemptState {
            epoch: self.epoch,
            attempt: self.attempt,
            config: *self.config,
            old_layout: self.old_layout.map(|layout| layout.to_layout()),
            locked_logs: self.locked_logs.to_vec(),
            locked_storage: self.locked_storage.to_vec(),
            unreachable: self.unreachable.to_vec(),
            path: self.path,
            log_plan: self.log_plan.to_vec(),
            recovery_version: self.recovery_version,
            durable_version: self.durable_version,
            degraded_teams: self.degraded_teams.to_vec(),
            vacancies: self.vacancies.to_vec(),
            recruits: self.recruits.to_vec(),
            new_logs: self.new_logs.to_vec(),
            new_storage_teams: self.new_storage_teams.to_vec(),
            sequencer: self.sequencer.cloned(),
            commit_proxies: self.commit_proxies.to_vec(),
            resolvers: self.resolvers.to_vec(),
            new_layout: self.new_layout.cloned(),
        }
    }
}

impl MaskedLayout<'_> {
    /// The layout this view shows, copied.
    pub fn to_layout(&self) -> Layout {
        Layout {
            epoch: self.epoch,
            sequencer: self.sequencer.cloned(),
            commit_proxies: self.commit_proxies.to_vec(),
            resolvers: self.resolvers.to_vec(),
            logs: self.logs.to_vec(),
            storage_teams: self.storage_teams.to_vec(),
            services: self.services.to_vec(),
            recovery_version: self.recovery_version,
        }
    }
}

/// [`masked`] without the copy: `fields` of `state`, borrowed.
pub fn masked_view<'a>(state: &'a AttemptState, fields: &[StateField]) -> MaskedState<'a> {
    let has = |field| fields.contains(&field);
    fn list<T>(sent: bool, values: &[T]) -> &[T] {
        if sent { values } else { &[] }
    }
    use StateField as F;
    MaskedState {
        epoch: state.epoch,
        attempt: state.attempt,
        config: &state.config,
        old_layout: match &state.old_layout {
            Some(layout) if has(F::OldLayout) => Some(layout_view(layout, has(F::OldServices), has(F::OldStorageTeams))),
            _ => None,
        },
        locked_logs: list(has(F::LockedLogs), &state.locked_logs),
        locked_storage: list(has(F::LockedStorage), &state.locked_storage),
        unreachable: list(has(F::Unreachable), &state.unreachable),
        path: state.path.filter(|_| has(F::Path)),
        log_plan: list(has(F::LogPlan), &state.log_plan),
        recovery_version: state.recovery_version.filter(|_| has(F::RecoveryVersion)),
        durable_version: state.durable_version.filter(|_| has(F::DurableVersion)),
        degraded_teams: list(has(F::DegradedTeams), &state.degraded_teams),
        vacancies: list(has(F::Vacancies), &state.vacancies),
        recruits: list(has(F::Recruits), &state.recruits),
        new_logs: list(has(F::NewLogs), &state.new_logs),
        new_storage_teams: list(has(F::NewStorageTeams), &state.new_storage_teams),
        sequencer: state.sequencer.as_ref().filter(|_| has(F::Sequencer)),
        commit_proxies: list(has(F::CommitProxies), &state.commit_proxies),
        resolvers: list(has(F::Resolvers), &state.resolvers),
        new_layout: state.new_layout.as_ref().filter(|_| has(F::NewLayout)),
    }
}

/// A copy of `layout` as a phase receives it: with its services only if
/// `services`, and its storage teams only if `teams`.
pub fn old_layout_sent(layout: &Layout, services: bool, teams: bool) -> Layout {
    layout_view(layout, services, teams).to_layout()
}

fn layout_view(layout: &Layout, services: bool, teams: bool) -> MaskedLayout<'_> {
    MaskedLayout {
        epoch: layout.epoch,
        sequencer: layout.sequencer.as_ref(),
        commit_proxies: &layout.commit_proxies,
        resolvers: &layout.resolvers,
        logs: &layout.logs,
        storage_teams: if teams { &layout.storage_teams } else { &[] },
        services: if services { &layout.services } else { &[] },
        recovery_version: layout.recovery_version,
    }
}

/// Moves the `written` fields of `returned` into `current`, leaving every
/// other field of `current` as it was. The host-owned fields are not among
/// them: the old layout, its services and its storage teams, and the new
/// layout (set when a phase stages it). The director checks them and never
/// takes them (see `take_returned`).
pub fn take_written(current: &mut AttemptState, returned: &mut AttemptState, written: &[StateField]) {
    use StateField as F;
    use std::mem::take;
    for field in written {
        match field {
            F::OldLayout | F::OldServices | F::OldStorageTeams | F::NewLayout => {}
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{KeyRange, RecoveryConfig, ServiceKind};
    use StateField as F;

    const ALL: [StateField; 19] = [
        F::OldLayout,
        F::OldServices,
        F::OldStorageTeams,
        F::LockedLogs,
        F::LockedStorage,
        F::Unreachable,
        F::Path,
        F::LogPlan,
        F::RecoveryVersion,
        F::DurableVersion,
        F::DegradedTeams,
        F::Vacancies,
        F::Recruits,
        F::NewLogs,
        F::NewStorageTeams,
        F::Sequencer,
        F::CommitProxies,
        F::Resolvers,
        F::NewLayout,
    ];

    fn service(id: &str, kind: ServiceKind) -> ServiceDescriptor {
        ServiceDescriptor { id: id.into(), kind, node: "n1".into(), address: format!("sim://{id}") }
    }

    fn layout(epoch: u64) -> Layout {
        Layout {
            epoch,
            sequencer: Some("seq".into()),
            commit_proxies: vec!["proxy".into()],
            resolvers: vec!["resolver".into()],
            logs: vec![LogAssignment { id: "log".into(), tags: vec![0] }],
            storage_teams: vec![StorageTeam {
                tag: 0,
                key_range: KeyRange { start: String::new(), end: String::new() },
                storage_ids: vec!["st".into()],
                departing: Vec::new(),
            }],
            services: vec![service("log", ServiceKind::Log), service("st", ServiceKind::Storage)],
            recovery_version: 40,
        }
    }

    /// A state in which every field holds something.
    fn full() -> AttemptState {
        let mut state = AttemptState::new(7, 2, RecoveryConfig::default(), Some(layout(6)));
        state.locked_logs = vec![LogRecoveryInfo {
            id: "log".into(),
            oldest_version: 1,
            last_version: 40,
            shards: vec![crate::bindings::types::ShardRetention { tag: 0, oldest_version: 30 }],
        }];
        state.locked_storage = vec![StorageRecoveryInfo { id: "st".into(), durable_version: 30, oldest_durable_version: 1 }];
        state.unreachable = vec!["gone".into()];
        state.path = Some(RecoveryPath::Recover);
        state.log_plan = vec![ShardPlan { tag: 0, sources: vec!["log".into()], first_version: 1, last_version: 40, departing: vec![] }];
        state.recovery_version = Some(40);
        state.durable_version = Some(30);
        state.degraded_teams = vec![0];
        state.vacancies = vec![Vacancy { id: "log-0".into(), kind: ServiceKind::Log, tag: None }];
        state.recruits = vec![Recruit { vacancy_id: "log-0".into(), service: service("log2", ServiceKind::Log) }];
        state.new_logs = vec![LogAssignment { id: "log2".into(), tags: vec![0] }];
        state.new_storage_teams = layout(7).storage_teams;
        state.sequencer = Some(service("seq2", ServiceKind::Sequencer));
        state.commit_proxies = vec![service("proxy2", ServiceKind::CommitProxy)];
        state.resolvers = vec![service("resolver2", ServiceKind::Resolver)];
        state.new_layout = Some(layout(7));
        state
    }

    #[test]
    fn every_field_read_is_sent_whole() {
        assert_eq!(masked(&full(), &ALL), full());
    }

    #[test]
    fn nothing_read_sends_only_who_the_attempt_is() {
        let state = full();
        assert_eq!(masked(&state, &[]), AttemptState::new(7, 2, state.config, None));
    }

    #[test]
    fn each_field_is_sent_only_when_read() {
        let state = full();
        let nothing = masked(&state, &[]);
        for field in ALL.into_iter().filter(|f| ![F::OldServices, F::OldStorageTeams].contains(f)) {
            let mut sent = masked(&state, &[field]);
            assert_ne!(sent, nothing, "{field:?} was read but not sent");
            // Taking the field back out leaves nothing else behind.
            take_written(&mut sent, &mut nothing.clone(), &[field]);
            // The host's own fields are never taken back: cleared here.
            match field {
                F::OldLayout => sent.old_layout = None,
                F::NewLayout => sent.new_layout = None,
                _ => {}
            }
            assert_eq!(sent, nothing, "reading {field:?} sent more than it");
        }
    }

    #[test]
    fn the_old_layout_goes_without_its_services_and_teams_unless_they_are_read() {
        let state = full();
        let sent = masked(&state, &[F::OldLayout]).old_layout.expect("the old layout is sent");
        assert!(sent.services.is_empty() && sent.storage_teams.is_empty());
        assert_eq!(sent, Layout { services: Vec::new(), storage_teams: Vec::new(), ..layout(6) });
        let sent = masked(&state, &[F::OldLayout, F::OldServices]).old_layout;
        assert_eq!(sent, Some(Layout { storage_teams: Vec::new(), ..layout(6) }));
        let sent = masked(&state, &[F::OldLayout, F::OldStorageTeams]).old_layout;
        assert_eq!(sent, Some(Layout { services: Vec::new(), ..layout(6) }));
        let sent = masked(&state, &[F::OldLayout, F::OldServices, F::OldStorageTeams]).old_layout;
        assert_eq!(sent, Some(layout(6)));
        // Either part alone means nothing without its layout.
        assert_eq!(masked(&state, &[F::OldServices, F::OldStorageTeams]).old_layout, None);
    }
}
