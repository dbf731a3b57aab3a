//! The real-cluster commands: `coordinator`, `worker`, `load`, `verify` and
//! `status`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use ratchet::bindings::types::{Node, RecoveryConfig};
use ratchet::client::CommitClient;
use ratchet::coordinator::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest};
use ratchet::registry::Registry;
use ratchet::runtime::Runtime;
use ratchet::status::Status;
use ratchet::topology::NodeSpec;
use ratchet::transport::{Client, TlsFiles, TlsIdentity, TransportConfig};

use super::Failure;
use super::admin::{AdminArgs, AdminClient};

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// Where the coordinator keeps its durable state.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Address to listen on for workers and clients.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7400")]
    listen: String,
    /// Storage teams (shards) of a new cluster.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    shards: u32,
    /// Replace a slot's component: `--plugin SLOT=FILE`, or a component
    /// shipped in the binary: `--plugin placement=builtin:pack` (repeatable).
    #[arg(long = "plugin", value_name = "SLOT=FILE")]
    plugins: Vec<String>,
    /// Address of the admin endpoint (HTTP, JSON, /metrics). Beyond
    /// loopback it requires --admin-token.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7401")]
    admin: String,
    /// A file holding the bearer token every admin request must carry.
    #[arg(long, value_name = "FILE")]
    admin_token: Option<PathBuf>,
    /// Roll a slot back to its previous version after this many consecutive
    /// traps or timeouts of its active version (0: never).
    #[arg(long, value_name = "K", default_value_t = 3)]
    rollback_after: u32,
    /// The largest component accepted by an admin upload or from the
    /// plugin directory, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ratchet::admin::MAX_COMPONENT as u64,
          value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    max_plugin_bytes: u64,
    /// Watch this directory: a new or changed `SLOT.wasm` is validated,
    /// dry-run and swapped in; a bad one is refused and logged.
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// Versions each log keeps behind its newest once two replicas of each
    /// of its shards hold them; older ones are popped. A replica further
    /// behind than the logs keep is rebuilt from a teammate's snapshot plus
    /// the tail.
    #[arg(long, value_name = "VERSIONS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    log_retention: u64,
    /// Seconds a restarted coordinator waits for the workers of the
    /// persisted layout to register before it recovers without them.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    boot_grace: u64,
    /// How long a worker may go without answering its heartbeat before it
    /// is failed and its generation recovers (a worker whose connection
    /// drops is failed at once). Every call to a worker is bounded by it.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = failure_timeout)]
    failure_timeout: Duration,
    /// Keep the coordinator state in etcd instead of the data directory:
    /// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]` (loopback only), or
    /// `etcds://...` for https with the --store-tls-* files. Coordinators
    /// sharing it elect one leader, the only one that recovers.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Seconds the leader's etcd lease lives without being renewed: how
    /// soon a standby takes over from a leader that died.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_ttl: u64,
    #[command(flatten)]
    tls: TlsArgs,
    /// etcd's CA (PEM), for a store at etcds://. etcd trusts every client
    /// certificate of its CA, so it has one of its own, which issues only
    /// the coordinators' store certificates.
    #[arg(long, value_name = "FILE", requires_all = ["store_tls_cert", "store_tls_key"])]
    store_tls_ca: Option<PathBuf>,
    /// This coordinator's certificate for etcd (PEM), from etcd's CA.
    #[arg(long, value_name = "FILE", requires_all = ["store_tls_ca", "store_tls_key"])]
    store_tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["store_tls_ca", "store_tls_cert"])]
    store_tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The coordinator's address; with an etcd store, every coordinator's,
    /// comma-separated.
    #[arg(long, value_name = "ADDR[,ADDR...]")]
    coordinator: String,
    /// This node's id, unique in the cluster.
    #[arg(long, value_name = "ID")]
    node: String,
    /// This node's zone (failure domain).
    #[arg(long, value_name = "ZONE")]
    zone: String,
    /// Where this worker keeps its logs and storage.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Address to listen on for the coordinator.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// The most workers this node hosts.
    #[arg(long, default_value_t = 16)]
    capacity: u32,
    /// The most bytes a page of a bulk transfer holds (a log range, a
    /// replica's catch-up, a snapshot). Smaller pages interleave better with
    /// commits; larger ones move data faster.
    #[arg(long, value_name = "BYTES", default_value_t = ratchet::topology::PAGE_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64 << 20))]
    page_bytes: usize,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The coordinator's address; with an etcd store, every coordinator's,
    /// comma-separated.
    #[arg(long, value_name = "ADDR[,ADDR...]")]
    coordinator: String,
    /// Writes to commit.
    #[arg(long, default_value_t = 10_000)]
    writes: usize,
    /// Writes per commit.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
    /// File every acknowledged write is appended to (key, value, version).
    #[arg(long, value_name = "FILE")]
    acks: PathBuf,
    /// How long to keep retrying one commit while the cluster recovers.
    #[arg(long, default_value_t = 60)]
    retry_secs: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The coordinator's address; with an etcd store, every coordinator's,
    /// comma-separated.
    #[arg(long, value_name = "ADDR[,ADDR...]")]
    coordinator: String,
    /// The acknowledged writes, as written by `ratchet load`.
    #[arg(long, value_name = "FILE")]
    acks: PathBuf,
    /// How long to keep retrying one read while the cluster recovers.
    #[arg(long, default_value_t = 60)]
    retry_secs: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["coordinator", "admin"])))]
pub struct StatusArgs {
    /// The coordinator's address.
    #[arg(long, value_name = "ADDR")]
    coordinator: Option<String>,
    /// The coordinator's admin endpoint, instead of its address.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// A file holding the admin endpoint's bearer token.
    #[arg(long, value_name = "FILE", requires = "admin")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Mutual TLS with every peer: the three files `ratchet certs` makes.
/// Without them a process talks plain TCP, on loopback only.
#[derive(Clone, Debug, Args)]
pub struct TlsArgs {
    /// The cluster CA's certificate (PEM), which every peer's must chain to.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM), naming its role.
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// This process's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_cert"])]
    tls_key: Option<PathBuf>,
}

/// The three TLS files, when all are given (clap requires all or none).
fn tls_files(ca: &Option<PathBuf>, cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Option<TlsFiles> {
    let (Some(ca), Some(cert), Some(key)) = (ca, cert, key) else { return None };
    Some(TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() })
}

impl TlsArgs {
    /// The identity the files make, if they are given; a file that cannot
    /// be used is bad input, named.
    fn identity(&self) -> Result<Option<Arc<TlsIdentity>>, Failure> {
        let Some(files) = tls_files(&self.tls_ca, &self.tls_cert, &self.tls_key) else { return Ok(None) };
        TlsIdentity::load(&files).map(|identity| Some(Arc::new(identity))).map_err(|e| Failure::input(format!("--tls: {e}")))
    }
}

fn tokio() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::from(anyhow::anyhow!("cannot start the async runtime: {e}")))
}

fn transport(tls: Option<Arc<TlsIdentity>>) -> TransportConfig {
    TransportConfig { call_timeout: Duration::from_secs(5), tls, ..TransportConfig::default() }
}

/// A failure timeout: a duration (`1s`, `250ms`) from 10 ms to an hour.
fn failure_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&timeout) {
        return Err(format!("{text} is not between 10ms and 1h"));
    }
    Ok(timeout)
}

fn client(addr: &str, tls: Option<Arc<TlsIdentity>>) -> Client<CoordinatorProtocol> {
    Client::new(addr, transport(tls))
}

/// Binds `addr`: beyond loopback only with TLS, as the admin endpoint only
/// with a token.
async fn bind(addr: &str, tls: bool) -> Result<tokio::net::TcpListener, Failure> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| Failure::input(format!("--listen {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(anyhow::Error::new)?;
    if !bound.ip().is_loopback() && !tls {
        return Err(Failure::input(format!(
            "--listen {addr} is not a loopback address: beyond loopback the cluster's ports need mutual TLS \
             (--tls-ca, --tls-cert, --tls-key; `ratchet certs` makes them)"
        )));
    }
    Ok(listener)
}

pub fn coordinator(args: CoordinatorArgs, runtime: Runtime) -> Result<(), Failure> {
    let registry = Registry::with_defaults(Arc::new(runtime)).map_err(anyhow::Error::new)?;
    super::load_plugins(&registry, &args.plugins)?;
    let registry = Arc::new(registry);
    let config = RecoveryConfig { shards: args.shards, ..RecoveryConfig::default() };
    let _held = super::hold_data_dir(&args.data)?;
    if let Some(dir) = &args.plugin_dir
        && !dir.is_dir()
    {
        return Err(Failure::input(format!("--plugin-dir {}: not a directory", dir.display())));
    }
    let token = match &args.admin_token {
        Some(path) => Some(ratchet::admin::auth::read_token(path).map_err(|e| Failure::input(e.to_string()))?),
        None => None,
    };
    let store = match &args.store {
        None => ratchet::coordinator::process::StoreChoice::File,
        Some(url) => {
            let files = tls_files(&args.store_tls_ca, &args.store_tls_cert, &args.store_tls_key);
            let store = ratchet::store::EtcdStore::connect_with(url, files.as_ref()).map_err(|err| match err {
                ratchet::store::StoreError::BadUrl { .. } => Failure::input(format!("--store: {err}")),
                other => Failure::from(anyhow::anyhow!("--store {url}: {other}")),
            })?;
            let id = hostname();
            let ttl = Duration::from_secs(args.lease_ttl);
            ratchet::coordinator::process::StoreChoice::Etcd { store: Arc::new(store), id, ttl }
        }
    };
    let tls = args.tls.identity()?;
    tokio()?.block_on(async {
        let admin_addr: std::net::SocketAddr = tokio::net::lookup_host(&args.admin)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| Failure::input(format!("--admin {}: not an address", args.admin)))?;
        ratchet::admin::auth::check_bind(admin_addr, token.as_deref()).map_err(|e| Failure::input(e.to_string()))?;
        let listener = bind(&args.listen, tls.is_some()).await?;
        let admin = tokio::net::TcpListener::bind(admin_addr).await.map_err(|e| Failure::input(format!("--admin {}: {e}", args.admin)))?;
        println!("coordinator listening on {}", listener.local_addr().map_err(anyhow::Error::new)?);
        println!("admin endpoint on http://{}", admin.local_addr().map_err(anyhow::Error::new)?);
        let admin_options =
            ratchet::admin::AdminOptions { token, rollback_after: args.rollback_after, max_plugin_bytes: args.max_plugin_bytes as usize };
        let setup = ratchet::coordinator::process::Setup {
            listener,
            admin,
            admin_options,
            plugin_dir: args.plugin_dir,
            log_retention: args.log_retention,
            boot_grace: Duration::from_secs(args.boot_grace),
            failure_timeout: args.failure_timeout,
            store,
            tls,
        };
        ratchet::coordinator::process::run(&args.data, setup, registry, config).await.map_err(Failure::from)
    })
}

pub fn worker(args: WorkerArgs) -> Result<(), Failure> {
    let spec = NodeSpec { id: args.node, zone: args.zone, capacity: args.capacity };
    let _held = super::hold_data_dir(&args.data)?;
    let tls = args.tls.identity()?;
    tokio()?.block_on(async {
        let listener = bind(&args.listen, tls.is_some()).await?;
        println!("worker {} listening on {}", spec.id, listener.local_addr().map_err(anyhow::Error::new)?);
        ratchet::worker::process::run(spec, &args.data, listener, &args.coordinator, args.page_bytes, tls).await.map_err(Failure::from)
    })
}

pub fn load(args: LoadArgs) -> Result<(), Failure> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.acks)
        .map_err(|e| Failure::input(format!("--acks {}: {e}", args.acks.display())))?;
    let mut acks = std::io::BufWriter::new(file);
    let mut client = CommitClient::new(&args.coordinator, transport(args.tls.identity()?));
    let started = Instant::now();
    let mut acked = 0usize;
    let mut next = 0usize;
    let run = tokio()?.block_on(async {
        while next < args.writes {
            let end = (next + args.batch as usize).min(args.writes);
            let writes: Vec<(String, String)> = (next..end).map(write).collect();
            let version = commit(&mut client, &writes, Duration::from_secs(args.retry_secs)).await?;
            for (key, value) in &writes {
                writeln!(acks, "{key}\t{value}\t{version}").map_err(|e| anyhow::anyhow!("writing acks: {e}"))?;
            }
            // An acknowledged write is on disk in the acks file before the next commit.
            acks.flush().map_err(|e| anyhow::anyhow!("writing acks: {e}"))?;
            acks.get_ref().sync_data().map_err(|e| anyhow::anyhow!("syncing acks: {e}"))?;
            acked += writes.len();
            next = end;
            if acked % 1_000 < args.batch as usize {
                eprintln!("load: {acked} of {} writes acknowledged", args.writes);
            }
        }
        Ok::<(), Failure>(())
    });
    println!("load: {acked} writes acknowledged in {:.1} s", started.elapsed().as_secs_f64());
    run
}

/// Commits `writes`, retrying while the cluster recovers, for up to `patience`.
async fn commit(client: &mut CommitClient, writes: &[(String, String)], patience: Duration) -> Result<u64, Failure> {
    let deadline = Instant::now() + patience;
    loop {
        let reason = match client.commit(writes).await {
            Ok(version) => return Ok(version),
            Err(err) => err.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(anyhow::anyhow!("no commit acknowledged for {patience:?}: {reason}").into());
        }
        tracing::debug!(%reason, "commit not acknowledged; retrying");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The write number `i`: a key starting with a hash, so keys spread over shards.
fn write(i: usize) -> (String, String) {
    (format!("{:08x}-{i}", (i as u32).wrapping_mul(2_654_435_761)), format!("value-{i}"))
}

/// Reads `key` through the first coordinator that serves it (a standby
/// does not), retrying while none can (the cluster is recovering, say) for
/// up to `patience`. A read that is served is final.
async fn read(clients: &[Client<CoordinatorProtocol>], key: &str, patience: Duration) -> Result<Option<String>, Failure> {
    let deadline = Instant::now() + patience;
    loop {
        let mut reasons = Vec::new();
        for client in clients {
            match client.call(CoordinatorRequest::Read { key: key.into() }).await {
                Ok(Ok(CoordinatorReply::Value(found))) => return Ok(found),
                Ok(Ok(other)) => reasons.push(format!("unexpected reply {other:?}")),
                Ok(Err(reason)) => reasons.push(reason),
                Err(err) => reasons.push(err.to_string()),
            }
        }
        let reason = reasons.join("; ");
        if Instant::now() >= deadline {
            return Err(anyhow::anyhow!("reading {key}: no answer for {patience:?}: {reason}").into());
        }
        tracing::debug!(key, %reason, "read not served; retrying");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let file = std::fs::File::open(&args.acks).map_err(|e| Failure::input(format!("--acks {}: {e}", args.acks.display())))?;
    let mut expected = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Failure::input(format!("--acks {}: {e}", args.acks.display())))?;
        let mut fields = line.split('\t');
        match (fields.next(), fields.next()) {
            (Some(key), Some(value)) => expected.push((key.to_string(), value.to_string())),
            _ => return Err(Failure::input(format!("--acks {}: line {} is not `key<TAB>value<TAB>version`", args.acks.display(), n + 1))),
        }
    }
    let tls = args.tls.identity()?;
    let clients: Vec<Client<CoordinatorProtocol>> =
        args.coordinator.split(',').filter(|a| !a.is_empty()).map(|addr| client(addr, tls.clone())).collect();
    let mut lost = Vec::new();
    tokio()?.block_on(async {
        for (key, value) in &expected {
            match read(&clients, key, Duration::from_secs(args.retry_secs)).await? {
                Some(found) if found == *value => {}
                found => lost.push(format!("{key}: expected {value}, found {found:?}")),
            }
        }
        Ok::<(), Failure>(())
    })?;
    for line in lost.iter().take(20) {
        println!("lost {line}");
    }
    println!("verified {} acknowledged writes: {} lost", expected.len(), lost.len());
    if lost.is_empty() { Ok(()) } else { Err(Failure { code: 1, message: format!("{} acknowledged writes lost", lost.len()) }) }
}

pub fn status(args: StatusArgs) -> Result<(), Failure> {
    let status: Status = match (&args.coordinator, args.admin) {
        (Some(coordinator), _) => match tokio()?.block_on(client(coordinator, args.tls.identity()?).call(CoordinatorRequest::Status)) {
            Ok(Ok(CoordinatorReply::Status(status))) => *status,
            Ok(other) => return Err(anyhow::anyhow!("unexpected reply {other:?}").into()),
            Err(err) => return Err(anyhow::anyhow!("{err}").into()),
        },
        (None, Some(addr)) => AdminClient::new(&AdminArgs { addr, token_file: args.token_file })?.get("/status")?,
        (None, None) => return Err(Failure::input("give --coordinator ADDR or --admin ADDR")),
    };
    let out = render_status(&status).map_err(|err| anyhow::anyhow!("cannot render the status: {err}"))?;
    match std::io::stdout().write_all(out.as_bytes()) {
        // A closed pipe (`| head`) ends the output quietly.
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::anyhow!("cannot write the status: {err}").into()),
        _ => Ok(()),
    }
}

/// `ratchet status`'s text for `status`.
fn render_status(status: &Status) -> Result<String, std::fmt::Error> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let epoch = status.epoch.map_or("-".into(), |e| e.to_string());
    writeln!(out, "epoch      {epoch}")?;
    writeln!(out, "state      {}", status.state)?;
    writeln!(out, "committed  {}", status.committed)?;
    let degraded = |id: &str| status.degraded.iter().find(|(node, _)| node == id).map(|(_, why)| why.as_str());
    let health = |node: &Node| match (node.healthy, degraded(&node.id)) {
        (true, _) => "",
        (false, Some(_)) => ", degraded",
        (false, None) => ", down",
    };
    let nodes: Vec<String> = status.nodes.iter().map(|n| format!("{}({}{})", n.id, n.zone, health(n))).collect();
    writeln!(out, "nodes      {}", nodes.join(" "))?;
    for (node, why) in &status.degraded {
        writeln!(out, "degraded   {node}: {why}")?;
    }
    for node in &status.nodes {
        let hosted: Vec<&str> = status.services.iter().filter(|s| s.node == node.id).map(|s| s.id.as_str()).collect();
        if !hosted.is_empty() {
            writeln!(out, "hosted {:<4}{}", node.id, hosted.join(" "))?;
        }
    }
    if let Some(layout) = &status.layout {
        writeln!(out, "sequencer  {}", layout.sequencer.as_deref().unwrap_or("-"))?;
        writeln!(out, "proxies    {}", layout.commit_proxies.join(" "))?;
        writeln!(out, "resolvers  {}", layout.resolvers.join(" "))?;
        for log in &layout.logs {
            writeln!(out, "log        {} tags {:?}", log.id, log.tags)?;
        }
        for team in &layout.storage_teams {
            let departing: Vec<&str> = team.departing.iter().map(|d| d.service.id.as_str()).collect();
            let departing = if departing.is_empty() { String::new() } else { format!(" (departing: {})", departing.join(" ")) };
            writeln!(out, "team {:<5} {}{departing}", team.tag, team.storage_ids.join(" "))?;
        }
        if !status.joining.is_empty() {
            writeln!(out, "joining    {} (seeded from a teammate; serving once caught up)", status.joining.join(" "))?;
        }
    }
    let last = status.last_recovery();
    if let Some(recovery) = last {
        let took = recovery.millis.map_or("did not complete".into(), |ms| format!("{ms:.2} ms to the persisted layout"));
        writeln!(out, "\nlast recovery: {}: {took}", recovery.trigger)?;
    }
    for attempt in last.map(|r| r.attempts.as_slice()).unwrap_or_default() {
        writeln!(
            out,
            "\nattempt {} at epoch {}: {} in {:.2} ms ({:.2} ms in plugin calls, of which {:.2} ms inside wasm)",
            attempt.attempt, attempt.epoch, attempt.outcome, attempt.millis, attempt.plugin_millis, attempt.guest_millis
        )?;
        writeln!(out, "  {:<28} {:>10}  OUTCOME", "PHASE", "MS")?;
        for (phase, millis, outcome) in &attempt.phases {
            writeln!(out, "  {phase:<28} {millis:>10.3}  {outcome}")?;
        }
    }
    if !status.replica_events.is_empty() {
        writeln!(out, "\nreplica recovery ({} newest events)", status.replica_events.len())?;
        writeln!(out, "  {:>8}     {:<5} {:<18} {:<5} {:<11} DETAIL", "AT", "#", "REPLICA", "EPOCH", "EVENT")?;
        for event in &status.replica_events {
            writeln!(out, "  {event}")?;
        }
    }
    Ok(out)
}

/// This machine's name, for naming a coordinator that leads.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "coordinator".into())
}
