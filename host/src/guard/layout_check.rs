//! The check of a layout before any service is handed it or it is
//! persisted: I6 (closure), S1 (acknowledged writes survive), S2 (no
//! version issued twice), S3 (a faithful successor) and S4 (no layout
//! without the logs of every shard), each against the host's facts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::facts::{Ledger, OldGeneration};
use super::rules::{Invariant, Refusal};
use crate::bindings::kind_name;
use crate::bindings::types::{Epoch, KeyRange, Layout, RecoveryConfig, ServiceDescriptor, ServiceKind, ShardTag};

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
        return refuse(
            Invariant::LayoutClosure,
            format!("layout carries epoch {}, the attempt is {epoch}", layout.epoch),
        );
    }
    known_acknowledgements(old, ledger)?;
    if let Some(id) = super::names(layout).find(|id| !ledger.holds(id)) {
        return refuse(
            Invariant::LayoutClosure,
            format!("layout names {id}, which this attempt neither locked nor recruited"),
        );
    }
    shards(old, layout)?;
    teams(config, old, ledger, layout)?;
    logs(ledger, layout)?;
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
        if ledger.kept_from(old, *tag).is_none() {
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
        return refuse(
            Invariant::FaithfulLayout,
            format!("the storage teams' key ranges leave the keys from {expected:?} on to no shard"),
        );
    }
    Ok(())
}

/// I6 and S3: each team has a quorum of distinct storage replicas, each
/// serving one team, and an old replica only its own shard.
fn teams(config: &RecoveryConfig, old: &OldGeneration, ledger: &Ledger, layout: &Layout) -> Result<(), Refusal> {
    let quorum = config.replication_factor / 2 + 1;
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
                    return refuse(
                        Invariant::FaithfulLayout,
                        format!("storage team {} lists {id}, which is {}", team.tag, what(kind)),
                    );
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
        if (members.len() as u32) < quorum {
            return refuse(
                Invariant::LayoutClosure,
                format!("storage team {} has {} replicas, below the quorum of {quorum}", team.tag, members.len()),
            );
        }
    }
    Ok(())
}

/// S3: the logs are fresh logs of this attempt, carry only the layout's
/// shards, and every shard has one.
fn logs(ledger: &Ledger, layout: &Layout) -> Result<(), Refusal> {
    let tags: BTreeSet<ShardTag> = layout.storage_teams.iter().map(|t| t.tag).collect();
    let mut carried = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for log in &layout.logs {
        if !seen.insert(log.id.as_str()) {
            return refuse(Invariant::FaithfulLayout, format!("log {} is listed twice", log.id));
        }
        match ledger.records.get(&log.id) {
            Some(record) if record.descriptor.kind == ServiceKind::Log => {}
            _ => {
                return refuse(
                    Invariant::FaithfulLayout,
                    format!("log {} is not a log this attempt recruited: a new generation's logs are fresh", log.id),
                );
            }
        }
        let mut own = BTreeSet::new();
        for tag in &log.tags {
            if !own.insert(*tag) {
                return refuse(Invariant::FaithfulLayout, format!("log {} lists shard {tag} twice", log.id));
            }
            if !tags.contains(tag) {
                return refuse(
                    Invariant::FaithfulLayout,
                    format!("log {} carries shard {tag}, which no storage team holds", log.id),
                );
            }
            carried.insert(*tag);
        }
    }
    if let Some(tag) = tags.iter().find(|t| !carried.contains(t)) {
        return refuse(
            Invariant::FaithfulLayout,
            format!("shard {tag} is carried by no log: its writes would be acknowledged and kept nowhere"),
        );
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
    let named: BTreeSet<&str> = roles_and_members(layout).collect();
    let mut described: BTreeSet<&str> = BTreeSet::new();
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

/// The services a layout names in its roles, logs and teams (not in its
/// descriptors).
fn roles_and_members(layout: &Layout) -> impl Iterator<Item = &str> {
    let roles = layout.sequencer.iter().chain(&layout.commit_proxies).chain(&layout.resolvers);
    let logs = layout.logs.iter().map(|l| l.id.as_str());
    let storage = layout.storage_teams.iter().flat_map(|t| t.storage_ids.iter());
    roles.map(String::as_str).chain(logs).chain(storage.map(String::as_str))
}

/// S1, S2 and the recovered ranges of S3.
fn versions(old: &OldGeneration, ledger: &Ledger, layout: &Layout) -> Result<(), Refusal> {
    let recovery = layout.recovery_version;
    if old.has_logs()
        && let Some(bound) = ledger.acknowledged_bound()
        && recovery < bound
    {
        return refuse(
            Invariant::AcknowledgedWritesSurvive,
            format!("recovery version {recovery} drops versions up to {bound} that the old generation may have acknowledged"),
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
    for (log, tags) in logs {
        for tag in tags {
            let Some(from) = ledger.kept_from(old, *tag) else { continue };
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
                        format!(
                            "log {log} carries shard {tag} but recovered {held} of it, not the whole kept range [{from}, {recovery}]"
                        ),
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
