//! The invariant guard: every host call a phase makes during an attempt goes
//! through here, and every rule that protects the cluster is checked here,
//! whatever the plugin asks.
//!
//! - I2 lock precedence: a rejection for a newer epoch marks the attempt
//!   superseded, whatever the plugin does next.
//! - I3 selective locking: only services named in the old layout may be
//!   locked; recruits are locked by the host when created.
//! - I4 locked before use: recover, unlock and copy sources require a lock
//!   held by this attempt.
//! - I6 layout closure: checked when a layout is staged, so no service is
//!   ever handed a layout that breaks it, and again on persist. Services are
//!   unlocked against the staged layout only, and it is fixed once an unlock
//!   or a persist has used it, so the layout persisted is the one they were
//!   handed.
//! - I7 fenced persistence: the store's compare-and-swap on the epoch.
//! - I8 superseded directors stop: once superseded, every call fails.
//!
//! I1 lives in the coordinator store, I5 and I9 in the director, which sees
//! the steps phases return and the failures of their calls.

pub mod placement_check;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bindings::types::{
    Assignment, ClusterError, Epoch, Layout, LockInfo, LogRecoveryInfo, Node, PlacementError,
    PlacementRequest, RecoveryConfig, ServiceDescriptor, ServiceKind, ShardTag, Version,
};
use crate::cluster::Cluster;
use crate::coordinator::{CoordinatorStore, StoreError};
use crate::registry::Plugins;
use crate::runtime::HostServices;

/// What the guard learned and refused during one attempt.
#[derive(Debug, Default)]
struct Ledger {
    /// Old services this attempt locked.
    locked: BTreeSet<String>,
    /// Workers this attempt created, locked at creation.
    recruited: BTreeSet<String>,
    /// Roles this attempt started.
    started: BTreeSet<String>,
    /// Everything created, in order, for rollback.
    created: Vec<String>,
    /// What each locked old log reported.
    log_info: BTreeMap<String, LogRecoveryInfo>,
    /// Per (new log, shard), the last version it recovered.
    recovered: BTreeMap<(String, ShardTag), Version>,
    /// Set once a newer epoch is seen.
    superseded: Option<Epoch>,
    /// The layout staged by this attempt, checked for closure.
    staged: Option<Arc<Layout>>,
    /// Whether the staged layout changed since the director last took it.
    staged_changed: bool,
    /// Whether an unlock or a persist has used the staged layout: from then
    /// on it is fixed.
    staged_fixed: bool,
    /// Whether the staged layout was persisted.
    persisted: bool,
    /// The recovery version the attempt has settled on, for new sequencers.
    recovery_version: Version,
    /// Every refusal, for the attempt's report.
    refusals: Vec<String>,
}

/// The host services of one attempt, behind the invariant checks.
pub struct AttemptGuard {
    epoch: Epoch,
    config: RecoveryConfig,
    old_layout: Option<Layout>,
    old_names: BTreeSet<String>,
    cluster: Arc<dyn Cluster>,
    store: Arc<dyn CoordinatorStore>,
    registry: Arc<dyn Plugins>,
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
    ) -> Self {
        let old_names = old_layout.iter().flat_map(|l| named_services(l)).collect();
        AttemptGuard {
            epoch,
            config,
            old_layout,
            old_names,
            cluster,
            store,
            registry,
            origin: tokio::time::Instant::now(),
            ledger: Mutex::default(),
            host_nanos: AtomicU64::new(0),
        }
    }

    fn timer(&self) -> HostTimer<'_> {
        HostTimer { started: Instant::now(), total: &self.host_nanos }
    }

    /// Time spent in host calls so far (placement policies excluded: they
    /// run in wasm).
    pub fn host_time(&self) -> Duration {
        Duration::from_nanos(self.host_nanos.load(Ordering::Relaxed))
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The staged layout for `call` (an unlock or a persist), which fixes
    /// it, or the refusal of a call made before a layout was staged.
    fn use_staged(&self, call: &str) -> Result<Arc<Layout>, ClusterError> {
        let staged = {
            let mut ledger = self.ledger();
            ledger.staged_fixed |= ledger.staged.is_some();
            ledger.staged.clone()
        };
        staged.ok_or_else(|| self.refuse("I6", format!("{call} before a layout was staged")))
    }

    /// Everything this attempt created, in creation order.
    pub fn created(&self) -> Vec<String> {
        self.ledger().created.clone()
    }

    /// Every refusal so far.
    pub fn refusals(&self) -> Vec<String> {
        self.ledger().refusals.clone()
    }

    /// Old services locked by this attempt.
    pub fn locked(&self) -> BTreeSet<String> {
        self.ledger().locked.clone()
    }

    /// Workers recruited (created and locked) by this attempt.
    pub fn recruited(&self) -> BTreeSet<String> {
        self.ledger().recruited.clone()
    }

    /// Whether the old layout names any log (I5).
    pub fn old_layout_has_logs(&self) -> bool {
        self.old_layout.as_ref().is_some_and(|l| !l.logs.is_empty())
    }

    /// Records the recovery version the attempt settled on.
    pub(crate) fn observe_recovery_version(&self, version: Option<Version>) {
        if let Some(version) = version {
            self.ledger().recovery_version = version;
        }
    }

    fn refuse(&self, rule: &str, message: String) -> ClusterError {
        let reason = format!("{rule}: {message}");
        tracing::warn!(epoch = self.epoch, %reason, "invariant guard refused a call");
        self.ledger().refusals.push(reason.clone());
        ClusterError::Refused(reason)
    }

    /// I8: every call of a superseded attempt fails.
    fn live(&self) -> Result<(), ClusterError> {
        match self.superseded() {
            Some(newer) => Err(ClusterError::Superseded(newer)),
            None => Ok(()),
        }
    }

    /// I2: a rejection for a newer epoch supersedes the attempt.
    fn note<T>(&self, result: Result<T, ClusterError>) -> Result<T, ClusterError> {
        if let Err(ClusterError::Superseded(newer)) = &result {
            let mut ledger = self.ledger();
            if ledger.superseded.is_none() {
                tracing::warn!(epoch = self.epoch, newer, "attempt superseded");
                ledger.superseded = Some(*newer);
            }
        }
        result
    }

    /// Whether this attempt holds the lock of `id` (I4).
    fn holds(&self, id: &str) -> bool {
        self.ledger().holds(id)
    }

    /// I6: the layout names only services this attempt locked or recruited,
    /// carries its epoch, keeps every team at quorum, and keeps every version
    /// the old generation may have acknowledged.
    fn check_closure(&self, ledger: &Ledger, layout: &Layout) -> Result<(), String> {
        if layout.epoch != self.epoch {
            return Err(format!("layout carries epoch {}, the attempt is {}", layout.epoch, self.epoch));
        }
        // Every name, as often as the layout gives it: a lookup costs less
        // than collecting the names first, and a large layout has tens of
        // thousands.
        if let Some(id) = names(layout).find(|id| !ledger.holds(id)) {
            return Err(format!("layout names {id}, which this attempt neither locked nor recruited"));
        }
        let quorum = self.config.replication_factor / 2 + 1;
        for team in &layout.storage_teams {
            if (team.storage_ids.len() as u32) < quorum {
                return Err(format!(
                    "storage team {} has {} replicas, below the quorum of {quorum}",
                    team.tag,
                    team.storage_ids.len()
                ));
            }
        }
        let Some(old) = &self.old_layout else { return Ok(()) };
        if old.logs.is_empty() {
            return Ok(());
        }
        // A version was acknowledged only if every log of its shard accepted
        // it, so every locked log of a shard holds each acknowledged version:
        // the smallest `last` among them bounds what must be kept.
        let must_keep = old
            .storage_teams
            .iter()
            .filter_map(|team| {
                old.logs
                    .iter()
                    .filter(|l| l.tags.contains(&team.tag))
                    .filter_map(|l| ledger.log_info.get(&l.id).map(|i| i.last_version))
                    .min()
            })
            .min()
            .unwrap_or(0);
        if layout.recovery_version < must_keep {
            return Err(format!(
                "recovery version {} drops versions up to {must_keep} that the old generation may have acknowledged",
                layout.recovery_version
            ));
        }
        for log in &layout.logs {
            for tag in &log.tags {
                let recovered = ledger.recovered.get(&(log.id.clone(), *tag)).copied();
                if layout.recovery_version > 0 && recovered.is_none_or(|v| v < layout.recovery_version) {
                    return Err(format!(
                        "log {} carries shard {tag} but recovered it only to {:?}, not to {}",
                        log.id, recovered, layout.recovery_version
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Ledger {
    /// Whether this attempt holds the lock of `id` (I4).
    fn holds(&self, id: &str) -> bool {
        self.locked.contains(id) || self.recruited.contains(id) || self.started.contains(id)
    }
}

/// Every service id a layout names, once or more.
fn names(layout: &Layout) -> impl Iterator<Item = &str> {
    let services = layout.services.iter().map(|s| s.id.as_str());
    let roles = layout.sequencer.iter().chain(&layout.commit_proxies).chain(&layout.resolvers);
    let logs = layout.logs.iter().map(|l| l.id.as_str());
    let storage = layout.storage_teams.iter().flat_map(|t| t.storage_ids.iter());
    services.chain(roles.map(String::as_str)).chain(logs).chain(storage.map(String::as_str))
}

/// Every service id a layout names.
pub fn named_services(layout: &Layout) -> BTreeSet<String> {
    names(layout).map(String::from).collect()
}

#[async_trait::async_trait]
impl HostServices for AttemptGuard {
    async fn services(&self) -> Vec<ServiceDescriptor> {
        let _timer = self.timer();
        self.cluster.services().await
    }

    async fn nodes(&self) -> Vec<Node> {
        let _timer = self.timer();
        self.cluster.nodes().await
    }

    async fn lock(&self, ids: Vec<String>) -> Vec<Result<LockInfo, ClusterError>> {
        let _timer = self.timer();
        if let Err(err) = self.live() {
            return ids.iter().map(|_| Err(err.clone())).collect();
        }
        let calls = ids.iter().map(|id| async move {
            if !self.old_names.contains(id) {
                return Err(self.refuse("I3", format!("{id} is not named in the old layout and may not be locked")));
            }
            let result = self.note(self.cluster.lock(id, self.epoch).await);
            if let Ok(info) = &result {
                let mut ledger = self.ledger();
                ledger.locked.insert(id.clone());
                if let LockInfo::Log(info) = info {
                    ledger.log_info.insert(id.clone(), info.clone());
                }
            }
            result
        });
        futures::future::join_all(calls).await
    }

    async fn create_worker(&self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        let _timer = self.timer();
        self.live()?;
        let created = self.note(self.cluster.create_worker(&node, kind, self.epoch).await)?;
        let mut ledger = self.ledger();
        ledger.recruited.insert(created.id.clone());
        ledger.created.push(created.id.clone());
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
        self.live()?;
        let (target_held, unlocked_source) = {
            let ledger = self.ledger();
            let held = ledger.recruited.contains(&target) || ledger.locked.contains(&target);
            (held, sources.iter().find(|s| !ledger.locked.contains(*s)).cloned())
        };
        if !target_held {
            return Err(self.refuse("I4", format!("recover target {target} is not locked by epoch {}", self.epoch)));
        }
        if let Some(source) = unlocked_source {
            return Err(self.refuse("I4", format!("copy source {source} is not locked by epoch {}", self.epoch)));
        }
        self.note(self.cluster.recover_log(self.epoch, &target, &sources, &tags, first, last).await)?;
        let mut ledger = self.ledger();
        // A log only ever gains versions by recovery, so the record only
        // rises: a layout that passed the closure check when staged keeps
        // passing it.
        for tag in tags {
            let recovered = ledger.recovered.entry((target.clone(), tag)).or_insert(last);
            *recovered = (*recovered).max(last);
        }
        Ok(())
    }

    async fn start_role(&self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        let _timer = self.timer();
        self.live()?;
        let start = self.ledger().recovery_version;
        let started = self.note(self.cluster.start_role(&node, kind, self.epoch, start).await)?;
        let mut ledger = self.ledger();
        ledger.started.insert(started.id.clone());
        ledger.created.push(started.id.clone());
        Ok(started)
    }

    async fn stage_layout(&self, layout: Layout) -> Result<(), ClusterError> {
        let _timer = self.timer();
        self.live()?;
        // Checked and taken under one lock, so no unlock or persist can use
        // the staged layout in between.
        let refused = {
            let mut ledger = self.ledger();
            match self.check_closure(&ledger, &layout) {
                Err(reason) => Some(reason),
                Ok(()) if ledger.staged_fixed => {
                    Some("the staged layout is fixed once an unlock or a persist has used it".to_string())
                }
                Ok(()) => {
                    ledger.staged = Some(Arc::new(layout));
                    ledger.staged_changed = true;
                    None
                }
            }
        };
        match refused {
            Some(reason) => Err(self.refuse("I6", reason)),
            None => Ok(()),
        }
    }

    async fn unlock(&self, ids: Vec<String>) -> Vec<Result<(), ClusterError>> {
        let _timer = self.timer();
        let staged = self.live().and_then(|()| self.use_staged("unlock"));
        let layout = match &staged {
            Ok(layout) => &**layout,
            Err(err) => return ids.iter().map(|_| Err(err.clone())).collect(),
        };
        let index = &crate::replica::LayoutIndex::new(layout);
        // A storage replica serves only once it holds the recovery version:
        // replica recovery brings each there first, while every teammate is
        // still locked (a snapshot source does not move).
        let recoveries = ids.iter().map(|id| async move {
            if !self.holds(id) {
                return Err(self.refuse("I4", format!("{id} is not locked by epoch {} and may not be unlocked", self.epoch)));
            }
            self.note(crate::replica::recover_replica(&*self.registry, &*self.cluster, index, self.epoch, id).await)
        });
        let recovered = futures::future::join_all(recoveries).await;
        let calls = ids.iter().zip(recovered).map(|(id, recovered)| async move {
            recovered?;
            self.note(self.cluster.unlock(id, self.epoch, layout).await)
        });
        futures::future::join_all(calls).await
    }

    async fn persist_layout(&self) -> Result<(), ClusterError> {
        let _timer = self.timer();
        self.live()?;
        let layout = self.use_staged("persist")?;
        // Checked again, as I6 is stated, though nothing the attempt records
        // after staging can break it: what it holds only grows, the versions
        // it must keep only fall, and what new logs recovered only rises.
        let refused = self.check_closure(&self.ledger(), &layout);
        if let Err(reason) = refused {
            return Err(self.refuse("I6", reason));
        }
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
            return Err(PlacementError {
                vacancy: 0,
                constraint: "superseded".into(),
                message: "the attempt was superseded".into(),
            });
        }
        let answer = self
            .registry
            .place(&request)
            .await
            .map_err(|err| PlacementError { vacancy: 0, constraint: "policy-failed".into(), message: err.to_string() })??;
        let _timer = self.timer();
        if let Err(error) = placement_check::check(&request, &answer) {
            let reason = format!("placement answer refused: group {}: {}: {}", error.vacancy, error.constraint, error.message);
            tracing::warn!(epoch = self.epoch, %reason, "invariant guard refused a placement");
            self.ledger().refusals.push(reason);
            return Err(error);
        }
        Ok(answer)
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
