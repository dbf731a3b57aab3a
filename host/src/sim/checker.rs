//! The checker: after every run, the run's facts are judged against the
//! properties a recovery must keep, whatever plugins ran.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::history::Facts;
use crate::bindings::types::{Epoch, Layout, ServiceKind, ShardTag, Version};
use crate::guard::named_services;

/// A property the checker judges every run by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Property {
    /// S1: an acknowledged write is readable at the end (or, when no
    /// generation serves, at rest in the last layout).
    AckedWriteLost,
    /// S1: a persisted layout keeps every version acknowledged before it.
    AckedWriteDropped,
    /// S2: the versions acknowledged only rise.
    VersionIssuedTwice,
    /// I1: epochs are issued, and layouts persisted, in rising order.
    EpochsIncrease,
    /// I7: one layout per epoch.
    OneLayoutPerEpoch,
    /// I6: a layout names only services its epoch locked or recruited.
    LayoutNamesHeldServices,
    /// S3: a layout is a faithful successor of the first.
    FaithfulLayout,
    /// S4: every old shard had a locked log when a layout was staged.
    KnownAcknowledgements,
    /// I8: no work of a superseded epoch took effect.
    Fencing,
    /// The replicas of a team hold the same data once the run settled.
    ReplicasAgree,
    /// The host never panics.
    HostPanic,
    /// A generation serves again once the faults stop.
    Liveness,
}

impl Property {
    /// The name reports and the JSON use.
    pub fn name(self) -> &'static str {
        match self {
            Property::AckedWriteLost => "acked-write-lost",
            Property::AckedWriteDropped => "acked-write-dropped",
            Property::VersionIssuedTwice => "version-issued-twice",
            Property::EpochsIncrease => "epochs-increase",
            Property::OneLayoutPerEpoch => "one-layout-per-epoch",
            Property::LayoutNamesHeldServices => "layout-names-held-services",
            Property::FaithfulLayout => "faithful-layout",
            Property::KnownAcknowledgements => "known-acknowledgements",
            Property::Fencing => "fencing",
            Property::ReplicasAgree => "replicas-agree",
            Property::HostPanic => "host-panic",
            Property::Liveness => "liveness",
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken property.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    /// The property.
    pub rule: Property,
    /// What happened.
    pub detail: String,
}

impl Violation {
    /// A violation of `rule`.
    pub fn new(rule: Property, detail: impl Into<String>) -> Self {
        Violation { rule, detail: detail.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// The most lost keys named in one violation.
const NAMED_KEYS: usize = 5;

/// What the client saw of a run, beside the facts.
pub struct Outcome<'a> {
    /// Acknowledged writes found nowhere: not readable from the generation
    /// the run ended with, or, when none served, at rest in no replica or
    /// log of the last layout persisted.
    pub lost: &'a [String],
    /// Every acknowledged write's version and the epoch of the generation
    /// that acknowledged it, in the order acknowledged.
    pub acked: &'a [(Version, Epoch)],
    /// Replicas per storage team.
    pub replication: u32,
}

/// Judges a run by its `facts` and what the client saw.
pub fn check(facts: &Facts, outcome: &Outcome<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    if !outcome.lost.is_empty() {
        let named = outcome.lost.iter().take(NAMED_KEYS).cloned().collect::<Vec<_>>().join(", ");
        violations
            .push(Violation::new(Property::AckedWriteLost, format!("{} acknowledged writes found nowhere: {named}", outcome.lost.len())));
    }
    // S2: a generation starts above every version before it, so the
    // versions acknowledged only rise.
    if let Some(pair) = outcome.acked.windows(2).find(|w| w[1].0 <= w[0].0) {
        violations.push(Violation::new(
            Property::VersionIssuedTwice,
            format!("version {} acknowledged at epoch {} after version {} at epoch {}", pair[1].0, pair[1].1, pair[0].0, pair[0].1),
        ));
    }
    // S1: a layout keeps every version acknowledged by an older generation.
    for layout in &facts.persisted {
        if let Some((version, epoch)) = outcome.acked.iter().find(|(v, e)| *e < layout.epoch && *v > layout.recovery_version) {
            violations.push(Violation::new(
                Property::AckedWriteDropped,
                format!(
                    "the layout of epoch {} keeps versions through {}, but version {version} was acknowledged at epoch {epoch}",
                    layout.epoch, layout.recovery_version
                ),
            ));
            break;
        }
    }
    if let Some(pair) = facts.issued.windows(2).find(|w| w[1] <= w[0]) {
        violations.push(Violation::new(Property::EpochsIncrease, format!("epoch {} issued after epoch {}", pair[1], pair[0])));
    }
    if let Some(pair) = facts.persisted.windows(2).find(|w| w[1].epoch <= w[0].epoch) {
        violations.push(Violation::new(
            Property::EpochsIncrease,
            format!("the layout of epoch {} persisted after that of epoch {}", pair[1].epoch, pair[0].epoch),
        ));
    }
    let mut per_epoch: BTreeMap<u64, usize> = BTreeMap::new();
    for layout in &facts.persisted {
        *per_epoch.entry(layout.epoch).or_default() += 1;
    }
    for (epoch, count) in per_epoch.into_iter().filter(|(_, n)| *n > 1) {
        violations.push(Violation::new(Property::OneLayoutPerEpoch, format!("{count} layouts persisted for epoch {epoch}")));
    }
    let none = BTreeSet::new();
    for layout in &facts.persisted {
        let locked = facts.locked.get(&layout.epoch).unwrap_or(&none);
        let recruited = facts.recruited.get(&layout.epoch).unwrap_or(&none);
        let foreign: Vec<String> =
            named_services(layout).into_iter().filter(|id| !locked.contains(id) && !recruited.contains(id)).collect();
        if !foreign.is_empty() {
            violations.push(Violation::new(
                Property::LayoutNamesHeldServices,
                format!("the layout of epoch {} names {} that epoch never locked or recruited", layout.epoch, foreign.join(", ")),
            ));
        }
    }
    if let Some(first) = facts.persisted.first() {
        for layout in &facts.persisted {
            if let Err(detail) = faithful(facts, first, layout, outcome.replication) {
                violations.push(Violation::new(Property::FaithfulLayout, format!("the layout of epoch {}: {detail}", layout.epoch)));
            }
        }
    }
    for pair in facts.persisted.windows(2) {
        if let Err(detail) = acknowledgements_known(facts, &pair[0], &pair[1]) {
            violations.push(Violation::new(Property::KnownAcknowledgements, detail));
        }
    }
    for stale in &facts.stale_work {
        violations.push(Violation::new(Property::Fencing, stale.clone()));
    }
    for panic in &facts.panics {
        violations.push(Violation::new(Property::HostPanic, panic.clone()));
    }
    violations
}

/// S3, judged apart from the guard: `layout` describes every service it
/// names once, as the cluster created it; its teams hold a quorum of
/// distinct storage replicas, one team per replica; it holds the shards
/// the cluster booted with, each carried by a log, and its logs carry no
/// other.
fn faithful(facts: &Facts, boot: &Layout, layout: &Layout, replication: u32) -> Result<(), String> {
    let named = named_services(layout);
    let mut described = BTreeSet::new();
    for service in &layout.services {
        if !described.insert(service.id.as_str()) {
            return Err(format!("{} is described twice", service.id));
        }
        match facts.descriptors.get(&service.id) {
            Some(record) if record == service => {}
            Some(record) => return Err(format!("{} is described as {service:?}, but was created as {record:?}", service.id)),
            None => return Err(format!("{} was never created", service.id)),
        }
    }
    if let Some(id) = named.iter().find(|id| !described.contains(id.as_str())) {
        return Err(format!("{id} is named but not described"));
    }
    let shards =
        |l: &Layout| l.storage_teams.iter().map(|t| (t.tag, t.key_range.start.clone(), t.key_range.end.clone())).collect::<BTreeSet<_>>();
    if shards(layout) != shards(boot) || layout.storage_teams.len() != boot.storage_teams.len() {
        return Err(format!("its shards {:?} are not those the cluster booted with, {:?}", shards(layout), shards(boot)));
    }
    let quorum = replication / 2 + 1;
    let mut replicas = BTreeSet::new();
    for team in &layout.storage_teams {
        let members: BTreeSet<&String> = team.storage_ids.iter().collect();
        if members.len() != team.storage_ids.len() {
            return Err(format!("team {} lists a replica twice: {:?}", team.tag, team.storage_ids));
        }
        if (members.len() as u32) < quorum {
            return Err(format!("team {} has {} replicas, below the quorum of {quorum}", team.tag, members.len()));
        }
        for id in members {
            let kind = facts.descriptors.get(id).map(|d| d.kind);
            if kind != Some(ServiceKind::Storage) {
                return Err(format!("team {} lists {id}, which is no storage server ({kind:?})", team.tag));
            }
            if !replicas.insert(id) {
                return Err(format!("{id} serves two teams"));
            }
        }
    }
    let tags: BTreeSet<ShardTag> = layout.storage_teams.iter().map(|t| t.tag).collect();
    let carried: BTreeSet<ShardTag> = layout.logs.iter().flat_map(|l| l.tags.iter().copied()).collect();
    if carried != tags {
        return Err(format!("its logs carry shards {carried:?}, its teams hold {tags:?}"));
    }
    Ok(())
}

/// S4, judged apart from the guard: the epoch that persisted `next` had
/// locked, for every shard of `previous`, a log of it.
fn acknowledgements_known(facts: &Facts, previous: &Layout, next: &Layout) -> Result<(), String> {
    let none = BTreeSet::new();
    let locked = facts.locked.get(&next.epoch).unwrap_or(&none);
    for team in &previous.storage_teams {
        let carriers: Vec<&str> = previous.logs.iter().filter(|l| l.tags.contains(&team.tag)).map(|l| l.id.as_str()).collect();
        if !carriers.is_empty() && !carriers.iter().any(|id| locked.contains(*id)) {
            return Err(format!(
                "the layout of epoch {} was persisted, but that epoch locked no log of shard {} ({})",
                next.epoch,
                team.tag,
                carriers.join(", ")
            ));
        }
    }
    Ok(())
}

/// Every live replica of a team holds the same data at the same version:
/// once the run settled, a replica caught up, truncated or rebuilt must be
/// identical to its teammates.
pub fn check_replicas(teams: &[crate::cluster::TeamContents]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (tag, members) in teams {
        let Some((first, version, data)) = members.first() else { continue };
        for (id, v, d) in &members[1..] {
            if v != version || d != data {
                let differ = d.iter().filter(|(k, value)| data.get(*k) != Some(*value)).count()
                    + data.keys().filter(|k| !d.contains_key(*k)).count();
                violations.push(Violation::new(
                    Property::ReplicasAgree,
                    format!("team {tag}: {id} at version {v} differs from {first} at {version} in {differ} keys"),
                ));
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{KeyRange, LogAssignment, ServiceDescriptor, StorageTeam};

    fn descriptor(id: &str, kind: ServiceKind) -> ServiceDescriptor {
        ServiceDescriptor { id: id.into(), kind, node: "n1".into(), address: format!("mem://{id}") }
    }

    /// A whole layout of epoch `epoch`: log `l{epoch}`, one shard of three
    /// replicas `s{epoch}-{i}`, recorded in `facts` as created by its epoch.
    fn layout(facts: &mut Facts, epoch: u64, recovery_version: u64) -> Layout {
        let log = format!("l{epoch}");
        let storage: Vec<String> = (1..=3).map(|i| format!("s{epoch}-{i}")).collect();
        let mut services = vec![descriptor(&log, ServiceKind::Log)];
        services.extend(storage.iter().map(|id| descriptor(id, ServiceKind::Storage)));
        for service in &services {
            facts.descriptors.insert(service.id.clone(), service.clone());
            facts.recruited.entry(epoch).or_default().insert(service.id.clone());
        }
        Layout {
            epoch,
            sequencer: None,
            commit_proxies: vec![],
            resolvers: vec![],
            logs: vec![LogAssignment { id: log, tags: vec![0] }],
            storage_teams: vec![StorageTeam {
                tag: 0,
                key_range: KeyRange { start: String::new(), end: String::new() },
                storage_ids: storage,
                departing: Vec::new(),
            }],
            services,
            recovery_version,
        }
    }

    /// Two generations, the second recovered from the first.
    fn history() -> Facts {
        let mut facts = Facts { issued: vec![1, 2], ..Facts::default() };
        let first = layout(&mut facts, 1, 0);
        let second = layout(&mut facts, 2, 10);
        facts.locked.entry(2).or_default().insert("l1".into());
        facts.persisted = vec![first, second];
        facts
    }

    fn rules(facts: &Facts, lost: &[String], acked: &[(Version, Epoch)]) -> Vec<&'static str> {
        check(facts, &Outcome { lost, acked, replication: 3 }).into_iter().map(|v| v.rule.name()).collect()
    }

    #[test]
    fn replicas_that_differ_are_named() {
        let data = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        let same = data(&[("a", "1"), ("b", "2")]);
        let agreeing = vec![(1, vec![("s1".to_string(), 5, same.clone()), ("s2".to_string(), 5, same.clone())])];
        assert!(check_replicas(&agreeing).is_empty());
        let apart = vec![(1, vec![("s1".to_string(), 5, same.clone()), ("s2".to_string(), 5, data(&[("a", "1")]))])];
        let found = check_replicas(&apart);
        assert_eq!(found.len(), 1);
        assert!(found[0].detail.contains("s2 at version 5 differs from s1 at 5 in 1 keys"), "{}", found[0]);
        let behind = vec![(1, vec![("s1".to_string(), 5, same.clone()), ("s2".to_string(), 4, same)])];
        assert_eq!(check_replicas(&behind)[0].rule, Property::ReplicasAgree);
    }

    #[test]
    fn a_clean_history_passes() {
        assert!(rules(&history(), &[], &[(3, 1), (10, 1), (11, 2)]).is_empty());
    }

    #[test]
    fn each_broken_property_is_named() {
        let mut facts = history();
        facts.issued.push(2);
        let again = facts.persisted[1].clone();
        facts.persisted.push(again);
        facts.stale_work.push("l1 accepted push from epoch 1 after epoch 2 had locked it".into());
        facts.panics.push("director d3: panicked".into());
        facts.locked.entry(2).or_default().clear();
        // The second layout was made by epoch 3's recruits, not its own.
        let recruits = facts.recruited.remove(&2).unwrap_or_default();
        facts.recruited.insert(3, recruits);
        let found = rules(&facts, &["k1".into()], &[(12, 1), (11, 2)]);
        assert_eq!(
            found,
            [
                "acked-write-lost",
                "version-issued-twice",
                "acked-write-dropped",
                "epochs-increase",
                "epochs-increase",
                "one-layout-per-epoch",
                "layout-names-held-services",
                "layout-names-held-services",
                "known-acknowledgements",
                "known-acknowledgements",
                "fencing",
                "host-panic"
            ]
        );
    }

    #[test]
    fn a_layout_unfaithful_to_the_records_is_named() {
        type Forgery = (&'static str, fn(&mut Layout));
        let cases: [Forgery; 5] = [
            ("described as", |l| l.services[1].address = "10.0.0.9:1".into()),
            ("lists a replica twice", |l| l.storage_teams[0].storage_ids[2] = l.storage_teams[0].storage_ids[0].clone()),
            ("not those the cluster booted with", |l| {
                l.storage_teams.clear();
                l.logs[0].tags.clear();
            }),
            ("its logs carry shards", |l| l.logs[0].tags.push(4)),
            ("named but not described", |l| {
                l.services.pop();
            }),
        ];
        for (expected, edit) in cases {
            let mut facts = history();
            edit(&mut facts.persisted[1]);
            let found = check(&facts, &Outcome { lost: &[], acked: &[], replication: 3 });
            assert!(found.iter().any(|v| v.rule == Property::FaithfulLayout && v.detail.contains(expected)), "{expected}: {found:?}");
        }
    }
}
