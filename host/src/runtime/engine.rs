//! The one wasmtime [`Engine`] shared by every plugin, and the thread that
//! drives its epoch clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A call that overruns its deadline is stopped
/// within one tick of it, and a running guest yields to tokio once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Bytes of each linear memory kept mapped between calls. A Rust guest keeps
/// its 1 MiB stack below its data and heap, so this covers the stack, the data
/// and a small heap.
const KEEP_RESIDENT: usize = 4 << 20;

/// The most linear memories one component instance may hold (its core
/// instances together); the call's memory cap bounds their sum.
const MAX_MEMORIES_PER_COMPONENT: u32 = 4;

/// The most core instances, and tables, one component instance may hold
/// (a Python component built by componentize-py holds 14 core instances).
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MAX_TABLES_PER_COMPONENT: u32 = 16;

/// Sizes of the engine, fixed when the runtime starts.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The most plugin instances alive at once (a phase calling placement
    /// holds two). Calls past this fail to instantiate instead of allocating.
    pub max_instances: u32,
    /// The ceiling of any one guest's linear memory, whatever its call limits.
    pub max_memory_bytes: usize,
    /// Meter fuel in guest code, so that calls can be bounded by
    /// [`Limits::fuel`](super::Limits::fuel) (the simulator bounds every
    /// call by fuel alone). Metering is compiled into every block of guest
    /// code and cost about 4 % of a recovery's wall time (docs/perf/recovery-history.md), so
    /// it is off unless asked for: without it, the wall-time deadline bounds
    /// calls, and the registry refuses fuel limits.
    pub fuel: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_instances: 64, max_memory_bytes: 256 << 20, fuel: false }
    }
}

/// Builds the engine: the pooling allocator, epoch interruption for
/// deadlines, and fuel for deterministic bounds if `config.fuel`.
pub(crate) fn build(config: &EngineConfig) -> wasmtime::Result<Engine> {
    let instances = config.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    // A Rust wasm32-wasip2 component holds a few core instances (the program,
    // and the shims wit-component adds), each with at most a memory and a
    // table. The totals are the per-component bounds times the instances,
    // so a pool whose instance slots are not all taken always has room for
    // one more component (the runtime's call slots never take them all).
    pool.total_component_instances(instances)
        .total_core_instances(instances * MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_memories(instances * MAX_MEMORIES_PER_COMPONENT)
        .total_tables(instances * MAX_TABLES_PER_COMPONENT)
        .total_stacks(instances)
        .max_memory_size(config.max_memory_bytes)
        // A component with more than these is refused at instantiation,
        // whatever the pool has left.
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        // Calls are short and slots are reused constantly: reset the pages a
        // call dirtied in place (found with PAGEMAP_SCAN where the kernel has
        // it) instead of unmapping them, which costs page faults on the next
        // call and TLB shootdowns across cores. Measured in docs/perf/recovery-history.md.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(128 << 10)
        .decommit_batch_size(16);
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(config.fuel)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // `RATCHET_PERFMAP=1` writes /tmp/perf-PID.map so that `perf report`
    // names the guests' functions: how a plugin author profiles a plugin.
    if std::env::var_os("RATCHET_PERFMAP").is_some() {
        wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&wasm)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let engine = engine.clone();
        std::thread::Builder::new().name("ratchet-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
