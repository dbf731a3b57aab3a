//! The host side of the plugin imports: the `ratchet:recovery` interfaces,
//! implemented once on [`HostView`], which asks the call's
//! [`PluginHost`](super::PluginHost); and the part of WASI that a
//! `wasm32-wasip2` standard library needs.

use wasmtime::component::{HasData, Linker, ResourceTable};

use super::call::truncate;
use super::host::{HostCall, HostReply, PluginHost};
use super::sandbox::LogBudget;
use super::{CallCtx, CallInfo};
use crate::bindings::types::{
    Assignment, ClusterError, Layout, LockInfo, Node, PlacementError, PlacementRequest, ServiceDescriptor, ServiceKind, ShardTag, Version,
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
    use wasmtime_wasi::p2::bindings::sockets;
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
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

/// The `ratchet:recovery` imports of one call: its host and what
/// identifies it in logs.
pub struct HostView<'a> {
    host: &'a dyn PluginHost,
    info: &'a CallInfo,
    /// The call's `log.write` allowance; none for a native call.
    log: Option<&'a mut LogBudget>,
}

/// Projects a call's store data onto its [`HostView`], for the linker.
pub(super) struct HostImports;

impl HasData for HostImports {
    type Data<'a> = HostView<'a>;
}

/// What identifies a call made natively, outside any store.
static NATIVE: CallInfo = CallInfo { slot: String::new(), version: 0, epoch: 0, attempt: 0 };

/// The imports of the call whose store data is `ctx`.
pub(super) fn host_view(ctx: &mut CallCtx) -> HostView<'_> {
    HostView { host: &*ctx.host, info: &ctx.info, log: Some(&mut ctx.log) }
}

impl<'a> HostView<'a> {
    /// The imports as a plugin compiled natively calls them: the same
    /// code a component's imports run.
    pub fn native(host: &'a dyn PluginHost) -> Self {
        HostView { host, info: &NATIVE, log: None }
    }

    /// Asks the host; a reply of another shape than `call`'s is the host's
    /// bug, answered to the plugin as a failed call.
    async fn ask<T>(&self, call: HostCall, shape: fn(HostReply) -> Result<T, HostReply>) -> T {
        let reply = if matches!(call, HostCall::Sleep { .. } | HostCall::NowMs) {
            // A sleep the guest asks for is its own time.
            self.host.answer(call.clone()).await
        } else {
            match super::call::host_answers() {
                Ok(_stopped) => self.host.answer(call.clone()).await,
                Err(spent) => HostReply::refused(&call, ClusterError::Unreachable(spent.to_string()), "host-budget"),
            }
        };
        shape(reply).unwrap_or_else(|wrong| {
            tracing::error!(?call, ?wrong, "a host answered a call with a reply of another call");
            let refused = HostReply::refused(&call, ClusterError::Failed(format!("the host answered `{call}` wrongly")), "host");
            shape(refused).unwrap_or_else(|_| unreachable!("HostReply::refused answers in the call's shape"))
        })
    }
}

impl types::Host for HostView<'_> {}

impl cluster::Host for HostView<'_> {
    async fn services(&mut self) -> Vec<ServiceDescriptor> {
        self.ask(HostCall::Services, |r| match r {
            HostReply::Services(services) => Ok(services),
            r => Err(r),
        })
        .await
    }

    async fn nodes(&mut self) -> Vec<Node> {
        self.ask(HostCall::Nodes, |r| match r {
            HostReply::Nodes(nodes) => Ok(nodes),
            r => Err(r),
        })
        .await
    }

    async fn lock(&mut self, ids: Vec<String>) -> Vec<Result<LockInfo, ClusterError>> {
        self.ask(HostCall::Lock { ids }, |r| match r {
            HostReply::Locked(results) => Ok(results),
            r => Err(r),
        })
        .await
    }

    async fn create_worker(&mut self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        self.ask(HostCall::CreateWorker { node, kind }, started).await
    }

    async fn create_workers(&mut self, requests: Vec<(String, ServiceKind)>) -> Vec<Result<ServiceDescriptor, ClusterError>> {
        self.ask(HostCall::CreateWorkers { requests }, |r| match r {
            HostReply::StartedEach(results) => Ok(results),
            r => Err(r),
        })
        .await
    }

    async fn known_durable(&mut self, ids: Vec<String>) -> Result<Vec<Option<Version>>, ClusterError> {
        self.ask(HostCall::KnownDurable { ids }, |r| match r {
            HostReply::Versions(answer) => Ok(answer),
            r => Err(r),
        })
        .await
    }

    async fn recover_logs(&mut self, copies: Vec<types::LogCopy>) -> Vec<Result<(), ClusterError>> {
        self.ask(HostCall::RecoverLogs { copies }, |r| match r {
            HostReply::DoneEach(results) => Ok(results),
            r => Err(r),
        })
        .await
    }

    async fn recover_log(
        &mut self,
        target: String,
        sources: Vec<String>,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError> {
        self.ask(HostCall::RecoverLog { target, sources, tags, first, last }, done).await
    }

    async fn start_role(&mut self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        self.ask(HostCall::StartRole { node, kind }, started).await
    }

    async fn stage_layout(&mut self, layout: Layout) -> Result<(), ClusterError> {
        self.ask(HostCall::StageLayout(Box::new(layout)), done).await
    }

    async fn unlock(&mut self, ids: Vec<String>) -> Vec<Result<(), ClusterError>> {
        self.ask(HostCall::Unlock { ids }, |r| match r {
            HostReply::Unlocked(results) => Ok(results),
            r => Err(r),
        })
        .await
    }

    async fn persist_layout(&mut self) -> Result<(), ClusterError> {
        self.ask(HostCall::PersistLayout, done).await
    }
}

fn started(reply: HostReply) -> Result<Result<ServiceDescriptor, ClusterError>, HostReply> {
    match reply {
        HostReply::Started(result) => Ok(result),
        r => Err(r),
    }
}

fn done(reply: HostReply) -> Result<Result<(), ClusterError>, HostReply> {
    match reply {
        HostReply::Done(result) => Ok(result),
        r => Err(r),
    }
}

impl placement::Host for HostView<'_> {
    async fn place(&mut self, request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        self.ask(HostCall::Place(Box::new(request)), |r| match r {
            HostReply::Placed(answer) => Ok(answer),
            r => Err(r),
        })
        .await
    }
}

impl clock::Host for HostView<'_> {
    async fn now_ms(&mut self) -> u64 {
        self.ask(HostCall::NowMs, |r| match r {
            HostReply::Now(ms) => Ok(ms),
            r => Err(r),
        })
        .await
    }

    async fn sleep_ms(&mut self, ms: u64) {
        self.ask(HostCall::Sleep { ms }, |r| match r {
            HostReply::Slept => Ok(()),
            r => Err(r),
        })
        .await
    }
}

/// The longest log message or field list a guest may write in one line.
const MAX_LOG_LINE: usize = 4096;

impl log::Host for HostView<'_> {
    async fn write(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) {
        let fields: String = fields.iter().map(|(k, v)| log_field(k, v)).collect::<Vec<_>>().join(" ");
        let fields = truncate(&fields, MAX_LOG_LINE);
        let message = truncate(&message, MAX_LOG_LINE);
        if let Some(budget) = self.log.as_deref_mut()
            && !budget.take(fields.len() + message.len())
        {
            return;
        }
        let info = self.info;
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
    }
}

/// One `key=value` of a plugin's log line. A key or value that is empty
/// or holds anything but printable ASCII other than `"`, `=` and `\` is
/// quoted and escaped, so a field cannot pass for another field or start
/// a line of its own.
fn log_field(key: &str, value: &str) -> String {
    fn plain(text: &str) -> bool {
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'=' | b'\\'))
    }
    match (plain(key), plain(value)) {
        (true, true) => format!("{key}={value}"),
        (true, false) => format!("{key}={value:?}"),
        (false, _) => format!("{key:?}={value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::PlacementRequest;

    #[test]
    fn a_log_field_cannot_pass_for_another_or_start_a_line() {
        assert_eq!(log_field("id", "log-1"), "id=log-1");
        assert_eq!(log_field("reason", "connection lost: closed"), r#"reason="connection lost: closed""#);
        assert_eq!(log_field("reason", "x\nWARN forged line"), r#"reason="x\nWARN forged line""#);
        assert_eq!(log_field("id", "a error=forged"), r#"id="a error=forged""#);
        assert_eq!(log_field("a b", "c"), r#""a b"="c""#);
        assert_eq!(log_field("empty", ""), r#"empty="""#);
    }

    /// A host with a bug: it answers every call as a sleep.
    struct Confused;

    #[async_trait::async_trait]
    impl PluginHost for Confused {
        async fn answer(&self, _: HostCall) -> HostReply {
            HostReply::Slept
        }
    }

    fn failed<T: std::fmt::Debug>(result: &Result<T, ClusterError>) -> bool {
        matches!(result, Err(ClusterError::Failed(why)) if why.contains("answered"))
    }

    #[tokio::test]
    async fn a_reply_of_another_shape_reaches_the_plugin_as_a_failed_call() {
        let mut view = HostView::native(&Confused);
        let ids = vec!["log-1".to_string(), "log-2".to_string()];
        let locks = cluster::Host::lock(&mut view, ids.clone()).await;
        assert!(locks.len() == 2 && locks.iter().all(failed), "{locks:?}");
        let unlocks = cluster::Host::unlock(&mut view, ids).await;
        assert!(unlocks.len() == 2 && unlocks.iter().all(failed), "{unlocks:?}");
        assert!(failed(&cluster::Host::create_worker(&mut view, "n1".into(), ServiceKind::Log).await));
        assert!(failed(&cluster::Host::start_role(&mut view, "n1".into(), ServiceKind::Sequencer).await));
        assert!(failed(&cluster::Host::recover_log(&mut view, "log-1".into(), vec![], vec![], 1, 2).await));
        assert!(failed(&cluster::Host::persist_layout(&mut view).await));
        assert!(cluster::Host::services(&mut view).await.is_empty());
        assert!(cluster::Host::nodes(&mut view).await.is_empty());
        let request = PlacementRequest { vacancies: vec![], nodes: vec![], teams: vec![] };
        let placed = placement::Host::place(&mut view, request).await;
        assert!(matches!(&placed, Err(e) if e.message.contains("answered")), "{placed:?}");
        assert_eq!(clock::Host::now_ms(&mut view).await, 0);
    }
}
