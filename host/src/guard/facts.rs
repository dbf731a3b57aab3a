//! What the guard knows without asking a plugin: the persisted old layout,
//! indexed once, and the ledger of one attempt (lock replies, the services
//! it created, what each new log recovered). Every check is made against
//! these, never against a phase's name or a field a plugin wrote.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::rules::Refusal;
use crate::bindings::types::{
    Epoch, KeyRange, Layout, LockInfo, LogRecoveryInfo, Node, ServiceDescriptor, ServiceKind, ShardTag, StorageTeam, Version,
};

/// One shard of the old layout.
#[derive(Clone, Debug)]
pub(crate) struct OldShard {
    /// Its keys.
    pub key_range: KeyRange,
    /// The old logs the layout assigns it to.
    pub carriers: Vec<String>,
    /// Its storage replicas, departing ones too.
    pub replicas: Vec<String>,
}

/// What every replica of a shard that can still catch up from its logs has
/// made durable: the least of `durable` (the locked replicas' durable
/// versions) capped at `recovery`, leaving out a replica behind `oldest`,
/// the oldest version the logs hold (it is rebuilt from a teammate, not
/// caught up), and a replica below `served`, the old generation's recovery
/// version (it was still joining that generation, so it is rebuilt too).
/// `None` when no replica counts. The plan-log-recovery phase computes the
/// same.
pub fn storage_floor(durable: impl Iterator<Item = Version>, oldest: Version, served: Version, recovery: Version) -> Option<Version> {
    durable.filter(|d| d.saturating_add(1) >= oldest && *d >= served).map(|d| d.min(recovery)).min()
}

/// A team's replicas: its members, then its departing replicas.
fn replicas_of(team: &StorageTeam) -> impl Iterator<Item = String> + '_ {
    team.storage_ids.iter().chain(team.departing.iter().map(|d| &d.service.id)).cloned()
}

/// The persisted old layout, indexed for the checks.
#[derive(Debug, Default)]
pub(crate) struct OldGeneration {
    /// Every service id it names, departing replicas too: a recovery may
    /// lock each.
    pub names: HashSet<String>,
    /// Its shards, by tag.
    pub shards: BTreeMap<ShardTag, OldShard>,
    /// Its logs, with the shards each carries.
    pub logs: HashMap<String, BTreeSet<ShardTag>>,
    /// Its storage replicas, departing ones too, with the shard each
    /// belongs to.
    pub replicas: HashMap<String, ShardTag>,
    /// Its descriptors, by id: the host's record of the old services.
    pub descriptors: HashMap<String, ServiceDescriptor>,
    /// Its departing replicas, each with the version through which its
    /// data is trusted (`departing-replica.durable-version`).
    pub departing_through: HashMap<String, Version>,
    /// Its recovery version: every version up to here was kept by its
    /// generation, so every later one keeps it too.
    pub recovery_version: Version,
}

impl OldGeneration {
    /// Indexes `layout`.
    pub fn new(layout: Option<Layout>) -> Self {
        let Some(old) = layout else { return OldGeneration::default() };
        let departing = old.storage_teams.iter().flat_map(|t| t.departing.iter());
        let names = super::names(&old).map(String::from).chain(departing.clone().map(|d| d.service.id.clone())).collect();
        let departing_through = departing.clone().map(|d| (d.service.id.clone(), d.durable_version)).collect();
        let logs: HashMap<String, BTreeSet<ShardTag>> = old.logs.iter().map(|l| (l.id.clone(), l.tags.iter().copied().collect())).collect();
        let mut shards: BTreeMap<ShardTag, OldShard> = old
            .storage_teams
            .iter()
            .map(|t| (t.tag, OldShard { key_range: t.key_range.clone(), carriers: Vec::new(), replicas: replicas_of(t).collect() }))
            .collect();
        for log in &old.logs {
            for tag in &log.tags {
                if let Some(shard) = shards.get_mut(tag) {
                    shard.carriers.push(log.id.clone());
                }
            }
        }
        let replicas = old.storage_teams.iter().flat_map(|t| replicas_of(t).map(move |id| (id, t.tag))).collect();
        let descriptors = old.services.iter().chain(departing.map(|d| &d.service)).map(|s| (s.id.clone(), s.clone())).collect();
        OldGeneration { names, shards, logs, replicas, descriptors, departing_through, recovery_version: old.recovery_version }
    }

    /// Whether the old layout names any log: its generation may have
    /// acknowledged writes, which a recovery must keep.
    pub fn has_logs(&self) -> bool {
        !self.logs.is_empty()
    }
}

/// The nodes' zones as the host last listed them.
pub(crate) struct Zones<'a> {
    zone_of: HashMap<&'a str, &'a str>,
    /// How many zones have a healthy node.
    healthy: u32,
    /// How many nodes are healthy.
    healthy_nodes: u32,
}

impl Zones<'_> {
    /// The zone of `node`, if the host knows the node.
    pub fn of(&self, node: &str) -> Option<&str> {
        self.zone_of.get(node).copied()
    }

    /// How many replicas on distinct nodes a team of `replication` can have:
    /// at most one per healthy node.
    pub fn replicas(&self, replication: u32) -> u32 {
        replication.min(self.healthy_nodes)
    }

    /// How many zones `wanted` copies can span: at most the healthy zones.
    pub fn spread(&self, wanted: u32) -> u32 {
        wanted.min(self.healthy)
    }

    /// How many zones a storage team can span: the replication factor, at
    /// most the healthy zones, at most the zones its kept replicas span
    /// plus one per replica it gains.
    pub fn team_can_span(&self, replication: u32, kept_zones: usize, gained: u32) -> u32 {
        self.spread(replication).min(kept_zones as u32 + gained)
    }
}

/// A set of versions, kept as disjoint, non-adjacent intervals in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Intervals(Vec<(Version, Version)>);

impl Intervals {
    /// Adds `[first, last]` (`first <= last`).
    pub fn add(&mut self, first: Version, last: Version) {
        let (mut first, mut last) = (first, last);
        let mut kept = Vec::with_capacity(self.0.len() + 1);
        for &(a, b) in &self.0 {
            if b.saturating_add(1) < first || last.saturating_add(1) < a {
                kept.push((a, b));
            } else {
                first = first.min(a);
                last = last.max(b);
            }
        }
        kept.push((first, last));
        kept.sort_unstable();
        self.0 = kept;
    }

    /// The one interval the set is, if it is one.
    pub fn single(&self) -> Option<(Version, Version)> {
        match self.0.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The highest version in the set.
    pub fn end(&self) -> Option<Version> {
        self.0.last().map(|(_, last)| *last)
    }

    /// The intervals, in order.
    pub fn parts(&self) -> &[(Version, Version)] {
        &self.0
    }
}

/// A service this attempt created, as the host recorded it.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// Its descriptor, from the foreman that created it.
    pub descriptor: ServiceDescriptor,
    /// For a sequencer, the version its first commit follows.
    pub start: Option<Version>,
}

/// What the guard learned and refused during one attempt.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Old services this attempt locked, with their lock replies.
    pub locks: HashMap<String, LockInfo>,
    /// Per old log locked, the oldest version it holds of each shard it
    /// reported (its lock reply, indexed: a log of a large cluster carries
    /// hundreds of shards).
    pub held: HashMap<String, HashMap<ShardTag, Version>>,
    /// Services this attempt created (recruited workers, started roles).
    pub records: HashMap<String, Record>,
    /// Everything created, in order, for rollback.
    pub created: Vec<String>,
    /// Per (new log, shard), the versions it recovered.
    pub recovered: HashMap<(String, ShardTag), Intervals>,
    /// Set once a newer epoch is seen.
    pub superseded: Option<Epoch>,
    /// The layout staged by this attempt, checked when staged.
    pub staged: Option<Arc<Layout>>,
    /// Whether the staged layout changed since the director last took it.
    pub staged_changed: bool,
    /// Whether an unlock or a persist has used the staged layout: from then
    /// on it is fixed.
    pub staged_fixed: bool,
    /// Whether the staged layout was persisted.
    pub persisted: bool,
    /// The recovery version the attempt's phases proposed: where a new
    /// sequencer starts. Checked when a layout is staged, never trusted.
    pub proposed_start: Version,
    /// The nodes as the host last listed them.
    pub nodes: Option<Vec<Node>>,
    /// The ids the staged layout names.
    pub staged_names: HashSet<String>,
    /// Services this attempt unlocked.
    pub unlocked: HashSet<String>,
    /// The version the host last saw each replica that a staged layout
    /// names departing durable at, when it saw it serve (see
    /// [`crate::cluster::Cluster::known_durable`]).
    pub floors: HashMap<String, Version>,
    /// Storage replicas that join their team after the layout is
    /// persisted: recruits, and old replicas the logs cannot catch up (see
    /// `AttemptGuard::joins_later` and `AttemptGuard::bring_up_joining`).
    pub joining: BTreeSet<String>,
    /// Returned departing replicas this attempt has cut back to the version
    /// the old layout trusts them with (`AttemptGuard::cut_back_returned`):
    /// whatever they hold since came from this epoch's moves, so a retry of
    /// their join does not cut them again.
    pub cut_back: HashSet<String>,
    /// A plugin call made on the attempt's behalf that failed: its slot
    /// and the failure.
    pub nested_failure: Option<(String, String)>,
    /// Every refusal, for the attempt's report.
    pub refusals: Vec<Refusal>,
    /// Counts the changes to the facts a layout is checked against (locks,
    /// records, recoveries, the nodes): a layout checked at one count needs
    /// no check again while it stands.
    pub changes: u64,
    /// The count at which the staged layout last passed its check.
    pub staged_checked_at: Option<u64>,
}

impl Ledger {
    /// Whether this attempt holds the lock of `id` (I4): it locked it, or
    /// created it (locked at creation).
    pub fn holds(&self, id: &str) -> bool {
        self.locks.contains_key(id) || self.records.contains_key(id)
    }

    /// Records the nodes as the host lists them now.
    pub fn listed(&mut self, nodes: &[Node]) {
        self.nodes = Some(nodes.to_vec());
        self.changes += 1;
    }

    /// The zones of the nodes as the host last listed them.
    pub fn zones(&self) -> Option<Zones<'_>> {
        let nodes = self.nodes.as_ref()?;
        let healthy: BTreeSet<&str> = nodes.iter().filter(|n| n.healthy).map(|n| n.zone.as_str()).collect();
        let zone_of = nodes.iter().map(|n| (n.id.as_str(), n.zone.as_str())).collect();
        let healthy_nodes = nodes.iter().filter(|n| n.healthy).count() as u32;
        Some(Zones { zone_of, healthy: healthy.len() as u32, healthy_nodes })
    }

    /// Stages `layout`, checked at the ledger's current count.
    pub fn stage(&mut self, layout: Layout) {
        self.staged_names = super::names(&layout).map(String::from).collect();
        self.staged = Some(Arc::new(layout));
        self.staged_changed = true;
        self.staged_checked_at = Some(self.changes);
    }

    /// Records the versions the host last saw departing replicas durable at.
    pub fn seen_durable(&mut self, floors: Vec<(String, Version)>) {
        for (id, floor) in floors {
            if self.floors.insert(id, floor) != Some(floor) {
                self.changes += 1;
            }
        }
    }

    /// Records a service this attempt created.
    pub fn created(&mut self, descriptor: &ServiceDescriptor, start: Option<Version>) {
        self.records.insert(descriptor.id.clone(), Record { descriptor: descriptor.clone(), start });
        self.created.push(descriptor.id.clone());
        self.changes += 1;
    }

    /// Records that new log `log` recovered `[first, last]` of `tag`.
    pub fn recovered(&mut self, log: &str, tag: ShardTag, first: Version, last: Version) {
        self.recovered.entry((log.to_string(), tag)).or_default().add(first, last);
        self.changes += 1;
    }

    /// Records the lock reply of old service `id`.
    pub fn locked(&mut self, id: &str, info: &LockInfo) {
        self.changes += 1;
        if let LockInfo::Log(log) = info {
            self.held.insert(id.to_string(), log.shards.iter().map(|s| (s.tag, s.oldest_version)).collect());
        }
        self.locks.insert(id.to_string(), info.clone());
    }

    /// The oldest version old log `id`, locked by this attempt, holds of
    /// shard `tag`, if it holds the shard.
    pub fn held_from(&self, id: &str, tag: ShardTag) -> Option<Version> {
        self.held.get(id)?.get(&tag).copied()
    }

    /// Whether old replica `id` of shard `tag`, locked by this attempt, is
    /// behind every version the shard's locked old logs still hold: the
    /// logs cannot catch it up, only a copy from a teammate brings it back
    /// (the replicas [`storage_floor`] leaves out as behind `oldest`).
    pub fn behind_logs(&self, old: &OldGeneration, tag: ShardTag, id: &str) -> bool {
        let Some(durable) = self.trusted_durable(old, id) else { return false };
        let Some(shard) = old.shards.get(&tag).filter(|shard| shard.replicas.iter().any(|r| r == id)) else { return false };
        let oldest = shard.carriers.iter().filter_map(|log| self.held_from(log, tag)).min();
        oldest.is_some_and(|oldest| durable.saturating_add(1) < oldest)
    }

    /// The lock reply of old log `id`, if this attempt locked it.
    pub fn locked_log(&self, id: &str) -> Option<&LogRecoveryInfo> {
        match self.locks.get(id) {
            Some(LockInfo::Log(info)) => Some(info),
            _ => None,
        }
    }

    /// The kind of a service this attempt holds, as the host knows it.
    pub fn kind_of(&self, id: &str) -> Option<ServiceKind> {
        if let Some(record) = self.records.get(id) {
            return Some(record.descriptor.kind);
        }
        match self.locks.get(id)? {
            LockInfo::Log(_) => Some(ServiceKind::Log),
            LockInfo::Storage(_) => Some(ServiceKind::Storage),
            LockInfo::Stateless(kind) => Some(*kind),
        }
    }

    /// The versions a recovery from `old` must keep, at least through: the
    /// old layout's own recovery version (what its generation kept), and
    /// what the old generation may have acknowledged since, which no
    /// locked old log's last version is below: a commit is acknowledged
    /// only once every log of its generation accepted it.
    pub fn must_keep_through(&self, old: &OldGeneration) -> Version {
        let acknowledged = self
            .locks
            .values()
            .filter_map(|info| match info {
                LockInfo::Log(info) => Some(info.last_version),
                _ => None,
            })
            .min()
            .unwrap_or(0);
        acknowledged.max(old.recovery_version)
    }

    /// Where the kept range of shard `tag` starts: the oldest version a
    /// locked log of it (as `old` assigns them) still holds, or, if later,
    /// the version after what every locked replica of the shard has made
    /// durable (see [`storage_floor`]): storage has the older versions, and
    /// copying them into the new logs would make a recovery's cost grow
    /// with the history. A departing replica of the old layout that came
    /// back counts only if it is in `serving`, the new layout's members.
    /// `None` when no locked log holds the shard.
    pub fn kept_from(&self, old: &OldGeneration, tag: ShardTag, serving: &HashSet<&str>) -> Option<Version> {
        let shard = old.shards.get(&tag)?;
        let oldest = shard.carriers.iter().filter_map(|id| self.held_from(id, tag)).min()?;
        let keep = self.must_keep_through(old);
        let (returned, members): (Vec<&String>, Vec<&String>) =
            shard.replicas.iter().partition(|id| old.departing_through.contains_key(*id));
        let members = storage_floor(members.into_iter().filter_map(|id| self.locked_durable(id)), oldest, old.recovery_version, keep);
        // A departing replica that came back, if it serves the new layout,
        // holds the shard through what the old layout trusts it with,
        // below its recovery version as that may be.
        let returned = returned.into_iter().filter(|id| serving.contains(id.as_str()));
        let returned = storage_floor(returned.filter_map(|id| self.trusted_durable(old, id)), oldest, 0, keep);
        Some(match members.into_iter().chain(returned).min() {
            Some(floor) => oldest.max(floor + 1),
            None => oldest,
        })
    }

    /// The durable version old replica `id`'s lock in this attempt
    /// reported, if it was locked.
    pub fn locked_durable(&self, id: &str) -> Option<Version> {
        match self.locks.get(id) {
            Some(LockInfo::Storage(info)) => Some(info.durable_version),
            _ => None,
        }
    }

    /// What locked old replica `id` holds that can be trusted: what its
    /// lock reported, but for a departing replica of the old layout no
    /// more than the layout trusts it with (anything past that may come
    /// from an attempt that never persisted, and is cut back).
    pub fn trusted_durable(&self, old: &OldGeneration, id: &str) -> Option<Version> {
        let durable = self.locked_durable(id)?;
        Some(old.departing_through.get(id).map_or(durable, |through| durable.min(*through)))
    }
}
