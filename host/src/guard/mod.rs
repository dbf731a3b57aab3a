//! The invariant guard: every host call a phase makes during an attempt goes
//! through here, and every rule that protects the cluster is checked here,
//! whatever the plugin asks and in whatever order (see `docs/invariants.md`).
//!
//! The guard judges from facts the host holds itself (`facts.rs`): the
//! persisted old layout, the lock replies, its own records of the services
//! it created and of what each new log recovered. It never trusts a phase's
//! name or a field a plugin wrote.
//!
//! - I2 lock precedence: a rejection for a newer epoch marks the attempt
//!   superseded, whatever the plugin does next.
//! - I3 selective locking: only services named in the old layout may be
//!   locked; recruits are locked by the host when created.
//! - I4 locked before use: a copy goes into a log this attempt recruited,
//!   from old logs it locked, and only before the layout is fixed; unlock
//!   needs the lock.
//! - I6, S1–S4: a layout is checked (`layout_check.rs`) when staged, again
//!   when an unlock or a persist first uses it, and again on persist.
//!   Services are handed the staged layout only, and it is fixed once an
//!   unlock or a persist has used it, so the layout persisted is the one
//!   they were handed.
//! - S5: at unlock, each storage replica is brought to the recovery version
//!   before it serves, by the director's replica recovery
//!   ([`ReplicasBeforeUnlock`]) on the checked layout; a plan or session the
//!   host refuses is refused here. A replica that holds none of the old
//!   generation, in a team with the replication factor's whole copies
//!   without it, and an old replica the logs can no longer catch up, with
//!   a teammate that holds the shard, join after the layout persists
//!   ([`AttemptGuard::bring_up_joining`]).
//! - S6: bad arguments are refused ([`arguments`]), never a panic.
//! - I7 fenced persistence: the store's compare-and-swap on the epoch.
//! - I8 superseded directors stop: once superseded, every call fails.
//!
//! I1 lives in the coordinator store, I9 in the runtime and the director,
//! which sees the steps phases return and the failures of their calls.

pub mod arguments;
mod facts;
mod layout_check;
pub mod placement_check;
mod rules;

pub use rules::{Invariant, Refusal};

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facts::{Ledger, OldGeneration, Record};

use crate::bindings::kind_name;
use crate::bindings::types::{
    Assignment, AttemptState, ClusterError, Epoch, Layout, LockInfo, LogCopy, Node, PhaseOutcome, PlacementError, PlacementRequest,
    RecoveryConfig, ReplicaHistory, ReplicaPlan, ServiceDescriptor, ServiceKind, ShardTag, Version,
};
use crate::cluster::Cluster;
use crate::registry::{InvokeError, PLACEMENT, Plugins, REPLICA};
use crate::replica::LayoutIndex;
use crate::runtime::{HostCall, HostReply, PluginHost};
use crate::store::{CoordinatorStore, StoreError};

/// What brings each storage replica a layout names to the layout's recovery
/// version before it serves it: the director's replica recovery. The guard
/// calls it at unlock, on the checked layout, for the ids it let through.
#[async_trait::async_trait]
pub trait ReplicasBeforeUnlock: Send + Sync {
    /// Brings replica `id` up to the recovery version of the indexed layout
    /// (nothing when it is not one of its storage replicas);
    /// `ClusterError::Refused` when the host's check of its plan, or its
    /// session, refused it. `plugins` asks the replica recovery policy on
    /// the attempt's behalf.
    async fn bring_up(&self, plugins: &dyn Plugins, layout: &LayoutIndex<'_>, epoch: Epoch, id: &str) -> Result<(), ClusterError>;

    /// Whether replica `id` was escalated in `epoch` and not rebuilt
    /// since: whatever it holds, its next bring-up rebuilds it whole.
    fn must_rebuild(&self, id: &str, epoch: Epoch) -> bool;
}

/// The host of one attempt's phases, behind the invariant checks.
pub struct AttemptGuard {
    epoch: Epoch,
    config: RecoveryConfig,
    old: OldGeneration,
    cluster: Arc<dyn Cluster>,
    store: Arc<dyn CoordinatorStore>,
    registry: Arc<dyn Plugins>,
    /// The director's replica recovery, which `unlock` runs replicas
    /// through.
    replicas: Arc<dyn ReplicasBeforeUnlock>,
    /// Where the plugins' `clock` starts: tokio's clock, so virtual under
    /// simulation.
    origin: tokio::time::Instant,
    ledger: Mutex<Ledger>,
    /// Time spent in host calls, in nanoseconds: a phase's wall time minus
    /// this is the time spent in wasm (instantiation, the guest, the copies).
    host_nanos: AtomicU64,
}

/// Adds the time until it is dropped to the guard's host time.
struct HostTimer<'a> {
    started: Instant,
    total: &'a AtomicU64,
}

impl Drop for HostTimer<'_> {
    fn drop(&mut self) {
        self.total.fetch_add(self.started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

impl AttemptGuard {
    /// A guard for the attempt at `epoch` recovering from `old_layout`.
    pub fn new(
        epoch: Epoch,
        config: RecoveryConfig,
        old_layout: Option<Layout>,
        cluster: Arc<dyn Cluster>,
        store: Arc<dyn CoordinatorStore>,
        registry: Arc<dyn Plugins>,
        replicas: Arc<dyn ReplicasBeforeUnlock>,
    ) -> Self {
        AttemptGuard {
            epoch,
            config,
            old: OldGeneration::new(old_layout),
            cluster,
            store,
            registry,
            replicas,
            origin: tokio::time::Instant::now(),
            ledger: Mutex::default(),
            host_nanos: AtomicU64::new(0),
        }
    }

    fn timer(&self) -> HostTimer<'_> {
        HostTimer { started: Instant::now(), total: &self.host_nanos }
    }

    /// Whether storage replica `id` of `layout` joins its team only after
    /// the layout persists, which then serves without waiting for a copy
    /// that grows with the data. Only when the cluster has an old
    /// generation, and either:
    ///
    /// - it holds none of the old generation yet (this attempt recruited
    ///   it, or it was still joining the old generation: its lock showed it
    ///   below the old recovery version), and its team has as many replicas
    ///   that hold it as the replication factor asks, departing replicas
    ///   counted (each holds the shard through the version the host last
    ///   saw it durable at, and the new logs keep the rest). A team with fewer
    ///   would persist with fewer whole copies than the old layout named: a
    ///   replica it replaced may come back with its data, but only the old
    ///   layout names it, and a second failure before the newcomer is
    ///   seeded would lose acknowledged writes (the simulator's zone-loss
    ///   seeds 23,732 and 25,465 found this); or
    /// - it is a replica of the same shard in the old layout, behind every
    ///   version the shard's old logs still hold (stranded: only a copy
    ///   from a teammate brings it back), and a teammate holds the shard.
    ///   The layout names the same copies whether it persists before the
    ///   copy or after, so it persists first: a copy of a large shard
    ///   would otherwise stop commits for as long as it runs.
    fn joins_later(&self, layout: &Layout, id: &str) -> bool {
        if self.old.names.is_empty() {
            return false;
        }
        let ledger = self.ledger();
        let Some(team) = layout.storage_teams.iter().find(|t| t.storage_ids.iter().any(|s| s == id)) else { return false };
        let empty = |id: &str| match ledger.locks.get(id) {
            Some(LockInfo::Storage(info)) => info.durable_version < self.old.recovery_version,
            Some(_) => false,
            None => ledger.records.get(id).is_some_and(|r| r.descriptor.kind == ServiceKind::Storage),
        };
        let stranded = |id: &str| ledger.behind_logs(&self.old, team.tag, id);
        if empty(id) {
            // A departing replica is a copy until its replacement is whole.
            let whole = self.config.replication_factor as usize;
            return team.storage_ids.iter().filter(|s| !empty(s)).count() + team.departing.len() >= whole;
        }
        stranded(id) && team.storage_ids.iter().any(|s| s != id && !empty(s) && !stranded(s))
    }

    /// The recruited replicas that join the persisted layout and do not
    /// serve it yet.
    pub fn joining(&self) -> Vec<String> {
        let ledger = self.ledger();
        ledger.joining.iter().filter(|id| !ledger.unlocked.contains(*id)).cloned().collect()
    }

    /// Brings each replica joining the persisted layout up and lets it
    /// serve: it is seeded from a teammate as of the version its team has
    /// reached by now (the recovery version at least), then unlocked, and
    /// the pump catches it up from there like any replica that lags. The
    /// replica recovery is the one unlock runs (the policy, the host's
    /// checks of its plan, the session). Answers each replica's result.
    pub async fn bring_up_joining(&self) -> Vec<(String, Result<(), ClusterError>)> {
        let Some(layout) = self.persisted() else { return Vec::new() };
        let layout = &layout;
        let joins = self.joining().into_iter().map(|id| async move {
            let joined = self.join(layout, &id).await;
            (id, joined)
        });
        futures::future::join_all(joins).await
    }

    async fn join(&self, layout: &Layout, id: &str) -> Result<(), ClusterError> {
        self.live()?;
        let team = layout
            .storage_teams
            .iter()
            .find(|t| t.storage_ids.iter().any(|s| s == id))
            .ok_or_else(|| ClusterError::NotFound(format!("{id} is in no storage team of epoch {}", self.epoch)))?;
        let joining = self.joining();
        let mut reached = layout.recovery_version;
        let mut states = Vec::new();
        for mate in team.storage_ids.iter().filter(|s| *s != id && !joining.contains(s)) {
            if let Ok(state) = self.cluster.replica_state(mate).await {
                reached = reached.max(state.0);
                states.push((mate.clone(), state));
            }
        }
        if let Some((_, err)) = self.cut_back_returned(layout, std::iter::once(id)).await.pop() {
            return Err(err);
        }
        // Past the cut, what the replica holds came from this epoch's moves:
        // a copy from a teammate, or the live generation's logs applied by
        // the pump once a join's unlock got through (a retry after its
        // reply was lost). That is committed data, which a target below it
        // would truncate (the simulator's `default --retention 20` seed
        // 98,511 rolled an acknowledged version back that way).
        // Its state, asked once, is where its session starts too.
        // A replica to be rebuilt whole keeps nothing it holds, and what
        // it holds counts for nothing: the cut it needed did not happen.
        if !self.replicas.must_rebuild(id, self.epoch)
            && let Ok(state) = self.cluster.replica_state(id).await
        {
            reached = reached.max(state.0);
            states.push((id.to_string(), state));
        }
        let target = Layout { recovery_version: reached, ..layout.clone() };
        // The teammates' states just asked are what the copy chooses its
        // source from.
        self.bring_up(&LayoutIndex::new(&target).with_states(states), id).await?;
        self.note(self.cluster.unlock(id, self.epoch, layout).await)?;
        self.ledger().unlocked.insert(id.to_string());
        Ok(())
    }

    /// Time spent in host calls so far (placement policies excluded: they
    /// run in wasm).
    pub fn host_time(&self) -> Duration {
        Duration::from_nanos(self.host_nanos.load(Ordering::Relaxed))
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The attempt's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The newer epoch that superseded this attempt, if any.
    pub fn superseded(&self) -> Option<Epoch> {
        self.ledger().superseded
    }

    /// The layout this attempt persisted, if it did.
    pub fn persisted(&self) -> Option<Layout> {
        let ledger = self.ledger();
        ledger.staged.as_deref().filter(|_| ledger.persisted).cloned()
    }

    /// The layout staged since the last call, if one was: the attempt's
    /// `new-layout` from now on.
    pub(crate) fn take_newly_staged(&self) -> Option<Layout> {
        let mut ledger = self.ledger();
        if !std::mem::take(&mut ledger.staged_changed) {
            return None;
        }
        ledger.staged.as_deref().cloned()
    }

    /// Everything this attempt created, in creation order.
    pub fn created(&self) -> Vec<String> {
        self.ledger().created.clone()
    }

    /// Every refusal so far.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.ledger().refusals.clone()
    }

    /// Old services locked by this attempt.
    pub fn locked(&self) -> BTreeSet<String> {
        self.ledger().locks.keys().cloned().collect()
    }

    /// Workers (logs and storage) recruited by this attempt.
    pub fn recruited(&self) -> BTreeSet<String> {
        let ledger = self.ledger();
        let workers = ledger.records.iter().filter(|(_, r)| matches!(r.descriptor.kind, ServiceKind::Log | ServiceKind::Storage));
        workers.map(|(id, _)| id.clone()).collect()
    }

    /// A plugin call made on the attempt's behalf (placement, replica
    /// recovery) that failed since the last call: its slot and failure.
    pub fn take_nested_failure(&self) -> Option<(String, String)> {
        self.ledger().nested_failure.take()
    }

    /// Records the recovery version the attempt's phases settled on: where
    /// a sequencer started from now on begins. Only a proposal: a layout is
    /// checked against what the sequencer really started at.
    pub(crate) fn observe_recovery_version(&self, version: Option<Version>) {
        if let Some(version) = version {
            self.ledger().proposed_start = version;
        }
    }

    /// Records `refusal` and answers the error the plugin gets for it.
    fn refuse(&self, refusal: Refusal) -> ClusterError {
        let error = ClusterError::Refused(refusal.to_string());
        self.record(refusal);
        error
    }

    /// Records `refusal` for the attempt's report.
    fn record(&self, refusal: Refusal) {
        tracing::warn!(epoch = self.epoch, rule = %refusal.rule, reason = %refusal.message, "invariant guard refused a call");
        self.ledger().refusals.push(refusal);
    }

    /// I8: every call of a superseded attempt fails.
    fn live(&self) -> Result<(), ClusterError> {
        match self.superseded() {
            Some(newer) => Err(ClusterError::Superseded(newer)),
            None => Ok(()),
        }
    }

    /// I2: a rejection for a newer epoch supersedes the attempt. A service
    /// restarted since this epoch locked it refuses this epoch too: that
    /// fences this attempt out of the service, but supersedes nothing.
    fn note<T>(&self, result: Result<T, ClusterError>) -> Result<T, ClusterError> {
        match result {
            Err(ClusterError::Superseded(fence)) if fence <= self.epoch => Err(ClusterError::Failed(format!(
                "fenced at epoch {fence}: the service restarted since epoch {fence} locked it, and only a newer epoch may take it over"
            ))),
            Err(ClusterError::Superseded(newer)) => {
                let mut ledger = self.ledger();
                if ledger.superseded.is_none() {
                    tracing::warn!(epoch = self.epoch, newer, "attempt superseded");
                    ledger.superseded = Some(newer);
                }
                Err(ClusterError::Superseded(newer))
            }
            result => result,
        }
    }

    /// The staged layout for `call` (an unlock or a persist). The first use
    /// checks it again, against everything recorded since it was staged,
    /// and fixes it.
    fn use_staged(&self, call: &str) -> Result<Arc<Layout>, ClusterError> {
        let checked = {
            let mut ledger = self.ledger();
            match ledger.staged.clone() {
                None => Err(Refusal::new(Invariant::LayoutClosure, format!("{call} before a layout was staged"))),
                Some(staged) if ledger.staged_fixed => Ok(staged),
                Some(staged) => self.recheck(&mut ledger, &staged).map(|()| {
                    ledger.staged_fixed = true;
                    staged
                }),
            }
        };
        checked.map_err(|refusal| self.refuse(refusal))
    }

    fn check(&self, ledger: &Ledger, layout: &Layout) -> Result<(), Refusal> {
        layout_check::check_layout(self.epoch, &self.config, &self.old, ledger, layout)
    }

    /// Checks the staged layout again, unless nothing it is checked against
    /// has changed since it last passed.
    fn recheck(&self, ledger: &mut Ledger, staged: &Layout) -> Result<(), Refusal> {
        if ledger.staged_checked_at == Some(ledger.changes) {
            return Ok(());
        }
        self.check(ledger, staged)?;
        ledger.staged_checked_at = Some(ledger.changes);
        Ok(())
    }

    /// S6 and I4 for `recover-log`: a copy into a log this attempt
    /// recruited, of shards of the old layout, from old logs it locked
    /// that hold the whole range of every shard copied (S3).
    fn check_recovery(
        &self,
        ledger: &Ledger,
        target: &str,
        sources: &[String],
        tags: &[ShardTag],
        first: Version,
        last: Version,
    ) -> Result<(), Refusal> {
        if ledger.staged_fixed {
            return Err(Refusal::new(
                Invariant::LockedBeforeUse,
                format!("recovery of {target} after the layout was fixed: its services may already serve it"),
            ));
        }
        arguments::range(first, last)?;
        arguments::bounded("sources", sources.len())?;
        arguments::bounded("shards", tags.len())?;
        if tags.is_empty() || sources.is_empty() {
            return Err(Refusal::new(Invariant::ArgumentsChecked, "a recovery names no shard or no source".to_string()));
        }
        arguments::distinct("shard", tags)?;
        arguments::distinct("source", sources)?;
        match ledger.records.get(target) {
            Some(Record { descriptor, .. }) if descriptor.kind == ServiceKind::Log => {}
            _ => {
                return Err(Refusal::new(
                    Invariant::LockedBeforeUse,
                    format!("recover target {target} is not a log recruited by epoch {}", self.epoch),
                ));
            }
        }
        if let Some(tag) = tags.iter().find(|tag| !self.old.shards.contains_key(tag)) {
            return Err(Refusal::new(Invariant::ArgumentsChecked, format!("shard {tag} is not a shard of the old layout")));
        }
        // Every source's lock first (I4), then what each holds (S3).
        let mut locked = Vec::with_capacity(sources.len());
        for source in sources {
            let Some(info) = ledger.locked_log(source) else {
                return Err(Refusal::new(
                    Invariant::LockedBeforeUse,
                    format!("copy source {source} is not an old log locked by epoch {}", self.epoch),
                ));
            };
            locked.push((source, info));
        }
        for (source, info) in locked {
            let carried = self.old.logs.get(source);
            for tag in tags {
                if !carried.is_some_and(|c| c.contains(tag)) {
                    return Err(Refusal::new(
                        Invariant::FaithfulLayout,
                        format!("copy source {source} does not carry shard {tag} in the old layout"),
                    ));
                }
                let oldest = ledger.held_from(source, *tag);
                // No version 0 is ever issued: a range from 0 starts at 1.
                if oldest.is_none_or(|oldest| oldest > first.max(1)) || info.last_version < last {
                    let held = oldest.map_or("none of it".to_string(), |o| format!("[{o}, {}]", info.last_version));
                    return Err(Refusal::new(
                        Invariant::FaithfulLayout,
                        format!("copy source {source} holds {held} of shard {tag}, not [{first}, {last}]"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The storage zone requirement of a placement request: a group that
    /// joins a storage team asks its nodes, with the team's current
    /// members, to span as many zones as the team can (S3). The layout
    /// staged from the answer is held to the same rule.
    fn check_placement_request(&self, ledger: &Ledger, request: &PlacementRequest) -> Result<(), Refusal> {
        arguments::placement_size(request)?;
        let Some(zones) = ledger.zones() else { return Ok(()) };
        for (index, group) in request.vacancies.iter().enumerate() {
            let (ServiceKind::Storage, Some(team)) = (group.kind, group.team) else { continue };
            let members: Vec<&str> = request
                .teams
                .iter()
                .filter(|t| t.team == team && t.kind == ServiceKind::Storage)
                .flat_map(|t| t.nodes.iter().map(String::as_str))
                .collect();
            if let Some(node) = members.iter().find(|node| !self.hosts_replica_of(ledger, node, team)) {
                return Err(Refusal::new(
                    Invariant::FaithfulLayout,
                    format!(
                        "placement group {index} lists {node} as a member of storage team {team}, but no replica of it this attempt holds is there"
                    ),
                ));
            }
            let member_zones: BTreeSet<&str> = members.iter().filter_map(|n| zones.of(n)).collect();
            let required = zones.team_can_span(self.config.replication_factor, member_zones.len(), group.count);
            if group.constraints.min_distinct_zones < required {
                return Err(Refusal::new(
                    Invariant::FaithfulLayout,
                    format!(
                        "placement group {index} for storage team {team} asks for {} distinct zones; the team can span {required}",
                        group.constraints.min_distinct_zones
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether a storage replica of `team` that this attempt holds lives on
    /// `node`: an old replica of the team it locked, or a replica it
    /// recruited.
    fn hosts_replica_of(&self, ledger: &Ledger, node: &str, team: ShardTag) -> bool {
        let recruited = ledger.records.values().any(|r| r.descriptor.kind == ServiceKind::Storage && r.descriptor.node == node);
        let replicas = self.old.shards.get(&team).map(|s| s.replicas.as_slice()).unwrap_or_default();
        recruited
            || replicas.iter().any(|id| {
                matches!(ledger.locks.get(id), Some(LockInfo::Storage(_))) && self.old.descriptors.get(id).is_some_and(|d| d.node == node)
            })
    }

    /// Lists the nodes, and records them for the checks.
    async fn list_nodes(&self) -> Vec<Node> {
        let nodes = self.cluster.nodes().await;
        self.ledger().listed(&nodes);
        nodes
    }

    fn nested_failed(&self, slot: &str, err: &InvokeError) {
        self.ledger().nested_failure = Some((slot.to_string(), err.to_string()));
    }
}

/// The services a layout names in its roles, logs and teams, once or more.
fn members(layout: &Layout) -> impl Iterator<Item = &str> {
    let roles = layout.sequencer.iter().chain(&layout.commit_proxies).chain(&layout.resolvers);
    let logs = layout.logs.iter().map(|l| l.id.as_str());
    let storage = layout.storage_teams.iter().flat_map(|t| t.storage_ids.iter());
    roles.map(String::as_str).chain(logs).chain(storage.map(String::as_str))
}

/// Every service id a layout names, its descriptors' included, once or more.
fn names(layout: &Layout) -> impl Iterator<Item = &str> {
    layout.services.iter().map(|s| s.id.as_str()).chain(members(layout))
}

/// Every service id a layout names as serving its generation (its
/// departing replicas are not: see [`kept_services`]).
pub fn named_services(layout: &Layout) -> BTreeSet<String> {
    names(layout).map(String::from).collect()
}

/// Every service a layout needs kept: the ones it names and its departing
/// replicas, copies of their shards until their replacements are whole.
/// Housekeeping releases any other.
pub fn kept_services(layout: &Layout) -> BTreeSet<String> {
    let departing = layout.storage_teams.iter().flat_map(|t| t.departing.iter().map(|d| d.service.id.as_str()));
    names(layout).chain(departing).map(String::from).collect()
}

/// The plugins replica recovery and placement call on the attempt's
/// behalf: their failures are recorded against their own slot, so an
/// attempt stalled by a failing policy names the policy, not the phase
/// that asked it.
struct Nested<'a> {
    guard: &'a AttemptGuard,
}

#[async_trait::async_trait]
impl Plugins for Nested<'_> {
    async fn run_phase(&self, slot: &str, state: &AttemptState, host: Arc<dyn PluginHost>) -> Result<PhaseOutcome, InvokeError> {
        self.guard.registry.run_phase(slot, state, host).await
    }

    async fn place(&self, request: &PlacementRequest) -> Result<Result<Vec<Assignment>, PlacementError>, InvokeError> {
        let answer = self.guard.registry.place(request).await;
        if let Err(err) = &answer {
            self.guard.nested_failed(PLACEMENT, err);
        }
        answer
    }

    async fn replica_plan(&self, history: &ReplicaHistory) -> Result<ReplicaPlan, InvokeError> {
        let plan = self.guard.registry.replica_plan(history).await;
        if let Err(err) = &plan {
            self.guard.nested_failed(REPLICA, err);
        }
        plan
    }
}

/// The guard answers a phase's host calls: each is checked against the
/// invariants before it reaches the cluster, the store or the placement
/// policy.
#[async_trait::async_trait]
impl PluginHost for AttemptGuard {
    async fn answer(&self, call: HostCall) -> HostReply {
        match call {
            HostCall::Services => HostReply::Services(self.services().await),
            HostCall::Nodes => HostReply::Nodes(self.nodes().await),
            HostCall::Lock { ids } => HostReply::Locked(self.lock(ids).await),
            HostCall::CreateWorker { node, kind } => HostReply::Started(self.create_worker(node, kind).await),
            HostCall::CreateWorkers { requests } => HostReply::StartedEach(self.create_workers(requests).await),
            HostCall::RecoverLogs { copies } => HostReply::DoneEach(self.recover_logs(copies).await),
            HostCall::RecoverLog { target, sources, tags, first, last } => {
                HostReply::Done(self.recover_log(target, sources, tags, first, last).await)
            }
            HostCall::StartRole { node, kind } => HostReply::Started(self.start_role(node, kind).await),
            HostCall::KnownDurable { ids } => HostReply::Versions(self.known_durable(&ids)),
            HostCall::StageLayout(layout) => HostReply::Done(self.stage_layout(*layout).await),
            HostCall::Unlock { ids } => HostReply::Unlocked(self.unlock(ids).await),
            HostCall::PersistLayout => HostReply::Done(self.persist_layout().await),
            HostCall::Place(request) => HostReply::Placed(self.place(*request).await),
            HostCall::NowMs => HostReply::Now(self.origin.elapsed().as_millis() as u64),
            HostCall::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(ms.min(arguments::MAX_SLEEP_MS))).await;
                HostReply::Slept
            }
        }
    }
}

impl AttemptGuard {
    async fn services(&self) -> Vec<ServiceDescriptor> {
        let _timer = self.timer();
        self.cluster.services().await
    }

    async fn nodes(&self) -> Vec<Node> {
        let _timer = self.timer();
        self.list_nodes().await
    }

    async fn lock(&self, ids: Vec<String>) -> Vec<Result<LockInfo, ClusterError>> {
        let _timer = self.timer();
        if let Err(err) = self.live() {
            return ids.iter().map(|_| Err(err.clone())).collect();
        }
        if let Err(refusal) = arguments::bounded("ids", ids.len()) {
            let err = self.refuse(refusal);
            return ids.iter().map(|_| Err(err.clone())).collect();
        }
        let repeats = arguments::repeats(&ids);
        let calls = ids.iter().zip(repeats).map(|(id, repeat)| async move {
            if repeat {
                return Err(self.refuse(arguments::repeated(id)));
            }
            if !self.old.names.contains(id) {
                return Err(self.refuse(Refusal::new(
                    Invariant::SelectiveLocking,
                    format!("{id} is not named in the old layout and may not be locked"),
                )));
            }
            let result = self.note(self.cluster.lock(id, self.epoch).await);
            if let Ok(info) = &result {
                self.ledger().locked(id, info);
            }
            result
        });
        futures::future::join_all(calls).await
    }

    fn known_durable(&self, ids: &[String]) -> Result<Vec<Option<Version>>, ClusterError> {
        self.live()?;
        arguments::bounded("ids", ids.len()).map_err(|refusal| self.refuse(refusal))?;
        Ok(ids.iter().map(|id| self.cluster.known_durable(id)).collect())
    }

    async fn create_worker(&self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        let _timer = self.timer();
        self.create(&node, kind).await
    }

    async fn create_workers(&self, requests: Vec<(String, ServiceKind)>) -> Vec<Result<ServiceDescriptor, ClusterError>> {
        let _timer = self.timer();
        if let Err(refusal) = arguments::bounded("workers", requests.len()) {
            let err = self.refuse(refusal);
            return requests.iter().map(|_| Err(err.clone())).collect();
        }
        futures::future::join_all(requests.iter().map(|(node, kind)| self.create(node, *kind))).await
    }

    /// One `create-worker`, timed by its caller.
    async fn create(&self, node: &str, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        self.live()?;
        if !matches!(kind, ServiceKind::Log | ServiceKind::Storage) {
            return Err(self.refuse(Refusal::new(
                Invariant::ArgumentsChecked,
                format!("create-worker makes logs and storage servers; a {} is started with start-role", kind_name(kind)),
            )));
        }
        let created = self.note(self.cluster.create_worker(node, kind, self.epoch).await)?;
        self.ledger().created(&created, None);
        Ok(created)
    }

    async fn recover_log(
        &self,
        target: String,
        sources: Vec<String>,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError> {
        let _timer = self.timer();
        self.recover(LogCopy { target, sources, tags, first, last }).await
    }

    async fn recover_logs(&self, copies: Vec<LogCopy>) -> Vec<Result<(), ClusterError>> {
        let _timer = self.timer();
        if let Err(refusal) = arguments::bounded("copies", copies.len()) {
            let err = self.refuse(refusal);
            return copies.iter().map(|_| Err(err.clone())).collect();
        }
        let targets: Vec<String> = copies.iter().map(|c| c.target.clone()).collect();
        let repeats = arguments::repeats(&targets);
        let calls = copies.into_iter().zip(repeats).map(|(copy, repeat)| async move {
            if repeat {
                return Err(self.refuse(Refusal::new(
                    Invariant::ArgumentsChecked,
                    format!("{} is the target of two copies in one call: copies into one log are made one after another", copy.target),
                )));
            }
            self.recover(copy).await
        });
        futures::future::join_all(calls).await
    }

    /// One `recover-log`, timed by its caller.
    async fn recover(&self, copy: LogCopy) -> Result<(), ClusterError> {
        let LogCopy { target, sources, tags, first, last } = copy;
        self.live()?;
        let checked = self.check_recovery(&self.ledger(), &target, &sources, &tags, first, last);
        checked.map_err(|refusal| self.refuse(refusal))?;
        self.note(self.cluster.recover_log(self.epoch, &target, &sources, &tags, first, last).await)?;
        let mut ledger = self.ledger();
        for tag in tags {
            ledger.recovered(&target, tag, first, last);
        }
        Ok(())
    }

    async fn start_role(&self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        let _timer = self.timer();
        self.live()?;
        if !matches!(kind, ServiceKind::Sequencer | ServiceKind::CommitProxy | ServiceKind::Resolver) {
            return Err(self.refuse(Refusal::new(
                Invariant::ArgumentsChecked,
                format!("start-role starts stateless roles; a {} is recruited with create-worker", kind_name(kind)),
            )));
        }
        let start = self.ledger().proposed_start;
        let started = self.note(self.cluster.start_role(&node, kind, self.epoch, start).await)?;
        self.ledger().created(&started, (kind == ServiceKind::Sequencer).then_some(start));
        Ok(started)
    }

    async fn stage_layout(&self, layout: Layout) -> Result<(), ClusterError> {
        let _timer = self.timer();
        self.live()?;
        // The teams' zones are judged against the nodes as the host knows them.
        if self.ledger().nodes.is_none() {
            self.list_nodes().await;
        }
        // A departing replica counts as a copy only through what the host
        // itself last saw it hold.
        let floors: Vec<(String, Version)> = layout
            .storage_teams
            .iter()
            .flat_map(|t| &t.departing)
            .filter_map(|d| Some((d.service.id.clone(), self.cluster.known_durable(&d.service.id)?)))
            .collect();
        // Checked and taken under one lock, so no unlock or persist can use
        // the staged layout in between.
        let refused = {
            let mut ledger = self.ledger();
            ledger.seen_durable(floors);
            match self.check(&ledger, &layout) {
                Err(refusal) => Some(refusal),
                Ok(()) if ledger.staged_fixed => {
                    Some(Refusal::new(Invariant::LayoutClosure, "the staged layout is fixed once an unlock or a persist has used it"))
                }
                Ok(()) => {
                    ledger.stage(layout);
                    None
                }
            }
        };
        match refused {
            Some(refusal) => Err(self.refuse(refusal)),
            None => Ok(()),
        }
    }

    async fn unlock(&self, ids: Vec<String>) -> Vec<Result<(), ClusterError>> {
        let _timer = self.timer();
        let staged = self
            .live()
            .and_then(|()| arguments::bounded("ids", ids.len()).map_err(|refusal| self.refuse(refusal)))
            .and_then(|()| self.use_staged("unlock"));
        let layout = match &staged {
            Ok(layout) => &**layout,
            Err(err) => return ids.iter().map(|_| Err(err.clone())).collect(),
        };
        let repeats = arguments::repeats(&ids);
        let checked: Vec<Result<(), ClusterError>> = ids
            .iter()
            .zip(repeats)
            .map(|(id, repeat)| {
                let refusal = if repeat {
                    Some(arguments::repeated(id))
                } else if !self.ledger().staged_names.contains(id) {
                    Some(Refusal::new(
                        Invariant::LayoutClosure,
                        format!("{id} is not in the staged layout: only its services serve the new generation"),
                    ))
                } else if !self.ledger().holds(id) {
                    Some(Refusal::new(
                        Invariant::LockedBeforeUse,
                        format!("{id} is not locked by epoch {} and may not be unlocked", self.epoch),
                    ))
                } else if self.ledger().unlocked.contains(id) {
                    Some(Refusal::new(Invariant::ArgumentsChecked, format!("{id} is unlocked already")))
                } else {
                    None
                };
                refusal.map_or(Ok(()), |refusal| Err(self.refuse(refusal)))
            })
            .collect();
        // A replica that needs a copy of its whole shard, which grows with
        // the data, joins once the layout is persisted when that leaves the
        // layout naming as many copies (see `joins_later`).
        let joining: BTreeSet<&String> =
            ids.iter().zip(&checked).filter(|(id, c)| c.is_ok() && self.joins_later(layout, id)).map(|(id, _)| id).collect();
        let joining = &joining;
        // Departing replicas that serve again are cut back before anyone
        // asks them for their figures.
        let returning = ids.iter().zip(&checked).filter(|(id, c)| c.is_ok() && !joining.contains(id)).map(|(id, _)| id.as_str());
        let cut_back: HashMap<&str, ClusterError> = self.cut_back_returned(layout, returning).await.into_iter().collect();
        let cut_back = &cut_back;
        let locked: Vec<(String, Version)> = {
            let ledger = self.ledger();
            let storage = ledger.locks.iter().filter(|(_, info)| matches!(info, LockInfo::Storage(_)));
            storage.filter_map(|(id, _)| Some((id.clone(), ledger.trusted_durable(&self.old, id)?))).collect()
        };
        let index = &LayoutIndex::new(layout).with_locked(locked);
        // Each service is unlocked as soon as it may serve, all at once: a
        // storage replica once replica recovery has brought it to the
        // recovery version (a teammate it copies from answers as of that
        // version, however it moves), the others straight away.
        let calls = ids.iter().zip(checked).map(|(id, checked)| async move {
            checked?;
            if joining.contains(id) {
                self.ledger().joining.insert(id.clone());
                return Ok(());
            }
            if let Some(err) = cut_back.get(id.as_str()) {
                return Err(err.clone());
            }
            self.bring_up(index, id).await?;
            self.note(self.cluster.unlock(id, self.epoch, layout).await)?;
            self.ledger().unlocked.insert(id.clone());
            Ok(())
        });
        futures::future::join_all(calls).await
    }

    /// Cuts each of `ids` that is a departing replica of the old layout,
    /// serving again, back to the version the old layout trusts it with,
    /// when its lock showed it past that: what it holds beyond may come
    /// from an attempt that never persisted, whose versions a later
    /// generation issued again. The cut is a replica recovery to that
    /// version (a truncation, or a rebuild past the replica's undo
    /// window), made once per attempt: a retry of the replica's join does
    /// not cut it again ([`Ledger::cut_back`]).
    ///
    /// A replica that cannot be cut (its journal starts at a snapshot past
    /// the cut, and no teammate within retention holds a snapshot at or
    /// below it) is escalated, and is rebuilt whole when it is brought up:
    /// a rebuild keeps nothing it held, the versions past the cut included.
    /// The simulator's `default --retention 2` seed 101,678 rebuilt a
    /// departing replica in an attempt that never persisted, then failed
    /// to cut it back on every retry. Answers the replicas that could not
    /// be cut back and will not be rebuilt.
    async fn cut_back_returned<'i>(&self, layout: &Layout, ids: impl Iterator<Item = &'i str>) -> Vec<(&'i str, ClusterError)> {
        let ahead: Vec<(&str, Version)> = {
            let mut ledger = self.ledger();
            // One to be rebuilt counts as cut for the rest of the attempt:
            // once its rebuild completes it holds nothing from before, and
            // its lock's figures no longer describe it.
            let ids: Vec<&str> = ids.collect();
            for id in ids.iter().filter(|id| self.replicas.must_rebuild(id, self.epoch)) {
                ledger.cut_back.insert(id.to_string());
            }
            ids.into_iter()
                .filter(|id| !ledger.cut_back.contains(*id))
                .filter_map(|id| {
                    let through = *self.old.departing_through.get(id)?;
                    ledger.locked_durable(id).filter(|durable| *durable > through).map(|_| (id, through))
                })
                .collect()
        };
        let cuts = ahead.into_iter().map(|(id, through)| async move {
            let cut = Layout { recovery_version: through, ..layout.clone() };
            let nested = Nested { guard: self };
            match self.replicas.bring_up(&nested, &LayoutIndex::new(&cut), self.epoch, id).await {
                Ok(()) => {
                    self.ledger().cut_back.insert(id.to_string());
                    None
                }
                // The host's own rebuild to the cut was refused: the
                // rebuild to the layout's version replaces it, and the
                // replica is not cut again once that rebuild is done.
                Err(_) if self.replicas.must_rebuild(id, self.epoch) => {
                    self.ledger().cut_back.insert(id.to_string());
                    None
                }
                Err(err) => self.replica_result(Err(err)).err().map(|err| (id, err)),
            }
        });
        futures::future::join_all(cuts).await.into_iter().flatten().collect()
    }

    /// Brings `id`, if it is a storage replica of `layout`, to the layout's
    /// recovery version through the director's replica recovery; a plan or
    /// session the host refuses is refused here (S5).
    async fn bring_up(&self, layout: &LayoutIndex<'_>, id: &str) -> Result<(), ClusterError> {
        let brought = self.replicas.bring_up(&Nested { guard: self }, layout, self.epoch, id).await;
        self.replica_result(brought)
    }

    /// A replica recovery's result as the attempt sees it: a refusal is
    /// recorded against S5, a superseding epoch noted.
    fn replica_result(&self, brought: Result<(), ClusterError>) -> Result<(), ClusterError> {
        match brought {
            Err(ClusterError::Refused(reason)) => Err(self.refuse(Refusal::new(Invariant::ReplicasKeepVersions, reason))),
            brought => self.note(brought),
        }
    }

    async fn persist_layout(&self) -> Result<(), ClusterError> {
        let _timer = self.timer();
        self.live()?;
        let layout = self.use_staged("persist")?;
        if self.ledger().persisted {
            return Err(self.refuse(Refusal::new(
                Invariant::FencedPersistence,
                format!("the layout of epoch {} is persisted already: an epoch persists one layout, once", self.epoch),
            )));
        }
        // A generation is persisted whole: every service it names serves
        // it, every storage replica brought to the recovery version first.
        let waiting = {
            let ledger = self.ledger();
            names(&layout).find(|id| !ledger.unlocked.contains(*id) && !ledger.joining.contains(*id)).map(String::from)
        };
        if let Some(id) = waiting {
            return Err(self.refuse(Refusal::new(
                Invariant::LayoutClosure,
                format!(
                    "persist before {id} was unlocked: a generation is persisted only once every service it names \
                     serves it (or, for a recruited replica, joins once it persists)"
                ),
            )));
        }
        // Checked again against everything recorded since it was fixed: a
        // lock taken since may show versions it must keep.
        let checked = self.recheck(&mut self.ledger(), &layout);
        checked.map_err(|refusal| self.refuse(refusal))?;
        match self.store.persist_layout(&layout) {
            Ok(()) => {
                self.ledger().persisted = true;
                Ok(())
            }
            Err(StoreError::Fenced { current, .. }) => self.note(Err(ClusterError::Superseded(current))),
            Err(err) => Err(ClusterError::Failed(err.to_string())),
        }
    }

    async fn place(&self, request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        if self.live().is_err() {
            return Err(PlacementError { vacancy: 0, constraint: "superseded".into(), message: "the attempt was superseded".into() });
        }
        let checked = {
            let _timer = self.timer();
            if self.ledger().nodes.is_none() {
                self.list_nodes().await;
            }
            self.check_placement_request(&self.ledger(), &request)
        };
        if let Err(refusal) = checked {
            let error =
                PlacementError { vacancy: 0, constraint: format!("host-check: {}", refusal.rule), message: refusal.message.clone() };
            self.record(refusal);
            return Err(error);
        }
        let answer = Nested { guard: self }.place(&request).await.map_err(|err| PlacementError {
            vacancy: 0,
            constraint: "policy-failed".into(),
            message: err.to_string(),
        })??;
        let _timer = self.timer();
        if let Err(error) = placement_check::check(&request, &answer) {
            // A bad answer from a plugin is refused like a bad argument.
            let reason = format!("placement answer refused: group {}: {}: {}", error.vacancy, error.constraint, error.message);
            self.record(Refusal::new(Invariant::ArgumentsChecked, reason));
            return Err(error);
        }
        Ok(answer)
    }
}
