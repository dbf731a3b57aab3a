//! Phase 6, **create-vacancies**: the slots of the new generation.
//!
//! Decides: `desired-logs` fresh log vacancies (a new generation never reuses
//! the old logs), and for each old storage team, the replicas that survive
//! (locked ones) plus vacancies to top the team up to the replication factor.
//! Never stalls.

use ratchet_guest::collections::IdSet;
use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep, ServiceKind, StateField, StorageTeam, Vacancy};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "determine-durable-version";

/// The create-vacancies phase.
pub struct CreateVacancies;

impl Phase for CreateVacancies {
    const READS: &'static [StateField] = &[StateField::OldLayout, StateField::OldStorageTeams, StateField::LockedStorage];
    const WRITES: &'static [StateField] = &[StateField::Vacancies, StateField::NewStorageTeams];

    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        let Some(layout) = &state.old_layout else {
            return outcome(state, PhaseStep::Failed("create-vacancies needs an old layout".into()));
        };
        state.vacancies =
            (0..state.config.desired_logs).map(|i| Vacancy { id: format!("log-{i}"), kind: ServiceKind::Log, tag: None }).collect();
        state.new_storage_teams.clear();
        let locked: IdSet<&str> = state.locked_storage.iter().map(|s| s.id.as_str()).collect();
        for team in &layout.storage_teams {
            let live: Vec<String> = team.storage_ids.iter().filter(|id| locked.contains(id.as_str())).cloned().collect();
            for replica in live.len() as u32..state.config.replication_factor {
                state.vacancies.push(Vacancy {
                    id: format!("storage-{}-{replica}", team.tag),
                    kind: ServiceKind::Storage,
                    tag: Some(team.tag),
                });
            }
            state.new_storage_teams.push(StorageTeam { tag: team.tag, key_range: team.key_range.clone(), storage_ids: live });
        }
        outcome(state, PhaseStep::Next(NEXT.into()))
    }
}

ratchet_guest::export_phase!(CreateVacancies);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};
    use ratchet_guest::types::StorageRecoveryInfo;

    #[test]
    fn teams_keep_their_live_replicas_and_are_topped_up() {
        let mut s = state(2, Some(old_layout()));
        let live = ["st0-1", "st0-2", "st1-1", "st1-2", "st1-3"];
        s.locked_storage =
            live.iter().map(|id| StorageRecoveryInfo { id: id.to_string(), durable_version: 5, oldest_durable_version: 0 }).collect();
        let out = CreateVacancies::run(s, &mut ScriptedHost::default());
        assert_eq!(out.state.new_storage_teams[0].storage_ids, ["st0-1", "st0-2"]);
        assert_eq!(out.state.new_storage_teams[1].storage_ids.len(), 3);
        let storage: Vec<_> = out.state.vacancies.iter().filter(|v| v.kind == ServiceKind::Storage).collect();
        assert_eq!(storage.len(), 1);
        assert_eq!(storage[0].tag, Some(0));
        assert_eq!(out.state.vacancies.iter().filter(|v| v.kind == ServiceKind::Log).count(), 3);
    }
}
