//! Full recovery of the in-process cluster (a foreman per node on the
//! in-memory transport): `cargo bench -p ratchet --bench recovery`.
//!
//! For each cluster size: boot a new cluster, commit writes, crash the node
//! of a log and the node of a storage replica, and time the recovery (the director's `recover`, from the
//! first epoch it takes to the persisted layout). Prints the median wall time
//! and the median share of it spent in wasm (phase time minus host calls),
//! then the same with the phase crates compiled natively (the baseline) and
//! the ratio of the two. Last, the floor: the native recovery again, with a
//! call of a component that does nothing (the `noop-phase` fixture, in a
//! fresh sandbox) before each of its plugin calls, and the share of the
//! floor's wall that those calls took. That share is the least any pipeline
//! that gives every call a fresh `Store` can cost, however fast its
//! components.
//!
//! For profiling: `RATCHET_BENCH_RUNS=N` sets the number of runs, and
//! `RATCHET_BENCH_PERF_CTL=CTL,ACK` writes `enable` and `disable` to a
//! `perf record --control fifo:CTL,ACK` around each timed wasm recovery
//! (around each native one with `RATCHET_BENCH_PERF_NATIVE=1`) and waits for
//! perf's acknowledgement, so that the profile holds the recoveries only, not
//! the boots and loads. docs/perf/recovery.md has the
//! commands. `RATCHET_BENCH_PHASES=1` also prints, per cluster size, the
//! median time of each phase and of the host calls, wasm beside native.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ratchet::bindings::state_fields;
use ratchet::bindings::types::{
    Assignment, AttemptState, PhaseOutcome, PlacementError, PlacementRequest, RecoveryConfig, ReplicaHistory, ReplicaPlan, StateField,
};
use ratchet::bindings::{clock, cluster, placement};
use ratchet::cluster::LocalCluster;
use ratchet::components::fixtures;
use ratchet::director::{Director, DirectorOptions};
use ratchet::registry::{InvokeError, PHASES, Plugins, Registry};
use ratchet::runtime::{Detached, HostView, PluginHost, Runtime, RuntimeConfig};
use ratchet::store::MemoryStore;
use ratchet_guest::types as g;
use ratchet_guest::{Host as GuestHost, LogLevel, Phase, PlacementPolicy};

struct Shape {
    label: &'static str,
    nodes: usize,
    zones: usize,
    config: RecoveryConfig,
    writes: usize,
    runs: usize,
}

fn registry() -> Arc<dyn Plugins> {
    static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
    let registry: Arc<Registry> = REGISTRY
        .get_or_init(|| {
            let runtime = Arc::new(Runtime::new(RuntimeConfig::default()).unwrap());
            Arc::new(Registry::with_defaults(runtime).unwrap())
        })
        .clone();
    registry
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let shapes = [
        Shape { label: "9 nodes", nodes: 9, zones: 3, config: RecoveryConfig::default(), writes: 3_000, runs: 20 },
        Shape {
            label: "1,000 nodes",
            nodes: 1_000,
            zones: 10,
            config: RecoveryConfig { desired_logs: 30, shards: 3_300, ..RecoveryConfig::default() },
            writes: 3_000,
            runs: 11,
        },
    ];
    println!(
        "{:<12} {:>8} {:>5} {:>12} {:>10} {:>12} {:>12} {:>12} {:>12} {:>8} {:>11}",
        "cluster",
        "services",
        "runs",
        "wasm wall",
        "in wasm",
        "native wall",
        "converting",
        "wasm/native",
        "floor wall",
        "calls",
        "floor share"
    );
    let native: Arc<dyn Plugins> = Arc::new(NativePlugins);
    let profiling = Profiling::from_env();
    // `cargo bench --bench recovery -- 9` runs only the shapes whose label
    // starts with the argument.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for shape in shapes {
        if filter.as_deref().is_some_and(|f| !shape.label.starts_with(f)) {
            continue;
        }
        let mut walls = Vec::new();
        let mut wasm = Vec::new();
        let mut natives = Vec::new();
        let mut converting = Vec::new();
        let mut floors = Vec::new();
        let mut floor_shares = Vec::new();
        let mut floor_calls = 0;
        let mut services = 0;
        let mut wasm_phases = PhaseTimes::default();
        let mut native_phases = PhaseTimes::default();
        let runs = profiling.runs.unwrap_or(shape.runs);
        for _ in 0..runs {
            let perf = profiling.perf_ctl(false);
            let run = tokio.block_on(one_recovery(&shape, registry(), perf));
            walls.push(run.wall);
            wasm.push(run.in_wasm);
            services = run.services;
            wasm_phases.add(&run.phases);
            let perf = profiling.perf_ctl(true);
            let run = tokio.block_on(one_recovery(&shape, native.clone(), perf));
            natives.push(run.wall);
            converting.push(run.converting);
            native_phases.add(&run.phases);
        }
        // The floor runs after the others, on an engine of its own that is
        // dropped (with its epoch thread) before the next shape, so that it
        // changes nothing the wasm and native runs measure.
        let floor = Arc::new(FloorPlugins::new());
        for _ in 0..runs {
            let calls = floor.calls.load(Ordering::Relaxed);
            let spent = floor.spent.load(Ordering::Relaxed);
            let run = tokio.block_on(one_recovery(&shape, floor.clone(), None));
            floor_calls = floor.calls.load(Ordering::Relaxed) - calls;
            let spent = Duration::from_nanos(floor.spent.load(Ordering::Relaxed) - spent);
            floors.push(run.wall);
            floor_shares.push(spent.as_secs_f64() / run.wall.as_secs_f64());
        }
        drop(floor);
        if std::env::var_os("RATCHET_BENCH_PHASES").is_some() {
            print_phases(shape.label, &mut wasm_phases, &mut native_phases);
        }
        let wall = median(&mut walls);
        let in_wasm = median(&mut wasm);
        let native_wall = median(&mut natives);
        let converting = median(&mut converting);
        let floor_wall = median(&mut floors);
        floor_shares.sort_by(f64::total_cmp);
        let floor_share = floor_shares[floor_shares.len() / 2];
        println!(
            "{:<12} {:>8} {:>5} {:>9.2} ms {:>9.1}% {:>9.2} ms {:>9.2} ms {:>12.2} {:>9.2} ms {:>8} {:>10.1}%",
            shape.label,
            services,
            runs,
            wall.as_secs_f64() * 1e3,
            100.0 * in_wasm.as_secs_f64() / wall.as_secs_f64(),
            native_wall.as_secs_f64() * 1e3,
            converting.as_secs_f64() * 1e3,
            wall.as_secs_f64() / native_wall.as_secs_f64(),
            floor_wall.as_secs_f64() * 1e3,
            floor_calls,
            100.0 * floor_share
        );
    }
}

/// The profiling options (see the module docs).
struct Profiling {
    runs: Option<usize>,
    perf_ctl: Option<String>,
    native: bool,
}

impl Profiling {
    fn from_env() -> Self {
        let runs = std::env::var("RATCHET_BENCH_RUNS")
            .ok()
            .map(|r| r.parse().unwrap_or_else(|_| panic!("RATCHET_BENCH_RUNS must be a number of runs, not {r:?}")));
        Profiling {
            runs,
            perf_ctl: std::env::var("RATCHET_BENCH_PERF_CTL").ok(),
            native: std::env::var_os("RATCHET_BENCH_PERF_NATIVE").is_some(),
        }
    }

    /// perf's control fifo, if the recovery about to run (native or wasm)
    /// is the one profiled.
    fn perf_ctl(&self, native: bool) -> Option<&str> {
        self.perf_ctl.as_deref().filter(|_| native == self.native)
    }
}

/// Writes `command` to perf's control fifo, then waits for perf's `ack`
/// if an ack fifo follows a comma (`CTL,ACK`, as in perf's
/// `--control fifo:CTL,ACK`). Without the ack perf acts on the command when it
/// next reads the fifo, so a profile may hold work from after `disable`.
fn tell_perf(fifos: Option<&str>, command: &str) {
    let Some(fifos) = fifos else { return };
    let (ctl, ack) = match fifos.split_once(',') {
        Some((ctl, ack)) => (ctl, Some(ack)),
        None => (fifos, None),
    };
    std::fs::write(ctl, format!("{command}\n")).unwrap_or_else(|e| panic!("writing {command:?} to perf's control fifo {ctl}: {e}"));
    if let Some(ack) = ack {
        // One line: perf keeps the fifo open, so there is no end to read to.
        use std::io::BufRead;
        let mut answer = String::new();
        std::fs::File::open(ack)
            .map(std::io::BufReader::new)
            .and_then(|mut fifo| fifo.read_line(&mut answer))
            .unwrap_or_else(|e| panic!("reading perf's answer to {command:?} from {ack}: {e}"));
        assert_eq!(answer.trim(), "ack", "perf's answer to {command:?}");
    }
}

/// What one timed recovery measured.
struct Run {
    wall: Duration,
    /// Phase time minus host calls (for the native baseline, its phase code
    /// and conversions).
    in_wasm: Duration,
    /// The time the native baseline spent converting values; zero for components.
    converting: Duration,
    /// Services in the recovered layout.
    services: usize,
    /// Each phase's time, summed over the attempts, and the host calls' as
    /// [`HOST_CALLS`].
    phases: BTreeMap<String, Duration>,
}

/// Set while a recovery is timed (not while the cluster boots).
static TIMED: AtomicBool = AtomicBool::new(false);

/// The row of [`Run::phases`] that holds the host calls' time.
const HOST_CALLS: &str = "host calls";

/// Per phase, one duration per run.
#[derive(Default)]
struct PhaseTimes(BTreeMap<String, Vec<Duration>>);

impl PhaseTimes {
    fn add(&mut self, run: &BTreeMap<String, Duration>) {
        for (phase, duration) in run {
            self.0.entry(phase.clone()).or_default().push(*duration);
        }
    }

    fn median(&mut self, phase: &str) -> Option<Duration> {
        self.0.get_mut(phase).map(|durations| median(durations))
    }
}

/// The median of each phase, wasm beside native, in pipeline order.
fn print_phases(label: &str, wasm: &mut PhaseTimes, native: &mut PhaseTimes) {
    println!("  {label}: median per phase, host calls included    {:>10} {:>10} {:>7}", "wasm", "native", "ratio");
    // The pipeline's phases first, then any other slot that ran, then the host.
    let mut names: Vec<String> = PHASES.iter().map(|n| n.to_string()).collect();
    names.extend(wasm.0.keys().filter(|n| !PHASES.contains(&n.as_str()) && *n != HOST_CALLS).cloned());
    names.push(HOST_CALLS.to_string());
    for name in names {
        let (Some(w), Some(n)) = (wasm.median(&name), native.median(&name)) else { continue };
        println!(
            "  {:<46} {:>7.2} ms {:>7.2} ms {:>7.2}",
            name,
            w.as_secs_f64() * 1e3,
            n.as_secs_f64() * 1e3,
            w.as_secs_f64() / n.as_secs_f64()
        );
    }
}

/// One boot, load, failure and recovery, timed from the recovery's first epoch
/// to its persisted layout. With `perf`, the recovery (and only it) is profiled.
async fn one_recovery(shape: &Shape, plugins: Arc<dyn Plugins>, perf: Option<&str>) -> Run {
    let local = LocalCluster::with_zones(shape.nodes, shape.zones, 64).unwrap();
    let cluster = local.client();
    let director = Director::new(plugins, cluster.clone(), Arc::new(MemoryStore::default()), shape.config, DirectorOptions::default());
    let boot = director.recover().await.unwrap();
    let layout = boot.layout().unwrap_or_else(|| panic!("boot did not complete: {}", boot.last().unwrap().outcome)).clone();
    for i in 0..shape.writes {
        let key = format!("{:08x}-{i}", (i as u32).wrapping_mul(2_654_435_761));
        cluster.commit(&[(key, format!("value-{i}"))]).await.unwrap();
        if i % 500 == 499 {
            cluster.pump().await;
        }
    }
    for id in [&layout.logs[0].id, &layout.storage_teams[0].storage_ids[0]] {
        let node = local.node_of(id).expect("a live member is hosted");
        local.crash(&node);
    }
    let converting = CONVERTING.load(Ordering::Relaxed);
    tell_perf(perf, "enable");
    TIMED.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let report = director.recover().await.unwrap();
    let wall = started.elapsed();
    TIMED.store(false, Ordering::Relaxed);
    tell_perf(perf, "disable");
    let converting = Duration::from_nanos(CONVERTING.load(Ordering::Relaxed) - converting);
    let recovered = report.layout().unwrap_or_else(|| panic!("recovery did not complete: {:?}", report.last().map(|a| &a.outcome)));
    let in_wasm = report.attempts.iter().map(|a| a.wasm_time()).sum();
    let mut phases = BTreeMap::new();
    for attempt in &report.attempts {
        for phase in &attempt.timeline {
            *phases.entry(phase.phase.clone()).or_default() += phase.duration;
        }
        *phases.entry(HOST_CALLS.to_string()).or_default() += attempt.host_time;
    }
    Run { wall, in_wasm, converting, services: recovered.services.len(), phases }
}

/// The same phase and policy crates compiled natively, behind the same
/// invariant guard: the baseline the wasm build is compared with. Values
/// cross between the host's and the SDK's generated types through postcard,
/// which both derive from the same WIT; like a component, a phase gets only
/// the fields it reads and returns only those it writes.
struct NativePlugins;

/// Nanoseconds the native baseline has spent converting values between the
/// host's and the SDK's types: work a component does not do (its values are
/// lowered straight into its memory), reported beside the native wall time.
static CONVERTING: AtomicU64 = AtomicU64::new(0);

fn convert<A: serde::Serialize, B: serde::de::DeserializeOwned>(value: &A) -> B {
    let started = Instant::now();
    let converted = postcard::from_bytes(&postcard::to_stdvec(value).expect("encodes")).expect("same WIT, same shape");
    CONVERTING.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    converted
}

/// Runs phase `P` as its component's glue does: only the fields it reads go
/// in, only the fields it writes come back.
fn run_native<P: Phase>(state: &AttemptState, host: &mut dyn GuestHost) -> PhaseOutcome {
    let reads: Vec<StateField> = convert(&P::READS.to_vec());
    let sent: g::AttemptState = convert(&state_fields::masked(state, &reads));
    convert(&ratchet_guest::__private::returned(P::run(sent, host), P::WRITES))
}

fn dispatch(slot: &str, state: &AttemptState, host: &mut dyn GuestHost) -> PhaseOutcome {
    match slot {
        "validate-layout" => run_native::<phase_validate_layout::ValidateLayout>(state, host),
        "lock-services" => run_native::<phase_lock_services::LockServices>(state, host),
        "determine-path" => run_native::<phase_determine_path::DeterminePath>(state, host),
        "initialize" => run_native::<phase_initialize::Initialize>(state, host),
        "plan-log-recovery" => run_native::<phase_plan_log_recovery::PlanLogRecovery>(state, host),
        "create-vacancies" => run_native::<phase_create_vacancies::CreateVacancies>(state, host),
        "determine-durable-version" => run_native::<phase_determine_durable_version::DetermineDurableVersion>(state, host),
        "recruit-logs" => run_native::<phase_recruit_logs::RecruitLogs>(state, host),
        "recruit-storage" => run_native::<phase_recruit_storage::RecruitStorage>(state, host),
        "replay-logs" => run_native::<phase_replay_logs::ReplayLogs>(state, host),
        "start-sequencer" => run_native::<phase_start_sequencer::StartSequencer>(state, host),
        "start-proxies" => run_native::<phase_start_proxies::StartProxies>(state, host),
        "start-resolvers" => run_native::<phase_start_resolvers::StartResolvers>(state, host),
        "assemble-layout" => run_native::<phase_assemble_layout::AssembleLayout>(state, host),
        "persist-layout" => run_native::<phase_persist_layout::PersistLayout>(state, host),
        other => panic!("no native phase for {other}"),
    }
}

#[async_trait::async_trait]
impl Plugins for NativePlugins {
    async fn run_phase(&self, slot: &str, state: &AttemptState, host: Arc<dyn PluginHost>) -> Result<PhaseOutcome, InvokeError> {
        let handle = tokio::runtime::Handle::current();
        Ok(tokio::task::block_in_place(|| {
            let mut native = NativeHost { host, handle };
            dispatch(slot, state, &mut native)
        }))
    }

    async fn place(&self, request: &PlacementRequest) -> Result<Result<Vec<Assignment>, PlacementError>, InvokeError> {
        let answer = <policy_spread_zones::SpreadZones as PlacementPolicy>::place(convert(request));
        Ok(convert(&answer))
    }

    async fn replica_plan(&self, history: &ReplicaHistory) -> Result<ReplicaPlan, InvokeError> {
        Ok(convert(&replica_recovery_default::decide(convert(history))))
    }
}

/// The native baseline, with a call of the `noop-phase` fixture in a fresh
/// sandbox before each of its plugin calls: a recovery that pays for a fresh
/// `Store` per call and nothing else a component costs.
struct FloorPlugins {
    /// A registry whose validate-layout slot holds the fixture, on a runtime
    /// of its own.
    noop: Registry,
    empty: AttemptState,
    detached: Arc<dyn PluginHost>,
    /// Fixture calls made during timed recoveries, and the nanoseconds they
    /// took.
    calls: AtomicU64,
    spent: AtomicU64,
}

impl FloorPlugins {
    fn new() -> Self {
        let noop = Registry::new(Arc::new(Runtime::new(RuntimeConfig::default()).unwrap()));
        noop.load_file("validate-layout", std::path::Path::new(fixtures::NOOP_PHASE)).unwrap();
        let empty = AttemptState::new(1, 1, RecoveryConfig::default(), None);
        let detached: Arc<dyn PluginHost> = Arc::new(Detached::default());
        FloorPlugins { noop, empty, detached, calls: AtomicU64::new(0), spent: AtomicU64::new(0) }
    }

    async fn sandbox(&self) {
        let started = Instant::now();
        let outcome = self.noop.call_phase("validate-layout", &self.empty, self.detached.clone()).await.unwrap();
        assert!(outcome.written.is_empty(), "the fixture writes nothing");
        if TIMED.load(Ordering::Relaxed) {
            self.spent.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.calls.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[async_trait::async_trait]
impl Plugins for FloorPlugins {
    async fn run_phase(&self, slot: &str, state: &AttemptState, host: Arc<dyn PluginHost>) -> Result<PhaseOutcome, InvokeError> {
        self.sandbox().await;
        NativePlugins.run_phase(slot, state, host).await
    }

    async fn place(&self, request: &PlacementRequest) -> Result<Result<Vec<Assignment>, PlacementError>, InvokeError> {
        self.sandbox().await;
        NativePlugins.place(request).await
    }

    async fn replica_plan(&self, history: &ReplicaHistory) -> Result<ReplicaPlan, InvokeError> {
        self.sandbox().await;
        NativePlugins.replica_plan(history).await
    }
}

/// The guest SDK's host trait over the guarded host, through the imports a
/// component's calls run, blocking on each call as a component's import
/// does.
struct NativeHost {
    host: Arc<dyn PluginHost>,
    handle: tokio::runtime::Handle,
}

impl NativeHost {
    fn wait<F: std::future::Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }
}

impl GuestHost for NativeHost {
    fn services(&mut self) -> Vec<g::ServiceDescriptor> {
        convert(&self.wait(cluster::Host::services(&mut HostView::native(&*self.host))))
    }
    fn nodes(&mut self) -> Vec<g::Node> {
        convert(&self.wait(cluster::Host::nodes(&mut HostView::native(&*self.host))))
    }
    fn lock(&mut self, ids: &[String]) -> Vec<Result<g::LockInfo, g::ClusterError>> {
        convert(&self.wait(cluster::Host::lock(&mut HostView::native(&*self.host), ids.to_vec())))
    }
    fn create_worker(&mut self, node: &str, kind: g::ServiceKind) -> Result<g::ServiceDescriptor, g::ClusterError> {
        convert(&self.wait(cluster::Host::create_worker(&mut HostView::native(&*self.host), node.into(), convert(&kind))))
    }
    fn create_workers(&mut self, requests: &[(String, g::ServiceKind)]) -> Vec<Result<g::ServiceDescriptor, g::ClusterError>> {
        let requests = requests.iter().map(|(node, kind)| (node.clone(), convert(kind))).collect();
        convert(&self.wait(cluster::Host::create_workers(&mut HostView::native(&*self.host), requests)))
    }
    fn known_durable(&mut self, ids: &[String]) -> Result<Vec<Option<u64>>, g::ClusterError> {
        convert(&self.wait(cluster::Host::known_durable(&mut HostView::native(&*self.host), ids.to_vec())))
    }
    fn recover_logs(&mut self, copies: &[g::LogCopy]) -> Vec<Result<(), g::ClusterError>> {
        convert(&self.wait(cluster::Host::recover_logs(&mut HostView::native(&*self.host), convert(&copies.to_vec()))))
    }
    fn recover_log(
        &mut self,
        target: &str,
        sources: &[String],
        tags: &[g::ShardTag],
        first: g::Version,
        last: g::Version,
    ) -> Result<(), g::ClusterError> {
        let mut view = HostView::native(&*self.host);
        convert(&self.wait(cluster::Host::recover_log(&mut view, target.into(), sources.to_vec(), tags.to_vec(), first, last)))
    }
    fn start_role(&mut self, node: &str, kind: g::ServiceKind) -> Result<g::ServiceDescriptor, g::ClusterError> {
        convert(&self.wait(cluster::Host::start_role(&mut HostView::native(&*self.host), node.into(), convert(&kind))))
    }
    fn stage_layout(&mut self, layout: &g::Layout) -> Result<(), g::ClusterError> {
        convert(&self.wait(cluster::Host::stage_layout(&mut HostView::native(&*self.host), convert(layout))))
    }
    fn unlock(&mut self, ids: &[String]) -> Vec<Result<(), g::ClusterError>> {
        convert(&self.wait(cluster::Host::unlock(&mut HostView::native(&*self.host), ids.to_vec())))
    }
    fn persist_layout(&mut self) -> Result<(), g::ClusterError> {
        convert(&self.wait(cluster::Host::persist_layout(&mut HostView::native(&*self.host))))
    }
    fn place(&mut self, request: &g::PlacementRequest) -> Result<Vec<g::Assignment>, g::PlacementError> {
        convert(&self.wait(placement::Host::place(&mut HostView::native(&*self.host), convert(request))))
    }
    fn now_ms(&mut self) -> u64 {
        self.wait(clock::Host::now_ms(&mut HostView::native(&*self.host)))
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.wait(clock::Host::sleep_ms(&mut HostView::native(&*self.host), ms))
    }
    fn log(&mut self, _level: LogLevel, _message: &str, _fields: &[(String, String)]) {}
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}
