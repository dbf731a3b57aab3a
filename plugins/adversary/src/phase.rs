//! The adversarial phase: whatever slot it is put in, it makes random host
//! calls with random arguments aimed at what it has seen (ids from the
//! state and junk, ranges around what the locked logs hold and inverted
//! ones, repeated ids, layouts edited at random from what the default
//! phases would stage), sometimes carries a whole recovery out on its own
//! with a flaw somewhere, and returns a random step with random edits of
//! the state. Nothing it does may break what the host guarantees.

use ratchet_guest::PHASES;
use ratchet_guest::layout::{assemble, members};
use ratchet_guest::state_fields::ALL;
use ratchet_guest::types::{
    AttemptState, KeyRange, Layout, LockInfo, LogAssignment, LogCopy, LogRecoveryInfo, Node, PhaseOutcome, PhaseStep, PlacementConstraints,
    PlacementRequest, PlacementVacancy, RecoveryPath, Recruit, ServiceDescriptor, ServiceKind, ShardRetention, ShardTag, StateField,
    StorageTeam, TeamMembers, Version,
};

use crate::edits::edit_layout;
use crate::host::AdversaryHost;
use crate::rng::Rng;

const KINDS: [ServiceKind; 5] =
    [ServiceKind::Log, ServiceKind::Storage, ServiceKind::Sequencer, ServiceKind::CommitProxy, ServiceKind::Resolver];

/// What the adversary has seen during one call, to aim its next calls.
#[derive(Default)]
pub(crate) struct Knowledge {
    /// Every service id seen anywhere.
    pub ids: Vec<String>,
    /// The old layout's logs and storage replicas.
    pub old_logs: Vec<String>,
    pub old_storage: Vec<String>,
    /// The old layout's descriptors, its departing replicas' included.
    pub old_services: Vec<ServiceDescriptor>,
    /// The nodes, as last listed.
    pub nodes: Vec<Node>,
    /// The shard tags seen.
    pub shards: Vec<ShardTag>,
    /// What the logs it locked reported.
    pub locked_logs: Vec<LogRecoveryInfo>,
    /// Storage replicas it locked.
    pub locked_storage: Vec<String>,
    /// Services it created.
    pub created: Vec<ServiceDescriptor>,
    /// The layout it staged last, accepted or not.
    pub staged: Option<Layout>,
    /// Versions seen: what the locks reported, the recovery version.
    pub versions: Vec<Version>,
    junk: u64,
}

impl Knowledge {
    fn of(state: &AttemptState) -> Self {
        let mut k = Knowledge::default();
        if let Some(old) = &state.old_layout {
            k.ids.extend(old.services.iter().map(|s| s.id.clone()));
            k.ids.extend(old.sequencer.iter().cloned());
            k.old_logs = old.logs.iter().map(|l| l.id.clone()).collect();
            k.old_storage = old.storage_teams.iter().flat_map(ratchet_guest::layout::replicas_of).cloned().collect();
            k.old_services = ratchet_guest::layout::descriptors(old).cloned().collect();
            k.ids.extend(k.old_logs.iter().cloned());
            k.ids.extend(k.old_storage.iter().cloned());
            k.shards = old.storage_teams.iter().map(|t| t.tag).collect();
            k.versions.push(old.recovery_version);
        }
        if k.shards.is_empty() {
            k.shards = (0..state.config.shards.min(64)).collect();
        }
        k.ids.extend(state.recruits.iter().map(|r| r.service.id.clone()));
        k.ids.extend(state.sequencer.iter().chain(&state.commit_proxies).chain(&state.resolvers).map(|s| s.id.clone()));
        k.ids.extend(state.new_logs.iter().map(|l| l.id.clone()));
        k.locked_logs = state.locked_logs.clone();
        k.locked_storage = state.locked_storage.iter().map(|s| s.id.clone()).collect();
        k.versions.extend(state.recovery_version);
        k.versions.extend(state.durable_version);
        k
    }

    fn learn_lock(&mut self, id: &str, info: &LockInfo) {
        match info {
            LockInfo::Log(info) => {
                self.versions.extend([info.oldest_version, info.last_version]);
                self.locked_logs.retain(|l| l.id != id);
                self.locked_logs.push(info.clone());
            }
            LockInfo::Storage(info) => {
                self.versions.push(info.durable_version);
                self.locked_storage.push(id.to_string());
            }
            LockInfo::Stateless(_) => {}
        }
    }

    fn learn_created(&mut self, service: &ServiceDescriptor) {
        self.ids.push(service.id.clone());
        self.created.push(service.clone());
    }

    fn created_of(&self, kind: ServiceKind) -> Vec<ServiceDescriptor> {
        self.created.iter().filter(|s| s.kind == kind).cloned().collect()
    }

    /// A made-up id: nothing the host knows, or something odd.
    fn junk_id(&mut self, rng: &mut Rng) -> String {
        self.junk += 1;
        match rng.below(4) {
            0 => String::new(),
            1 => "x".repeat(300),
            2 => format!("log-ghost-{}", self.junk),
            _ => format!("storage-ghost-{}", self.junk),
        }
    }

    /// An id: mostly one seen, sometimes junk.
    pub fn id(&mut self, rng: &mut Rng) -> String {
        if rng.chance(0.85)
            && let Some(id) = rng.pick(&self.ids)
        {
            return id.clone();
        }
        self.junk_id(rng)
    }

    /// A list of ids, with repeats and junk now and then.
    fn ids(&mut self, rng: &mut Rng, from: &[String]) -> Vec<String> {
        let mut ids = if rng.chance(0.3) { from.to_vec() } else { rng.subset(from) };
        if rng.chance(0.2) {
            ids.push(self.id(rng));
        }
        if rng.chance(0.15)
            && let Some(again) = rng.pick(&ids).cloned()
        {
            ids.push(again);
        }
        rng.shuffle(&mut ids);
        ids
    }

    /// A node id: mostly a healthy one, sometimes any or junk.
    pub fn node(&mut self, rng: &mut Rng) -> String {
        let healthy: Vec<&Node> = self.nodes.iter().filter(|n| n.healthy).collect();
        match rng.below(10) {
            0 => self.junk_id(rng),
            1 => rng.pick(&self.nodes).map_or_else(String::new, |n| n.id.clone()),
            _ => rng.pick(&healthy).map_or_else(|| "n1".to_string(), |n| n.id.clone()),
        }
    }

    /// A version: one seen, one next to it, an extreme, or any.
    pub fn version(&self, rng: &mut Rng) -> Version {
        let seen = rng.pick(&self.versions).copied().unwrap_or(0);
        match rng.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => rng.below(10_000),
            3 => seen.saturating_add(1),
            4 => seen.saturating_sub(1),
            _ => seen,
        }
    }

    fn kind(&self, rng: &mut Rng) -> ServiceKind {
        *rng.pick(&KINDS).unwrap_or(&ServiceKind::Log)
    }

    /// The range of `tags` an honest plan would copy: from the oldest
    /// version a locked log holds of them through the smallest last.
    fn honest_range(&self, tags: &[ShardTag]) -> (Version, Version) {
        let last = self.locked_logs.iter().map(|l| l.last_version).min().unwrap_or(0);
        let first = self
            .locked_logs
            .iter()
            .flat_map(|l| l.shards.iter())
            .filter(|s| tags.contains(&s.tag))
            .map(|s| s.oldest_version)
            .min()
            .unwrap_or(1);
        (first, last)
    }
}

/// Runs the adversary as the phase in a slot. `next` is the slot's
/// successor in the default pipeline, when the caller knows it.
pub async fn run_phase<H: AdversaryHost>(seed: u64, state: AttemptState, host: &mut H, next: Option<&str>) -> PhaseOutcome {
    let mut rng = Rng::new(seed);
    let mut k = Knowledge::of(&state);
    if rng.chance(0.35) {
        solo_recovery(&mut rng, &mut k, &state, host).await;
    }
    for _ in 0..rng.below(16) {
        random_call(&mut rng, &mut k, &state, host).await;
    }
    let (state, written) = edit_state(&mut rng, &k, state);
    let step = random_step(&mut rng, next);
    PhaseOutcome { state, written, step }
}

/// One host call, chosen at random, with arguments aimed at what was seen.
async fn random_call<H: AdversaryHost>(rng: &mut Rng, k: &mut Knowledge, state: &AttemptState, host: &mut H) {
    match rng.below(12) {
        0 => {
            for service in host.services().await {
                k.ids.push(service.id);
            }
        }
        1 => k.nodes = host.nodes().await,
        2 | 3 => {
            let pool = if rng.chance(0.7) { [k.old_logs.clone(), k.old_storage.clone()].concat() } else { k.ids.clone() };
            let ids = k.ids(rng, &pool);
            let replies = host.lock(ids.clone()).await;
            for (id, reply) in ids.iter().zip(replies) {
                if let Ok(info) = reply {
                    k.learn_lock(id, &info);
                }
            }
        }
        4 if rng.chance(0.5) => {
            let (node, kind) = (k.node(rng), k.kind(rng));
            if let Ok(service) = host.create_worker(node, kind).await {
                k.learn_created(&service);
            }
        }
        4 => {
            // Any kinds, any nodes, the same node twice now and then.
            let requests: Vec<(String, ServiceKind)> = (0..rng.below(5)).map(|_| (k.node(rng), k.kind(rng))).collect();
            for service in host.create_workers(requests).await.into_iter().flatten() {
                k.learn_created(&service);
            }
        }
        5 => {
            let (node, kind) = (k.node(rng), k.kind(rng));
            if let Ok(service) = host.start_role(node, kind).await {
                k.learn_created(&service);
            }
        }
        6 | 7 => random_recovery(rng, k, host).await,
        8 => {
            let layout = plausible_layout(rng, k, state);
            let layout = edit_layout(rng, k, layout);
            k.staged = Some(layout.clone());
            let _ = host.stage_layout(layout).await;
        }
        9 => {
            let named: Vec<String> = k.staged.iter().flat_map(members).collect();
            let ids = k.ids(rng, &named);
            let _ = host.unlock(ids).await;
        }
        10 => {
            let _ = host.persist_layout().await;
        }
        _ => {
            if rng.chance(0.2) {
                host.sleep_ms(rng.below(30)).await;
            } else {
                let request = random_request(rng, k);
                let _ = host.place(request).await;
            }
        }
    }
}

/// Copies into some logs of some shards over some ranges: mostly close to
/// what an honest plan would copy, now and then far off or inverted; one
/// `recover-log`, or a `recover-logs` of up to four copies, now and then
/// two into one target.
async fn random_recovery<H: AdversaryHost>(rng: &mut Rng, k: &mut Knowledge, host: &mut H) {
    if rng.chance(0.5) {
        let copy = random_copy(rng, k);
        let _ = host.recover_log(copy.target, copy.sources, copy.tags, copy.first, copy.last).await;
        return;
    }
    let mut copies: Vec<LogCopy> = (0..rng.below(5)).map(|_| random_copy(rng, k)).collect();
    if rng.chance(0.2)
        && let Some(again) = rng.pick(&copies).cloned()
    {
        copies.push(again);
    }
    let _ = host.recover_logs(copies).await;
}

/// One copy, as [`random_recovery`] makes them.
fn random_copy(rng: &mut Rng, k: &mut Knowledge) -> LogCopy {
    let logs = k.created_of(ServiceKind::Log);
    let target = match rng.pick(&logs) {
        Some(log) if rng.chance(0.8) => log.id.clone(),
        _ => k.id(rng),
    };
    let sources = {
        let locked: Vec<String> = k.locked_logs.iter().map(|l| l.id.clone()).collect();
        let pool = if rng.chance(0.8) { locked } else { k.old_logs.clone() };
        let mut sources = k.ids(rng, &pool);
        if sources.is_empty() && rng.chance(0.8) {
            sources.extend(pool.first().cloned());
        }
        sources
    };
    let mut tags = if rng.chance(0.5) { k.shards.clone() } else { rng.subset(&k.shards) };
    if rng.chance(0.1) {
        tags.push(*rng.pick(&[999, u32::MAX]).unwrap_or(&999));
    }
    if rng.chance(0.1)
        && let Some(again) = rng.pick(&tags).copied()
    {
        tags.push(again);
    }
    let (mut first, mut last) = k.honest_range(&tags);
    match rng.below(8) {
        0 => first = first.saturating_add(1),
        1 => last = last.saturating_sub(1),
        2 => last = last.saturating_add(1),
        3 => (first, last) = (last, first),
        4 => (first, last) = (k.version(rng), k.version(rng)),
        _ => {}
    }
    LogCopy { target, sources, tags, first, last }
}

/// A whole recovery carried out by one phase: lock, recruit, copy, start
/// the roles, stage, unlock and persist, each step now and then flawed.
async fn solo_recovery<H: AdversaryHost>(rng: &mut Rng, k: &mut Knowledge, state: &AttemptState, host: &mut H) {
    if !k.old_logs.is_empty() || !k.old_storage.is_empty() {
        let mut ids: Vec<String> = state.old_layout.iter().flat_map(|l| l.services.iter().map(|s| s.id.clone())).collect();
        if rng.chance(0.2) {
            ids = rng.subset(&ids);
        }
        let replies = host.lock(ids.clone()).await;
        for (id, reply) in ids.iter().zip(replies) {
            if let Ok(info) = reply {
                k.learn_lock(id, &info);
            }
        }
    }
    k.nodes = host.nodes().await;
    let wanted_logs = state.config.desired_logs.clamp(1, 8);
    let mut logs = Vec::new();
    let batched = rng.chance(0.5);
    if batched {
        let requests: Vec<(String, ServiceKind)> = (0..wanted_logs).map(|_| (k.node(rng), ServiceKind::Log)).collect();
        for log in host.create_workers(requests).await.into_iter().flatten() {
            k.learn_created(&log);
            logs.push(log);
        }
    }
    for _ in 0..if batched { 0 } else { wanted_logs } {
        let node = k.node(rng);
        if let Ok(log) = host.create_worker(node, ServiceKind::Log).await {
            k.learn_created(&log);
            logs.push(log);
        }
    }
    // Every new log carries every shard, copied over the honest range
    // unless the flaw lands here.
    let tags = k.shards.clone();
    let (first, last) = k.honest_range(&tags);
    let sources: Vec<String> =
        k.locked_logs.iter().filter(|l| l.shards.iter().any(|s| tags.contains(&s.tag))).map(|l| l.id.clone()).collect();
    if !sources.is_empty() && first <= last {
        let mut copies = Vec::new();
        for log in &logs {
            let (mut from, mut to) = (first, last);
            if rng.chance(0.1) {
                from = from.saturating_add(1 + rng.below(3));
            }
            if rng.chance(0.1) {
                to = to.saturating_add(rng.below(3)).saturating_sub(rng.below(3));
            }
            copies.push(LogCopy { target: log.id.clone(), sources: sources.clone(), tags: tags.clone(), first: from, last: to });
        }
        if batched {
            let _ = host.recover_logs(copies).await;
        } else {
            for copy in copies {
                let _ = host.recover_log(copy.target, copy.sources, copy.tags, copy.first, copy.last).await;
            }
        }
    }
    for kind in [ServiceKind::Sequencer, ServiceKind::CommitProxy, ServiceKind::Resolver] {
        let node = k.node(rng);
        if let Ok(role) = host.start_role(node, kind).await {
            k.learn_created(&role);
        }
    }
    let layout = plausible_layout(rng, k, state);
    let layout = if rng.chance(0.3) { layout } else { edit_layout(rng, k, layout) };
    k.staged = Some(layout.clone());
    if host.stage_layout(layout.clone()).await.is_err() && rng.chance(0.7) {
        return;
    }
    let named = members(&layout);
    let ids = if rng.chance(0.8) { named } else { k.ids(rng, &named) };
    let _ = host.unlock(ids).await;
    let _ = host.persist_layout().await;
}

/// A layout as the default phases would stage it from what the state and
/// the adversary's own calls hold: the state's when it describes one,
/// else one made of the services the adversary created and the old teams.
fn plausible_layout(rng: &mut Rng, k: &Knowledge, state: &AttemptState) -> Layout {
    let mut state = state.clone();
    let pick = |kind| k.created.iter().filter(|s| s.kind == kind).cloned().collect::<Vec<_>>();
    if state.sequencer.is_none() || rng.chance(0.3) {
        state.sequencer = pick(ServiceKind::Sequencer).pop().or(state.sequencer);
    }
    if state.commit_proxies.is_empty() {
        state.commit_proxies = pick(ServiceKind::CommitProxy);
    }
    if state.resolvers.is_empty() {
        state.resolvers = pick(ServiceKind::Resolver);
    }
    let logs = pick(ServiceKind::Log);
    if state.new_logs.is_empty() || (!logs.is_empty() && rng.chance(0.5)) {
        state.new_logs = logs.iter().map(|l| LogAssignment { id: l.id.clone(), tags: k.shards.clone() }).collect();
    }
    if state.new_storage_teams.is_empty() {
        state.new_storage_teams = teams_from(k, &state);
    }
    let mut recruits: Vec<Recruit> = state.recruits.clone();
    for service in k.created.iter().filter(|s| matches!(s.kind, ServiceKind::Log | ServiceKind::Storage)) {
        if !recruits.iter().any(|r| r.service.id == service.id) {
            recruits.push(Recruit { vacancy_id: format!("v-{}", service.id), service: service.clone() });
        }
    }
    state.recruits = recruits;
    if state.recovery_version.is_none() {
        state.recovery_version = k.locked_logs.iter().map(|l| l.last_version).min();
    }
    assemble(&state).unwrap_or_else(|_| Layout {
        epoch: state.epoch,
        sequencer: state.sequencer.map(|s| s.id),
        commit_proxies: state.commit_proxies.iter().map(|s| s.id.clone()).collect(),
        resolvers: state.resolvers.iter().map(|s| s.id.clone()).collect(),
        logs: state.new_logs,
        storage_teams: state.new_storage_teams,
        services: state.recruits.into_iter().map(|r| r.service).collect(),
        recovery_version: state.recovery_version.unwrap_or(0),
    })
}

/// The old teams with the replicas the adversary locked, topped up with
/// storage it created; a new cluster's teams from created storage only.
fn teams_from(k: &Knowledge, state: &AttemptState) -> Vec<StorageTeam> {
    let mut created = k.created.iter().filter(|s| s.kind == ServiceKind::Storage).map(|s| s.id.clone());
    let replication = state.config.replication_factor.clamp(1, 5) as usize;
    if let Some(old) = &state.old_layout {
        return old
            .storage_teams
            .iter()
            .map(|t| {
                let mut ids: Vec<String> = t.storage_ids.iter().filter(|id| k.locked_storage.contains(id)).cloned().collect();
                while ids.len() < replication {
                    match created.next() {
                        Some(id) => ids.push(id),
                        None => break,
                    }
                }
                StorageTeam { tag: t.tag, key_range: t.key_range.clone(), storage_ids: ids, departing: Vec::new() }
            })
            .collect();
    }
    let shards = k.shards.len().max(1);
    (0..shards)
        .map(|i| {
            let bound = |i: usize| if i == 0 || i >= shards { String::new() } else { format!("{:x}", i * 16 / shards) };
            StorageTeam {
                tag: i as ShardTag,
                key_range: KeyRange { start: bound(i), end: bound(i + 1) },
                storage_ids: created.by_ref().take(replication).collect(),
                departing: Vec::new(),
            }
        })
        .collect()
}

/// A placement request of a few random groups, some of them huge.
fn random_request(rng: &mut Rng, k: &mut Knowledge) -> PlacementRequest {
    let groups = rng.below(4);
    let vacancies = (0..groups)
        .map(|_| PlacementVacancy {
            kind: k.kind(rng),
            count: *rng.pick(&[0, 1, 2, 3, 100, 250_000]).unwrap_or(&1),
            team: rng.chance(0.5).then(|| rng.pick(&k.shards).copied().unwrap_or(0)),
            constraints: PlacementConstraints {
                min_distinct_zones: rng.below(5) as u32,
                exclude_nodes: if rng.chance(0.2) { vec![k.node(rng)] } else { Vec::new() },
                required_capabilities: if rng.chance(0.2) { vec![k.kind(rng)] } else { Vec::new() },
                distinct_nodes: rng.chance(0.7),
            },
        })
        .collect();
    let teams = if rng.chance(0.5) {
        vec![TeamMembers { team: rng.pick(&k.shards).copied().unwrap_or(0), kind: ServiceKind::Storage, nodes: vec![k.node(rng)] }]
    } else {
        Vec::new()
    };
    PlacementRequest { vacancies, nodes: k.nodes.clone(), teams }
}

/// Random edits of the state, and a random list of the fields written,
/// host-owned ones included.
fn edit_state(rng: &mut Rng, k: &Knowledge, mut state: AttemptState) -> (AttemptState, Vec<StateField>) {
    let written: Vec<StateField> = if rng.chance(0.2) { ALL.to_vec() } else { rng.subset(ALL) };
    if rng.chance(0.05) {
        state.epoch = state.epoch.wrapping_add(1);
    }
    if rng.chance(0.03) {
        state.config.shards = state.config.shards.wrapping_add(1);
    }
    if rng.chance(0.1) {
        state.old_layout = if rng.chance(0.5) { None } else { k.staged.clone() };
    }
    if rng.chance(0.3) {
        state.locked_logs = k.locked_logs.clone();
        if rng.chance(0.3) {
            // Forged replies: versions that were never reported.
            for info in &mut state.locked_logs {
                info.last_version = k.version(rng);
                info.oldest_version = k.version(rng);
                info.shards = k.shards.iter().map(|tag| ShardRetention { tag: *tag, oldest_version: k.version(rng) }).collect();
            }
        }
    }
    if rng.chance(0.3) {
        state.path = *rng.pick(&[None, Some(RecoveryPath::Initialize), Some(RecoveryPath::Recover)]).unwrap_or(&None);
    }
    if rng.chance(0.4) {
        state.recovery_version = if rng.chance(0.2) { None } else { Some(k.version(rng)) };
    }
    if rng.chance(0.2) {
        state.new_layout = k.staged.clone();
    }
    if rng.chance(0.3) {
        state.new_logs =
            k.created_of(ServiceKind::Log).iter().map(|l| LogAssignment { id: l.id.clone(), tags: k.shards.clone() }).collect();
    }
    if rng.chance(0.2) {
        state.sequencer = k.created_of(ServiceKind::Sequencer).pop();
        state.commit_proxies = k.created_of(ServiceKind::CommitProxy);
        state.resolvers = k.created_of(ServiceKind::Resolver);
    }
    if rng.chance(0.2) {
        state.recruits = k
            .created
            .iter()
            .filter(|s| matches!(s.kind, ServiceKind::Log | ServiceKind::Storage))
            .map(|s| Recruit { vacancy_id: format!("v-{}", s.id), service: s.clone() })
            .collect();
    }
    if rng.chance(0.1) {
        state.vacancies.clear();
    }
    (state, written)
}

fn random_step(rng: &mut Rng, next: Option<&str>) -> PhaseStep {
    match rng.below(20) {
        0..=6 => match next {
            Some(next) => PhaseStep::Next(next.to_string()),
            None => PhaseStep::Next(rng.pick(&PHASES).unwrap_or(&"persist-layout").to_string()),
        },
        7..=11 => PhaseStep::Next(rng.pick(&PHASES).unwrap_or(&"initialize").to_string()),
        12 => PhaseStep::Next("no-such-phase".into()),
        13..=16 => PhaseStep::Completed,
        17..=18 => PhaseStep::Stalled("the adversary stalls".into()),
        _ => PhaseStep::Failed("the adversary fails".into()),
    }
}
