//! Phase 1, **validate-layout**: is the old layout sane enough to recover from?
//!
//! Decides: whether the layout persisted by the previous generation is
//! internally consistent. No layout means a new cluster, which is fine.
//! Needs: only the attempt state. Never stalls: a corrupt layout is fatal,
//! because recovering from it could lose acknowledged writes; the operator
//! must repair it.

use std::collections::BTreeSet;

use ratchet_guest::collections::IdMap;
use ratchet_guest::types::{AttemptState, Layout, PhaseOutcome, PhaseStep, ServiceKind, StateField};
use ratchet_guest::{Host, LogLevel, Phase, kind_name, outcome};

/// The phase run after this one.
pub const NEXT: &str = "lock-services";

/// The validate-layout phase.
pub struct ValidateLayout;

impl Phase for ValidateLayout {
    const READS: &'static [StateField] = &[StateField::OldLayout, StateField::OldStorageTeams, StateField::OldServices];
    const WRITES: &'static [StateField] = &[];

    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let step = match &state.old_layout {
            None => {
                host.log(LogLevel::Info, "no old layout: new cluster", &[]);
                PhaseStep::Next(NEXT.into())
            }
            Some(layout) => match validate(layout, state.epoch) {
                Ok(()) => PhaseStep::Next(NEXT.into()),
                Err(reason) => PhaseStep::Failed(format!("old layout is invalid: {reason}")),
            },
        };
        outcome(state, step)
    }
}

ratchet_guest::export_phase!(ValidateLayout);
ratchet_guest::use_call_arena!();

/// Checks a persisted layout against the attempt's epoch.
pub fn validate(layout: &Layout, attempt_epoch: u64) -> Result<(), String> {
    if layout.epoch >= attempt_epoch {
        return Err(format!("layout epoch {} is not below the attempt epoch {attempt_epoch}", layout.epoch));
    }
    let mut kinds = IdMap::default();
    kinds.reserve(layout.services.len());
    for service in &layout.services {
        if kinds.insert(service.id.as_str(), service.kind).is_some() {
            return Err(format!("service {} is described twice", service.id));
        }
    }
    let expect = |id: &str, kind: ServiceKind| match kinds.get(id) {
        None => Err(format!("{id} has no service descriptor")),
        Some(found) if *found != kind => Err(format!("{id} is described as a {} but used as a {}", kind_name(*found), kind_name(kind))),
        Some(_) => Ok(()),
    };
    if let Some(sequencer) = &layout.sequencer {
        expect(sequencer, ServiceKind::Sequencer)?;
    }
    for id in &layout.commit_proxies {
        expect(id, ServiceKind::CommitProxy)?;
    }
    for id in &layout.resolvers {
        expect(id, ServiceKind::Resolver)?;
    }
    let mut tags = BTreeSet::new();
    for team in &layout.storage_teams {
        if !tags.insert(team.tag) {
            return Err(format!("shard tag {} has two storage teams", team.tag));
        }
        if team.storage_ids.is_empty() {
            return Err(format!("storage team {} has no members", team.tag));
        }
        if !team.key_range.end.is_empty() && team.key_range.start >= team.key_range.end {
            return Err(format!("storage team {} has an empty key range", team.tag));
        }
        for id in &team.storage_ids {
            expect(id, ServiceKind::Storage)?;
        }
    }
    let mut carried = BTreeSet::new();
    for log in &layout.logs {
        expect(&log.id, ServiceKind::Log)?;
        for tag in &log.tags {
            if !tags.contains(tag) {
                return Err(format!("log {} carries unknown shard tag {tag}", log.id));
            }
            carried.insert(*tag);
        }
    }
    if !layout.logs.is_empty()
        && let Some(tag) = tags.difference(&carried).next()
    {
        return Err(format!("shard tag {tag} is carried by no log"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::types::{KeyRange, LogAssignment, ServiceDescriptor, StorageTeam};

    fn service(id: &str, kind: ServiceKind) -> ServiceDescriptor {
        ServiceDescriptor { id: id.into(), kind, node: "n1".into(), address: String::new() }
    }

    fn layout() -> Layout {
        Layout {
            epoch: 3,
            sequencer: Some("seq".into()),
            commit_proxies: vec!["proxy".into()],
            resolvers: vec!["res".into()],
            logs: vec![LogAssignment { id: "log".into(), tags: vec![0] }],
            storage_teams: vec![StorageTeam {
                tag: 0,
                key_range: KeyRange { start: String::new(), end: String::new() },
                storage_ids: vec!["st".into()],
                departing: Vec::new(),
            }],
            services: vec![
                service("seq", ServiceKind::Sequencer),
                service("proxy", ServiceKind::CommitProxy),
                service("res", ServiceKind::Resolver),
                service("log", ServiceKind::Log),
                service("st", ServiceKind::Storage),
            ],
            recovery_version: 10,
        }
    }

    #[test]
    fn a_consistent_layout_passes() {
        assert_eq!(validate(&layout(), 4), Ok(()));
    }

    #[test]
    fn a_layout_from_the_same_or_a_later_epoch_is_refused() {
        assert!(validate(&layout(), 3).unwrap_err().contains("not below"));
    }

    #[test]
    fn an_undescribed_service_is_refused() {
        let mut l = layout();
        l.services.retain(|s| s.id != "st");
        assert_eq!(validate(&l, 4).unwrap_err(), "st has no service descriptor");
    }

    #[test]
    fn a_service_used_as_the_wrong_kind_is_refused() {
        let mut l = layout();
        l.logs[0].id = "st".into();
        assert!(validate(&l, 4).unwrap_err().contains("st is described as a storage but used as a log"));
    }

    #[test]
    fn a_shard_without_a_log_is_refused() {
        let mut l = layout();
        l.logs[0].tags.clear();
        assert_eq!(validate(&l, 4).unwrap_err(), "shard tag 0 is carried by no log");
    }

    #[test]
    fn an_unknown_tag_on_a_log_is_refused() {
        let mut l = layout();
        l.logs[0].tags.push(9);
        assert!(validate(&l, 4).unwrap_err().contains("unknown shard tag 9"));
    }

    #[test]
    fn duplicate_teams_and_empty_teams_are_refused() {
        let mut l = layout();
        l.storage_teams.push(l.storage_teams[0].clone());
        assert!(validate(&l, 4).unwrap_err().contains("two storage teams"));
        let mut l = layout();
        l.storage_teams[0].storage_ids.clear();
        assert!(validate(&l, 4).unwrap_err().contains("no members"));
    }
}
