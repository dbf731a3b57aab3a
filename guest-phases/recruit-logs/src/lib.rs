//! Phase 8, **recruit-logs**: the new generation's logs.
//!
//! Decides: where the log vacancies go (the placement policy picks the nodes,
//! spread over as many zones as there are logs) and which shards each new log
//! carries: shard `t` goes to `log-replication` logs from `t mod n` on, the
//! logs in zones it has no log in yet first, so a shard's logs stand in as
//! many zones as they can (the host refuses a layout in which a zone's loss
//! would take every log of a shard).
//! The foremen create the workers and the host locks each at this attempt's
//! epoch as it is created. Stalls when placement or a foreman fails.

use ratchet_guest::recruit::{healthy_zones, place, spread_group};
use ratchet_guest::types::{AttemptState, LogAssignment, PhaseOutcome, PhaseStep, Recruit, ServiceKind, ShardTag, StateField};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "recruit-storage";

/// The recruit-logs phase.
pub struct RecruitLogs;

/// The shards each new log carries, the logs given by their zones: each
/// shard on `replication` logs, from log `t mod n` on, the logs of zones it
/// has no log in yet first, so a shard's logs span as many zones as they
/// can.
pub fn assign_tags(tags: &[ShardTag], zones: &[&str], replication: u32) -> Vec<Vec<ShardTag>> {
    let logs = zones.len();
    let mut assigned = vec![Vec::new(); logs];
    if logs == 0 {
        return assigned;
    }
    let copies = (replication.max(1) as usize).min(logs);
    for (i, tag) in tags.iter().enumerate() {
        let order: Vec<usize> = (0..logs).map(|j| (i + j) % logs).collect();
        let mut chosen: Vec<usize> = Vec::with_capacity(copies);
        for &log in &order {
            if chosen.len() < copies && !chosen.iter().any(|c| zones[*c] == zones[log]) {
                chosen.push(log);
            }
        }
        for &log in &order {
            if chosen.len() < copies && !chosen.contains(&log) {
                chosen.push(log);
            }
        }
        for log in chosen {
            assigned[log].push(*tag);
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
        let listed = host.nodes();
        let zones = healthy_zones(&listed);
        let group = spread_group(ServiceKind::Log, vacancies.len() as u32, None, zones);
        let nodes = match place(host, listed.clone(), vec![group], Vec::new()) {
            Ok(mut groups) => groups.remove(0),
            Err(reason) => return outcome(state, PhaseStep::Stalled(reason)),
        };
        let tags: Vec<ShardTag> = state.new_storage_teams.iter().map(|t| t.tag).collect();
        let zones: Vec<&str> = nodes.iter().map(|id| listed.iter().find(|n| &n.id == id).map_or("", |n| n.zone.as_str())).collect();
        let assignment = assign_tags(&tags, &zones, state.config.log_replication);
        // Every log at once: each is created on its own node.
        let requests: Vec<(String, ServiceKind)> = vacancies.iter().zip(&nodes).map(|(_, node)| (node.clone(), ServiceKind::Log)).collect();
        let created = host.create_workers(&requests);
        if let Some((node, err)) = nodes.iter().zip(&created).find_map(|(node, r)| r.as_ref().err().map(|e| (node, e))) {
            return outcome(state, PhaseStep::Stalled(format!("creating a log on {node}: {err:?}")));
        }
        for ((vacancy, service), tags) in vacancies.iter().zip(created.into_iter().flatten()).zip(assignment) {
            state.new_logs.push(LogAssignment { id: service.id.clone(), tags });
            state.recruits.push(Recruit { vacancy_id: vacancy.id.clone(), service });
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
        assert_eq!(assign_tags(&[0, 1], &["z1", "z2", "z3"], 2), vec![vec![0], vec![0, 1], vec![1]]);
        assert_eq!(assign_tags(&[0], &["z1", "z2"], 5), vec![vec![0], vec![0]]);
        // Four logs in three zones: each shard's three logs in three zones.
        let zones = ["z1", "z2", "z3", "z1"];
        let assigned = assign_tags(&[0, 1, 2, 3], &zones, 3);
        for tag in 0..4 {
            let spans: std::collections::BTreeSet<&str> = (0..4).filter(|l| assigned[*l].contains(&tag)).map(|l| zones[l]).collect();
            assert_eq!(spans.len(), 3, "shard {tag}: {assigned:?}");
        }
        // Packed into one zone, the logs are still shared out.
        assert_eq!(assign_tags(&[0, 1], &["z1", "z1", "z1"], 2), vec![vec![0], vec![0, 1], vec![1]]);
    }

    #[test]
    fn creates_one_log_per_vacancy_on_the_placed_nodes() {
        let mut host = ScriptedHost::with_nodes(4, 2);
        let mut s = state(1, None);
        s.vacancies = (0..3).map(|i| Vacancy { id: format!("log-{i}"), kind: ServiceKind::Log, tag: None }).collect();
        s.new_storage_teams =
            vec![StorageTeam { tag: 0, key_range: KeyRange { start: "".into(), end: "".into() }, storage_ids: vec![], departing: vec![] }];
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
