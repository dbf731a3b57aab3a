//! One simulated run: boot a cluster, load it while the seed's faults play
//! out, stop the faults, wait for the cluster to recover, and check it.
//!
//! The run lives on a current-thread tokio runtime whose clock is paused:
//! time moves only when every task waits, and then straight to the next
//! timer. Every choice comes from the seed's streams, so a seed always
//! gives the same run, event for event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

use super::adversary::{AdversarialPlugins, AdversarySlot, Switch};
use super::checker::{self, Property, Violation};
use super::faults::FaultProfile;
use super::history::{History, RecordingStore};
use super::net::{Network, SimTransport};
use super::plugins::FaultyPlugins;
use super::rng::SimRng;
use crate::bindings::types::{Epoch, Layout, RecoveryConfig};
use crate::cluster::{Cluster, LocalCluster, LocalError, RemoteCluster};
use crate::director::{AttemptOutcome, Director, DirectorError, DirectorOptions, PAUSE_AFTER_INCOMPLETE, RecoveryReport};
use crate::guard::{Invariant, kept_services};
use crate::quality::PlacementQuality;
use crate::registry::Plugins;
use crate::replica::{Budget, Sessions};
use crate::topology::NodeSpec;
use crate::worker::RequestKind;

/// One step of the run's driver, in virtual time.
const TICK: Duration = Duration::from_millis(10);
/// Workers a node may host (room for strays and replacements).
const NODE_CAPACITY: u32 = 16;
/// Keeps the network's stream apart from the driver's.
const NET_STREAM: u64 = 0x6e65_7477_6f72_6b00;

/// What a simulated run is asked to do.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Zones the nodes are spread over.
    pub zones: usize,
    /// Storage teams of the new cluster.
    pub shards: u32,
    /// Which faults, how often.
    pub profile: FaultProfile,
    /// How long faults are injected, in virtual time.
    pub fault_window: Duration,
    /// Liveness: once faults stop, recovery must complete within this.
    pub liveness_bound: Duration,
    /// Fuel of every plugin call: the simulator bounds plugins by fuel only.
    pub fuel: u64,
    /// How many versions logs retain behind their newest (never past what
    /// two live replicas of the shard hold); `None` keeps every version. A
    /// replica down for longer than this must be rebuilt.
    pub retention: Option<u64>,
    /// The slot the adversary takes, if the run has one. It is armed from
    /// the boot in one run in four, else when the faults start, and
    /// disarmed when they stop; the checker then asks for safety only.
    pub adversary: Option<AdversarySlot>,
    /// Whether the run records its event trace. The checker does not read
    /// it; an experiment records it only for `--trace`.
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 9,
            zones: 3,
            shards: 4,
            profile: FaultProfile::named("default").expect("the default profile exists"),
            fault_window: Duration::from_secs(3),
            liveness_bound: Duration::from_secs(60),
            fuel: 2_000_000_000,
            retention: None,
            adversary: None,
            trace: true,
        }
    }
}

/// How one director's recovery ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryEnd {
    /// Its layout was persisted.
    Completed,
    /// It ran out of attempts.
    Stalled,
    /// A newer epoch took over.
    Superseded,
    /// A phase declared the recovery impossible.
    Failed,
}

/// One director's recovery within a run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Recovery {
    /// Which director (1 for the first the run started).
    pub director: u32,
    /// Why it started.
    pub trigger: String,
    /// Whether it was started to race another director.
    pub competing: bool,
    /// Virtual time it started and ended, in ms since the run began.
    pub started_ms: f64,
    /// See `started_ms`.
    pub ended_ms: f64,
    /// How it ended.
    pub end: RecoveryEnd,
    /// Attempts it made.
    pub attempts: u32,
    /// The epoch of its last attempt.
    pub epoch: Epoch,
    /// The phases of every attempt: (epoch, phase, virtual ms, outcome).
    pub timeline: Vec<PhaseSpan>,
}

/// One phase of one attempt, in virtual time.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PhaseSpan {
    /// The attempt's epoch.
    pub epoch: Epoch,
    /// The phase.
    pub phase: String,
    /// When it started, in virtual ms since its recovery started.
    pub start_ms: f64,
    /// How long it took, in virtual ms.
    pub ms: f64,
    /// How it ended.
    pub outcome: String,
}

impl Recovery {
    /// Its length in virtual time.
    pub fn ms(&self) -> f64 {
        self.ended_ms - self.started_ms
    }
}

/// The placement of the final layout, in figures.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    /// Zones spanned over zones possible, summed over the teams (1.0 best).
    pub spread: f64,
    /// Teams held whole by one zone.
    pub one_zone_teams: usize,
    /// The highest number of workers on one node.
    pub max_node_load: u32,
}

/// The result of one simulated run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SimRun {
    /// The seed.
    pub seed: u64,
    /// Every recovery, the boot included.
    pub recoveries: Vec<Recovery>,
    /// What the checker found.
    pub violations: Vec<Violation>,
    /// Writes acknowledged to the client.
    pub acked: usize,
    /// Faults injected.
    pub faults: usize,
    /// Virtual time the run took, in ms.
    pub virtual_ms: f64,
    /// The placement of the final layout, if the run has one.
    pub placement: Option<Placement>,
    /// Replica recovery sessions, by how they began.
    pub replicas: ReplicaCounts,
    /// The slot the adversary took, in an adversarial run.
    pub adversary: Option<String>,
    /// Whether the cluster was serving, whole, when the run ended.
    pub settled: bool,
    /// The calls the invariant guard refused, by rule.
    pub refusals: BTreeMap<Invariant, usize>,
    /// The event trace (not in the JSON report: `--trace` prints it).
    #[serde(skip)]
    pub trace: Vec<String>,
    /// The worker protocol's requests the run sent, by kind (not in the
    /// JSON report).
    #[serde(skip)]
    pub requests: BTreeMap<RequestKind, u64>,
}

/// Replica recovery sessions of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaCounts {
    /// Catch-ups from the logs.
    pub catch_ups: usize,
    /// Truncations.
    pub truncations: usize,
    /// Rebuilds from a teammate (escalations included).
    pub rebuilds: usize,
    /// Catch-ups that broke their budget.
    pub escalations: usize,
    /// Sessions completed.
    pub completed: usize,
}

impl ReplicaCounts {
    fn of(events: &[crate::replica::ReplicaEvent]) -> Self {
        let mut counts = ReplicaCounts::default();
        for event in events {
            match event.event.as_str() {
                "opened" if event.detail.starts_with("catch-up: replay") => counts.catch_ups += 1,
                "opened" if event.detail.starts_with("catch-up: truncate") => counts.truncations += 1,
                "opened" if event.detail.starts_with("rebuild") => counts.rebuilds += 1,
                "escalated" => counts.escalations += 1,
                "completed" => counts.completed += 1,
                _ => {}
            }
        }
        counts
    }
}

/// Why a run could not be simulated at all.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The runtime would not start.
    #[error("cannot start the simulation runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The coordinator store failed.
    #[error(transparent)]
    Director(#[from] DirectorError),
    /// The in-process cluster would not start.
    #[error(transparent)]
    Cluster(#[from] LocalError),
}

/// Runs seed `seed` with `plugins` (normally the registry, its slots under
/// fuel-only limits).
pub fn simulate(seed: u64, config: &SimConfig, plugins: Arc<dyn Plugins>) -> Result<SimRun, SimError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    // The driver is made inside the runtime, so that its clock starts on the
    // paused virtual clock.
    runtime.block_on(async { Driver::new(seed, config.clone(), plugins)?.run().await })
}

/// A director's recovery in flight.
struct Running {
    director: u32,
    trigger: String,
    competing: bool,
    started: Instant,
    /// The report, and the virtual time the director finished.
    handle: JoinHandle<(Result<RecoveryReport, DirectorError>, Instant)>,
}

/// A director's recovery that ended.
struct Ended {
    director: u32,
    trigger: String,
    competing: bool,
    started: Instant,
    ended: Instant,
}

/// An acknowledged write.
struct Acked {
    key: String,
    value: String,
    version: u64,
    epoch: Epoch,
}

/// What one step of the client's load came to: the write, and the
/// replicas the pump found stranded if it pumped.
struct ClientStep {
    write: Result<Acked, String>,
    stranded: Option<Vec<String>>,
}

/// What comes back, and when.
enum Restart {
    Node(String),
    Partition(String),
    SlowDisk(String),
}

struct Driver {
    seed: u64,
    config: SimConfig,
    rng: SimRng,
    history: History,
    net: Arc<Network>,
    /// The foremen, seen from outside the protocol by the faults and the checker.
    local: Arc<LocalCluster>,
    /// The cluster client, behind the simulated network: the directors'
    /// and the run's client.
    inner: Arc<RemoteCluster>,
    /// Replicas the last pump found behind what the logs retain.
    stranded: BTreeSet<String>,
    store: Arc<RecordingStore>,
    plugins: Arc<dyn Plugins>,
    running: Vec<Running>,
    recoveries: Vec<Recovery>,
    directors: u32,
    /// A competing director to start, and when.
    rival_at: Option<Instant>,
    /// No new director starts before this, after one that did not complete.
    paused_until: Option<Instant>,
    restarts: Vec<(Instant, Restart)>,
    /// Nodes lost for good.
    lost_nodes: BTreeSet<String>,
    /// Storage replicas lost for good, their disks with them.
    lost_replicas: BTreeSet<String>,
    /// Every acknowledged write: key, value, version and the epoch of the
    /// generation that acknowledged it.
    acked: Vec<Acked>,
    writes: usize,
    /// The client's write in flight (and, every fifth, the storage pump
    /// after it): a task of its own, so that a write that waits on the
    /// network holds up neither the faults nor the directors.
    client: Option<JoinHandle<ClientStep>>,
    /// Why the client's last write was refused, while writes keep failing.
    last_refusal: Option<String>,
    /// The adversary, when the run has one, and its slot.
    adversary: Option<(Arc<Switch>, &'static str)>,
    /// The calls the invariant guard refused, by rule.
    refusals: BTreeMap<Invariant, usize>,
    faults: usize,
    /// The replica recovery sessions every director of the run shares, as
    /// the directors of one coordinator do.
    sessions: Arc<std::sync::Mutex<Sessions>>,
}

impl Driver {
    fn new(seed: u64, config: SimConfig, plugins: Arc<dyn Plugins>) -> Result<Self, SimError> {
        let history = History::new(config.trace);
        let net = Arc::new(Network::new(seed ^ NET_STREAM, config.profile.clone()));
        let nodes = NodeSpec::spread(config.nodes, config.zones, NODE_CAPACITY);
        let wire = SimTransport::wire(net.clone(), history.clone());
        let local = Arc::new(LocalCluster::wired(nodes, config.retention, wire, super::net::CALL_TIMEOUT)?);
        let inner = local.client();
        let store = Arc::new(RecordingStore::new(history.clone()));
        let adversary = config.adversary.as_ref().map(|slot| (Arc::new(Switch::default()), slot.slot_for(seed)));
        let plugins: Arc<dyn Plugins> = match &adversary {
            Some((switch, slot)) => Arc::new(AdversarialPlugins::new(plugins, slot, seed, switch.clone())),
            None => plugins,
        };
        let plugins: Arc<dyn Plugins> = Arc::new(FaultyPlugins::new(plugins, net.clone(), history.clone()));
        Ok(Driver {
            seed,
            rng: SimRng::new(seed),
            history,
            net,
            local,
            inner,
            stranded: BTreeSet::new(),
            store,
            plugins,
            running: Vec::new(),
            recoveries: Vec::new(),
            directors: 0,
            rival_at: None,
            paused_until: None,
            restarts: Vec::new(),
            lost_nodes: BTreeSet::new(),
            lost_replicas: BTreeSet::new(),
            acked: Vec::new(),
            writes: 0,
            client: None,
            last_refusal: None,
            adversary,
            refusals: BTreeMap::new(),
            faults: 0,
            sessions: Arc::new(std::sync::Mutex::new(Sessions::new(Budget::default()))),
            config,
        })
    }

    async fn run(mut self) -> Result<SimRun, SimError> {
        let c = &self.config;
        self.history.event(
            "sim",
            format_args!("seed {}: {} nodes in {} zones, {} shards, faults `{}`", self.seed, c.nodes, c.zones, c.shards, c.profile.name),
        );
        let mut violations = Vec::new();

        // Boot, without faults; the adversary attacks one boot in four.
        if self.rng.below(4) == 0 {
            self.arm(true);
        }
        self.start_recovery("boot".into(), false);
        let mut booted = self.settle(self.config.liveness_bound).await;
        if !booted && self.arm(false) {
            booted = self.settle(self.config.liveness_bound).await;
        }
        if !booted {
            violations.push(Violation::new(Property::Liveness, "the new cluster did not boot"));
            return Ok(self.finish(violations, false).await);
        }

        // The fault window: load, faults, and the recoveries they cause.
        self.arm(true);
        self.net.set_faults(true);
        self.history.event("sim", "faults on");
        let window_end = Instant::now() + self.config.fault_window;
        let ticks = (self.config.fault_window.as_millis() / TICK.as_millis()).max(1) as u64;
        // Every run loses a log of the live generation early on, so that
        // every run has at least one recovery to measure.
        let first_crash = self.rng.below(ticks / 3).max(1);
        let zone_loss = self.config.profile.zone_loss.then(|| ticks / 2 + self.rng.below(ticks * 2 / 5));
        // Faults are drawn once a tick of virtual time, however long the
        // client's work in a step takes (a commit is several messages,
        // each with its latency, or a timeout).
        let window_start = Instant::now();
        let mut tick = 0;
        while Instant::now() < window_end {
            let due = (window_start.elapsed().as_millis() / TICK.as_millis()) as u64 + 1;
            while tick < due.min(ticks) {
                tick += 1;
                if tick == first_crash {
                    self.crash_a_log();
                }
                // A zone is lost at the seed's tick, or at the first tick
                // after it at which the persisted generation survives it.
                if zone_loss.is_some_and(|at| tick >= at) && self.lost_nodes.is_empty() {
                    self.lose_a_zone();
                }
                self.inject_faults();
            }
            self.step(true).await;
        }

        // Faults stop: everything that was coming back comes back, and the
        // default plugins take over again.
        self.arm(false);
        self.net.set_faults(false);
        self.net.heal();
        let restarts = std::mem::take(&mut self.restarts);
        for (_, restart) in restarts {
            self.restart(restart);
        }
        self.history.event("sim", "faults off: partitions healed, crashed nodes restarted");
        // A write still in flight may yet break its generation (a push
        // whose reply comes too late): settling starts once it is done.
        self.collect_client().await;
        let settled = self.settle(self.config.liveness_bound).await;
        if !settled {
            let joining = self.inner.live_layout().and_then(|layout| self.local.joining_member(&layout));
            let reason = match (self.broken_member(), joining) {
                (Some(member), _) => format!("the live generation is still broken ({member})"),
                (None, Some(replica)) => format!("{replica} has not joined the live generation"),
                (None, None) => "recovery still running".into(),
            };
            violations.push(Violation::new(
                Property::Liveness,
                format!("no completed recovery within {:?} after the faults stopped: {reason}", self.config.liveness_bound),
            ));
        } else if let Err(reason) = self.commit().await {
            violations.push(Violation::new(Property::Liveness, format!("the recovered generation refused a write: {reason}")));
        }
        Ok(self.finish(violations, settled).await)
    }

    /// The shape every director of the run recovers towards.
    fn recovery_config(&self) -> RecoveryConfig {
        RecoveryConfig { shards: self.config.shards, ..RecoveryConfig::default() }
    }

    /// Puts the adversary in its slot, or takes it out. Answers whether
    /// the run has one.
    fn arm(&mut self, on: bool) -> bool {
        let Some((switch, slot)) = &self.adversary else { return false };
        if switch.on() != on {
            switch.set(on);
            self.history.event("adversary", format_args!("{} {slot}", if on { "takes" } else { "leaves" }));
        }
        true
    }

    /// Steps until no recovery is running and the live generation is whole
    /// (every replica that joins it serving too), or `bound` passes.
    /// Returns whether it settled.
    async fn settle(&mut self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        loop {
            self.step(false).await;
            let idle = self.running.is_empty() && self.rival_at.is_none();
            let joined = self.inner.live_layout().is_some_and(|layout| self.local.joining_member(&layout).is_none());
            if idle && joined && self.broken_member().is_none() {
                // Whole as of the last pump; pumped once more, a replica the
                // logs popped past since (its read lost while faults were
                // on) shows as stranded, and its generation as broken.
                self.pump().await;
                if self.broken_member().is_none() {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// One tick: collect ended recoveries, deliver late messages, bring
    /// back what is due, let the client work, and watch the generation.
    async fn step(&mut self, load: bool) {
        self.collect().await;
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.restarts).into_iter().partition(|(at, _)| *at <= now);
        self.restarts = later;
        for (_, restart) in due {
            self.restart(restart);
        }
        if self.client.as_ref().is_some_and(JoinHandle::is_finished) {
            self.collect_client().await;
        }
        if load && self.client.is_none() {
            let (key, value) = self.next_write();
            let (inner, history) = (self.inner.clone(), self.history.clone());
            let pump = self.writes.is_multiple_of(5);
            self.client = Some(tokio::spawn(async move {
                let write = write(&inner, &history, key, value).await;
                let stranded = if pump { Some(inner.pump().await) } else { None };
                ClientStep { write, stranded }
            }));
        }
        if let Some(at) = self.rival_at
            && at <= now
        {
            self.rival_at = None;
            self.start_recovery("a rival director".into(), true);
        }
        if self.running.is_empty()
            && self.paused_until.is_none_or(|until| until <= now)
            && let Some(member) = self.broken_member()
        {
            self.start_recovery(format!("{member} is unreachable"), false);
            if self.net.draw(|p| p.competing_director) {
                self.rival_at = Some(now + self.rng.millis(0, 40));
            }
        }
        sleep(TICK).await;
    }

    fn start_recovery(&mut self, trigger: String, competing: bool) {
        self.directors += 1;
        let director = self.directors;
        self.history.event("director", format_args!("d{director} starts: {trigger}"));
        let options = DirectorOptions { max_attempts: 12, ..DirectorOptions::default() };
        let config = self.recovery_config();
        let cluster: Arc<dyn Cluster> = self.inner.clone();
        let d =
            Director::new(self.plugins.clone(), cluster, self.store.clone(), config, options).with_replica_sessions(self.sessions.clone());
        let handle = tokio::spawn(async move { (d.recover().await, Instant::now()) });
        self.running.push(Running { director, trigger, competing, started: Instant::now(), handle });
    }

    /// Records the recoveries that ended; after a completed one, releases
    /// every worker its layout does not name, as the coordinator does.
    async fn collect(&mut self) {
        let mut still = Vec::new();
        let mut completed = false;
        for running in std::mem::take(&mut self.running) {
            if !running.handle.is_finished() {
                still.push(running);
                continue;
            }
            let Running { director, trigger, competing, started, handle } = running;
            let mut running = Ended { director, trigger, competing, started, ended: Instant::now() };
            let report = match handle.await {
                Ok((Ok(report), ended)) => {
                    running.ended = ended;
                    report
                }
                Ok((Err(err), _)) => {
                    self.history.event("director", format_args!("d{} error: {err}", running.director));
                    RecoveryReport::default()
                }
                Err(join) => {
                    self.history.event("director", format_args!("d{} panicked: {join}", running.director));
                    self.history.facts().panics.push(format!("director d{}: {join}", running.director));
                    RecoveryReport::default()
                }
            };
            let recovery = self.record(&running, &report);
            if matches!(recovery.end, RecoveryEnd::Failed | RecoveryEnd::Stalled) {
                self.paused_until = Some(running.ended + PAUSE_AFTER_INCOMPLETE);
            }
            if recovery.end == RecoveryEnd::Completed
                && let Some(layout) = report.layout()
            {
                self.history.event("cluster", format_args!("generation of epoch {} is live", layout.epoch));
                // Its replicas were brought to its recovery version before
                // they served it: none is stranded until a pump finds one.
                self.stranded.clear();
                completed = true;
            }
            self.recoveries.push(recovery);
        }
        self.running = still;
        // As the coordinator does, strays are released only while no
        // recovery runs, and against the newest layout persisted: a
        // director that completes after a rival persisted a newer layout
        // must not release the newer generation's services.
        if completed && self.running.is_empty() {
            let newest = self.history.facts().persisted.last().cloned();
            if let Some(layout) = newest {
                self.release_strays(&layout).await;
            }
        }
    }

    fn record(&mut self, running: &Ended, report: &RecoveryReport) -> Recovery {
        let started_ms = self.history.ms_at(running.started);
        let mut timeline = Vec::new();
        let mut offset = 0.0;
        for attempt in &report.attempts {
            for refusal in &attempt.refusals {
                self.history.event("guard", format_args!("d{} e{} refused {refusal}", running.director, attempt.epoch));
                *self.refusals.entry(refusal.rule).or_default() += 1;
            }
            for phase in &attempt.timeline {
                let ms = phase.duration.as_secs_f64() * 1e3;
                timeline.push(PhaseSpan {
                    epoch: attempt.epoch,
                    phase: phase.phase.clone(),
                    start_ms: offset,
                    ms,
                    outcome: phase.outcome.clone(),
                });
                offset += ms;
            }
        }
        let last = report.last();
        let end = match last.map(|a| &a.outcome) {
            Some(AttemptOutcome::Completed(_)) => RecoveryEnd::Completed,
            Some(AttemptOutcome::Superseded(_)) => RecoveryEnd::Superseded,
            Some(AttemptOutcome::Failed(_)) => RecoveryEnd::Failed,
            Some(AttemptOutcome::Stalled(_)) | None => RecoveryEnd::Stalled,
        };
        let recovery = Recovery {
            director: running.director,
            trigger: running.trigger.clone(),
            competing: running.competing,
            started_ms,
            ended_ms: self.history.ms_at(running.ended),
            end,
            attempts: report.attempts.len() as u32,
            epoch: last.map_or(0, |a| a.epoch),
            timeline,
        };
        let why = last.map(|a| a.outcome.to_string()).unwrap_or_else(|| "no attempt".into());
        self.history.event(
            "director",
            format_args!("d{} ends after {} attempts, epoch {}: {why}", recovery.director, recovery.attempts, recovery.epoch),
        );
        recovery
    }

    async fn release_strays(&self, layout: &Layout) {
        let named = kept_services(layout);
        for service in self.inner.services().await {
            if !named.contains(&service.id) {
                self.inner.release(&service.id, layout.epoch).await;
            }
        }
    }

    /// A member of the live generation that is down, cut off, or locked by
    /// a newer epoch, if any: the generation cannot commit while there is.
    fn broken_member(&self) -> Option<String> {
        let layout = self.inner.live_layout()?;
        if let Some(cut) = layout.services.iter().find(|s| self.net.is_partitioned(&s.node)) {
            return Some(cut.id.clone());
        }
        // Every commit waits on every log: one on a slow disk holds them up
        // past the health probe's timeout.
        let mut logs = layout.logs.iter().filter_map(|log| layout.services.iter().find(|s| s.id == log.id));
        if let Some(slow) = logs.find(|s| self.net.has_slow_disk(&s.node)) {
            return Some(slow.id.clone());
        }
        if let Some(stranded) = layout.services.iter().find(|s| self.stranded.contains(&s.id)) {
            return Some(stranded.id.clone());
        }
        self.local.unserving_member(&layout)
    }

    /// Lets storage catch up from the logs, remembering the replicas that
    /// cannot (the logs popped what they lack): their generation is broken.
    async fn pump(&mut self) {
        self.stranded = self.inner.pump().await.into_iter().collect();
    }

    /// The key and value of the client's next write.
    fn next_write(&mut self) -> (String, String) {
        let i = self.writes;
        self.writes += 1;
        (format!("{:08x}-{i}", (i as u32).wrapping_mul(2_654_435_761)), format!("s{}-v{i}", self.seed))
    }

    /// Waits for the client's step in flight, if any, and records it.
    async fn collect_client(&mut self) {
        let Some(handle) = self.client.take() else { return };
        let step = match handle.await {
            Ok(step) => step,
            Err(join) => {
                self.history.facts().panics.push(format!("the client: {join}"));
                return;
            }
        };
        if let Some(stranded) = step.stranded {
            self.stranded = stranded.into_iter().collect();
        }
        // Under faults a write may well be refused: the client goes on,
        // and the trace says why once for each new reason.
        match step.write {
            Ok(acked) => {
                self.acked.push(acked);
                self.last_refusal = None;
            }
            Err(reason) if self.last_refusal.as_deref() != Some(reason.as_str()) => {
                self.history.event("client", format_args!("writes refused: {reason}"));
                self.last_refusal = Some(reason);
            }
            Err(_) => {}
        }
    }

    /// Commits one write through the live generation, once the client's
    /// step in flight is done; why not, when it was not acknowledged.
    async fn commit(&mut self) -> Result<(), String> {
        self.collect_client().await;
        let (key, value) = self.next_write();
        let acked = write(&self.inner, &self.history, key, value).await?;
        self.acked.push(acked);
        Ok(())
    }

    fn crash_a_log(&mut self) {
        let Some(layout) = self.inner.live_layout() else { return };
        let logs: Vec<String> = layout.logs.iter().map(|l| l.id.clone()).collect();
        if let Some(id) = self.rng.pick(&logs).cloned() {
            let back = self.rng.millis(200, 2000);
            self.crash(id, back);
        }
    }

    /// Crashes the node hosting `id`: a worker process dies with every role
    /// it hosts, and restarts on its disk after `back`.
    fn crash(&mut self, id: String, back: Duration) {
        if let Some(node) = self.local.node_of(&id)
            && self.local.crash(&node)
        {
            self.faults += 1;
            self.history.event("fault", format_args!("crash {node} (hosting {id}); restarts in {back:?}"));
            self.restarts.push((Instant::now() + back, Restart::Node(node)));
        }
    }

    fn inject_faults(&mut self) {
        // Each fault asks the cluster what it needs only once it is drawn:
        // this runs every tick, and most ticks draw none.
        if self.net.draw(|p| p.crash)
            && let Some(id) = self.rng.pick(&self.local.hosted_ids()).cloned()
        {
            let back = self.rng.millis(50, 1500);
            self.crash(id, back);
        }
        if self.net.draw(|p| p.replica_loss)
            && self.lost_nodes.is_empty()
            && let Some(layout) = self.inner.live_layout()
        {
            // Within the replication budget: before any zone is lost, only a
            // team with every replica alive loses one, and only one whose
            // other replicas span two zones, so that a later zone loss still
            // leaves a replica. (A team placed while a zone was down may hold
            // two replicas in one zone.)
            let alive: BTreeSet<String> = self.local.hosted_ids().into_iter().collect();
            let node_of: BTreeMap<&str, &str> = layout.services.iter().map(|s| (s.id.as_str(), s.node.as_str())).collect();
            let zone_of = |id: &String| node_of.get(id.as_str()).and_then(|node| self.zone_of(node));
            let replicas: Vec<String> = layout
                .storage_teams
                .iter()
                .filter(|t| t.storage_ids.iter().all(|id| alive.contains(id)))
                .flat_map(|t| {
                    t.storage_ids.iter().filter(|lost| {
                        let rest: BTreeSet<Option<usize>> = t.storage_ids.iter().filter(|id| id != lost).map(zone_of).collect();
                        rest.len() >= 2 && !rest.contains(&None)
                    })
                })
                .cloned()
                .collect();
            if let Some(id) = self.rng.pick(&replicas).cloned()
                && self.local.lose(&id)
            {
                self.lost_replicas.insert(id.clone());
                self.faults += 1;
                self.history.event("fault", format_args!("{id} lost for good"));
            }
        }
        if self.net.draw(|p| p.node_crash)
            && let Some(node) = self.rng.pick(&self.nodes_not_lost()).cloned()
        {
            let back = self.rng.millis(100, 2000);
            if self.local.crash(&node) {
                self.faults += 1;
                self.history.event("fault", format_args!("node {node} down; back in {back:?}"));
                self.restarts.push((Instant::now() + back, Restart::Node(node)));
            }
        }
        if self.net.draw(|p| p.partition)
            && let Some(node) = self.rng.pick(&self.nodes_not_lost()).cloned()
            && !self.net.is_partitioned(&node)
        {
            let back = self.rng.millis(100, 1500);
            self.net.set_partitioned(&node, true);
            self.faults += 1;
            self.history.event("fault", format_args!("node {node} partitioned for {back:?}"));
            self.restarts.push((Instant::now() + back, Restart::Partition(node)));
        }
        if self.net.draw(|p| p.slow_disk)
            && let Some(node) = self.rng.pick(&self.nodes_not_lost()).cloned()
            && !self.net.has_slow_disk(&node)
        {
            let back = self.rng.millis(500, 4000);
            self.net.set_slow_disk(&node, true);
            self.faults += 1;
            self.history.event("fault", format_args!("node {node}'s disk slow for {back:?}"));
            self.restarts.push((Instant::now() + back, Restart::SlowDisk(node)));
        }
    }

    /// The simulated nodes, but those lost for good.
    fn nodes_not_lost(&self) -> Vec<String> {
        (1..=self.config.nodes).map(|i| format!("n{i}")).filter(|n| !self.lost_nodes.contains(n)).collect()
    }

    /// Whether `layout` keeps, once `zone` is lost, a log of every shard and
    /// a replica of every team, not counting replicas lost for good.
    fn survives_zone_loss(&self, layout: &Layout, zone: usize) -> bool {
        let node_of: BTreeMap<&str, &str> = layout.services.iter().map(|s| (s.id.as_str(), s.node.as_str())).collect();
        let outside = |id: &str| node_of.get(id).and_then(|node| self.zone_of(node)).is_some_and(|z| z != zone);
        let teams =
            layout.storage_teams.iter().all(|team| team.storage_ids.iter().any(|id| outside(id) && !self.lost_replicas.contains(id)));
        let logs = layout.storage_teams.iter().all(|team| layout.logs.iter().any(|log| log.tags.contains(&team.tag) && outside(&log.id)));
        teams && logs
    }

    /// The zone of simulated node `node`: nodes are dealt round-robin over
    /// the zones (`NodeSpec::spread`), `n1` to the first.
    fn zone_of(&self, node: &str) -> Option<usize> {
        let index: usize = node.strip_prefix('n')?.parse().ok()?;
        Some((index.checked_sub(1)?) % self.config.zones.max(1))
    }

    /// Loses a zone for good, within the replication budget: one whose
    /// loss leaves the newest persisted generation a log of every shard and
    /// a replica of every team. A generation placed while zones were down
    /// may stand in fewer zones than it would otherwise (a team or a shard's
    /// logs span as many zones as are healthy); while no zone can be lost,
    /// none is.
    fn lose_a_zone(&mut self) {
        let zones = self.config.zones.max(1);
        let survivable: Vec<usize> = {
            let facts = self.history.facts();
            let Some(layout) = facts.persisted.last() else { return };
            (0..zones).filter(|&zone| self.survives_zone_loss(layout, zone)).collect()
        };
        let Some(&lost) = self.rng.pick(&survivable) else { return };
        let zone = format!("z{}", lost + 1);
        let nodes: Vec<String> = (0..self.config.nodes).filter(|i| i % zones == lost).map(|i| format!("n{}", i + 1)).collect();
        for node in &nodes {
            self.local.crash(node);
            self.lost_nodes.insert(node.clone());
        }
        // Whatever was coming back in that zone is gone too.
        self.restarts.retain(|(_, r)| !matches!(r, Restart::Node(node) if nodes.contains(node)));
        self.faults += 1;
        self.history.event("fault", format_args!("zone {zone} lost for good: nodes {}", nodes.join(",")));
    }

    fn restart(&mut self, restart: Restart) {
        match restart {
            Restart::Node(node) => {
                if !self.lost_nodes.contains(&node) && !self.local.is_up(&node) {
                    match self.local.start(&node) {
                        Ok(()) => self.history.event("fault", format_args!("node {node} back up")),
                        Err(err) => self.history.event("fault", format_args!("node {node} cannot restart: {err}")),
                    }
                }
            }
            Restart::Partition(node) => {
                if self.net.is_partitioned(&node) {
                    self.net.set_partitioned(&node, false);
                    self.history.event("fault", format_args!("node {node} reconnected"));
                }
            }
            Restart::SlowDisk(node) => {
                if self.net.has_slow_disk(&node) {
                    self.net.set_slow_disk(&node, false);
                    self.history.event("fault", format_args!("node {node}'s disk fast again"));
                }
            }
        }
    }

    /// Checks the run and reports it. `settled` says whether the cluster
    /// ended serving, whole: its writes are then read back through it;
    /// otherwise they are looked for at rest, in the storage and the logs
    /// of the last layout persisted.
    async fn finish(mut self, mut violations: Vec<Violation>, settled: bool) -> SimRun {
        self.collect_client().await;
        self.pump().await;
        let at_rest = self.history.facts().persisted.last().cloned();
        let mut lost = Vec::new();
        for w in &self.acked {
            let kept = match (settled, &at_rest) {
                (true, _) => self.inner.read(&w.key).await.ok().flatten().as_deref() == Some(w.value.as_str()),
                (false, Some(layout)) => self.local.kept_at_rest(layout, &w.key, &w.value),
                (false, None) => false,
            };
            if !kept {
                lost.push(w.key.clone());
            }
        }
        let how = if settled { "read back" } else { "looked for at rest" };
        self.history.event("sim", format_args!("{} acknowledged writes {how}: {} lost", self.acked.len(), lost.len()));
        let replicas = {
            let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            for event in sessions.events() {
                self.history.event("replica", format_args!("{event}"));
            }
            ReplicaCounts::of(sessions.events())
        };
        // Replicas settle only with their generation.
        if settled && let Some(layout) = self.inner.live_layout() {
            violations.extend(checker::check_replicas(&self.local.team_contents(&layout)));
        }
        let placement = match self.inner.live_layout() {
            Some(layout) => Some(placement(&PlacementQuality::of(&layout, &self.inner.nodes().await))),
            None => None,
        };
        // The facts stay locked to the end: no message may go out from here
        // (the network records into them).
        let mut facts = self.history.facts();
        let acked: Vec<(u64, Epoch)> = self.acked.iter().map(|w| (w.version, w.epoch)).collect();
        let replication = self.recovery_config().replication_factor;
        violations.extend(checker::check(&facts, &checker::Outcome { lost: &lost, acked: &acked, replication }));
        let adversary = self.adversary.as_ref().map(|(_, slot)| slot.to_string());
        if adversary.is_some() {
            // An adversary may stall every recovery: only safety counts.
            violations.retain(|v| v.rule != Property::Liveness);
        }
        let trace = std::mem::take(&mut facts.trace);
        drop(facts);
        SimRun {
            seed: self.seed,
            recoveries: self.recoveries,
            violations,
            acked: self.acked.len(),
            faults: self.faults,
            virtual_ms: self.history.now_ms(),
            placement,
            replicas,
            adversary,
            settled,
            refusals: self.refusals,
            trace,
            requests: self.local.requests_sent(),
        }
    }
}

/// Commits `key = value` through the live generation of `cluster`.
async fn write(cluster: &RemoteCluster, history: &History, key: String, value: String) -> Result<Acked, String> {
    let Some(layout) = cluster.live_layout() else { return Err("no live generation".into()) };
    let version = cluster.commit(&[(key.clone(), value.clone())]).await.map_err(|err| err.to_string())?;
    history.event("client", format_args!("{key} acknowledged at version {version} (epoch {})", layout.epoch));
    Ok(Acked { key, value, version, epoch: layout.epoch })
}

fn placement(quality: &PlacementQuality) -> Placement {
    let (zones, best) = quality.teams.iter().fold((0, 0), |(z, b), t| (z + t.zones, b + t.best_zones));
    Placement {
        spread: if best == 0 { 1.0 } else { zones as f64 / best as f64 },
        one_zone_teams: quality.in_one_zone().count(),
        max_node_load: quality.max_node_load,
    }
}
