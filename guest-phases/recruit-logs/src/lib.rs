//! Phase 8, **recruit-logs**: the new generation's logs.
//!
//! Decides: where the log vacancies go (the placement policy picks the nodes,
//! spread over as many zones as there are logs) and which shards each new log
//! carries: shard `t` goes to `log-replication` logs starting at `t mod n`.
//! The foremen create the workers and the host locks each at this attempt's
//! epoch as it is created. Stalls when placement or a foreman fails.

use ratchet_guest::recruit::{healthy_zones, place, spread_group};
use ratchet_guest::types::{AttemptState, LogAssignment, PhaseOutcome, PhaseStep, Recruit, ServiceKind, ShardTag, StateField};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "recruit-storage";

/// The recruit-logs phase.
pub struct RecruitLogs;

/// The shards each of `logs` new logs carries: each shard on `replication`
/// consecutive logs, so every log set spans distinct logs.
pub fn assign_tags(tags: &[ShardTag], logs: usize, replication: u32) -> Vec<Vec<ShardTag>> {
    let mut assigned = vec![Vec::new(); logs];
    if logs == 0 {
        return assigned;
    }
    let copies = (replication.max(1) as usize).min(logs);
    for (i, tag) in tags.iter().enumerate() {
        for j in 0..copies {
            assigned[(i + j) % logs].push(*tag);
        }
    }
    assigned
}

impl Phase for RecruitLogs {
    const READS: &'static [StateField] = &[StateField::Vacancies, StateField::NewStorageTeams, StateField::NewLogs, StateField::Recruits];
    const WRITES: &'static [StateField] = &[StateField::Vacancies, StateField::NewLogs, StateField::Recruits];

    fn run(mut state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let vacancies: Vec<_> = state.vacancies.iter().filter(|v| v.kind == ServiceKind::Log).cloned().collect();
        if vacancies.is_empty() {
            return outcome(state, PhaseStep::Next(NEXT.into()));
        }
        let nodes = host.nodes();
        let zones = healthy_zones(&nodes);
        let group = spread_group(ServiceKind::Log, vacancies.len() as u32, None, zones);
        let nodes = match place(host, nodes, vec![group], Vec::new()) {
            Ok(mut groups) => groups.remove(0),
            Err(reason) => return outcome(state, PhaseStep::Stalled(reason)),
        };
        let tags: Vec<ShardTag> = state.new_storage_teams.iter().map(|t| t.tag).collect();
        let assignment = assign_tags(&tags, nodes.len(), state.config.log_replication);
        for ((vacancy, node), tags) in vacancies.iter().zip(&nodes).zip(assignment) {
            match host.create_worker(node, ServiceKind::Log) {
                Ok(service) => {
                    state.new_logs.push(LogAssignment { id: service.id.clone(), tags });
                    state.recruits.push(Recruit { vacancy_id: vacancy.id.clone(), service });
                }
                Err(err) => {
                    return outcome(state, PhaseStep::Stalled(format!("creating a log on {node}: {err:?}")));
                }
            }
        }
        state.vacancies.retain(|v| v.kind != ServiceKind::Log);
        outcome(state, PhaseStep::Next(NEXT.into()))
    }
}

ratchet_guest::export_phase!(RecruitLogs);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, state};
    use ratchet_guest::types::{KeyRange, StorageTeam, Vacancy};

    #[test]
    fn each_shard_lands_on_replication_distinct_logs() {
        assert_eq!(assign_tags(&[0, 1], 3, 2), vec![vec![0], vec![0, 1], vec![1]]);
        assert_eq!(assign_tags(&[0], 2, 5), vec![vec![0], vec![0]]);
    }

    #[test]
    fn creates_one_log_per_vacancy_on_the_placed_nodes() {
        let mut host = ScriptedHost::with_nodes(4, 2);
        let mut s = state(1, None);
        s.vacancies = (0..3).map(|i| Vacancy { id: format!("log-{i}"), kind: ServiceKind::Log, tag: None }).collect();
        s.new_storage_teams =
            vec![StorageTeam { tag: 0, key_range: KeyRange { start: "".into(), end: "".into() }, storage_ids: vec![] }];
        let out = RecruitLogs::run(s, &mut host);
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        assert_eq!(host.calls, ["create n1 log", "create n2 log", "create n3 log"]);
        assert_eq!(out.state.new_logs.len(), 3);
        assert!(out.state.new_logs.iter().all(|l| l.tags == [0]));
        assert!(out.state.vacancies.is_empty());
    }

    #[test]
    fn a_failed_placement_stalls() {
        let mut host = ScriptedHost::with_nodes(1, 1);
        let mut s = state(1, None);
        s.vacancies = (0..3).map(|i| Vacancy { id: format!("log-{i}"), kind: ServiceKind::Log, tag: None }).collect();
        let out = RecruitLogs::run(s, &mut host);
        assert!(matches!(out.step, PhaseStep::Stalled(reason) if reason.contains("placement failed")));
    }
}
