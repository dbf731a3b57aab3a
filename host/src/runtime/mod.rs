//! The plugin runtime: one wasmtime engine, the component cache, linking
//! against the two worlds, and the per-call sandbox.
//!
//! Components are compiled once and cached by content hash; each slot keeps an
//! `InstancePre` (see [`crate::registry`]) and every call gets a fresh `Store`
//! with its own limits, so no state leaks from one call to the next.

mod cache;
mod call;
mod engine;
mod error;
mod guest_time;
mod host;
mod imports;
mod inspect;
mod sandbox;
mod start_code;
mod world;

use std::path::PathBuf;

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use cache::{CacheOrigin, Digest256};
pub use call::{CallError, CallFailure};
pub use engine::{EPOCH_TICK, EngineConfig};
pub use error::LoadError;
pub use guest_time::GuestMeter;
pub use host::{Detached, HostCall, HostReply, PluginHost};
pub use imports::HostView;
pub use inspect::{Inspection, inspect};
pub use sandbox::{CallInfo, Limits};
pub use world::{Linked, World};

pub(crate) use sandbox::CallCtx;

use crate::bindings::{PlacementPolicy, RecoveryPhase};

/// How to build a [`Runtime`].
#[derive(Clone, Debug, Default)]
pub struct RuntimeConfig {
    /// Engine sizes.
    pub engine: EngineConfig,
    /// Where compiled components are cached across restarts; `None` keeps
    /// the cache in memory only.
    pub cache_dir: Option<PathBuf>,
}

impl RuntimeConfig {
    /// The default configuration with the on-disk cache in the user's cache
    /// directory (`$RATCHET_CACHE_DIR`, else `$XDG_CACHE_HOME/ratchet`, else
    /// `~/.cache/ratchet`).
    pub fn with_user_cache() -> Self {
        RuntimeConfig { cache_dir: default_cache_dir(), ..Default::default() }
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("RATCHET_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("ratchet"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("ratchet"))
}

/// A component compiled and checked against a world, ready to instantiate.
#[derive(Clone)]
pub struct Prepared {
    /// The sha256 of the component's bytes.
    pub sha256: Digest256,
    /// The size of the component in bytes.
    pub size: usize,
    /// Where the compiled code came from.
    pub origin: CacheOrigin,
    /// The component linked against its world.
    pub linked: Linked,
}

/// The plugin runtime.
pub struct Runtime {
    engine: Engine,
    cache: cache::ComponentCache,
    phase_linker: Linker<CallCtx>,
    policy_linker: Linker<CallCtx>,
    meters_fuel: bool,
    /// Slots for top-level plugin calls, and for the calls they make.
    calls: tokio::sync::Semaphore,
    nested_calls: tokio::sync::Semaphore,
    _ticker: engine::EpochTicker,
    /// Components that run a start function of their own when instantiated
    /// (`start_code.rs`): their instantiation is guest time.
    starting_own_code: std::sync::Mutex<std::collections::HashSet<Digest256>>,
}

impl Runtime {
    /// Starts a runtime: builds the engine, starts its epoch clock and links
    /// the host imports.
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let engine = engine::build(&config.engine).map_err(LoadError::engine)?;
        let ticker = engine::EpochTicker::start(&engine).map_err(|e| LoadError::Engine(format!("cannot start the epoch thread: {e}")))?;
        let mut phase_linker = Linker::new(&engine);
        imports::add_wasi(&mut phase_linker).map_err(LoadError::engine)?;
        RecoveryPhase::add_to_linker::<CallCtx, imports::HostImports>(&mut phase_linker, imports::host_view).map_err(LoadError::engine)?;
        let mut policy_linker = Linker::new(&engine);
        imports::add_wasi(&mut policy_linker).map_err(LoadError::engine)?;
        PlacementPolicy::add_to_linker::<CallCtx, imports::HostImports>(&mut policy_linker, imports::host_view)
            .map_err(LoadError::engine)?;
        let cache = cache::ComponentCache::new(&engine, config.cache_dir.as_deref());
        let half = (config.engine.max_instances as usize / 2).max(1);
        Ok(Runtime {
            engine,
            cache,
            phase_linker,
            policy_linker,
            meters_fuel: config.engine.fuel,
            calls: tokio::sync::Semaphore::new(half),
            nested_calls: tokio::sync::Semaphore::new(half),
            _ticker: ticker,
            starting_own_code: Default::default(),
        })
    }

    /// Whether the component runs a start function of its own when
    /// instantiated (see `start_code.rs`).
    fn starts_own_code(&self, digest: &Digest256) -> bool {
        self.starting_own_code.lock().unwrap_or_else(|e| e.into_inner()).contains(digest)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether guest code meters fuel ([`EngineConfig::fuel`]): only then can
    /// a call be bounded by [`Limits::fuel`] or [`Limits::fuel_only`].
    pub fn meters_fuel(&self) -> bool {
        self.meters_fuel
    }

    /// Compiles `bytes` (or takes them from the cache) after checking that they
    /// are a component at all.
    pub fn compile(&self, bytes: &[u8]) -> Result<(Component, Digest256, CacheOrigin), LoadError> {
        error::check_header(bytes)?;
        let digest = Digest256::of(bytes);
        let (component, origin) = self.cache.get_or_compile(&self.engine, digest, bytes).map_err(LoadError::compile)?;
        if start_code::has_start_function(bytes) {
            self.starting_own_code.lock().unwrap_or_else(|e| e.into_inner()).insert(digest);
        }
        Ok((component, digest, origin))
    }

    /// Compiles `bytes` and links them against `world`: the component must
    /// import nothing the world does not offer and export what it requires.
    pub fn prepare(&self, bytes: &[u8], world: World) -> Result<Prepared, LoadError> {
        let (component, sha256, origin) = self.compile(bytes)?;
        let linked = self.link(&component, world)?;
        Ok(Prepared { sha256, size: bytes.len(), origin, linked })
    }

    /// Forgets the compiled components held in memory, keeping the disk cache.
    /// The next load of each component comes from disk or the compiler.
    pub fn forget_compiled(&self) {
        self.cache.clear_memory();
    }

    /// Links a compiled component against `world`.
    pub fn link(&self, component: &Component, world: World) -> Result<Linked, LoadError> {
        world::link(self, component, world)
    }

    fn linker(&self, world: World) -> &Linker<CallCtx> {
        match world {
            World::RecoveryPhase => &self.phase_linker,
            // A replica policy imports what a placement policy does: `log`.
            World::PlacementPolicy | World::ReplicaRecovery => &self.policy_linker,
        }
    }
}
