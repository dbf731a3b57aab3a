//! The host side of the plugin imports: the `ratchet:recovery` interfaces,
//! routed to the call's [`HostServices`](super::HostServices), and the part of
//! WASI that a `wasm32-wasip2` standard library needs.

use wasmtime::component::{HasData, Linker, ResourceTable};

use super::CallCtx;
use super::call::truncate;
use crate::bindings::types::{
    Assignment, ClusterError, Layout, LockInfo, Node, PlacementError, PlacementRequest,
    ServiceDescriptor, ServiceKind, ShardTag, Version,
};
use crate::bindings::{clock, cluster, log, placement, types};

/// Links the WASI a language runtime expects: I/O streams, clocks, random,
/// the CLI interfaces, filesystem types and sockets. The call's `WasiCtx`
/// grants no preopened directory, no environment, frozen clocks, a fixed
/// seed and no network (TCP, UDP and name lookup are all denied), so these
/// imports give a guest nothing of the host's. Sockets are linked only so
/// that runtimes which import them (CPython under componentize-py does)
/// can load: every socket call fails with `access-denied`.
pub(super) fn add_wasi(linker: &mut Linker<CallCtx>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
    use wasmtime_wasi::p2::bindings::sockets;
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
    use wasmtime_wasi_io::bindings::wasi::io;

    let l = linker;
    io::error::add_to_linker::<CallCtx, HasTable>(l, |ctx| &mut ctx.table)?;
    io::poll::add_to_linker::<CallCtx, HasTable>(l, |ctx| &mut ctx.table)?;
    io::streams::add_to_linker::<CallCtx, HasTable>(l, |ctx| &mut ctx.table)?;
    clocks::wall_clock::add_to_linker::<CallCtx, WasiClocks>(l, CallCtx::clocks)?;
    clocks::monotonic_clock::add_to_linker::<CallCtx, WasiClocks>(l, CallCtx::clocks)?;
    filesystem::types::add_to_linker::<CallCtx, WasiFilesystem>(l, CallCtx::filesystem)?;
    filesystem::preopens::add_to_linker::<CallCtx, WasiFilesystem>(l, CallCtx::filesystem)?;
    random::random::add_to_linker::<CallCtx, WasiRandom>(l, |ctx| ctx.wasi.random())?;
    random::insecure::add_to_linker::<CallCtx, WasiRandom>(l, |ctx| ctx.wasi.random())?;
    random::insecure_seed::add_to_linker::<CallCtx, WasiRandom>(l, |ctx| ctx.wasi.random())?;
    cli::exit::add_to_linker::<CallCtx, WasiCli>(l, CallCtx::cli)?;
    cli::environment::add_to_linker::<CallCtx, WasiCli>(l, CallCtx::cli)?;
    cli::stdin::add_to_linker::<CallCtx, WasiCli>(l, CallCtx::cli)?;
    cli::stdout::add_to_linker::<CallCtx, WasiCli>(l, CallCtx::cli)?;
    cli::stderr::add_to_linker::<CallCtx, WasiCli>(l, CallCtx::cli)?;
    cli::terminal_input::add_to_linker::<CallCtx, WasiCli>(l, CallCtx::cli)?;
    cli::terminal_output::add_to_linker::<CallCtx, WasiCli>(l, CallCtx::cli)?;
    cli::terminal_stdin::add_to_linker::<CallCtx, WasiCli>(l, CallCtx::cli)?;
    cli::terminal_stdout::add_to_linker::<CallCtx, WasiCli>(l, CallCtx::cli)?;
    cli::terminal_stderr::add_to_linker::<CallCtx, WasiCli>(l, CallCtx::cli)?;
    sockets::network::add_to_linker::<CallCtx, WasiSockets>(l, &Default::default(), CallCtx::sockets)?;
    sockets::instance_network::add_to_linker::<CallCtx, WasiSockets>(l, CallCtx::sockets)?;
    sockets::tcp::add_to_linker::<CallCtx, WasiSockets>(l, CallCtx::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<CallCtx, WasiSockets>(l, CallCtx::sockets)?;
    sockets::udp::add_to_linker::<CallCtx, WasiSockets>(l, CallCtx::sockets)?;
    sockets::udp_create_socket::add_to_linker::<CallCtx, WasiSockets>(l, CallCtx::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<CallCtx, WasiSockets>(l, CallCtx::sockets)?;
    Ok(())
}

/// Projects the store data onto its resource table, for `wasi:io`.
struct HasTable;

impl HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}

impl types::Host for CallCtx {}

impl cluster::Host for CallCtx {
    async fn services(&mut self) -> wasmtime::Result<Vec<ServiceDescriptor>> {
        let services = self.services.clone();
        Ok(services.services().await)
    }

    async fn nodes(&mut self) -> wasmtime::Result<Vec<Node>> {
        let services = self.services.clone();
        Ok(services.nodes().await)
    }

    async fn lock(&mut self, ids: Vec<String>) -> wasmtime::Result<Vec<Result<LockInfo, ClusterError>>> {
        let services = self.services.clone();
        Ok(services.lock(ids).await)
    }

    async fn create_worker(
        &mut self,
        node: String,
        kind: ServiceKind,
    ) -> wasmtime::Result<Result<ServiceDescriptor, ClusterError>> {
        let services = self.services.clone();
        Ok(services.create_worker(node, kind).await)
    }

    async fn recover_log(
        &mut self,
        target: String,
        sources: Vec<String>,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
    ) -> wasmtime::Result<Result<(), ClusterError>> {
        let services = self.services.clone();
        Ok(services.recover_log(target, sources, tags, first, last).await)
    }

    async fn start_role(
        &mut self,
        node: String,
        kind: ServiceKind,
    ) -> wasmtime::Result<Result<ServiceDescriptor, ClusterError>> {
        let services = self.services.clone();
        Ok(services.start_role(node, kind).await)
    }

    async fn stage_layout(&mut self, layout: Layout) -> wasmtime::Result<Result<(), ClusterError>> {
        let services = self.services.clone();
        Ok(services.stage_layout(layout).await)
    }

    async fn unlock(&mut self, ids: Vec<String>) -> wasmtime::Result<Vec<Result<(), ClusterError>>> {
        let services = self.services.clone();
        Ok(services.unlock(ids).await)
    }

    async fn persist_layout(&mut self) -> wasmtime::Result<Result<(), ClusterError>> {
        let services = self.services.clone();
        Ok(services.persist_layout().await)
    }
}

impl placement::Host for CallCtx {
    async fn place(
        &mut self,
        request: PlacementRequest,
    ) -> wasmtime::Result<Result<Vec<Assignment>, PlacementError>> {
        let services = self.services.clone();
        Ok(services.place(request).await)
    }
}

impl clock::Host for CallCtx {
    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.services.now_ms())
    }

    async fn sleep_ms(&mut self, ms: u64) -> wasmtime::Result<()> {
        let services = self.services.clone();
        services.sleep_ms(ms).await;
        Ok(())
    }
}

/// The longest log message or field list a guest may write in one line.
const MAX_LOG_LINE: usize = 4096;

impl log::Host for CallCtx {
    async fn write(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let fields: String =
            fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        let fields = truncate(&fields, MAX_LOG_LINE);
        let message = truncate(&message, MAX_LOG_LINE);
        let info = &self.info;
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "ratchet::plugin",
                    $level,
                    slot = %info.slot,
                    version = info.version,
                    epoch = info.epoch,
                    attempt = info.attempt,
                    fields = %fields,
                    "{message}"
                )
            };
        }
        match level {
            log::Level::Trace => emit!(tracing::Level::TRACE),
            log::Level::Debug => emit!(tracing::Level::DEBUG),
            log::Level::Info => emit!(tracing::Level::INFO),
            log::Level::Warn => emit!(tracing::Level::WARN),
            log::Level::Error => emit!(tracing::Level::ERROR),
        }
        Ok(())
    }
}
