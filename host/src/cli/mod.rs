//! Command-line parsing and dispatch. Errors become one line on stderr and an
//! exit code: 2 for bad input (a bad file, an unknown slot, a bad flag), 1 for
//! anything else.

mod admin;
mod certs;
mod cluster;
mod demo;
mod experiment;
mod plugin;
mod replica;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ratchet::runtime::{EngineConfig, Runtime, RuntimeConfig};

/// ratchet: a recovery engine whose phases and placement policies are
/// WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "ratchet", version, propagate_version = true)]
pub struct Cli {
    /// Directory of the compiled-component cache [default: $RATCHET_CACHE_DIR,
    /// else $XDG_CACHE_HOME/ratchet, else ~/.cache/ratchet].
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,

    /// Keep compiled components in memory only.
    #[arg(long, global = true)]
    no_cache: bool,

    /// Log more: -v for debug, -vv for trace. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Export the spans of recovery attempts, phases and plugin calls over
    /// OTLP/HTTP to the collector at URL (traces go to URL/v1/traces)
    /// [default: $OTEL_EXPORTER_OTLP_ENDPOINT].
    #[arg(long, global = true, value_name = "URL")]
    otlp_endpoint: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot an in-process cluster, commit writes, kill a log and a storage
    /// worker, recover, and check that no acknowledged write was lost.
    Demo(demo::DemoArgs),
    /// Run plugin sets over many seeded fault scenarios in the deterministic
    /// simulator, check every run, and summarize (`--faults help` lists the
    /// fault profiles; `experiment merge` adds up reports run apart).
    Experiment(experiment::ExperimentArgs),
    /// Ask a replica recovery policy what it would do, with its proof.
    #[command(subcommand)]
    Replica(replica::ReplicaCommand),
    /// Inspect and list plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run the coordinator of a real cluster: its store, its director, and
    /// the endpoint workers and clients reach.
    Coordinator(cluster::CoordinatorArgs),
    /// Run a worker: a foreman hosting the roles the coordinator asks for.
    Worker(cluster::WorkerArgs),
    /// Commit writes through the live generation's proxies (learned from the
    /// coordinator) and record every acknowledged one.
    Load(cluster::LoadArgs),
    /// Read back every acknowledged write; exits 1 on any loss.
    Verify(cluster::VerifyArgs),
    /// Show the epoch, the layout, the director's state and the per-phase
    /// timeline of the last recovery.
    Status(cluster::StatusArgs),
    /// Make the cluster's CA and the certificates of its coordinator,
    /// workers and clients, for mutual TLS (--tls-ca, --tls-cert, --tls-key).
    #[command(subcommand)]
    Certs(certs::CertsCommand),
}

/// An error that ends the command, with its exit code.
pub struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    /// Bad input from the user: exit code 2.
    pub fn input(message: impl std::fmt::Display) -> Self {
        Failure { code: 2, message: message.to_string() }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Failure { code: 1, message: format!("{err:#}") }
    }
}

/// Holds `dir` for this process for as long as the answer lives: a
/// second process on it exits 2 naming the pid that holds it.
pub(crate) fn hold_data_dir(dir: &std::path::Path) -> Result<ratchet::data_dir::DataDirLock, Failure> {
    ratchet::data_dir::DataDirLock::acquire(dir).map_err(|err| match err {
        held @ ratchet::data_dir::DataDirError::Held { .. } => Failure::input(format!("--data: {held}")),
        other => Failure::from(anyhow::anyhow!("--data: {other}")),
    })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // An experiment provokes thousands of stalls and refusals on purpose:
    // its report says what matters, so only errors are logged by default.
    let quiet = matches!(cli.command, Command::Experiment(_));
    let otlp = cli.otlp_endpoint.clone().or_else(|| std::env::var(ratchet::telemetry::ENDPOINT_VARIABLE).ok().filter(|v| !v.is_empty()));
    // Kept until the command ends: dropped, it sends what is pending.
    let _exporter = match init_tracing(cli.verbose, quiet, otlp.as_deref()) {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config = RuntimeConfig {
        // The simulator bounds plugins by fuel; everything else runs without
        // metering, which costs wall time in every guest.
        engine: EngineConfig { fuel: matches!(cli.command, Command::Experiment(_)), ..EngineConfig::default() },
        cache_dir: match (&cli.cache_dir, cli.no_cache) {
            (_, true) => None,
            (Some(dir), false) => Some(dir.clone()),
            (None, false) => RuntimeConfig::with_user_cache().cache_dir,
        },
    };
    let runtime = || Runtime::new(config.clone()).map_err(|e| Failure::from(anyhow::Error::new(e)));
    match cli.command {
        Command::Plugin(command) => plugin::run(command, runtime),
        Command::Demo(args) => demo::run(args, runtime()?),
        Command::Experiment(args) => experiment::run(args, runtime),
        Command::Replica(command) => replica::run(command, runtime()?),
        Command::Coordinator(args) => cluster::coordinator(args, runtime()?),
        Command::Worker(args) => cluster::worker(args),
        Command::Load(args) => cluster::load(args),
        Command::Verify(args) => cluster::verify(args),
        Command::Status(args) => cluster::status(args),
        Command::Certs(command) => certs::run(command),
    }
}

/// Logs to stderr at the level asked; with an OTLP endpoint, also exports
/// this crate's spans (attempts, phases, plugin calls) to it, whatever the
/// log level.
fn init_tracing(
    verbose: u8,
    quiet: bool,
    otlp: Option<&str>,
) -> Result<Option<ratchet::telemetry::Exporter>, ratchet::telemetry::TelemetryError> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let default = match verbose {
        0 if quiet => "error",
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter);
    let registry = tracing_subscriber::registry().with(log);
    let Some(endpoint) = otlp else {
        registry.init();
        return Ok(None);
    };
    let (spans, exporter) = ratchet::telemetry::otlp_layer(endpoint)?;
    let ours = tracing_subscriber::filter::Targets::new().with_target("ratchet", tracing::Level::DEBUG);
    registry.with(spans.with_filter(ours)).init();
    Ok(Some(exporter))
}

/// Loads each `--plugin SLOT=FILE` (or `SLOT=builtin:NAME`) into its slot,
/// printing what became active; a bad spec or file is bad input (exit 2).
fn load_plugins(registry: &ratchet::registry::Registry, specs: &[String]) -> Result<(), Failure> {
    for spec in specs {
        let (slot, file) = spec.split_once('=').ok_or_else(|| Failure::input(format!("--plugin {spec}: expected SLOT=FILE")))?;
        let version = registry.load_spec(slot, file).map_err(|e| Failure::input(format!("--plugin {spec}: {e}")))?;
        println!("plugin: {slot} <- {file} (v{}, sha256 {})", version.number, version.sha256.short());
    }
    Ok(())
}
