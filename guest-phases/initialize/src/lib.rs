//! Phase 4, **initialize**: the shape of a new cluster.
//!
//! Decides: the vacancies of a brand-new cluster: `desired-logs` logs,
//! `shards` storage teams of `replication-factor` replicas each with their key
//! ranges, and nothing to recover (recovery and durable versions are 0).
//! The resolvers, proxies and sequencer are started by their own phases.
//! Never stalls. The host refuses to run it when the old layout names logs.

use ratchet_guest::types::{AttemptState, KeyRange, PhaseOutcome, PhaseStep, ServiceKind, StateField, StorageTeam, Vacancy};
use ratchet_guest::{Host, Phase, numbered_id, outcome};

/// The phase run after this one.
pub const NEXT: &str = "recruit-logs";

/// The initialize phase.
pub struct Initialize;

/// Splits the key space into `shards` ranges (at most 65,536) on the first
/// four characters of the key, read as hex: keys are expected to start with a
/// hash.
pub fn key_ranges(shards: u32) -> Vec<KeyRange> {
    let shards = shards.clamp(1, 1 << 16) as usize;
    let bound = |i: usize| format!("{:04x}", i * (1 << 16) / shards);
    (0..shards)
        .map(|i| KeyRange {
            start: if i == 0 { String::new() } else { bound(i) },
            end: if i + 1 == shards { String::new() } else { bound(i + 1) },
        })
        .collect()
}

impl Phase for Initialize {
    const READS: &'static [StateField] = &[];
    const WRITES: &'static [StateField] =
        &[StateField::Vacancies, StateField::NewStorageTeams, StateField::RecoveryVersion, StateField::DurableVersion];

    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        let config = state.config;
        state.vacancies = (0..config.desired_logs)
            .map(|i| Vacancy { id: numbered_id("log", &[u64::from(i)]), kind: ServiceKind::Log, tag: None })
            .collect();
        state.new_storage_teams = key_ranges(config.shards)
            .into_iter()
            .enumerate()
            .map(|(tag, key_range)| StorageTeam { tag: tag as u32, key_range, storage_ids: Vec::new(), departing: Vec::new() })
            .collect();
        for team in &state.new_storage_teams {
            for replica in 0..config.replication_factor {
                state.vacancies.push(Vacancy {
                    id: numbered_id("storage", &[u64::from(team.tag), replica as u64]),
                    kind: ServiceKind::Storage,
                    tag: Some(team.tag),
                });
            }
        }
        state.recovery_version = Some(0);
        state.durable_version = Some(0);
        outcome(state, PhaseStep::Next(NEXT.into()))
    }
}

ratchet_guest::export_phase!(Initialize);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, state};

    #[test]
    fn ranges_cover_the_key_space_without_overlap() {
        let ranges = key_ranges(4);
        assert_eq!(ranges.len(), 4);
        assert_eq!((ranges[0].start.as_str(), ranges[0].end.as_str()), ("", "4000"));
        assert_eq!((ranges[3].start.as_str(), ranges[3].end.as_str()), ("c000", ""));
        assert_eq!(key_ranges(3000).len(), 3000);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert_eq!(key_ranges(1)[0], KeyRange { start: String::new(), end: String::new() });
    }

    #[test]
    fn a_new_cluster_gets_logs_and_full_teams() {
        let out = Initialize::run(state(1, None), &mut ScriptedHost::default());
        let logs = out.state.vacancies.iter().filter(|v| v.kind == ServiceKind::Log).count();
        let storage = out.state.vacancies.iter().filter(|v| v.kind == ServiceKind::Storage).count();
        assert_eq!((logs, storage), (3, 2 * 3));
        assert_eq!(out.state.new_storage_teams.len(), 2);
        assert_eq!(out.state.recovery_version, Some(0));
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
    }
}
