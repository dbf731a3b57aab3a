//! The sandbox one plugin call runs in: the store data, its limits, and the
//! capability-less WASI context.
//!
//! A guest sees no filesystem, network or environment, a wall clock frozen at
//! the epoch of 1970 and a monotonic clock frozen at zero (time comes only
//! from the host's `clock` import, which is virtual under simulation), and a
//! fixed random seed. Its stdout and stderr are captured up to a cap and go to
//! tracing after the call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::guest_time::GuestClock;
use super::host::PluginHost;

/// The bounds of one plugin call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall time the guest may run: the call's wall time less the time the
    /// host spends answering its calls (the network, the store, and the
    /// plugin calls made on its behalf, a placement policy a phase asks,
    /// bounded by their own limits). Time the guest asks to sleep is its
    /// own. Ignored when `fuel_only`.
    pub deadline: Duration,
    /// Wall time the host may spend answering the call's host calls, each
    /// also bounded by its own I/O timeouts; past it, every further host
    /// call is refused as unreachable.
    pub host_budget: Duration,
    /// Fuel the call may burn, for bounds that do not depend on machine speed.
    /// `None` means unbounded fuel (the deadline still applies). Only a
    /// runtime that meters fuel (`EngineConfig::fuel`) takes fuel limits.
    pub fuel: Option<u64>,
    /// The most linear memory the guest may hold, in bytes: all the
    /// memories of all its core instances together.
    pub memory_bytes: usize,
    /// The most the guest may write to stdout and stderr together, in bytes.
    pub output_bytes: usize,
    /// The most `log.write` lines the guest may write in the call; later
    /// ones are dropped and counted.
    pub log_lines: u32,
    /// The most bytes of `log.write` messages and fields in the call.
    pub log_bytes: usize,
    /// Bound the call by `fuel` alone: no wall-time deadline and no yielding
    /// on the engine's wall-clock ticks, so neither machine speed nor thread
    /// timing can change how the call ends. The simulator sets it.
    pub fuel_only: bool,
}

impl Limits {
    /// Whether these limits need a runtime that meters fuel.
    pub fn need_fuel(&self) -> bool {
        self.fuel.is_some() || self.fuel_only
    }

    /// The limits of a simulated call: `fuel` and nothing measured in wall
    /// time, with the default memory and output caps.
    pub fn fuel_only(fuel: u64) -> Self {
        Limits { fuel: Some(fuel), fuel_only: true, ..Limits::default() }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(2),
            host_budget: Duration::from_secs(60),
            fuel: None,
            memory_bytes: 64 << 20,
            output_bytes: 64 << 10,
            log_lines: 1_000,
            log_bytes: 256 << 10,
            fuel_only: false,
        }
    }
}

/// What identifies a call in logs and errors.
#[derive(Clone, Debug, Default)]
pub struct CallInfo {
    /// The slot called.
    pub slot: String,
    /// The version number of the component within its slot.
    pub version: u32,
    /// The attempt's epoch, when the call belongs to a recovery attempt.
    pub epoch: u64,
    /// The attempt number, when the call belongs to a recovery attempt.
    pub attempt: u32,
}

/// The data of the `Store` of one call.
pub struct CallCtx {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryLimiter,
    pub(crate) output: CapturedOutput,
    pub(crate) log: LogBudget,
    pub(crate) host: Arc<dyn PluginHost>,
    pub(crate) info: CallInfo,
    /// The time the guest's code has run (see `guest_time.rs`).
    pub(crate) guest: GuestClock,
}

impl CallCtx {
    /// A fresh context for one call.
    pub(crate) fn new(info: CallInfo, limits: &Limits, host: Arc<dyn PluginHost>) -> Self {
        let output = CapturedOutput::new(limits.output_bytes);
        let wasi = WasiCtxBuilder::new()
            .stdout(output.stream(Channel::Stdout))
            .stderr(output.stream(Channel::Stderr))
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(wasmtime_wasi::Deterministic::new(vec![0x5a, 0xa5, 0x3c, 0xc3]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![0x96, 0x69]))
            .insecure_random_seed(0x0072_6174_6368_6574)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        CallCtx {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryLimiter { limit: limits.memory_bytes, held: 0, refused: None },
            output,
            log: LogBudget { lines: limits.log_lines, bytes: limits.log_bytes, dropped: 0 },
            host,
            info,
            guest: GuestClock::default(),
        }
    }
}

impl WasiView for CallCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps the guest's linear memory, all its memories together (a component
/// may hold several core instances, each with its own), and remembers a
/// refused growth, so that the trap that follows is reported as
/// out-of-memory.
pub(crate) struct MemoryLimiter {
    limit: usize,
    /// The bytes every memory of the call holds together.
    held: usize,
    /// The total a refused growth asked for.
    pub(crate) refused: Option<usize>,
}

/// What is left of a call's `log.write` allowance, and how many lines it
/// dropped once spent.
pub(crate) struct LogBudget {
    pub(crate) lines: u32,
    pub(crate) bytes: usize,
    pub(crate) dropped: u64,
}

impl LogBudget {
    /// Takes a line of `len` bytes from the allowance, or counts it dropped.
    pub(crate) fn take(&mut self, len: usize) -> bool {
        if self.lines == 0 || len > self.bytes {
            self.dropped += 1;
            return false;
        }
        self.lines -= 1;
        self.bytes -= len;
        true
    }
}

/// The most table elements a guest may hold.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Called when a memory is created (from 0) and when it grows.
        let total = self.held.saturating_sub(current).saturating_add(desired);
        if total > self.limit {
            self.refused = Some(total);
            return Ok(false);
        }
        self.held = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Which standard stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channel {
    Stdout,
    Stderr,
}

/// The error a guest write raises past the output cap. It becomes a trap.
#[derive(Debug, thiserror::Error)]
#[error("output limit of {limit} bytes exceeded")]
pub(crate) struct OutputLimitExceeded {
    pub(crate) limit: usize,
}

#[derive(Default)]
struct OutputBuffer {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// The guest's stdout and stderr, captured together up to one cap.
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    limit: usize,
    buffer: Arc<Mutex<OutputBuffer>>,
}

impl CapturedOutput {
    fn new(limit: usize) -> Self {
        CapturedOutput { limit, buffer: Arc::default() }
    }

    fn stream(&self, channel: Channel) -> OutputPipe {
        OutputPipe { output: self.clone(), channel }
    }

    /// The captured text of one stream.
    pub(crate) fn text(&self, channel: Channel) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = match channel {
            Channel::Stdout => &buffer.stdout,
            Channel::Stderr => &buffer.stderr,
        };
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// One of the two streams of a [`CapturedOutput`].
#[derive(Clone)]
struct OutputPipe {
    output: CapturedOutput,
    channel: Channel,
}

impl IsTerminal for OutputPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp2 is linked; a WASIp3 stream would never be asked for.
        Box::new(tokio::io::sink())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for OutputPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        let mut buffer = self.output.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let used = buffer.stdout.len() + buffer.stderr.len();
        if used + bytes.len() > self.output.limit {
            let limit = self.output.limit;
            return Err(StreamError::Trap(OutputLimitExceeded { limit }.into()));
        }
        match self.channel {
            Channel::Stdout => buffer.stdout.extend_from_slice(&bytes),
            Channel::Stderr => buffer.stderr.extend_from_slice(&bytes),
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept a write: the cap is enforced in `write`, where going
        // over it traps instead of blocking the guest forever.
        Ok(64 << 10)
    }
}

/// A clock that never moves: guests get time only from the host's `clock`.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_cap_bounds_every_memory_of_a_call_together() {
        let mut limiter = MemoryLimiter { limit: 64 << 20, held: 0, refused: None };
        // Two core instances, each creating a 40 MiB memory: the second
        // would take the call past its cap.
        assert!(limiter.memory_growing(0, 40 << 20, None).unwrap());
        assert!(!limiter.memory_growing(0, 40 << 20, None).unwrap());
        assert_eq!(limiter.refused, Some(80 << 20));
        // Growing the first within the cap is fine; the sum is what counts.
        assert!(limiter.memory_growing(40 << 20, 60 << 20, None).unwrap());
        assert!(!limiter.memory_growing(0, 8 << 20, None).unwrap());
    }

    #[test]
    fn a_log_allowance_counts_lines_and_bytes_then_drops() {
        let mut budget = LogBudget { lines: 2, bytes: 10, dropped: 0 };
        assert!(budget.take(4));
        assert!(!budget.take(7), "past the bytes");
        assert!(budget.take(6));
        assert!(!budget.take(0), "past the lines");
        assert_eq!(budget.dropped, 2);
    }
}
