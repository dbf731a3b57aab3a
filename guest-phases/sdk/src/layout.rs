//! The new layout as the attempt state describes it: what
//! assemble-layout stages, and what an adversarial phase edits.

use crate::collections::{IdMap, IdSet};
use crate::types::{AttemptState, Layout, ServiceDescriptor, StorageTeam};

/// The new layout described by the attempt state.
pub fn assemble(state: &AttemptState) -> Result<Layout, String> {
    let sequencer = state.sequencer.clone().ok_or("no sequencer was started")?;
    let mut services: Vec<ServiceDescriptor> = state.recruits.iter().map(|r| r.service.clone()).collect();
    services.push(sequencer.clone());
    services.extend(state.commit_proxies.iter().cloned());
    services.extend(state.resolvers.iter().cloned());
    // A departing replica of the old layout may serve again.
    let old_services: IdMap<&str, &ServiceDescriptor> = state.old_layout.iter().flat_map(descriptors).map(|s| (s.id.as_str(), s)).collect();
    let started = state.recruits.iter().map(|r| &r.service).chain(state.sequencer.iter());
    let mut described: IdSet<&str> = started.chain(&state.commit_proxies).chain(&state.resolvers).map(|s| s.id.as_str()).collect();
    for team in &state.new_storage_teams {
        for id in &team.storage_ids {
            if described.insert(id.as_str()) {
                let old = old_services.get(id.as_str()).ok_or_else(|| format!("no descriptor for {id}"))?;
                services.push((*old).clone());
            }
        }
    }
    Ok(Layout {
        epoch: state.epoch,
        sequencer: Some(sequencer.id),
        commit_proxies: state.commit_proxies.iter().map(|s| s.id.clone()).collect(),
        resolvers: state.resolvers.iter().map(|s| s.id.clone()).collect(),
        logs: state.new_logs.clone(),
        storage_teams: state.new_storage_teams.clone(),
        services,
        recovery_version: state.recovery_version.unwrap_or(0),
    })
}

/// Every service a layout names in its logs, teams and roles, in the order
/// they are unlocked: logs, storage, resolvers, the sequencer, and the
/// proxies last, since they open the generation to commits.
pub fn members(layout: &Layout) -> Vec<String> {
    let logs = layout.logs.iter().map(|l| &l.id);
    let storage = layout.storage_teams.iter().flat_map(|t| t.storage_ids.iter());
    let roles = layout.resolvers.iter().chain(layout.sequencer.iter()).chain(layout.commit_proxies.iter());
    logs.chain(storage).chain(roles).cloned().collect()
}

/// Every replica of a team that may hold its shard: its members, then its
/// departing replicas.
pub fn replicas_of(team: &StorageTeam) -> impl Iterator<Item = &String> {
    team.storage_ids.iter().chain(team.departing.iter().map(|d| &d.service.id))
}

/// Every descriptor a layout holds: its services', then its departing
/// replicas' (described in their teams, since they serve no generation).
pub fn descriptors(layout: &Layout) -> impl Iterator<Item = &ServiceDescriptor> {
    layout.services.iter().chain(layout.storage_teams.iter().flat_map(|t| t.departing.iter().map(|d| &d.service)))
}
