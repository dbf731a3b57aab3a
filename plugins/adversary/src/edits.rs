//! Random edits of a layout: each one a way a layout can stop being a
//! faithful successor of the old one while still looking like a layout.

use ratchet_guest::types::{DepartingReplica, KeyRange, Layout, LogAssignment, ServiceDescriptor, ServiceKind, StorageTeam};

use crate::phase::Knowledge;
use crate::rng::Rng;

/// `layout` with one to three random edits.
pub(crate) fn edit_layout(rng: &mut Rng, k: &mut Knowledge, mut layout: Layout) -> Layout {
    for _ in 0..=rng.below(3) {
        edit_once(rng, k, &mut layout);
    }
    layout
}

fn edit_once(rng: &mut Rng, k: &mut Knowledge, layout: &mut Layout) {
    let teams = layout.storage_teams.len() as u64;
    match rng.below(22) {
        0 => layout.epoch = layout.epoch.wrapping_add(*rng.pick(&[1, u64::MAX]).unwrap_or(&1)),
        1 => layout.recovery_version = k.version(rng),
        2 if teams > 0 => {
            layout.storage_teams.remove(rng.below(teams) as usize);
        }
        3 if teams > 0 => {
            // One replica listed twice, filling the team.
            let team = &mut layout.storage_teams[rng.below(teams) as usize];
            if let Some(first) = team.storage_ids.first().cloned() {
                let last = team.storage_ids.len() - 1;
                team.storage_ids[last] = first;
            }
        }
        4 if teams > 1 => {
            // A replica moved to another shard's team.
            let from = rng.below(teams) as usize;
            let to = (from + 1) % teams as usize;
            if let Some(id) = layout.storage_teams[from].storage_ids.pop() {
                layout.storage_teams[to].storage_ids.push(id);
            }
        }
        5 if teams > 0 => {
            let id = k.id(rng);
            let team = &mut layout.storage_teams[rng.below(teams) as usize];
            match team.storage_ids.first_mut() {
                Some(first) => *first = id,
                None => team.storage_ids.push(id),
            }
        }
        6 => {
            let logs = layout.logs.len() as u64;
            if logs > 0 && rng.chance(0.5) {
                layout.logs.remove(rng.below(logs) as usize);
            } else {
                // An old log, or anything, as a log of the new generation.
                let id = rng.pick(&k.old_logs).cloned().unwrap_or_else(|| k.id(rng));
                layout.logs.push(LogAssignment { id, tags: k.shards.clone() });
            }
        }
        7 => {
            if let Some(log) = layout.logs.first_mut() {
                match rng.below(3) {
                    0 => {
                        log.tags.pop();
                    }
                    1 => log.tags.push(999),
                    _ => {
                        let again = log.tags.first().copied().unwrap_or(0);
                        log.tags.push(again);
                    }
                }
            }
        }
        8 => {
            // A descriptor rewritten: the address, the node or the kind.
            let count = layout.services.len() as u64;
            if count > 0 {
                let node = k.node(rng);
                let service = &mut layout.services[rng.below(count) as usize];
                match rng.below(3) {
                    0 => service.address = "10.66.66.66:6666".into(),
                    1 => service.node = node,
                    _ => service.kind = ServiceKind::Storage,
                }
            }
        }
        9 => {
            let count = layout.services.len() as u64;
            match rng.below(3) {
                0 if count > 0 => {
                    layout.services.remove(rng.below(count) as usize);
                }
                1 if count > 0 => {
                    let again = layout.services[rng.below(count) as usize].clone();
                    layout.services.push(again);
                }
                _ => layout.services.push(ServiceDescriptor {
                    id: k.id(rng),
                    kind: ServiceKind::Log,
                    node: k.node(rng),
                    address: "nowhere".into(),
                }),
            }
        }
        10 if teams > 0 => {
            let team = &mut layout.storage_teams[rng.below(teams) as usize];
            team.key_range = match rng.below(3) {
                0 => KeyRange { start: "5".into(), end: team.key_range.end.clone() },
                1 => KeyRange { start: team.key_range.start.clone(), end: String::new() },
                _ => KeyRange { start: "z".into(), end: "a".into() },
            };
        }
        11 if teams > 1 => {
            let (a, b) = (0, teams as usize - 1);
            let tag = layout.storage_teams[a].tag;
            layout.storage_teams[a].tag = layout.storage_teams[b].tag;
            layout.storage_teams[b].tag = tag;
        }
        12 => {
            layout.sequencer = match rng.below(3) {
                0 => None,
                1 => layout.commit_proxies.first().cloned(),
                _ => Some(k.id(rng)),
            }
        }
        13 => match rng.below(3) {
            0 => layout.commit_proxies.clear(),
            1 => layout.commit_proxies.extend(layout.sequencer.clone()),
            _ => {
                let again = layout.commit_proxies.first().cloned();
                layout.commit_proxies.extend(again);
            }
        },
        14 => {
            let log = layout.logs.first().map(|l| l.id.clone());
            layout.resolvers.extend(log);
        }
        15 if teams > 0 => {
            let team = &mut layout.storage_teams[rng.below(teams) as usize];
            team.storage_ids.truncate(1);
        }
        16 => {
            let ids = layout.storage_teams.first().map(|t| t.storage_ids.clone()).unwrap_or_default();
            layout.storage_teams.push(StorageTeam {
                tag: 777,
                key_range: KeyRange { start: "zz".into(), end: String::new() },
                storage_ids: ids,
                departing: Vec::new(),
            });
        }
        17 => {
            // A replica of the old layout the attempt never locked.
            if let (Some(id), Some(team)) = (rng.pick(&k.old_storage).cloned(), layout.storage_teams.first_mut()) {
                team.storage_ids.push(id);
            }
        }
        19 if teams > 0 => {
            // An old replica (locked or not, of this shard or another) or a
            // made-up one kept as a departing copy, trusted with a version
            // seen or made up.
            let service = match rng.pick(&k.old_services).cloned() {
                Some(service) if rng.chance(0.8) => service,
                _ => ServiceDescriptor { id: k.id(rng), kind: ServiceKind::Storage, node: "n1".into(), address: "mem://n1".into() },
            };
            let durable_version = k.version(rng);
            layout.storage_teams[rng.below(teams) as usize].departing.push(DepartingReplica { service, durable_version });
        }
        20 if teams > 0 => {
            // A departing copy trusted with more, moved, redescribed or
            // made a member too.
            let from = rng.below(teams) as usize;
            if let Some(mut departing) = layout.storage_teams[from].departing.pop() {
                match rng.below(4) {
                    0 => departing.durable_version = departing.durable_version.saturating_add(1 + rng.below(5)),
                    1 => departing.service.node = rng.pick(&k.nodes).map_or_else(|| "n0".into(), |n| n.id.clone()),
                    2 => layout.storage_teams[from].storage_ids.push(departing.service.id.clone()),
                    _ => {}
                }
                let to = if rng.chance(0.5) { from } else { rng.below(teams) as usize };
                layout.storage_teams[to].departing.push(departing);
            }
        }
        18 => layout.recovery_version = layout.recovery_version.saturating_sub(1 + rng.below(3)),
        _ => layout.recovery_version = layout.recovery_version.saturating_add(1 + rng.below(3)),
    }
}
