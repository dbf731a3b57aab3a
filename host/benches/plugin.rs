//! Plugin runtime benchmarks: `cargo bench -p ratchet --bench plugin`.
//!
//! - `call_small_phase`: instantiate the default validate-layout from its
//!   `InstancePre` in a fresh `Store` and run it once (target: median ≤ 50 µs);
//! - `call_noop_phase`: the same for the `noop-phase` fixture, which reads
//!   nothing and does nothing: what any call costs (the recovery benchmark's
//!   floor);
//! - `compile_default`: compile a default component with no cache;
//! - `load_from_disk_cache`: load the same component from the on-disk cache
//!   (target: median ≤ 5 ms);
//! - `swap_then_call`: activate a validated component and run the next call,
//!   which sees it (target: ≤ 1 ms); `activate_only` isolates the swap.

use std::sync::{Arc, OnceLock};

#[path = "support/placement.rs"]
mod placement;

use placement::large_placement_request;
use ratchet::bindings::types::{AttemptState, PhaseOutcome, PhaseStep, RecoveryConfig};
use ratchet::components;
use ratchet::registry::Registry;
use ratchet::runtime::{CacheOrigin, Detached, PluginHost, Runtime, RuntimeConfig};

fn main() {
    divan::main();
}

fn tokio() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(|| Arc::new(Runtime::new(RuntimeConfig::default()).unwrap())).clone()
}

fn phase_bytes() -> &'static [u8] {
    components::default_for("validate-layout").unwrap().bytes
}

fn state() -> AttemptState {
    AttemptState::new(1, 1, RecoveryConfig::default(), None)
}

/// Calls the validate-layout slot of `registry` on an empty state, once per
/// iteration, and hands each outcome to `check`.
fn bench_validate_layout(bencher: divan::Bencher, registry: &Registry, check: impl Fn(&PhaseOutcome)) {
    let host: Arc<dyn PluginHost> = Arc::new(Detached::default());
    let state = state();
    bencher.bench_local(|| {
        let outcome = tokio().block_on(registry.call_phase("validate-layout", &state, host.clone())).unwrap();
        check(&outcome);
    });
}

#[divan::bench]
fn call_small_phase(bencher: divan::Bencher) {
    let registry = Registry::with_defaults(runtime()).unwrap();
    bench_validate_layout(bencher, &registry, |outcome| assert!(matches!(outcome.step, PhaseStep::Next(_))));
}

#[divan::bench]
fn call_noop_phase(bencher: divan::Bencher) {
    let registry = Registry::new(runtime());
    registry.load_file("validate-layout", std::path::Path::new(components::fixtures::NOOP_PHASE)).unwrap();
    bench_validate_layout(bencher, &registry, |outcome| assert!(outcome.written.is_empty()));
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn compile_default(bencher: divan::Bencher) {
    let runtime = runtime();
    bencher.bench_local(|| {
        runtime.forget_compiled();
        let (_, _, origin) = runtime.compile(phase_bytes()).unwrap();
        assert_eq!(origin, CacheOrigin::Compiled);
    });
}

#[divan::bench(sample_count = 50, sample_size = 1)]
fn load_from_disk_cache(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(dir.path().to_path_buf()), ..Default::default() }).unwrap();
    runtime.compile(phase_bytes()).unwrap();
    bencher.bench_local(|| {
        runtime.forget_compiled();
        let (_, _, origin) = runtime.compile(phase_bytes()).unwrap();
        assert_eq!(origin, CacheOrigin::Disk);
    });
}

#[divan::bench]
fn swap_then_call(bencher: divan::Bencher) {
    let registry = Registry::with_defaults(runtime()).unwrap();
    let host: Arc<dyn PluginHost> = Arc::new(Detached::default());
    let state = state();
    bencher.with_inputs(|| registry.prepare("validate-layout", phase_bytes(), "bench").unwrap()).bench_local_values(|candidate| {
        let version = registry.activate(candidate).number;
        tokio().block_on(registry.call_phase("validate-layout", &state, host.clone())).unwrap();
        version
    });
}

#[divan::bench]
fn activate_only(bencher: divan::Bencher) {
    let registry = Registry::with_defaults(runtime()).unwrap();
    bencher
        .with_inputs(|| registry.prepare("validate-layout", phase_bytes(), "bench").unwrap())
        .bench_local_values(|candidate| registry.activate(candidate).number);
}

/// The final state of a first-start recovery of a 9-node cluster: what a
/// phase late in the pipeline receives.
fn nine_node_state() -> AttemptState {
    use ratchet::cluster::LocalCluster;
    use ratchet::director::{Director, DirectorOptions};
    use ratchet::store::MemoryStore;
    let registry = Arc::new(Registry::with_defaults(runtime()).unwrap());
    let cluster = LocalCluster::with_zones(9, 3, 64).unwrap();
    let director =
        Director::new(registry, cluster.client(), Arc::new(MemoryStore::default()), RecoveryConfig::default(), DirectorOptions::default());
    let report = tokio().block_on(director.recover()).unwrap();
    *report.last().unwrap().final_state.clone()
}

#[divan::bench]
fn call_phase_nine_node_state(bencher: divan::Bencher) {
    let registry = Registry::with_defaults(runtime()).unwrap();
    let host: Arc<dyn PluginHost> = Arc::new(Detached::default());
    let state = nine_node_state();
    bencher.bench_local(|| tokio().block_on(registry.call_phase("determine-path", &state, host.clone())).unwrap());
}

/// The default placement policy (spread-zones, in wasm) answering 10,000
/// vacancies over 1,000 nodes: instantiation, copying the request in and
/// the answer out, and the policy itself. Target: median ≤ 50 ms.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn place_10k_vacancies_over_1k_nodes(bencher: divan::Bencher) {
    let registry = Registry::with_defaults(runtime()).unwrap();
    let host: Arc<dyn PluginHost> = Arc::new(Detached::default());
    let request = large_placement_request();
    let vacancies: u32 = request.vacancies.iter().map(|v| v.count).sum();
    assert_eq!(vacancies, 10_000);
    bencher.bench_local(|| {
        let answer = tokio().block_on(registry.call_placement(&request, host.clone())).unwrap().expect("the request can be placed");
        ratchet::guard::placement_check::check(&request, &answer).expect("the host accepts the answer");
        answer
    });
}

/// The host's check of that answer alone (part of the figure above).
#[divan::bench(sample_count = 20, sample_size = 1)]
fn check_10k_placement_answer(bencher: divan::Bencher) {
    let registry = Registry::with_defaults(runtime()).unwrap();
    let request = large_placement_request();
    let answer = tokio().block_on(registry.call_placement(&request, Arc::new(Detached::default()))).unwrap().unwrap();
    bencher.bench_local(|| ratchet::guard::placement_check::check(&request, &answer).unwrap());
}
