//! How good a layout's placement is: what `ratchet demo` (and later the
//! experiments) report, so that the effect of a placement policy is visible.
//!
//! For each storage team and for the log set: the distinct zones it spans
//! against the most it could span (its size, capped by the zones there are);
//! the highest load of any node; and whether any zone holds a whole team,
//! which one zone failure would then take down.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::bindings::types::{Layout, Node, ShardTag};

/// The placement quality of one team (a storage team, or the log set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamQuality {
    /// The team: `team 3`, or `logs`.
    pub name: String,
    /// The shard tag, for a storage team.
    pub tag: Option<ShardTag>,
    /// Members of the team.
    pub replicas: usize,
    /// Distinct zones its members run in.
    pub zones: usize,
    /// The most zones it could span: its size, capped by the zones there are.
    pub best_zones: usize,
}

impl TeamQuality {
    /// Whether one zone holds every member (a team of one excepted).
    pub fn in_one_zone(&self) -> bool {
        self.replicas > 1 && self.zones == 1
    }
}

/// The placement quality of a whole layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementQuality {
    /// Every storage team, then the log set.
    pub teams: Vec<TeamQuality>,
    /// The highest number of workers on any one node.
    pub max_node_load: u32,
    /// The node carrying it.
    pub busiest_node: Option<String>,
    /// Distinct nodes the layout's services run on.
    pub nodes_used: usize,
}

impl PlacementQuality {
    /// Measures `layout` against the cluster's `nodes` (their zones, and the
    /// load they report now).
    pub fn of(layout: &Layout, nodes: &[Node]) -> Self {
        let zone_of: BTreeMap<&str, &str> = nodes.iter().map(|n| (n.id.as_str(), n.zone.as_str())).collect();
        let node_of: BTreeMap<&str, &str> = layout.services.iter().map(|s| (s.id.as_str(), s.node.as_str())).collect();
        let all_zones = zone_of.values().collect::<BTreeSet<_>>().len();
        let team = |name: String, tag: Option<ShardTag>, members: &mut dyn Iterator<Item = &str>| {
            let members: Vec<&str> = members.collect();
            let zones: BTreeSet<&str> =
                members.iter().filter_map(|id| node_of.get(id)).filter_map(|node| zone_of.get(node).copied()).collect();
            TeamQuality { name, tag, replicas: members.len(), zones: zones.len(), best_zones: members.len().min(all_zones) }
        };
        let mut teams: Vec<TeamQuality> = layout
            .storage_teams
            .iter()
            .map(|t| team(format!("team {}", t.tag), Some(t.tag), &mut t.storage_ids.iter().map(String::as_str)))
            .collect();
        if !layout.logs.is_empty() {
            teams.push(team("logs".into(), None, &mut layout.logs.iter().map(|l| l.id.as_str())));
        }
        let busiest = nodes.iter().max_by(|a, b| a.load.cmp(&b.load).then(b.id.cmp(&a.id)));
        PlacementQuality {
            teams,
            max_node_load: busiest.map_or(0, |n| n.load),
            busiest_node: busiest.map(|n| n.id.clone()),
            nodes_used: node_of.values().collect::<BTreeSet<_>>().len(),
        }
    }

    /// Teams spanning fewer zones than they could.
    pub fn under_spread(&self) -> impl Iterator<Item = &TeamQuality> {
        self.teams.iter().filter(|t| t.zones < t.best_zones)
    }

    /// Teams held whole by one zone.
    pub fn in_one_zone(&self) -> impl Iterator<Item = &TeamQuality> {
        self.teams.iter().filter(|t| t.in_one_zone())
    }
}

impl fmt::Display for PlacementQuality {
    /// A few lines: a per-team table when it is short, a summary when not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LISTED: usize = 12;
        if self.teams.len() <= LISTED {
            writeln!(f, "  {:<12} {:>8} {:>14}", "TEAM", "REPLICAS", "ZONES/BEST")?;
            for team in &self.teams {
                let mark = if team.in_one_zone() { "  one zone holds the whole team" } else { "" };
                writeln!(f, "  {:<12} {:>8} {:>9}/{:<4}{mark}", team.name, team.replicas, team.zones, team.best_zones)?;
            }
        }
        let spread = self.teams.len() - self.under_spread().count();
        writeln!(f, "  teams at their best zone spread: {spread} of {}", self.teams.len())?;
        let whole: Vec<&str> = self.in_one_zone().map(|t| t.name.as_str()).collect();
        if whole.is_empty() {
            writeln!(f, "  teams held whole by one zone: none")?;
        } else {
            let shown = whole.iter().take(LISTED).copied().collect::<Vec<_>>().join(", ");
            let more = if whole.len() > LISTED { format!(" and {} more", whole.len() - LISTED) } else { String::new() };
            writeln!(f, "  teams held whole by one zone: {} ({shown}{more})", whole.len())?;
        }
        write!(
            f,
            "  highest node load: {} ({}); nodes used: {}",
            self.max_node_load,
            self.busiest_node.as_deref().unwrap_or("-"),
            self.nodes_used
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{KeyRange, LogAssignment, ServiceDescriptor, ServiceKind, StorageTeam};

    fn node(id: &str, zone: &str, load: u32) -> Node {
        Node { id: id.into(), zone: zone.into(), capabilities: vec![], load, capacity: 9, healthy: true, last_seen_ms: 0 }
    }

    fn service(id: &str, kind: ServiceKind, node: &str) -> ServiceDescriptor {
        ServiceDescriptor { id: id.into(), kind, node: node.into(), address: String::new() }
    }

    #[test]
    fn zones_per_team_load_and_whole_team_zones_are_measured() {
        let nodes = [node("a1", "a", 2), node("a2", "a", 1), node("b1", "b", 3)];
        let layout = Layout {
            epoch: 1,
            sequencer: None,
            commit_proxies: vec![],
            resolvers: vec![],
            logs: vec![LogAssignment { id: "l1".into(), tags: vec![1] }],
            storage_teams: vec![
                StorageTeam {
                    tag: 1,
                    key_range: KeyRange { start: "".into(), end: "8".into() },
                    storage_ids: vec!["s1".into(), "s2".into()],
                    departing: Vec::new(),
                },
                StorageTeam {
                    tag: 2,
                    key_range: KeyRange { start: "8".into(), end: "".into() },
                    storage_ids: vec!["s3".into(), "s4".into()],
                    departing: Vec::new(),
                },
            ],
            services: vec![
                service("l1", ServiceKind::Log, "b1"),
                service("s1", ServiceKind::Storage, "a1"),
                service("s2", ServiceKind::Storage, "a2"),
                service("s3", ServiceKind::Storage, "a1"),
                service("s4", ServiceKind::Storage, "b1"),
            ],
            recovery_version: 0,
        };
        let quality = PlacementQuality::of(&layout, &nodes);
        assert_eq!(quality.teams.len(), 3);
        assert_eq!((quality.teams[0].zones, quality.teams[0].best_zones), (1, 2));
        assert!(quality.teams[0].in_one_zone());
        assert_eq!((quality.teams[1].zones, quality.teams[1].best_zones), (2, 2));
        assert!(!quality.teams[2].in_one_zone(), "a team of one is not 'held whole'");
        assert_eq!(quality.in_one_zone().count(), 1);
        assert_eq!(quality.under_spread().count(), 1);
        assert_eq!((quality.max_node_load, quality.busiest_node.as_deref()), (3, Some("b1")));
        assert_eq!(quality.nodes_used, 3);
        let text = quality.to_string();
        assert!(text.contains("teams held whole by one zone: 1 (team 1)"), "{text}");
    }
}
