//! The check of a layout before any service is handed it or it is
//! persisted: I6 (closure), S1 (acknowledged writes survive), S2 (no
//! version issued twice), S3 (a faithful successor) and S4 (no layout
//! without the logs of every shard), each against the host's facts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::facts::{Ledger, OldGeneration, Zones};
use super::rules::{Invariant, Refusal};
use crate::bindings::kind_name;
use crate::bindings::types::{
    DepartingReplica, Epoch, KeyRange, Layout, RecoveryConfig, ServiceDescriptor, ServiceKind, ShardTag, Version,
};

fn refuse<T>(rule: Invariant, message: String) -> Result<T, Refusal> {
    Err(Refusal::new(rule, message))
}

/// Checks `layout`, staged by the attempt at `epoch`, against what the
/// host knows: the old generation and the attempt's ledger.
pub(crate) fn check_layout(
    epoch: Epoch,
    config: &RecoveryConfig,
    old: &OldGeneration,
    ledger: &Ledger,
    layout: &Layout,
) -> Result<(), Refusal> {
    if layout.epoch != epoch {
        return refuse(Invariant::LayoutClosure, format!("layout carries epoch {}, the attempt is {epoch}", layout.epoch));
    }
    known_acknowledgements(old, ledger)?;
    if let Some(id) = super::names(layout).find(|id| !ledger.holds(id)) {
        return refuse(Invariant::LayoutClosure, format!("layout names {id}, which this attempt neither locked nor recruited"));
    }
    shards(old, layout)?;
    teams(config, old, ledger, layout)?;
    logs(config, ledger, layout)?;
    roles(ledger, layout)?;
    descriptors(old, ledger, layout)?;
    versions(old, ledger, layout)
}

/// S4: with logs in the old layout, every old shard has a locked log that
/// holds it, so the attempt knows what was acknowledged and has the data.
fn known_acknowledgements(old: &OldGeneration, ledger: &Ledger) -> Result<(), Refusal> {
    if !old.has_logs() {
        return Ok(());
    }
    for (tag, shard) in &old.shards {
        if ledger.kept_from(old, *tag, &HashSet::new()).is_none() {
            let logs = if shard.carriers.is_empty() { "none".to_string() } else { shard.carriers.join(", ") };
            return refuse(
                Invariant::KnownAcknowledgements,
                format!(
                    "shard {tag}: no log of it ({logs}) is locked by this attempt, so what the old generation \
                     acknowledged is unknown; the old layout names logs, so this is no new cluster"
                ),
            );
        }
    }
    Ok(())
}

/// S3: the teams' key ranges cover the key space exactly once, and when
/// the old generation may hold data, its shards stay as they were.
fn shards(old: &OldGeneration, layout: &Layout) -> Result<(), Refusal> {
    let mut by_tag: BTreeMap<ShardTag, &KeyRange> = BTreeMap::new();
    for team in &layout.storage_teams {
        if by_tag.insert(team.tag, &team.key_range).is_some() {
            return refuse(Invariant::FaithfulLayout, format!("two storage teams hold shard {}", team.tag));
        }
    }
    if old.has_logs() {
        for (tag, shard) in &old.shards {
            match by_tag.get(tag) {
                None => {
                    return refuse(
                        Invariant::FaithfulLayout,
                        format!("shard {tag} of the old layout is dropped: no storage team holds it"),
                    );
                }
                Some(range) if **range != shard.key_range => {
                    return refuse(
                        Invariant::FaithfulLayout,
                        format!(
                            "shard {tag} holds [{:?}, {:?}) in the old layout, not [{:?}, {:?})",
                            shard.key_range.start, shard.key_range.end, range.start, range.end
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        if let Some(tag) = by_tag.keys().find(|tag| !old.shards.contains_key(tag)) {
            return refuse(Invariant::FaithfulLayout, format!("shard {tag} is not a shard of the old layout"));
        }
    }
    let mut ranges: Vec<(&KeyRange, ShardTag)> = by_tag.iter().map(|(tag, range)| (*range, *tag)).collect();
    ranges.sort_by(|a, b| a.0.start.cmp(&b.0.start));
    let mut expected = String::new();
    let mut ended = false;
    for (range, tag) in &ranges {
        if ended || range.start != expected || (!range.end.is_empty() && range.end <= range.start) {
            return refuse(
                Invariant::FaithfulLayout,
                format!(
                    "the storage teams' key ranges do not cover the key space once: shard {tag} holds [{:?}, {:?}) where [{expected:?}, ...) was due",
                    range.start, range.end
                ),
            );
        }
        ended = range.end.is_empty();
        expected = range.end.clone();
    }
    if !ended {
        return refuse(Invariant::FaithfulLayout, format!("the storage teams' key ranges leave the keys from {expected:?} on to no shard"));
    }
    Ok(())
}

/// How many replicas of a team make a quorum.
pub(crate) fn team_quorum(config: &RecoveryConfig) -> u32 {
    config.replication_factor / 2 + 1
}

/// I6 and S3: each team has a quorum of distinct storage replicas, each
/// serving one team, and an old replica only its own shard; and as many as
/// the replication factor while the healthy nodes can host them.
fn teams(config: &RecoveryConfig, old: &OldGeneration, ledger: &Ledger, layout: &Layout) -> Result<(), Refusal> {
    let quorum = team_quorum(config);
    let zones = ledger.zones();
    let mut team_of: HashMap<&str, ShardTag> = HashMap::new();
    for team in &layout.storage_teams {
        let mut members = BTreeSet::new();
        for id in &team.storage_ids {
            if !members.insert(id.as_str()) {
                return refuse(Invariant::FaithfulLayout, format!("storage team {} lists {id} twice", team.tag));
            }
            if let Some(other) = team_of.insert(id.as_str(), team.tag) {
                return refuse(Invariant::FaithfulLayout, format!("{id} is listed in storage teams {other} and {}", team.tag));
            }
            match ledger.kind_of(id) {
                Some(ServiceKind::Storage) => {}
                kind => {
                    return refuse(Invariant::FaithfulLayout, format!("storage team {} lists {id}, which is {}", team.tag, what(kind)));
                }
            }
            if !ledger.records.contains_key(id) {
                match old.replicas.get(id) {
                    Some(tag) if *tag == team.tag => {}
                    Some(tag) => {
                        return refuse(
                            Invariant::FaithfulLayout,
                            format!("{id} holds shard {tag}'s data; it cannot serve shard {}", team.tag),
                        );
                    }
                    None => {
                        return refuse(
                            Invariant::FaithfulLayout,
                            format!("{id} is in no storage team of the old layout: its data is unknown"),
                        );
                    }
                }
            }
        }
        for departing in &team.departing {
            let id = departing.service.id.as_str();
            if !members.insert(id) {
                return refuse(Invariant::FaithfulLayout, format!("storage team {} lists {id} twice", team.tag));
            }
            if let Some(other) = team_of.insert(id, team.tag) {
                return refuse(Invariant::FaithfulLayout, format!("{id} is listed in storage teams {other} and {}", team.tag));
            }
            departing_replica(old, ledger, team.tag, departing)?;
        }
        let members: BTreeSet<&str> = team.storage_ids.iter().map(String::as_str).collect();
        if (members.len() as u32) < quorum {
            return refuse(
                Invariant::LayoutClosure,
                format!("storage team {} has {} replicas, below the quorum of {quorum}", team.tag, members.len()),
            );
        }
        // A team short of its replication factor while the nodes could
        // host it whole is one replica loss from a team a zone loss
        // empties.
        if let Some(full) = zones.as_ref().map(|z| z.replicas(config.replication_factor))
            && (members.len() as u32) < full
        {
            return refuse(
                Invariant::FaithfulLayout,
                format!("storage team {} has {} replicas where the healthy nodes can host {full}", team.tag, members.len()),
            );
        }
        spread(config, old, ledger, zones.as_ref(), team.tag, &team.storage_ids)?;
    }
    Ok(())
}

/// S3: a departing replica of shard `tag` is a replica of the shard in the
/// old layout, described as the host knows it, that this attempt did not
/// lock (one it locked is a member or nothing), and trusted with no more
/// than the host knows it holds: what the old layout trusted it with if it
/// departed already, else what the host last saw it durable at.
fn departing_replica(old: &OldGeneration, ledger: &Ledger, tag: ShardTag, departing: &DepartingReplica) -> Result<(), Refusal> {
    let id = departing.service.id.as_str();
    match old.replicas.get(id) {
        Some(of) if *of == tag => {}
        Some(of) => {
            return refuse(Invariant::FaithfulLayout, format!("departing {id} holds shard {of}'s data; it cannot count for shard {tag}"));
        }
        None => {
            return refuse(
                Invariant::FaithfulLayout,
                format!("departing {id} is no replica of shard {tag} in the old layout: its data is unknown"),
            );
        }
    }
    match old.descriptors.get(id) {
        Some(record) if *record == departing.service => {}
        Some(record) => {
            return refuse(
                Invariant::FaithfulLayout,
                format!("the descriptor of departing {id} says {}; the host's record says {}", show(&departing.service), show(record)),
            );
        }
        None => return refuse(Invariant::FaithfulLayout, format!("the host has no record of departing {id}")),
    }
    if ledger.holds(id) {
        return refuse(
            Invariant::FaithfulLayout,
            format!("{id} is locked by this attempt: a replica it holds serves its team or is dropped, it does not depart"),
        );
    }
    let Some(trusted) = old.departing_through.get(id).or_else(|| ledger.floors.get(id)) else {
        return refuse(
            Invariant::FaithfulLayout,
            format!("the host never saw departing {id} serve: what it holds is unknown, so it cannot count as a copy"),
        );
    };
    if departing.durable_version > *trusted {
        return refuse(
            Invariant::AcknowledgedWritesSurvive,
            format!(
                "departing {id} is said to hold shard {tag} through {}, but the host knows it holds it only through {trusted}",
                departing.durable_version
            ),
        );
    }
    Ok(())
}

/// S3: a team's replicas stand on distinct nodes and span as many zones
/// as the team can: the replication factor, at most the healthy zones, at
/// most the zones its old replicas span plus one per new replica.
fn spread(
    config: &RecoveryConfig,
    old: &OldGeneration,
    ledger: &Ledger,
    zones: Option<&Zones<'_>>,
    tag: ShardTag,
    members: &[String],
) -> Result<(), Refusal> {
    let node_of = |id: &str| match ledger.records.get(id) {
        Some(record) => Some(record.descriptor.node.as_str()),
        None => old.descriptors.get(id).map(|d| d.node.as_str()),
    };
    let mut on: HashMap<&str, &str> = HashMap::new();
    for id in members {
        let Some(node) = node_of(id) else { continue };
        if let Some(other) = on.insert(node, id) {
            return refuse(Invariant::FaithfulLayout, format!("storage team {tag} has {other} and {id} on the same node {node}"));
        }
    }
    let Some(zones) = zones else { return Ok(()) };
    let zone = |id: &String| node_of(id).and_then(|node| zones.of(node));
    let spans: BTreeSet<&str> = members.iter().filter_map(zone).collect();
    let kept: BTreeSet<&str> = members.iter().filter(|id| !ledger.records.contains_key(*id)).filter_map(zone).collect();
    let new = members.iter().filter(|id| ledger.records.contains_key(*id)).count() as u32;
    let can = zones.team_can_span(config.replication_factor, kept.len(), new);
    if (spans.len() as u32) < can {
        return refuse(
            Invariant::FaithfulLayout,
            format!(
                "storage team {tag} spans {} zones where it can span {can}: a zone's loss would take more of it than needed",
                spans.len()
            ),
        );
    }
    Ok(())
}

/// S3: the logs are fresh logs of this attempt, carry only the layout's
/// shards, and every shard has logs in as many zones as it can: the log
/// replication, at most the logs a generation has, at most the healthy
/// zones. A write is acknowledged once its shard's logs have it and before
/// its storage does: a zone's loss must not take every log of a shard.
fn logs(config: &RecoveryConfig, ledger: &Ledger, layout: &Layout) -> Result<(), Refusal> {
    let tags: BTreeSet<ShardTag> = layout.storage_teams.iter().map(|t| t.tag).collect();
    let zones = ledger.zones();
    let mut carried: BTreeMap<ShardTag, BTreeSet<&str>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for log in &layout.logs {
        if !seen.insert(log.id.as_str()) {
            return refuse(Invariant::FaithfulLayout, format!("log {} is listed twice", log.id));
        }
        let zone = match ledger.records.get(&log.id) {
            Some(record) if record.descriptor.kind == ServiceKind::Log => zones.as_ref().and_then(|z| z.of(&record.descriptor.node)),
            _ => {
                return refuse(
                    Invariant::FaithfulLayout,
                    format!("log {} is not a log this attempt recruited: a new generation's logs are fresh", log.id),
                );
            }
        };
        if log.tags.is_empty() {
            return refuse(Invariant::FaithfulLayout, format!("log {} carries no shard", log.id));
        }
        let mut own = BTreeSet::new();
        for tag in &log.tags {
            if !own.insert(*tag) {
                return refuse(Invariant::FaithfulLayout, format!("log {} lists shard {tag} twice", log.id));
            }
            if !tags.contains(tag) {
                return refuse(Invariant::FaithfulLayout, format!("log {} carries shard {tag}, which no storage team holds", log.id));
            }
            let spans = carried.entry(*tag).or_default();
            spans.extend(zone);
        }
    }
    if let Some(tag) = tags.iter().find(|t| !carried.contains_key(t)) {
        return refuse(
            Invariant::FaithfulLayout,
            format!("shard {tag} is carried by no log: its writes would be acknowledged and kept nowhere"),
        );
    }
    if let Some(zones) = &zones {
        let can = zones.spread(config.log_replication.min(config.desired_logs));
        if let Some((tag, spans)) = carried.iter().find(|(_, spans)| (spans.len() as u32) < can) {
            return refuse(
                Invariant::FaithfulLayout,
                format!(
                    "shard {tag}'s logs span {} zones where they can span {can}: a zone's loss would take every log of it",
                    spans.len()
                ),
            );
        }
    }
    Ok(())
}

/// S3: the sequencer, proxies and resolvers are roles this attempt
/// started, of the right kind.
fn roles(ledger: &Ledger, layout: &Layout) -> Result<(), Refusal> {
    let Some(sequencer) = &layout.sequencer else {
        return refuse(Invariant::FaithfulLayout, "the layout names no sequencer".into());
    };
    if layout.commit_proxies.is_empty() {
        return refuse(Invariant::FaithfulLayout, "the layout names no commit proxy".into());
    }
    let started = std::iter::once((sequencer, ServiceKind::Sequencer))
        .chain(layout.commit_proxies.iter().map(|id| (id, ServiceKind::CommitProxy)))
        .chain(layout.resolvers.iter().map(|id| (id, ServiceKind::Resolver)));
    let mut seen = BTreeSet::new();
    for (id, kind) in started {
        if !seen.insert(id.as_str()) {
            return refuse(Invariant::FaithfulLayout, format!("{id} is named twice among the roles"));
        }
        match ledger.records.get(id) {
            Some(record) if record.descriptor.kind == kind => {}
            _ => {
                return refuse(
                    Invariant::FaithfulLayout,
                    format!("{id} is named as a {} but is not one this attempt started", kind_name(kind)),
                );
            }
        }
    }
    Ok(())
}

/// S3: one descriptor per service named, each the host's own record.
fn descriptors(old: &OldGeneration, ledger: &Ledger, layout: &Layout) -> Result<(), Refusal> {
    let named: HashSet<&str> = super::members(layout).collect();
    let mut described: HashSet<&str> = HashSet::with_capacity(layout.services.len());
    for given in &layout.services {
        if !described.insert(given.id.as_str()) {
            return refuse(Invariant::FaithfulLayout, format!("the layout describes {} twice", given.id));
        }
        if !named.contains(given.id.as_str()) {
            return refuse(Invariant::FaithfulLayout, format!("the layout describes {}, which it does not name", given.id));
        }
        let record = match ledger.records.get(&given.id) {
            Some(record) => Some(&record.descriptor),
            None => old.descriptors.get(&given.id),
        };
        match record {
            Some(record) if record == given => {}
            Some(record) => {
                return refuse(
                    Invariant::FaithfulLayout,
                    format!("the descriptor of {} says {}; the host's record says {}", given.id, show(given), show(record)),
                );
            }
            None => return refuse(Invariant::FaithfulLayout, format!("the host has no record of {}", given.id)),
        }
    }
    if let Some(id) = named.iter().find(|id| !described.contains(*id)) {
        return refuse(Invariant::FaithfulLayout, format!("the layout names {id} but does not describe it"));
    }
    Ok(())
}

/// S1, S2 and the recovered ranges of S3.
fn versions(old: &OldGeneration, ledger: &Ledger, layout: &Layout) -> Result<(), Refusal> {
    let recovery = layout.recovery_version;
    let bound = ledger.must_keep_through(old);
    if old.has_logs() && recovery < bound {
        return refuse(
            Invariant::AcknowledgedWritesSurvive,
            format!("recovery version {recovery} drops versions up to {bound} that the old generation kept or may have acknowledged"),
        );
    }
    if let Some(sequencer) = &layout.sequencer {
        let start = ledger.records.get(sequencer).and_then(|r| r.start);
        if start != Some(recovery) {
            let start = start.map_or("at no known version".to_string(), |v| format!("after version {v}"));
            return refuse(
                Invariant::VersionsIssuedOnce,
                format!("the sequencer {sequencer} starts {start}, not after the recovery version {recovery}"),
            );
        }
    }
    let logs: BTreeMap<&str, &[ShardTag]> = layout.logs.iter().map(|l| (l.id.as_str(), l.tags.as_slice())).collect();
    for ((log, tag), intervals) in &ledger.recovered {
        if logs.contains_key(log.as_str())
            && let Some(end) = intervals.end()
            && end > recovery
        {
            return refuse(
                Invariant::VersionsIssuedOnce,
                format!(
                    "log {log} holds shard {tag} through version {end}, past the recovery version {recovery}: \
                     the new sequencer would issue those versions again"
                ),
            );
        }
    }
    if !old.has_logs() {
        return Ok(());
    }
    let serving: HashSet<&str> = layout.storage_teams.iter().flat_map(|t| t.storage_ids.iter().map(String::as_str)).collect();
    // Per shard, the first version a departing replica of it lacks: the
    // new logs keep it, so the replica stays a copy.
    let mut departing_from: BTreeMap<ShardTag, (Version, &str)> = BTreeMap::new();
    for team in &layout.storage_teams {
        for departing in &team.departing {
            let (id, lacks) = (departing.service.id.as_str(), departing.durable_version.saturating_add(1));
            let entry = departing_from.entry(team.tag).or_insert((lacks, id));
            if lacks < entry.0 {
                *entry = (lacks, id);
            }
        }
    }
    for (tag, (lacks, id)) in &departing_from {
        let oldest = old.shards.get(tag).and_then(|shard| shard.carriers.iter().filter_map(|log| ledger.held_from(log, *tag)).min());
        if *lacks <= recovery && oldest.is_none_or(|oldest| oldest > *lacks) {
            let held = oldest.map_or("none of it".to_string(), |oldest| format!("it from {oldest}"));
            return refuse(
                Invariant::AcknowledgedWritesSurvive,
                format!(
                    "departing {id} lacks shard {tag} from version {lacks}, but the locked old logs hold {held}: \
                     it is no copy of the shard"
                ),
            );
        }
    }
    for (log, tags) in logs {
        for tag in tags {
            let kept = ledger.kept_from(old, *tag, &serving);
            let from = match (kept, departing_from.get(tag)) {
                (Some(kept), Some((lacks, _))) => kept.min(*lacks),
                (Some(kept), None) => kept,
                (None, _) => continue,
            };
            if from > recovery {
                // The shard's logs were popped through the recovery
                // version: nothing is kept, and the log holds it from the
                // next version on.
                continue;
            }
            let recovered = ledger.recovered.get(&(log.to_string(), *tag));
            match recovered.and_then(|r| r.single()) {
                Some((first, last)) if first <= from && last == recovery => {}
                _ => {
                    let held = recovered.map_or("nothing".to_string(), |r| {
                        r.parts().iter().map(|(a, b)| format!("[{a}, {b}]")).collect::<Vec<_>>().join(" ")
                    });
                    return refuse(
                        Invariant::FaithfulLayout,
                        format!("log {log} carries shard {tag} but recovered {held} of it, not the whole kept range [{from}, {recovery}]"),
                    );
                }
            }
        }
    }
    Ok(())
}

fn what(kind: Option<ServiceKind>) -> String {
    match kind {
        Some(kind) => format!("a {}, not a storage server", kind_name(kind)),
        None => "no service this attempt holds".into(),
    }
}

fn show(descriptor: &ServiceDescriptor) -> String {
    format!("{} on {} at {}", kind_name(descriptor.kind), descriptor.node, descriptor.address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{
        DepartingReplica, LockInfo, LogAssignment, LogRecoveryInfo, Node, ShardRetention, StorageRecoveryInfo, StorageTeam,
    };
    use crate::guard::facts::Record;

    fn d(id: &str, kind: ServiceKind, node: &str) -> ServiceDescriptor {
        ServiceDescriptor { id: id.into(), kind, node: node.into(), address: format!("mem://{id}") }
    }

    fn range(start: &str, end: &str) -> KeyRange {
        KeyRange { start: start.into(), end: end.into() }
    }

    /// A storage team of `ids` with no departing replica.
    fn team(tag: ShardTag, key_range: KeyRange, ids: [&str; 3]) -> StorageTeam {
        StorageTeam { tag, key_range, storage_ids: ids.map(String::from).to_vec(), departing: Vec::new() }
    }

    /// A recovery from epoch 1 to 2: the old log locked (last 20), two
    /// replicas of each of the two teams locked, one replacement each, a
    /// new log that recovered both shards over [1, 20], and the layout the
    /// default phases would stage from it.
    struct Case {
        old: Layout,
        ledger: Ledger,
        layout: Layout,
    }

    impl Case {
        fn new() -> Self {
            let old_services = vec![
                d("L1", ServiceKind::Log, "n9"),
                d("S1", ServiceKind::Sequencer, "n9"),
                d("P1", ServiceKind::CommitProxy, "n9"),
                d("a1", ServiceKind::Storage, "n1"),
                d("a2", ServiceKind::Storage, "n2"),
                d("a3", ServiceKind::Storage, "n3"),
                d("b1", ServiceKind::Storage, "n4"),
                d("b2", ServiceKind::Storage, "n5"),
                d("b3", ServiceKind::Storage, "n6"),
            ];
            let old = Layout {
                epoch: 1,
                sequencer: Some("S1".into()),
                commit_proxies: vec!["P1".into()],
                resolvers: vec![],
                logs: vec![LogAssignment { id: "L1".into(), tags: vec![0, 1] }],
                storage_teams: vec![team(0, range("", "8"), ["a1", "a2", "a3"]), team(1, range("8", ""), ["b1", "b2", "b3"])],
                services: old_services.clone(),
                recovery_version: 10,
            };
            let mut ledger = Ledger::default();
            let shards = vec![ShardRetention { tag: 0, oldest_version: 1 }, ShardRetention { tag: 1, oldest_version: 1 }];
            ledger.locked("L1", &LockInfo::Log(LogRecoveryInfo { id: "L1".into(), oldest_version: 1, last_version: 20, shards }));
            // Storage holds versions through 4: the kept range is [5, 20].
            for id in ["a1", "a2", "b1", "b2"] {
                let info = StorageRecoveryInfo { id: id.into(), durable_version: 4, oldest_durable_version: 0 };
                ledger.locked(id, &LockInfo::Storage(info));
            }
            let created = [
                (d("N1", ServiceKind::Log, "n7"), None),
                (d("N2", ServiceKind::Log, "n8"), None),
                (d("N3", ServiceKind::Log, "n9"), None),
                (d("S2", ServiceKind::Sequencer, "n7"), Some(20)),
                (d("P2", ServiceKind::CommitProxy, "n8"), None),
                (d("a4", ServiceKind::Storage, "n3"), None),
                (d("b4", ServiceKind::Storage, "n6"), None),
            ];
            for (descriptor, start) in created {
                ledger.records.insert(descriptor.id.clone(), Record { descriptor, start });
            }
            for log in ["N1", "N2", "N3"] {
                for tag in [0, 1] {
                    ledger.recovered.entry((log.into(), tag)).or_default().add(1, 20);
                }
            }
            ledger.nodes = Some(
                (1..=9)
                    .map(|i| Node {
                        id: format!("n{i}"),
                        zone: format!("z{}", (i - 1) % 3 + 1),
                        capabilities: vec![],
                        load: 0,
                        capacity: 10,
                        healthy: true,
                        last_seen_ms: 0,
                    })
                    .collect(),
            );
            let mut services: Vec<ServiceDescriptor> = ledger.records.values().map(|r| r.descriptor.clone()).collect();
            services.extend(old_services.into_iter().filter(|s| ["a1", "a2", "b1", "b2"].contains(&s.id.as_str())));
            let layout = Layout {
                epoch: 2,
                sequencer: Some("S2".into()),
                commit_proxies: vec!["P2".into()],
                resolvers: vec![],
                logs: ["N1", "N2", "N3"].iter().map(|id| LogAssignment { id: id.to_string(), tags: vec![0, 1] }).collect(),
                storage_teams: vec![team(0, range("", "8"), ["a1", "a2", "a4"]), team(1, range("8", ""), ["b1", "b2", "b4"])],
                services,
                recovery_version: 20,
            };
            Case { old, ledger, layout }
        }

        fn check(&self) -> Result<(), Refusal> {
            let old = OldGeneration::new(Some(self.old.clone()));
            check_layout(2, &RecoveryConfig::default(), &old, &self.ledger, &self.layout)
        }

        fn refused(&self) -> Refusal {
            self.check().expect_err("the layout must be refused")
        }
    }

    #[test]
    fn the_layout_the_default_phases_stage_passes() {
        Case::new().check().unwrap();
    }

    #[test]
    fn s3_the_new_logs_need_only_what_every_locked_replica_may_lack() {
        let mut case = Case::new();
        // Every replica of the old generation served it from its recovery
        // version on.
        case.old.recovery_version = 2;
        for log in ["N1", "N2", "N3"] {
            for tag in [0, 1] {
                case.ledger.recovered.insert((log.into(), tag), Default::default());
                case.ledger.recovered.entry((log.into(), tag)).or_default().add(5, 20);
            }
        }
        case.check().expect("storage holds [1, 4]: the logs keep [5, 20]");
        // A replica that holds less holds the kept range back.
        if let Some(LockInfo::Storage(info)) = case.ledger.locks.get_mut("a2") {
            info.durable_version = 2;
        }
        let refusal = case.refused();
        assert!(refusal.message.contains("not the whole kept range [3, 20]"), "{refusal}");
        // A replica below the old recovery version was still joining the old
        // generation: it is rebuilt from a teammate, and holds nothing back.
        case.old.recovery_version = 3;
        case.check().expect("a2 was joining: the logs keep [5, 20]");
    }

    #[test]
    fn s1_the_recovery_version_keeps_what_any_locked_log_holds_and_what_the_old_generation_kept() {
        let mut case = Case::new();
        case.layout.recovery_version = 15;
        let refusal = case.refused();
        assert_eq!(refusal.rule, Invariant::AcknowledgedWritesSurvive);
        assert!(refusal.message.contains("drops versions up to 20"), "{refusal}");

        // A log that never served answers a lock with version 0; the old
        // layout's own recovery version still bounds what must be kept.
        let mut case = Case::new();
        if let Some(LockInfo::Log(info)) = case.ledger.locks.get_mut("L1") {
            info.last_version = 0;
        }
        case.layout.recovery_version = 0;
        let refusal = case.refused();
        assert_eq!(refusal.rule, Invariant::AcknowledgedWritesSurvive);
        assert!(refusal.message.contains("drops versions up to 10"), "{refusal}");
    }

    #[test]
    fn s2_the_sequencer_starts_at_the_recovery_version_and_no_log_holds_past_it() {
        let mut case = Case::new();
        case.ledger.records.get_mut("S2").unwrap().start = Some(19);
        assert_eq!(case.refused().rule, Invariant::VersionsIssuedOnce);
        let mut case = Case::new();
        case.ledger.recovered.entry(("N1".into(), 1)).or_default().add(21, 25);
        let refusal = case.refused();
        assert_eq!(refusal.rule, Invariant::VersionsIssuedOnce);
        assert!(refusal.message.contains("log N1 holds shard 1 through version 25"), "{refusal}");
    }

    /// [`Case`] where a3 did not answer the lock and stays in team 0 as a
    /// departing copy, which the host saw durable at 3.
    fn departing_case() -> Case {
        let mut case = Case::new();
        let a3 = case.old.services.iter().find(|s| s.id == "a3").unwrap().clone();
        case.layout.storage_teams[0].departing = vec![DepartingReplica { service: a3, durable_version: 3 }];
        case.ledger.floors.insert("a3".into(), 3);
        case
    }

    #[test]
    fn s3_a_departing_replica_counts_only_as_the_host_saw_it_and_only_while_the_logs_keep_what_it_lacks() {
        departing_case().check().expect("a3 lacks [4, 20], which every new log recovered");
        // The new logs keep only what the locked replicas lack, [5, 20]:
        // a3, durable at 3, would lack version 4.
        let mut case = departing_case();
        case.old.recovery_version = 2;
        for log in ["N1", "N2", "N3"] {
            case.ledger.recovered.insert((log.into(), 0), Default::default());
            case.ledger.recovered.entry((log.into(), 0)).or_default().add(5, 20);
        }
        let refusal = case.refused();
        assert!(refusal.message.contains("not the whole kept range [4, 20]"), "{refusal}");
        case.ledger.floors.insert("a3".into(), 4);
        case.layout.storage_teams[0].departing[0].durable_version = 4;
        case.check().expect("a3 durable at 4 lacks only [5, 20]");
        // The old logs popped what a3 lacks: it is no copy.
        let mut case = departing_case();
        let shards = vec![ShardRetention { tag: 0, oldest_version: 5 }, ShardRetention { tag: 1, oldest_version: 1 }];
        case.ledger.locked("L1", &LockInfo::Log(LogRecoveryInfo { id: "L1".into(), oldest_version: 1, last_version: 20, shards }));
        let refusal = case.refused();
        assert_eq!(refusal.rule, Invariant::AcknowledgedWritesSurvive);
        assert!(refusal.message.contains("departing a3 lacks shard 0 from version 4"), "{refusal}");

        type Unfaithful = (&'static str, fn(&mut Case));
        let cases: [Unfaithful; 8] = [
            ("the host never saw departing a3 serve", |c| {
                c.ledger.floors.clear();
            }),
            ("said to hold shard 0 through 4, but the host knows it holds it only through 3", |c| {
                c.layout.storage_teams[0].departing[0].durable_version = 4;
            }),
            ("a3 is locked by this attempt", |c| {
                let info = StorageRecoveryInfo { id: "a3".into(), durable_version: 4, oldest_durable_version: 0 };
                c.ledger.locked("a3", &LockInfo::Storage(info));
            }),
            ("departing b3 holds shard 1's data", |c| {
                c.layout.storage_teams[0].departing[0].service = c.old.services.iter().find(|s| s.id == "b3").unwrap().clone();
                c.ledger.floors.insert("b3".into(), 3);
            }),
            ("departing x9 is no replica of shard 0", |c| {
                c.layout.storage_teams[0].departing[0].service = d("x9", ServiceKind::Storage, "n9");
                c.ledger.floors.insert("x9".into(), 3);
            }),
            ("the host's record says", |c| c.layout.storage_teams[0].departing[0].service.address = "10.6.6.6:1".into()),
            ("storage team 0 lists a3 twice", |c| {
                let a3 = c.layout.storage_teams[0].departing[0].clone();
                c.layout.storage_teams[0].departing.push(a3);
            }),
            ("a3 is listed in storage teams 0 and 1", |c| {
                let a3 = c.layout.storage_teams[0].departing[0].clone();
                c.layout.storage_teams[1].departing.push(a3);
            }),
        ];
        for (expected, edit) in cases {
            let mut case = departing_case();
            edit(&mut case);
            let refusal = case.refused();
            assert!(refusal.message.contains(expected), "expected {expected:?}, got {refusal}");
        }
    }

    #[test]
    fn s3_each_way_a_layout_stops_being_faithful_is_named() {
        type Unfaithful = (&'static str, fn(&mut Case));
        let cases: [Unfaithful; 11] = [
            ("storage team 1 has 2 replicas where the healthy nodes can host 3", |c| {
                c.layout.storage_teams[1].storage_ids.pop();
                c.layout.services.retain(|s| s.id != "b4");
            }),
            ("not the whole kept range", |c| {
                c.ledger.recovered.insert(("N1".into(), 0), Default::default());
                c.ledger.recovered.entry(("N1".into(), 0)).or_default().add(6, 20);
            }),
            ("carries no shard", |c| {
                c.ledger.records.insert("N4".into(), Record { descriptor: d("N4", ServiceKind::Log, "n8"), start: None });
                c.layout.logs.push(LogAssignment { id: "N4".into(), tags: vec![] });
                c.layout.services.push(d("N4", ServiceKind::Log, "n8"));
            }),
            ("shard 0's logs span 2 zones where they can span 3", |c| {
                let n3 = d("N3", ServiceKind::Log, "n4");
                c.ledger.records.get_mut("N3").unwrap().descriptor = n3.clone();
                *c.layout.services.iter_mut().find(|s| s.id == "N3").unwrap() = n3;
            }),
            ("on the same node n4", |c| {
                let b4 = d("b4", ServiceKind::Storage, "n4");
                c.ledger.records.get_mut("b4").unwrap().descriptor = b4.clone();
                *c.layout.services.iter_mut().find(|s| s.id == "b4").unwrap() = b4;
            }),
            ("spans 2 zones where it can span 3", |c| {
                let b4 = d("b4", ServiceKind::Storage, "n7");
                c.ledger.records.get_mut("b4").unwrap().descriptor = b4.clone();
                *c.layout.services.iter_mut().find(|s| s.id == "b4").unwrap() = b4;
            }),
            ("the host's record says", |c| c.layout.services.iter_mut().find(|s| s.id == "P2").unwrap().address = "10.6.6.6:1".into()),
            ("is dropped", |c| {
                c.layout.storage_teams.pop();
                c.layout.logs[0].tags = vec![0];
            }),
            ("lists a1 twice", |c| c.layout.storage_teams[0].storage_ids[2] = "a1".into()),
            ("b2 holds shard 1's data; it cannot serve shard 0", |c| {
                c.layout.storage_teams[0].storage_ids[1] = "b2".into();
                c.layout.storage_teams[1].storage_ids[1] = "a2".into();
            }),
            ("is not a log this attempt recruited", |c| c.layout.logs.push(LogAssignment { id: "L1".into(), tags: vec![0] })),
        ];
        for (expected, edit) in cases {
            let mut case = Case::new();
            edit(&mut case);
            let refusal = case.refused();
            assert!(refusal.message.contains(expected), "{expected}: {refusal}");
        }
    }

    #[test]
    fn s4_every_old_shard_needs_a_locked_log() {
        let mut case = Case::new();
        case.ledger.locks.remove("L1");
        case.ledger.held.remove("L1");
        let refusal = case.refused();
        assert_eq!(refusal.rule, Invariant::KnownAcknowledgements);
        assert!(refusal.message.starts_with("shard 0: no log of it (L1)"), "{refusal}");
    }
}
