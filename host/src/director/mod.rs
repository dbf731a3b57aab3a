//! The director and its phase driver.
//!
//! A director runs recovery attempts. Each attempt takes a fresh epoch from
//! the coordinator (I1), then drives the pipeline: it takes each phase from
//! its slot, hands it the attempt state and the guarded host services, and
//! applies the step the phase returns. It ends on `completed` or `failed`;
//! on `stalled` it rolls the attempt back and retries later, after a backoff
//! or at once when a service registers.

mod replicas;
mod report;

pub use report::{AttemptOutcome, AttemptReport, PhaseRecord, RecoveryReport};

use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock: the wall clock in a cluster, the virtual one under simulation.
use tokio::time::Instant;

use tracing::Instrument;

use crate::bindings::state_fields::{old_layout_sent, take_written};
use crate::bindings::types::{AttemptState, Epoch, Layout, PhaseStep, RecoveryConfig, StateField};
use crate::cluster::Cluster;
use crate::guard::AttemptGuard;
use crate::registry::{PHASES, Plugins, world_of};
use crate::replica::{Budget, Sessions};
use crate::runtime::{GuestMeter, World};
use crate::store::{CoordinatorStore, StoreError};

/// How long a process that runs directors one after another waits after a
/// recovery that did not complete (it failed, or its attempts ran out)
/// before it starts the next: the attempts within a director back off, and
/// without this pause a cause that outlasts them would start directors as
/// fast as they fail.
pub const PAUSE_AFTER_INCOMPLETE: Duration = Duration::from_secs(1);

/// Bounds of a director's work.
#[derive(Clone, Debug)]
pub struct DirectorOptions {
    /// Attempts before `recover` gives up.
    pub max_attempts: u32,
    /// Phase steps within one attempt before it is declared stalled (a phase
    /// that loops back on itself cannot run forever).
    pub max_steps: u32,
    /// The first backoff after a stalled attempt; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
}

impl Default for DirectorOptions {
    fn default() -> Self {
        DirectorOptions { max_attempts: 20, max_steps: 64, initial_backoff: Duration::from_millis(10), max_backoff: Duration::from_secs(1) }
    }
}

/// Why a director could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum DirectorError {
    /// The coordinator store failed.
    #[error("coordinator store: {0}")]
    Store(#[from] StoreError),
}

/// Runs recovery attempts against one cluster.
pub struct Director {
    registry: Arc<dyn Plugins>,
    cluster: Arc<dyn Cluster>,
    store: Arc<dyn CoordinatorStore>,
    config: RecoveryConfig,
    options: DirectorOptions,
    /// The replica recovery sessions its attempts run replicas through.
    sessions: Arc<Mutex<Sessions>>,
    /// The newest epoch that superseded one of its attempts: its next
    /// attempt takes an epoch above it, so a director whose store issued
    /// older epochs (a restored state) catches up in one attempt.
    superseded_by: std::sync::atomic::AtomicU64,
    /// The background work bringing up the replicas that join its
    /// completed generations.
    joins: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The first wait before a replica that could not join its generation
/// tries again; it doubles up to [`MAX_JOIN_RETRY`].
const JOIN_RETRY: Duration = Duration::from_millis(100);

/// The longest wait between two tries of a joining replica.
const MAX_JOIN_RETRY: Duration = Duration::from_secs(2);

impl Director {
    /// A director for `cluster`, persisting through `store`, with phases and
    /// placement from `registry`.
    pub fn new(
        registry: Arc<dyn Plugins>,
        cluster: Arc<dyn Cluster>,
        store: Arc<dyn CoordinatorStore>,
        config: RecoveryConfig,
        options: DirectorOptions,
    ) -> Self {
        Director {
            registry,
            cluster,
            store,
            config,
            options,
            sessions: Arc::new(Mutex::new(Sessions::new(Budget::default()))),
            superseded_by: std::sync::atomic::AtomicU64::new(0),
            joins: Mutex::default(),
        }
    }

    /// Waits until the replicas joining its completed generations serve
    /// them, or have given up (their generation is no longer the live one).
    pub async fn joined(&self) {
        let joins = std::mem::take(&mut *self.joins.lock().unwrap_or_else(|e| e.into_inner()));
        for join in joins {
            if let Err(err) = join.await {
                tracing::error!(%err, "the task bringing up joining replicas ended abnormally");
            }
        }
    }

    /// Brings up, in the background, the replicas that join the
    /// generation `guard` persisted, trying again after a backoff those
    /// that fail, for as long as that generation is the live one.
    fn spawn_joins(&self, guard: Arc<AttemptGuard>, span: tracing::Span) {
        if guard.joining().is_empty() {
            return;
        }
        let store = self.store.clone();
        let join = async move {
            let mut backoff = JOIN_RETRY;
            loop {
                for (replica, joined) in guard.bring_up_joining().await {
                    match joined {
                        Ok(()) => tracing::info!(%replica, "replica joined its team"),
                        Err(err) => tracing::warn!(%replica, ?err, "replica could not join its team yet"),
                    }
                }
                let live = match store.state() {
                    Ok(state) => state.layout.is_some_and(|layout| layout.epoch == guard.epoch()),
                    Err(err) => {
                        tracing::warn!(%err, "cannot read the live layout: joining replicas wait for the next recovery");
                        false
                    }
                };
                if guard.joining().is_empty() || guard.superseded().is_some() || !live {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_JOIN_RETRY);
            }
        };
        let handle = tokio::spawn(join.instrument(span));
        let mut joins = self.joins.lock().unwrap_or_else(|e| e.into_inner());
        joins.retain(|join| !join.is_finished());
        joins.push(handle);
    }

    /// The director with these replica recovery sessions: a process that
    /// runs directors one after another (or several at once, racing) hands
    /// each the same sessions, so a newer epoch voids an older one's.
    pub fn with_replica_sessions(mut self, sessions: Arc<Mutex<Sessions>>) -> Self {
        self.sessions = sessions;
        self
    }

    /// Its replica recovery sessions and their event log.
    pub fn replica_sessions(&self) -> &Arc<Mutex<Sessions>> {
        &self.sessions
    }

    /// Runs attempts until one completes, one fails, the director is
    /// superseded, or `max_attempts` have stalled.
    pub async fn recover(&self) -> Result<RecoveryReport, DirectorError> {
        let mut attempts = Vec::new();
        let mut backoff = self.options.initial_backoff;
        let mut registrations = self.cluster.registrations();
        for number in 1..=self.options.max_attempts {
            let report = self.run_attempt(number).await?;
            let stalled = matches!(report.outcome, AttemptOutcome::Stalled(_));
            attempts.push(report);
            if !stalled {
                break;
            }
            tokio::select! {
                // Polled in order, so that a simulated run is reproducible.
                biased;
                _ = tokio::time::sleep(backoff) => {}
                _ = registrations.changed() => {
                    tracing::info!("a service registered: retrying now");
                }
            }
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
        Ok(RecoveryReport { attempts })
    }

    /// Runs one attempt with a fresh epoch, above every epoch that
    /// superseded this director.
    pub async fn run_attempt(&self, attempt: u32) -> Result<AttemptReport, DirectorError> {
        let seen = self.superseded_by.load(std::sync::atomic::Ordering::SeqCst);
        let epoch = self.store.next_epoch_above(seen)?;
        let report = self.run_attempt_at(epoch, attempt).await?;
        if let AttemptOutcome::Superseded(newer) = report.outcome {
            self.superseded_by.fetch_max(newer, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(report)
    }

    /// Runs one attempt with an epoch the coordinator issued earlier, as a
    /// director that was slow to start does; tests use it to stage races.
    pub async fn run_attempt_at(&self, epoch: Epoch, attempt: u32) -> Result<AttemptReport, DirectorError> {
        let old_layout = self.store.state()?.layout;
        let span = tracing::info_span!("attempt", epoch, attempt, outcome = tracing::field::Empty);
        let guard = Arc::new(AttemptGuard::new(
            epoch,
            self.config,
            old_layout.clone(),
            self.cluster.clone(),
            self.store.clone(),
            self.registry.clone(),
            Arc::new(replicas::SessionReplicas { cluster: self.cluster.clone(), sessions: self.sessions.clone() }),
        ));
        let started = Instant::now();
        let state = AttemptState::new(epoch, attempt, self.config, old_layout.clone());
        let (outcome, timeline, state) = match old_layout.as_ref().map(|l| l.epoch) {
            // A layout persisted by this epoch or a newer one: a newer director
            // has already finished, so this one stops before touching anything.
            Some(persisted) if persisted >= epoch => (AttemptOutcome::Superseded(persisted), Vec::new(), state),
            _ => self.drive(state, &guard).instrument(span.clone()).await,
        };
        let released = match &outcome {
            AttemptOutcome::Completed(layout) => {
                self.cluster.adopt(layout).await;
                self.spawn_joins(guard.clone(), span.clone());
                0
            }
            _ => self.roll_back(&guard).instrument(span.clone()).await,
        };
        span.record("outcome", outcome.label());
        span.in_scope(|| tracing::info!(%outcome, released, "attempt ended"));
        Ok(AttemptReport {
            epoch,
            attempt,
            outcome,
            timeline,
            duration: started.elapsed(),
            old_layout,
            locked: guard.locked(),
            recruited: guard.recruited(),
            released,
            refusals: guard.refusals(),
            host_time: guard.host_time(),
            joining: guard.joining(),
            final_state: Box::new(state),
        })
    }

    /// The phase loop of one attempt.
    async fn drive(&self, mut state: AttemptState, guard: &Arc<AttemptGuard>) -> (AttemptOutcome, Vec<PhaseRecord>, AttemptState) {
        let mut timeline = Vec::new();
        let mut phase = PHASES[0].to_string();
        for _ in 0..self.options.max_steps {
            let span =
                tracing::info_span!("phase", phase = %phase, epoch = state.epoch, attempt = state.attempt, outcome = tracing::field::Empty);
            let started = Instant::now();
            let call = self.registry.run_phase(&phase, &state, guard.clone()).instrument(span.clone());
            let ((result, running), guest) = GuestMeter::measure(running_time(call)).await;
            let mut record = PhaseRecord { phase: phase.clone(), duration: started.elapsed(), running, guest, outcome: String::new() };
            // A policy that failed while the phase asked it is blamed for
            // the stall, not the phase.
            let nested = guard.take_nested_failure();
            let blame = |reason: String| match &nested {
                Some((slot, failure)) => format!("{slot}: {failure} (asked by {phase})"),
                None => format!("{phase}: {reason}"),
            };
            // A persisted layout is the cluster's generation from then on,
            // whatever the phase returned: the attempt ends completed, and
            // nothing the layout names is ever rolled back.
            if let Some(layout) = guard.persisted() {
                if let Ok(out) = result {
                    let step = step_label(&out.step);
                    // Kept for the report only: nothing of it is acted on.
                    if let Err(reason) = take_returned(&mut state, out.state, &out.written, guard.take_newly_staged()) {
                        tracing::warn!(epoch = state.epoch, %reason, "a phase returned a refused state after persisting");
                    }
                    record.outcome = step;
                } else {
                    record.outcome = "trapped after persisting".into();
                }
                span.record("outcome", record.outcome.as_str());
                timeline.push(record);
                return (AttemptOutcome::Completed(layout), timeline, state);
            }
            // I2/I8: once superseded, the attempt ends, whatever the plugin returned.
            if let Some(newer) = guard.superseded() {
                if let Ok(out) = result {
                    // Kept for the report only: nothing of it is acted on.
                    if let Err(reason) = take_returned(&mut state, out.state, &out.written, guard.take_newly_staged()) {
                        tracing::debug!(epoch = state.epoch, %reason, "a superseded phase returned a refused state");
                    }
                }
                record.outcome = format!("superseded by epoch {newer}");
                span.record("outcome", record.outcome.as_str());
                timeline.push(record);
                return (AttemptOutcome::Superseded(newer), timeline, state);
            }
            let outcome = match result {
                // I9: a trap, timeout or out-of-memory is a stall with its reason.
                Err(err) => {
                    record.outcome = "trapped".into();
                    Some(AttemptOutcome::Stalled(blame(err.to_string())))
                }
                Ok(out) => match take_returned(&mut state, out.state, &out.written, guard.take_newly_staged()) {
                    Err(reason) => {
                        record.outcome = "refused".into();
                        Some(AttemptOutcome::Stalled(format!("{phase}: {reason}")))
                    }
                    Ok(()) => {
                        guard.observe_recovery_version(state.recovery_version);
                        record.outcome = step_label(&out.step);
                        match out.step {
                            PhaseStep::Next(next) if world_of(&next) == Some(World::RecoveryPhase) => {
                                phase = next;
                                None
                            }
                            PhaseStep::Next(next) => Some(AttemptOutcome::Stalled(format!("{phase} named an unknown next phase `{next}`"))),
                            PhaseStep::Completed => match guard.persisted() {
                                Some(layout) => Some(AttemptOutcome::Completed(layout)),
                                None => Some(AttemptOutcome::Stalled(format!("{phase} reported completion but no layout was persisted"))),
                            },
                            PhaseStep::Stalled(reason) => Some(AttemptOutcome::Stalled(blame(reason))),
                            PhaseStep::Failed(reason) => Some(AttemptOutcome::Failed(blame(reason))),
                        }
                    }
                },
            };
            span.record("outcome", record.outcome.as_str());
            timeline.push(record);
            if let Some(outcome) = outcome {
                return (outcome, timeline, state);
            }
        }
        let reason = format!("no completion after {} phase steps", self.options.max_steps);
        (AttemptOutcome::Stalled(reason), timeline, state)
    }

    /// Stops every worker and role the attempt created, so retries never
    /// accumulate strays. Returns how many were released.
    async fn roll_back(&self, guard: &AttemptGuard) -> usize {
        let created = guard.created();
        for id in created.iter().rev() {
            self.cluster.release(id, guard.epoch()).await;
        }
        created.len()
    }
}

/// Runs `call`, and answers with its output the CPU time it used while it
/// was being polled: running, as opposed to waiting for I/O, a wake-up or
/// a CPU (the thread's CPU clock, so time the thread was preempted is out).
async fn running_time<F: std::future::Future>(call: F) -> (F::Output, Duration) {
    let mut call = std::pin::pin!(call);
    let mut running = Duration::ZERO;
    let output = std::future::poll_fn(|cx| {
        let started = thread_cpu_time();
        let polled = call.as_mut().poll(cx);
        running += thread_cpu_time().saturating_sub(started);
        polled
    })
    .await;
    (output, running)
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the call to fill in.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Takes the fields a phase wrote into the attempt's state. A phase may
/// update what it decides, never who the attempt is: a changed epoch, attempt
/// number, configuration or old layout is refused and `current` is kept, but
/// for its new layout, which is what the phase `staged` even then.
///
/// Only the fields listed in `written` are taken (the others were not sent
/// back, or not sent at all). The old layout is host-owned: it may be listed
/// only if it comes back as it was sent, and the host keeps its own copy.
/// The new layout is host-owned too: it is what the phase `staged`, if it
/// staged one, and may be listed only if it comes back empty, as it was, or
/// as staged.
fn take_returned(
    current: &mut AttemptState,
    mut returned: AttemptState,
    written: &[StateField],
    staged: Option<Layout>,
) -> Result<(), String> {
    // Staged through the guard, so the attempt's new layout whatever the
    // phase returns.
    let before_staging = staged.map(|layout| current.new_layout.replace(layout));
    if returned.epoch != current.epoch || returned.attempt != current.attempt {
        return Err("a phase may not change the attempt's epoch or number".into());
    }
    if returned.config != current.config {
        return Err("a phase may not change the recovery configuration".into());
    }
    if written.contains(&StateField::OldLayout) {
        // Compared with what the phase received: without the services and
        // the storage teams unless it lists them too.
        let services = written.contains(&StateField::OldServices);
        let teams = written.contains(&StateField::OldStorageTeams);
        let received = current.old_layout.as_ref().map(|l| old_layout_sent(l, services, teams));
        if returned.old_layout != received {
            return Err("a phase may not rewrite the old layout".into());
        }
    }
    if written.contains(&StateField::NewLayout) {
        let returned = &returned.new_layout;
        let kept =
            returned.is_none() || *returned == current.new_layout || before_staging.as_ref().is_some_and(|before| returned == before);
        if !kept {
            return Err("a phase may not rewrite the new layout: it stages one with `cluster.stage-layout`".into());
        }
    }
    take_written(current, &mut returned, written);
    Ok(())
}

fn step_label(step: &PhaseStep) -> String {
    match step {
        PhaseStep::Next(next) => format!("next {next}"),
        PhaseStep::Completed => "completed".into(),
        PhaseStep::Stalled(reason) => format!("stalled: {reason}"),
        PhaseStep::Failed(reason) => format!("failed: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{ServiceDescriptor, ServiceKind};

    fn layout(epoch: Epoch) -> Layout {
        Layout {
            epoch,
            sequencer: None,
            commit_proxies: vec![],
            resolvers: vec![],
            logs: vec![],
            storage_teams: vec![],
            services: vec![],
            recovery_version: 7,
        }
    }

    fn state() -> AttemptState {
        AttemptState::new(2, 1, RecoveryConfig::default(), Some(layout(1)))
    }

    #[test]
    fn only_the_written_fields_are_taken_and_the_old_layout_stays_the_hosts() {
        let mut current = state();
        current.recovery_version = Some(3);
        let mut returned = AttemptState::new(2, 1, RecoveryConfig::default(), None);
        returned.durable_version = Some(5);
        returned.recovery_version = Some(99);
        take_returned(&mut current, returned, &[StateField::DurableVersion], None).unwrap();
        assert_eq!(current.old_layout, Some(layout(1)), "not written: the host's copy");
        assert_eq!(current.durable_version, Some(5), "written: taken");
        assert_eq!(current.recovery_version, Some(3), "not written: whatever came back is ignored");
    }

    /// What a phase that lists the old layout with everything it wrote sends back.
    const WITH_OLD_LAYOUT: [StateField; 3] = [StateField::OldLayout, StateField::OldServices, StateField::DurableVersion];

    #[test]
    fn an_unchanged_old_layout_is_accepted_and_a_rewritten_one_refused() {
        let mut current = state();
        take_returned(&mut current, state(), &WITH_OLD_LAYOUT, None).unwrap();
        assert_eq!(current, state());
        for forged in [Some(layout(9)), None] {
            let mut rewritten = state();
            rewritten.old_layout = forged;
            rewritten.durable_version = Some(5);
            let err = take_returned(&mut current, rewritten, &WITH_OLD_LAYOUT, None).unwrap_err();
            assert!(err.contains("old layout"), "{err}");
            assert_eq!(current, state(), "a refused step leaves the state as it was");
        }
    }

    #[test]
    fn an_old_layout_sent_without_its_services_may_come_back_so() {
        let mut full = layout(1);
        full.services =
            vec![ServiceDescriptor { id: "log1".into(), kind: ServiceKind::Log, node: "n1".into(), address: "test://log1".into() }];
        let mut current = AttemptState::new(2, 1, RecoveryConfig::default(), Some(full.clone()));
        let mut returned = current.clone();
        returned.old_layout = Some(layout(1));
        take_returned(&mut current, returned.clone(), &[StateField::OldLayout], None).unwrap();
        assert_eq!(current.old_layout, Some(full), "the host keeps its own, whole");
        let err = take_returned(&mut current, returned, &[StateField::OldLayout, StateField::OldServices], None);
        assert!(err.is_err(), "listed with its services, it must come back with them");
    }

    #[test]
    fn a_new_cluster_cannot_gain_an_old_layout() {
        let mut current = AttemptState::new(1, 1, RecoveryConfig::default(), None);
        let mut returned = current.clone();
        returned.old_layout = Some(layout(0));
        assert!(take_returned(&mut current, returned, &[StateField::OldLayout], None).is_err());
    }

    #[test]
    fn the_new_layout_is_the_one_staged_whatever_comes_back() {
        let mut current = state();
        let staged = layout(2);
        // Not listed: the staged layout, whatever the phase returned.
        let mut returned = state();
        returned.new_layout = Some(layout(5));
        take_returned(&mut current, returned, &[], Some(staged.clone())).unwrap();
        assert_eq!(current.new_layout, Some(staged.clone()));
        // Listed: empty, as received or as staged is accepted; nothing is taken.
        let mut later = layout(2);
        later.recovery_version = 9;
        for (back, fresh) in [(None, None), (Some(staged.clone()), None), (Some(staged.clone()), Some(later.clone()))] {
            let mut returned = state();
            returned.new_layout = back;
            take_returned(&mut current, returned, &[StateField::NewLayout], fresh.clone()).unwrap();
            assert_eq!(current.new_layout, Some(fresh.unwrap_or(staged.clone())));
            current.new_layout = Some(staged.clone());
        }
        // Listed with anything else: refused, and the staged layout stays.
        let mut returned = state();
        returned.new_layout = Some(layout(5));
        let err = take_returned(&mut current, returned, &[StateField::NewLayout], None).unwrap_err();
        assert!(err.contains("stage-layout"), "{err}");
        assert_eq!(current.new_layout, Some(staged));
    }

    #[test]
    fn identity_and_configuration_are_fixed() {
        let mut current = state();
        let mut forged = state();
        forged.epoch += 1_000;
        assert!(take_returned(&mut current, forged, &[], None).unwrap_err().contains("epoch"));
        let mut reshaped = state();
        reshaped.config.shards = 99;
        assert!(take_returned(&mut current, reshaped, &[], None).unwrap_err().contains("configuration"));
    }
}
