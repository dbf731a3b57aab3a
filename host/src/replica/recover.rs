//! Replica recovery carried out: the host gathers the figures, asks the
//! policy in the `replica-recovery` slot for a plan, and moves the data
//! under a session, before the replica serves its new generation.
//!
//! - Catch-up pulls `(durable, committed]` from the logs of the replica's
//!   shard, a page at a time, each page applied and made durable under the
//!   recovery's epoch lock and reported to the session.
//! - A truncation rolls the replica back to committed, then is recorded.
//! - A rebuild copies a teammate's snapshot (staged, installed whole with
//!   its last page), then replays the tail from the logs.
//! - A catch-up that breaks its budget, or a truncation the replica cannot
//!   undo, escalates: the host rebuilds the replica instead, from the
//!   trusted checkpoint when there is one, and plans every later recovery
//!   of the replica in that epoch as a rebuild until one completes.
//!
//! A replica already at the committed version, and not escalated, is
//! zero-gap by the contract's first rule, and is left alone without a call
//! or a session (one whose lock reported it there is not even asked): a
//! recovery of a large cluster recovers thousands of replicas that need
//! nothing. The replicas of one unlock ask the shard's logs and each other
//! for their figures once ([`LayoutIndex`]).

use futures::future::join_all;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::bindings::types::{
    CatchUpPlan, ClusterError, Epoch, Layout, RebuildPlan, ReplicaHistory, ReplicaOutcome, ReplicaPlan, ShardTag, StorageTeam, Version,
};
use crate::cluster::Cluster;
use crate::registry::Plugins;

use super::session::{SessionError, SessionId, Sessions};

/// Why a step of a replica recovery failed.
enum Failure {
    Cluster(ClusterError),
    Session(SessionError),
}

impl From<ClusterError> for Failure {
    fn from(err: ClusterError) -> Self {
        Failure::Cluster(err)
    }
}

impl From<SessionError> for Failure {
    fn from(err: SessionError) -> Self {
        Failure::Session(err)
    }
}

/// What one replica's recovery needs to know, gathered once.
struct Recovery<'a> {
    cluster: &'a dyn Cluster,
    sessions: &'a Mutex<Sessions>,
    replica: &'a str,
    epoch: Epoch,
    tag: ShardTag,
    /// The logs that hold the whole range through committed, oldest
    /// history first.
    sources: Vec<String>,
    /// The replica's teammates, the most recent first.
    peers: Vec<(String, Version)>,
    history: ReplicaHistory,
}

/// A layout's storage teams by replica and its logs by shard, built once for
/// all the replicas a recovery unlocks: a large cluster has thousands of
/// each, and a scan per replica would make the unlock quadratic.
///
/// It also keeps the figures the replicas of one unlock ask each other
/// for: a team's replicas are brought up together, and each would
/// otherwise ask the shard's logs what they retain and its teammates
/// their versions, the same questions asked once per replica.
pub struct LayoutIndex<'a> {
    layout: &'a Layout,
    teams: HashMap<&'a str, &'a StorageTeam>,
    carriers: HashMap<ShardTag, Vec<&'a str>>,
    retained: Figures<(String, ShardTag), (Version, Version)>,
    states: Figures<String, (Version, String)>,
    /// The durable versions this recovery's locks reported, by replica.
    locked: HashMap<String, Version>,
}

impl<'a> LayoutIndex<'a> {
    /// Indexes `layout`.
    pub fn new(layout: &'a Layout) -> Self {
        let mut teams = HashMap::new();
        for team in &layout.storage_teams {
            for id in &team.storage_ids {
                // The first team naming it, as a scan of the teams would find.
                teams.entry(id.as_str()).or_insert(team);
            }
        }
        let mut carriers: HashMap<ShardTag, Vec<&str>> = HashMap::new();
        for log in &layout.logs {
            for tag in &log.tags {
                carriers.entry(*tag).or_default().push(log.id.as_str());
            }
        }
        LayoutIndex { layout, teams, carriers, retained: Figures::default(), states: Figures::default(), locked: HashMap::new() }
    }

    /// With the durable versions the recovery's locks reported, by
    /// replica. A replica locked at the recovery version needs nothing and
    /// is not asked again: the lock fences every other epoch off it, so
    /// only this recovery could have moved it since.
    pub fn with_locked(mut self, locked: impl IntoIterator<Item = (String, Version)>) -> Self {
        self.locked.extend(locked);
        self
    }

    /// With the durable versions and endpoints of replicas already asked,
    /// so the unlock does not ask them again.
    pub fn with_states(self, states: impl IntoIterator<Item = (String, (Version, String))>) -> Self {
        for (id, state) in states {
            self.states.answered(id, state);
        }
        self
    }

    /// What log `log` retains of `tag`, asked once for the whole unlock.
    async fn log_retained(&self, cluster: &dyn Cluster, log: &str, tag: ShardTag) -> Result<(Version, Version), ClusterError> {
        self.retained.get((log.to_string(), tag), || cluster.log_retained(log, tag)).await
    }

    /// Replica `id`'s durable version and endpoint, asked once for the
    /// whole unlock (a replica checks its own again when its session ends).
    async fn replica_state(&self, cluster: &dyn Cluster, id: &str) -> Result<(Version, String), ClusterError> {
        self.states.get(id.to_string(), || cluster.replica_state(id)).await
    }
}

/// Answers asked once and shared: the first to ask asks the cluster, and
/// whoever asks meanwhile or later gets the same answer.
struct Figures<K, V> {
    cells: Mutex<HashMap<K, Answer<V>>>,
}

/// One answer of [`Figures`], set by the first to ask.
type Answer<V> = Arc<tokio::sync::OnceCell<Result<V, ClusterError>>>;

impl<K, V> Default for Figures<K, V> {
    fn default() -> Self {
        Figures { cells: Mutex::new(HashMap::new()) }
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> Figures<K, V> {
    /// Keeps `value` as the answer for `key`, asked already.
    fn answered(&self, key: K, value: V) {
        let cell = Arc::new(tokio::sync::OnceCell::new_with(Some(Ok(value))));
        self.cells.lock().unwrap_or_else(|e| e.into_inner()).insert(key, cell);
    }

    async fn get<F>(&self, key: K, ask: impl FnOnce() -> F) -> Result<V, ClusterError>
    where
        F: std::future::Future<Output = Result<V, ClusterError>>,
    {
        let cell = self.cells.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default().clone();
        cell.get_or_init(ask).await.clone()
    }
}

/// Brings storage replica `replica` of the indexed layout up to the layout's
/// recovery version, under a session of `epoch`. Answers the session it ran,
/// or `None` when the replica needed nothing (or is not a storage replica of
/// the layout).
pub async fn recover_replica(
    plugins: &dyn Plugins,
    cluster: &dyn Cluster,
    sessions: &Mutex<Sessions>,
    index: &LayoutIndex<'_>,
    epoch: Epoch,
    replica: &str,
) -> Result<Option<SessionId>, ClusterError> {
    let layout = index.layout;
    let Some(team) = index.teams.get(replica).copied() else {
        return Ok(None);
    };
    // A replica escalated in this epoch is rebuilt whatever it holds: its
    // truncation failed, and what it holds may include versions no
    // generation kept (see `AttemptGuard::cut_back_returned`).
    let must_rebuild = lock(sessions).must_rebuild(replica, epoch);
    if !must_rebuild && index.locked.get(replica) == Some(&layout.recovery_version) {
        lock(sessions).epoch_changed(epoch);
        return Ok(None);
    }
    let (durable, endpoint) = index.replica_state(cluster, replica).await?;
    {
        let mut sessions = lock(sessions);
        sessions.epoch_changed(epoch);
        sessions.endpoint_changed(replica, &endpoint);
    }
    let committed = layout.recovery_version;
    if durable == committed && !must_rebuild {
        return Ok(None);
    }

    // The figures, asked of every log and teammate at once: what the
    // shard's logs retain, and the teammates' versions.
    let carriers: Vec<&str> = index.carriers.get(&team.tag).into_iter().flatten().copied().collect();
    let retained = join_all(carriers.iter().map(|log| index.log_retained(cluster, log, team.tag)));
    // A teammate to be rebuilt whole holds what no one trusts: it is no
    // source (see `AttemptGuard::cut_back_returned`).
    let mates: Vec<&String> = {
        let sessions = lock(sessions);
        team.storage_ids.iter().filter(|id| *id != replica && !sessions.must_rebuild(id, epoch)).collect()
    };
    let states = join_all(mates.iter().map(|peer| index.replica_state(cluster, peer)));
    let (retained, states) = futures::future::join(retained, states).await;
    let mut spans: Vec<(String, Version, Version)> = carriers
        .iter()
        .zip(retained)
        .filter_map(|(log, retained)| {
            retained.ok().filter(|(_, last)| *last >= committed).map(|(after, last)| (log.to_string(), after, last))
        })
        .collect();
    spans.sort_by_key(|(_, after, _)| *after);
    let oldest = spans.first().map_or(committed, |(_, after, _)| *after);
    let head = spans.iter().map(|(_, _, last)| *last).max().unwrap_or(committed);
    // A teammate past the target gives a copy as of the target.
    let mut peers: Vec<(String, Version)> = mates
        .iter()
        .zip(states)
        .filter_map(|(peer, state)| state.ok().map(|(version, _)| ((*peer).clone(), version.min(committed))))
        .collect();
    peers.sort_by_key(|(_, version)| std::cmp::Reverse(*version));
    let history = ReplicaHistory {
        durable_version: durable,
        oldest_retained: oldest,
        head_version: head,
        committed_version: committed,
        checkpoint_version: peers.first().map(|(_, version)| *version),
    };
    let recovery = Recovery {
        cluster,
        sessions,
        replica,
        epoch,
        tag: team.tag,
        sources: spans.into_iter().map(|(id, _, _)| id).collect(),
        peers,
        history,
    };

    // The host plans the rebuild of an escalated replica itself, as it
    // does right after the escalation: the policy's plan would be refused
    // unless it were that rebuild.
    let plan = if must_rebuild {
        recovery.escalated_plan(&format!("a rebuild is due since an escalation earlier in epoch {epoch}"))
    } else {
        plugins.replica_plan(&recovery.history).await.map_err(|err| ClusterError::Failed(format!("replica policy for {replica}: {err}")))?
    };
    let id = lock(sessions)
        .open(replica, epoch, &endpoint, &recovery.history, plan.clone())
        .map_err(|err| ClusterError::Refused(format!("replica recovery of {replica}: {err}")))?;
    match recovery.carry_out(id, &plan.outcome).await {
        Ok(()) => Ok(Some(id)),
        Err(Failure::Session(SessionError::Escalated(reason))) => {
            let rebuild = recovery.escalated_plan(&reason);
            let outcome = rebuild.outcome;
            let id = lock(sessions)
                .open(replica, epoch, &endpoint, &recovery.history, rebuild)
                .map_err(|err| ClusterError::Refused(format!("replica recovery of {replica}: {err}")))?;
            recovery.carry_out(id, &outcome).await.map_err(|failure| recovery.fail(id, failure))?;
            Ok(Some(id))
        }
        Err(failure) => Err(recovery.fail(id, failure)),
    }
}

impl Recovery<'_> {
    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        lock(self.sessions)
    }

    /// Carries out `outcome` under session `id`, to completion.
    async fn carry_out(&self, id: SessionId, outcome: &ReplicaOutcome) -> Result<(), Failure> {
        let committed = self.history.committed_version;
        match outcome {
            ReplicaOutcome::ZeroGap => return Ok(()),
            ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(to)) => {
                match self.cluster.truncate(self.replica, self.epoch, *to).await {
                    Ok(()) => {}
                    // The replica cannot undo that far: rebuild it instead.
                    Err(ClusterError::Failed(reason)) => self.sessions().give_up(id, self.epoch, &reason)?,
                    Err(err) => return Err(err.into()),
                }
                self.sessions().record_truncation(id, self.epoch, *to)?;
            }
            ReplicaOutcome::CatchUp(CatchUpPlan::Replay(range)) => self.replay(id, range.after, committed).await?,
            ReplicaOutcome::Rebuild(plan) => {
                let at = match plan {
                    RebuildPlan::SnapshotTail(at) => Some(*at),
                    RebuildPlan::Full => None,
                };
                let copied = self.copy(id, at).await?;
                self.sessions().progress(id, self.epoch, copied, 0)?;
                self.replay(id, copied, committed).await?;
            }
        }
        // The replica must still be where the session began.
        let (_, endpoint) = self.cluster.replica_state(self.replica).await?;
        let mut sessions = self.sessions();
        sessions.endpoint_changed(self.replica, &endpoint);
        Ok(sessions.complete(id, self.epoch)?)
    }

    /// Pulls `(after, upto]` of the shard from its logs into the replica, a
    /// page at a time, moving to the next log when one fails.
    async fn replay(&self, id: SessionId, mut after: Version, upto: Version) -> Result<(), Failure> {
        for log in &self.sources {
            while after < upto {
                let (mutations, through) = match self.cluster.pull(log, self.tag, after, upto).await {
                    Ok(page) => page,
                    Err(err @ ClusterError::Superseded(_)) => return Err(err.into()),
                    Err(_) => break,
                };
                if through <= after || through > upto {
                    break;
                }
                let entries = mutations.len() as u64;
                self.cluster.recover_apply(self.replica, self.epoch, mutations, through).await?;
                self.sessions().progress(id, self.epoch, through, entries)?;
                after = through;
            }
        }
        if after < upto {
            let sources = if self.sources.is_empty() { "none".to_string() } else { self.sources.join(", ") };
            return Err(ClusterError::Unreachable(format!(
                "no log of shard {} gave ({after}, {upto}] to {} (logs holding it: {sources})",
                self.tag, self.replica
            ))
            .into());
        }
        Ok(())
    }

    /// Copies a teammate's snapshot into the replica, a page at a time:
    /// one at `at` or later (teammates catch up while the replicas of a
    /// recovery are brought up together; a later snapshot leaves a shorter
    /// tail) when given, else the most recent one, never past the committed
    /// version. Starts over when the teammate's version moves during the
    /// copy. Answers the version copied.
    async fn copy(&self, id: SessionId, at: Option<Version>) -> Result<Version, Failure> {
        let mut failures = Vec::new();
        // A teammate behind retention would leave a tail no log holds: the
        // copy would replace the replica's data with less than it had.
        let oldest = self.history.oldest_retained;
        let committed = self.history.committed_version;
        let usable = |version: Version| at.is_none_or(|at| version >= at) && version <= committed;
        for (peer, version) in self.peers.iter().filter(|(_, version)| *version >= oldest) {
            if !usable(*version) {
                continue;
            }
            match self.copy_from(id, peer).await {
                Ok(copied) if usable(copied) => return Ok(copied),
                Ok(copied) => failures.push(format!("{peer} moved to {copied}")),
                Err(Failure::Cluster(err @ ClusterError::Superseded(_))) => return Err(err.into()),
                Err(Failure::Cluster(err)) => failures.push(format!("{peer}: {err:?}")),
                Err(failure @ Failure::Session(_)) => return Err(failure),
            }
        }
        let wanted = at.map_or("any version".to_string(), |at| format!("version {at}"));
        let tried =
            if failures.is_empty() { format!("no teammate within retention (after {oldest}) holds it") } else { failures.join("; ") };
        Err(ClusterError::Unreachable(format!("no snapshot at {wanted} for {}: {tried}", self.replica)).into())
    }

    async fn copy_from(&self, id: SessionId, peer: &str) -> Result<Version, Failure> {
        // As of the target: a teammate there or past it gives that version
        // however it moves on during the copy.
        let as_of = self.history.committed_version;
        'transfer: for _ in 0..COPY_TRIES {
            let (mut after, mut first, mut version) = (None, true, None);
            loop {
                let page = self.cluster.snapshot_page(peer, self.epoch, after.clone(), as_of).await?;
                let (page_version, entries, more) = (page.version, page.entries, page.resume.is_some());
                if version.is_some_and(|v| v != page_version) {
                    // The teammate is being caught up by the same recovery:
                    // start over once it has moved on.
                    tokio::time::sleep(COPY_RETRY_AFTER).await;
                    self.sessions().page_copied(id, self.epoch)?;
                    continue 'transfer;
                }
                version = Some(page_version);
                after = page.resume;
                self.cluster.rebuild_page(self.replica, self.epoch, page_version, entries, first, !more).await?;
                first = false;
                // Each page is progress, the last (which installs the
                // whole replica) included.
                self.sessions().page_copied(id, self.epoch)?;
                if !more {
                    return Ok(page_version);
                }
            }
        }
        Err(ClusterError::Failed(format!("{peer} kept changing while it was copied")).into())
    }

    /// The host's plan after an escalation: a rebuild, from the trusted
    /// checkpoint when it lies within retention (a full copy otherwise,
    /// which the plan check refuses when no teammate is within it).
    fn escalated_plan(&self, reason: &str) -> ReplicaPlan {
        let h = &self.history;
        let rebuild = match h.checkpoint_version {
            Some(at) if at >= h.oldest_retained && at <= h.committed_version => RebuildPlan::SnapshotTail(at),
            _ => RebuildPlan::Full,
        };
        ReplicaPlan { outcome: ReplicaOutcome::Rebuild(rebuild), history: *h, reason: format!("escalated by the host: {reason}") }
    }

    /// Ends session `id` on a failure, and turns it into the error the
    /// recovery attempt sees.
    fn fail(&self, id: SessionId, failure: Failure) -> ClusterError {
        let err = match failure {
            Failure::Cluster(ClusterError::Superseded(newer)) => {
                // A newer recovery locked the replica: the session is void.
                self.sessions().epoch_changed(newer);
                return ClusterError::Superseded(newer);
            }
            Failure::Cluster(err) => ClusterError::Failed(format!("replica recovery of {}: {err:?}", self.replica)),
            Failure::Session(err) => ClusterError::Refused(format!("replica recovery of {}: {err}", self.replica)),
        };
        self.sessions().abandon(id, &format!("{err:?}"));
        err
    }
}

/// How many times a copy starts over because its teammate moved.
const COPY_TRIES: usize = 20;

/// How long a copy waits before it starts over.
const COPY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

fn lock(sessions: &Mutex<Sessions>) -> std::sync::MutexGuard<'_, Sessions> {
    sessions.lock().unwrap_or_else(|e| e.into_inner())
}
