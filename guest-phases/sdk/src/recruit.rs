//! Helpers shared by the phases that place and recruit workers.

use std::collections::BTreeSet;

use crate::Host;
use crate::types::{Node, PlacementConstraints, PlacementRequest, PlacementVacancy, ServiceDescriptor, ServiceKind, ShardTag, TeamMembers};

/// How many distinct zones the healthy nodes span.
pub fn healthy_zones(nodes: &[Node]) -> u32 {
    nodes.iter().filter(|n| n.healthy).map(|n| n.zone.as_str()).collect::<BTreeSet<_>>().len() as u32
}

/// A vacancy group of `count` workers of `kind`, spread over as many zones as
/// the cluster has (up to `count`), on distinct nodes.
pub fn spread_group(kind: ServiceKind, count: u32, team: Option<ShardTag>, zones: u32) -> PlacementVacancy {
    PlacementVacancy {
        kind,
        count,
        team,
        constraints: PlacementConstraints {
            min_distinct_zones: count.min(zones),
            exclude_nodes: Vec::new(),
            required_capabilities: Vec::new(),
            distinct_nodes: true,
        },
    }
}

/// A group of `count` storage replicas joining team `team`, whose current
/// members stand on `members`: on distinct nodes, and with the members
/// spanning as many zones as the team can: the replication factor, at
/// most the healthy zones, at most what the members and the new nodes can
/// reach. The host refuses a request asking for less.
pub fn team_group(count: u32, team: ShardTag, replication: u32, nodes: &[Node], members: &[String]) -> PlacementVacancy {
    let zones = healthy_zones(nodes);
    let member_zones: BTreeSet<&str> = members.iter().filter_map(|m| nodes.iter().find(|n| n.id == *m)).map(|n| n.zone.as_str()).collect();
    let reachable = member_zones.len() as u32 + count;
    let mut group = spread_group(ServiceKind::Storage, count, Some(team), zones);
    group.constraints.min_distinct_zones = replication.min(zones).min(reachable);
    group
}

/// Asks the placement policy where `groups` go among `nodes` (as the host
/// listed them), with `teams` for anti-affinity. Returns one node list per
/// group, in order.
pub fn place(
    host: &mut dyn Host,
    nodes: Vec<Node>,
    groups: Vec<PlacementVacancy>,
    teams: Vec<TeamMembers>,
) -> Result<Vec<Vec<String>>, String> {
    let count = groups.len();
    let request = PlacementRequest { vacancies: groups, nodes, teams };
    let mut answer =
        host.place(&request).map_err(|e| format!("placement failed for group {} ({}): {}", e.vacancy, e.constraint, e.message))?;
    answer.sort_by_key(|a| a.vacancy);
    if answer.len() != count {
        return Err(format!("placement answered {} of {count} groups", answer.len()));
    }
    Ok(answer.into_iter().map(|a| a.nodes).collect())
}

/// Starts `count` roles of `kind` (sequencer, proxy or resolver) on nodes the
/// placement policy picks.
pub fn start_roles(host: &mut dyn Host, kind: ServiceKind, count: u32) -> Result<Vec<ServiceDescriptor>, String> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let nodes = host.nodes();
    let zones = healthy_zones(&nodes);
    let nodes = place(host, nodes, vec![spread_group(kind, count, None, zones)], Vec::new())?.remove(0);
    nodes
        .iter()
        .map(|node| host.start_role(node, kind).map_err(|e| format!("starting a {} on {node}: {e:?}", crate::kind_name(kind))))
        .collect()
}

/// The whole of a start-role phase: start `count` roles of `kind`, record
/// them with `record`, and go to `next`; stall with the reason if placement
/// or a start fails.
pub fn start_phase(
    mut state: crate::types::AttemptState,
    host: &mut dyn Host,
    kind: ServiceKind,
    count: u32,
    next: &str,
    record: impl FnOnce(&mut crate::types::AttemptState, Vec<ServiceDescriptor>),
) -> crate::types::PhaseOutcome {
    let step = match start_roles(host, kind, count) {
        Ok(started) => {
            record(&mut state, started);
            crate::types::PhaseStep::Next(next.into())
        }
        Err(reason) => crate::types::PhaseStep::Stalled(reason),
    };
    crate::outcome(state, step)
}
