//! Replica recovery sessions: the rules the host enforces around a replica
//! recovery, whatever the policy decided.
//!
//! - A session is bound to an epoch and to the replica's endpoint. An epoch
//!   bump or an endpoint change invalidates it, and any later call with its
//!   id is refused as stale.
//! - A catch-up or rebuild freezes its target version when it begins;
//!   progress past the target is refused.
//! - A budget bounds every session: a maximum duration, a maximum number of
//!   entries, and a deadline between two steps of progress. Exceeding any of
//!   them escalates the replica to a rebuild: the session ends, and only a
//!   rebuild plan is accepted for the replica in that epoch, until one
//!   completes.
//! - Completion is refused until the required truncation has been recorded,
//!   and until a catch-up or rebuild has reached its target.
//! - Every transition of every replica goes to the event log.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::check::check_plan;
use crate::bindings::types::{CatchUpPlan, Epoch, ReplicaHistory, ReplicaOutcome, ReplicaPlan, Version};
use crate::status::ReplicaEvent;

/// How many of the newest events the log keeps (at least).
pub const EVENTS_KEPT: usize = 1_000;

/// A session's id, unique within a [`Sessions`].
pub type SessionId = u64;

/// The bounds of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The longest a session may run.
    pub max_duration: Duration,
    /// The most log entries a catch-up may replay.
    pub max_entries: u64,
    /// The longest between two steps of progress.
    pub progress_deadline: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_duration: Duration::from_secs(60), max_entries: 1_000_000, progress_deadline: Duration::from_secs(5) }
    }
}

/// Where a session is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Bringing the replica up to date.
    Running,
    /// Done: the replica holds exactly its target.
    Completed,
    /// An epoch bump or endpoint change ended it.
    Invalidated(String),
    /// It broke its budget; the replica must be rebuilt.
    Escalated(String),
    /// A step failed (a worker down, no source); the recovery attempt
    /// will try again, in a new session.
    Abandoned(String),
}

impl SessionState {
    fn label(&self) -> &'static str {
        match self {
            SessionState::Running => "running",
            SessionState::Completed => "completed",
            SessionState::Invalidated(_) => "invalidated",
            SessionState::Escalated(_) => "escalated",
            SessionState::Abandoned(_) => "abandoned",
        }
    }
}

/// Why the host refused a session call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No such session, or it has ended.
    #[error("session {id} is stale: {reason}")]
    Stale {
        /// The session.
        id: SessionId,
        /// Why it no longer counts.
        reason: String,
    },
    /// The policy's plan does not fit the figures.
    #[error("plan refused: {0}")]
    BadPlan(String),
    /// The replica was escalated to a rebuild in this epoch.
    #[error("{replica} was escalated to a rebuild in epoch {epoch}: only a rebuild plan is accepted")]
    MustRebuild {
        /// The replica.
        replica: String,
        /// The epoch.
        epoch: Epoch,
    },
    /// Progress beyond the frozen target.
    #[error("progress to {asked} is past the session's target {target}")]
    PastTarget {
        /// The frozen target.
        target: Version,
        /// The version reported.
        asked: Version,
    },
    /// The session broke its budget and was escalated.
    #[error("budget exceeded, escalated to a rebuild: {0}")]
    Escalated(String),
    /// Completion before the required truncation was recorded.
    #[error("a truncation to {0} is required before completion")]
    TruncationMissing(Version),
    /// Completion before the target was reached.
    #[error("reached {applied} of target {target}")]
    Incomplete {
        /// Applied so far.
        applied: Version,
        /// The frozen target.
        target: Version,
    },
}

/// One session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The replica.
    pub replica: String,
    /// The epoch it is bound to.
    pub epoch: Epoch,
    /// The endpoint it is bound to.
    pub endpoint: String,
    /// What the policy decided.
    pub plan: ReplicaPlan,
    /// The version it must reach, frozen when it began.
    pub target: Version,
    /// The newest version the replica holds so far.
    pub applied: Version,
    /// Entries replayed so far.
    pub entries: u64,
    /// The truncation the plan requires, if any, and whether it happened.
    pub truncate_to: Option<Version>,
    /// Whether the truncation was recorded.
    pub truncated: bool,
    /// Where it is.
    pub state: SessionState,
    started: Instant,
    last_progress: Instant,
}

/// An outcome in a few words: `catch-up: replay (10, 50]`, `rebuild:
/// snapshot at 40 + tail`...
pub fn describe(outcome: &ReplicaOutcome) -> String {
    use crate::bindings::types::RebuildPlan;
    match outcome {
        ReplicaOutcome::ZeroGap => "zero-gap".into(),
        ReplicaOutcome::CatchUp(CatchUpPlan::Replay(range)) => format!("catch-up: replay ({}, {}]", range.after, range.through),
        ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(to)) => format!("catch-up: truncate to {to}"),
        ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(at)) => format!("rebuild: snapshot at {at} + tail"),
        ReplicaOutcome::Rebuild(RebuildPlan::Full) => "rebuild: full".into(),
    }
}

/// Every replica recovery session of a cluster, and their event log.
pub struct Sessions {
    budget: Budget,
    origin: Instant,
    next: SessionId,
    sessions: BTreeMap<SessionId, Session>,
    /// Replicas escalated to a rebuild, with the epoch it happened in.
    must_rebuild: BTreeMap<String, Epoch>,
    events: Vec<ReplicaEvent>,
}

impl Sessions {
    /// No session yet; every session gets `budget`.
    pub fn new(budget: Budget) -> Self {
        Sessions { budget, origin: Instant::now(), next: 1, sessions: BTreeMap::new(), must_rebuild: BTreeMap::new(), events: Vec::new() }
    }

    /// Bounds every session opened from now on by `budget`.
    pub fn set_budget(&mut self, budget: Budget) {
        self.budget = budget;
    }

    /// The event log, oldest first.
    pub fn events(&self) -> &[ReplicaEvent] {
        &self.events
    }

    /// Whether `replica` was escalated in `epoch` and has not been rebuilt
    /// since: only a rebuild brings it up.
    pub fn must_rebuild(&self, replica: &str, epoch: Epoch) -> bool {
        self.must_rebuild.get(replica) == Some(&epoch)
    }

    /// A session, whatever its state.
    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    fn log(&mut self, id: SessionId, replica: &str, epoch: Epoch, event: &str, detail: String) {
        let at_ms = self.origin.elapsed().as_millis() as u64;
        tracing::info!(session = id, replica, epoch, event, %detail, "replica recovery");
        self.events.push(ReplicaEvent { at_ms, session: id, replica: replica.to_string(), epoch, event: event.to_string(), detail });
        // Keep the newest events only, trimming now and then.
        if self.events.len() >= 2 * EVENTS_KEPT {
            self.events.drain(..self.events.len() - EVENTS_KEPT);
        }
    }

    /// Records a page of progress. A session's progress since its last
    /// transition is one event, updated in place: a catch-up of thousands
    /// of pages must not push every transition out of the event log.
    fn log_progress(&mut self, id: SessionId, replica: &str, epoch: Epoch, detail: String) {
        tracing::debug!(session = id, replica, epoch, %detail, "replica recovery progress");
        let at_ms = self.origin.elapsed().as_millis() as u64;
        match self.events.iter_mut().rev().find(|e| e.session == id) {
            Some(last) if last.event == "progress" => {
                last.at_ms = at_ms;
                last.detail = detail;
            }
            _ => self.log(id, replica, epoch, "progress", detail),
        }
    }

    /// Opens a session for `replica` at `endpoint` in `epoch`, carrying out
    /// `plan`, which the policy made from `history` (the host's figures).
    /// The plan's proof must carry those figures and fit them; a running
    /// session of the same replica is invalidated. A zero-gap plan completes
    /// at once.
    pub fn open(
        &mut self,
        replica: &str,
        epoch: Epoch,
        endpoint: &str,
        history: &ReplicaHistory,
        plan: ReplicaPlan,
    ) -> Result<SessionId, SessionError> {
        let id = self.next;
        self.next += 1;
        if let Err(reason) = check_plan(history, &plan) {
            self.log(id, replica, epoch, "refused", reason.clone());
            return Err(SessionError::BadPlan(reason));
        }
        if self.must_rebuild(replica, epoch) && !matches!(plan.outcome, ReplicaOutcome::Rebuild(_)) {
            self.log(id, replica, epoch, "refused", "escalated to a rebuild: a non-rebuild plan".into());
            return Err(SessionError::MustRebuild { replica: replica.to_string(), epoch });
        }
        let running: Vec<SessionId> =
            self.sessions.values().filter(|s| s.replica == replica && s.state == SessionState::Running).map(|s| s.id).collect();
        for old in running {
            self.end(old, SessionState::Invalidated(format!("replaced by session {id}")));
        }
        let h = &plan.history;
        let (target, truncate_to) = match &plan.outcome {
            ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(to)) => (*to, Some(*to)),
            _ => (h.committed_version, None),
        };
        let applied = match &plan.outcome {
            ReplicaOutcome::Rebuild(_) => 0,
            _ => h.durable_version.min(target),
        };
        let now = Instant::now();
        let detail = format!("{}, target {target}: {}", describe(&plan.outcome), plan.reason);
        let done = matches!(plan.outcome, ReplicaOutcome::ZeroGap);
        self.sessions.insert(
            id,
            Session {
                id,
                replica: replica.to_string(),
                epoch,
                endpoint: endpoint.to_string(),
                plan,
                target,
                applied,
                entries: 0,
                truncate_to,
                truncated: false,
                state: SessionState::Running,
                started: now,
                last_progress: now,
            },
        );
        self.log(id, replica, epoch, "opened", detail);
        if done {
            self.complete(id, epoch)?;
        }
        Ok(id)
    }

    /// The cluster moved to `epoch`: every running session of an older
    /// epoch is invalidated.
    pub fn epoch_changed(&mut self, epoch: Epoch) {
        let stale: Vec<SessionId> =
            self.sessions.values().filter(|s| s.state == SessionState::Running && s.epoch < epoch).map(|s| s.id).collect();
        for id in stale {
            self.end(id, SessionState::Invalidated(format!("epoch {epoch} began")));
        }
    }

    /// `replica` is now reached at `endpoint`: its running session, bound to
    /// another endpoint, is invalidated.
    pub fn endpoint_changed(&mut self, replica: &str, endpoint: &str) {
        let stale: Vec<SessionId> = self
            .sessions
            .values()
            .filter(|s| s.state == SessionState::Running && s.replica == replica && s.endpoint != endpoint)
            .map(|s| s.id)
            .collect();
        for id in stale {
            self.end(id, SessionState::Invalidated(format!("endpoint changed to {endpoint}")));
        }
    }

    /// The replica of session `id` now holds every version through `applied`,
    /// having replayed `entries` more entries. Refused for a stale session,
    /// past the target, or past the budget (which escalates).
    pub fn progress(&mut self, id: SessionId, epoch: Epoch, applied: Version, entries: u64) -> Result<(), SessionError> {
        self.running(id, epoch)?;
        if let Some(reason) = self.over_budget(id, entries) {
            self.escalate(id, reason.clone());
            return Err(SessionError::Escalated(reason));
        }
        let session = self.sessions.get_mut(&id).expect("checked by running");
        if applied > session.target {
            let (replica, target) = (session.replica.clone(), session.target);
            self.log(id, &replica, epoch, "refused", format!("progress to {applied} past target {target}"));
            return Err(SessionError::PastTarget { target, asked: applied });
        }
        session.applied = session.applied.max(applied);
        session.entries += entries;
        session.last_progress = Instant::now();
        let (replica, detail) = (session.replica.clone(), format!("through {applied} ({} entries)", session.entries));
        self.log_progress(id, &replica, epoch, detail);
        Ok(())
    }

    /// Session `id` copied another page of a teammate's snapshot: progress
    /// for its deadline (a shard of a gigabyte takes many seconds to copy),
    /// not logged page by page.
    pub fn page_copied(&mut self, id: SessionId, epoch: Epoch) -> Result<(), SessionError> {
        self.running(id, epoch)?;
        // The page is the progress: its deadline starts again before the
        // rest of the budget is checked.
        self.sessions.get_mut(&id).expect("checked by running").last_progress = Instant::now();
        if let Some(reason) = self.over_budget(id, 0) {
            self.escalate(id, reason.clone());
            return Err(SessionError::Escalated(reason));
        }
        Ok(())
    }

    /// The required truncation of session `id` to `to` is done.
    pub fn record_truncation(&mut self, id: SessionId, epoch: Epoch, to: Version) -> Result<(), SessionError> {
        self.running(id, epoch)?;
        let session = self.sessions.get_mut(&id).expect("checked by running");
        if session.truncate_to != Some(to) {
            let reason = format!("truncation to {to} is not the one the plan requires ({:?})", session.truncate_to);
            return Err(SessionError::BadPlan(reason));
        }
        session.truncated = true;
        session.applied = to;
        let replica = session.replica.clone();
        self.log(id, &replica, epoch, "truncated", format!("to {to}"));
        Ok(())
    }

    /// Session `id` is done. Refused before a required truncation and
    /// before the target is reached.
    pub fn complete(&mut self, id: SessionId, epoch: Epoch) -> Result<(), SessionError> {
        self.running(id, epoch)?;
        let session = &self.sessions[&id];
        if let Some(to) = session.truncate_to
            && !session.truncated
        {
            let replica = session.replica.clone();
            self.log(id, &replica, epoch, "refused", format!("completion before the truncation to {to}"));
            return Err(SessionError::TruncationMissing(to));
        }
        if session.applied != session.target {
            let (applied, target, replica) = (session.applied, session.target, session.replica.clone());
            self.log(id, &replica, epoch, "refused", format!("completion at {applied} of {target}"));
            return Err(SessionError::Incomplete { applied, target });
        }
        // A rebuild replaces everything the replica held: what its
        // escalation asked for is done.
        if matches!(session.plan.outcome, ReplicaOutcome::Rebuild(_)) && self.must_rebuild(&session.replica, epoch) {
            let replica = session.replica.clone();
            self.must_rebuild.remove(&replica);
        }
        self.end(id, SessionState::Completed);
        Ok(())
    }

    /// Session `id` cannot be carried out as planned (the replica cannot
    /// truncate that far): it is escalated, and the replica must be
    /// rebuilt in this epoch.
    pub fn give_up(&mut self, id: SessionId, epoch: Epoch, reason: &str) -> Result<(), SessionError> {
        self.running(id, epoch)?;
        self.escalate(id, reason.to_string());
        Err(SessionError::Escalated(reason.to_string()))
    }

    /// Ends session `id`, still running, on a failed step.
    pub fn abandon(&mut self, id: SessionId, reason: &str) {
        if self.sessions.get(&id).is_some_and(|s| s.state == SessionState::Running) {
            self.end(id, SessionState::Abandoned(reason.to_string()));
        }
    }

    /// Escalates every running session past its duration or its progress
    /// deadline; returns them.
    pub fn check_deadlines(&mut self) -> Vec<SessionId> {
        let over: Vec<(SessionId, String)> = self
            .sessions
            .keys()
            .copied()
            .filter(|id| self.sessions[id].state == SessionState::Running)
            .filter_map(|id| self.over_budget(id, 0).map(|reason| (id, reason)))
            .collect();
        for (id, reason) in &over {
            self.escalate(*id, reason.clone());
        }
        over.into_iter().map(|(id, _)| id).collect()
    }

    /// Checks that `id` is a running session of `epoch`.
    fn running(&self, id: SessionId, epoch: Epoch) -> Result<(), SessionError> {
        let stale = |reason: String| Err(SessionError::Stale { id, reason });
        match self.sessions.get(&id) {
            None => stale("no such session".into()),
            Some(s) if s.epoch != epoch => stale(format!("bound to epoch {}, not {epoch}", s.epoch)),
            Some(s) if s.state != SessionState::Running => stale(format!("it is {}", s.state.label())),
            Some(_) => Ok(()),
        }
    }

    fn over_budget(&self, id: SessionId, more_entries: u64) -> Option<String> {
        let s = &self.sessions[&id];
        let b = &self.budget;
        if s.started.elapsed() > b.max_duration {
            return Some(format!("ran longer than {:?}", b.max_duration));
        }
        if s.last_progress.elapsed() > b.progress_deadline {
            return Some(format!("no progress for {:?}", b.progress_deadline));
        }
        if s.entries + more_entries > b.max_entries {
            return Some(format!("{} entries, over the budget of {}", s.entries + more_entries, b.max_entries));
        }
        None
    }

    fn escalate(&mut self, id: SessionId, reason: String) {
        let (replica, epoch) = {
            let s = &self.sessions[&id];
            (s.replica.clone(), s.epoch)
        };
        self.must_rebuild.insert(replica, epoch);
        self.end(id, SessionState::Escalated(reason));
    }

    fn end(&mut self, id: SessionId, state: SessionState) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        let detail = match &state {
            SessionState::Invalidated(reason) | SessionState::Escalated(reason) | SessionState::Abandoned(reason) => reason.clone(),
            _ => format!("at {}", session.applied),
        };
        let (replica, epoch, label) = (session.replica.clone(), session.epoch, state.label());
        session.state = state;
        self.log(id, &replica, epoch, label, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{RebuildPlan, VersionRange};

    fn history(durable: Version, oldest: Version, committed: Version) -> ReplicaHistory {
        ReplicaHistory {
            durable_version: durable,
            oldest_retained: oldest,
            head_version: committed,
            committed_version: committed,
            checkpoint_version: None,
        }
    }

    fn plan(outcome: ReplicaOutcome, h: ReplicaHistory) -> ReplicaPlan {
        ReplicaPlan { outcome, history: h, reason: "test".into() }
    }

    fn catch_up(durable: Version, committed: Version) -> ReplicaPlan {
        let range = VersionRange { after: durable, through: committed };
        plan(ReplicaOutcome::CatchUp(CatchUpPlan::Replay(range)), history(durable, 0, committed))
    }

    fn open(s: &mut Sessions, replica: &str, epoch: Epoch, endpoint: &str, plan: ReplicaPlan) -> Result<SessionId, SessionError> {
        let history = plan.history;
        s.open(replica, epoch, endpoint, &history, plan)
    }

    fn sessions() -> Sessions {
        Sessions::new(Budget { max_duration: Duration::from_secs(10), max_entries: 100, progress_deadline: Duration::from_secs(1) })
    }

    #[test]
    fn a_catch_up_runs_to_its_frozen_target_and_no_further() {
        let mut s = sessions();
        let id = open(&mut s, "storage-1", 3, "10.0.0.1:7000", catch_up(10, 50)).unwrap();
        assert_eq!(s.get(id).unwrap().target, 50);
        assert_eq!(s.complete(id, 3), Err(SessionError::Incomplete { applied: 10, target: 50 }));
        s.progress(id, 3, 30, 20).unwrap();
        assert_eq!(s.progress(id, 3, 60, 30), Err(SessionError::PastTarget { target: 50, asked: 60 }));
        s.progress(id, 3, 50, 20).unwrap();
        s.complete(id, 3).unwrap();
        assert_eq!(s.get(id).unwrap().state, SessionState::Completed);
        assert!(matches!(s.progress(id, 3, 50, 0), Err(SessionError::Stale { .. })), "a completed session takes nothing");
    }

    #[test]
    fn an_epoch_bump_invalidates_a_session_and_its_id_is_refused() {
        let mut s = sessions();
        let id = open(&mut s, "storage-1", 3, "a", catch_up(10, 50)).unwrap();
        s.progress(id, 3, 20, 10).unwrap();
        s.epoch_changed(4);
        assert_eq!(s.get(id).unwrap().state, SessionState::Invalidated("epoch 4 began".into()));
        let err = s.progress(id, 3, 30, 10).unwrap_err();
        assert!(matches!(&err, SessionError::Stale { reason, .. } if reason.contains("invalidated")), "{err}");
        assert!(matches!(s.complete(id, 4), Err(SessionError::Stale { .. })), "nor may a newer epoch use an old session");
    }

    #[test]
    fn an_endpoint_change_invalidates_only_that_replicas_session() {
        let mut s = sessions();
        let moved = open(&mut s, "storage-1", 3, "a", catch_up(10, 50)).unwrap();
        let other = open(&mut s, "storage-2", 3, "b", catch_up(10, 50)).unwrap();
        s.endpoint_changed("storage-1", "a");
        assert_eq!(s.get(moved).unwrap().state, SessionState::Running, "same endpoint: nothing changes");
        s.endpoint_changed("storage-1", "c");
        assert!(matches!(s.get(moved).unwrap().state, SessionState::Invalidated(_)));
        assert_eq!(s.get(other).unwrap().state, SessionState::Running);
    }

    #[test]
    fn a_truncation_must_be_recorded_before_completion() {
        let mut s = sessions();
        let ahead = plan(ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(50)), history(60, 0, 50));
        let id = open(&mut s, "storage-1", 3, "a", ahead).unwrap();
        assert_eq!(s.complete(id, 3), Err(SessionError::TruncationMissing(50)));
        assert!(matches!(s.record_truncation(id, 3, 40), Err(SessionError::BadPlan(_))), "to the plan's version only");
        s.record_truncation(id, 3, 50).unwrap();
        s.complete(id, 3).unwrap();
    }

    #[test]
    fn too_many_entries_escalate_to_a_rebuild() {
        let mut s = sessions();
        let id = open(&mut s, "storage-1", 3, "a", catch_up(10, 500)).unwrap();
        s.progress(id, 3, 100, 90).unwrap();
        let err = s.progress(id, 3, 120, 20).unwrap_err();
        assert!(matches!(&err, SessionError::Escalated(reason) if reason.contains("110 entries")), "{err}");
        assert!(matches!(s.get(id).unwrap().state, SessionState::Escalated(_)));
        // Only a rebuild is accepted for the replica in this epoch.
        assert!(matches!(open(&mut s, "storage-1", 3, "a", catch_up(120, 500)), Err(SessionError::MustRebuild { .. })));
        let within = ReplicaHistory { checkpoint_version: Some(450), ..history(0, 400, 500) };
        let rebuild = plan(ReplicaOutcome::Rebuild(RebuildPlan::Full), within);
        let id = open(&mut s, "storage-1", 3, "a", rebuild).unwrap();
        assert_eq!(s.get(id).unwrap().applied, 0, "a rebuild starts from nothing");
        assert!(s.must_rebuild("storage-1", 3), "until a rebuild completes");
        s.progress(id, 3, 500, 0).unwrap();
        s.complete(id, 3).unwrap();
        assert!(!s.must_rebuild("storage-1", 3), "a completed rebuild is what the escalation asked for");
        open(&mut s, "storage-1", 3, "a", catch_up(500, 510)).unwrap();
    }

    #[test]
    fn a_failed_rebuild_leaves_the_replica_to_be_rebuilt() {
        let mut s = sessions();
        let journal_from_a_snapshot = ReplicaHistory { head_version: 48, ..history(48, 48, 0) };
        let ahead = plan(ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(0)), journal_from_a_snapshot);
        let id = open(&mut s, "storage-1", 9, "a", ahead).unwrap();
        assert!(matches!(s.give_up(id, 9, "cannot truncate to 0"), Err(SessionError::Escalated(_))));
        let within = ReplicaHistory { checkpoint_version: Some(48), ..history(48, 48, 50) };
        let id = open(&mut s, "storage-1", 9, "a", plan(ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(48)), within)).unwrap();
        s.abandon(id, "teammate down");
        assert!(s.must_rebuild("storage-1", 9), "only a completed rebuild ends the escalation");
        assert!(!s.must_rebuild("storage-1", 10), "an escalation is bound to its epoch");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_or_endless_session_escalates_at_its_deadlines() {
        let mut s = sessions();
        let stalled = open(&mut s, "storage-1", 3, "a", catch_up(10, 50)).unwrap();
        tokio::time::advance(Duration::from_millis(900)).await;
        assert!(s.check_deadlines().is_empty());
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(s.check_deadlines(), vec![stalled]);
        assert!(matches!(s.progress(stalled, 3, 20, 1), Err(SessionError::Stale { .. })));

        let slow = open(&mut s, "storage-2", 3, "b", catch_up(10, 5_000)).unwrap();
        for v in 0..12 {
            tokio::time::advance(Duration::from_millis(900)).await;
            if s.progress(slow, 3, 11 + v, 1).is_err() {
                break;
            }
        }
        assert!(matches!(&s.get(slow).unwrap().state, SessionState::Escalated(r) if r.contains("ran longer")));
    }

    #[test]
    fn a_proof_with_other_figures_than_the_hosts_is_refused() {
        let mut s = sessions();
        let forged = catch_up(10, 50);
        let honest = history(5, 0, 50);
        assert!(matches!(s.open("storage-1", 3, "a", &honest, forged), Err(SessionError::BadPlan(r)) if r.contains("not the host's")));
    }

    #[test]
    fn a_zero_gap_completes_at_once_and_every_transition_is_logged() {
        let mut s = sessions();
        let id = open(&mut s, "storage-1", 3, "a", plan(ReplicaOutcome::ZeroGap, history(50, 0, 50))).unwrap();
        assert_eq!(s.get(id).unwrap().state, SessionState::Completed);
        let refused = open(&mut s, "storage-2", 3, "b", plan(ReplicaOutcome::ZeroGap, history(40, 0, 50)));
        assert!(matches!(refused, Err(SessionError::BadPlan(_))));
        let events: Vec<&str> = s.events().iter().map(|e| e.event.as_str()).collect();
        assert_eq!(events, ["opened", "completed", "refused"]);
        assert!(s.events()[0].to_string().contains("storage-1"));
    }

    #[test]
    fn a_sessions_pages_of_progress_are_one_event_between_transitions() {
        let mut s = sessions();
        let a = open(&mut s, "storage-1", 3, "a", catch_up(10, 500)).unwrap();
        let b = open(&mut s, "storage-2", 3, "b", catch_up(20, 600)).unwrap();
        for page in 1..=49 {
            s.progress(a, 3, 10 + page * 10, 1).unwrap();
            s.progress(b, 3, 20 + page * 10, 1).unwrap();
        }
        s.complete(a, 3).unwrap();
        let events: Vec<(SessionId, &str, &str)> = s.events().iter().map(|e| (e.session, e.event.as_str(), e.detail.as_str())).collect();
        assert_eq!(
            events,
            [
                (a, "opened", events[0].2),
                (b, "opened", events[1].2),
                (a, "progress", "through 500 (49 entries)"),
                (b, "progress", "through 510 (49 entries)"),
                (a, "completed", "at 500"),
            ],
            "interleaved sessions each keep one progress event, with the newest figures"
        );
        s.progress(b, 3, 600, 1).unwrap();
        let b_progress = (b, "progress".to_string(), "through 600 (50 entries)".to_string());
        assert_eq!((s.events()[3].session, s.events()[3].event.clone(), s.events()[3].detail.clone()), b_progress);
        assert_eq!(s.events().len(), 5, "b's progress was updated in place");
    }
}
