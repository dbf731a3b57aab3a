//! The coordinator process: the durable store, the remote cluster its
//! workers register with, and a director that recovers whenever the live
//! generation loses a member.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::admin::{Admin, AdminHost, AdminOptions};
use crate::audit::{AuditEntry, AuditLog};
use crate::bindings::types::{Epoch, Layout, Node, RecoveryConfig, ServiceDescriptor, Version};
use crate::cluster::{Breakage, Cluster, RemoteCluster};
use crate::director::{AttemptOutcome, Director, DirectorOptions, PAUSE_AFTER_INCOMPLETE, RecoveryReport};
use crate::guard::{kept_services, named_services};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::registry::all_slots;
use crate::replica::{Budget, Sessions};
use crate::status::{AttemptSummary, RECENT_RECOVERIES, RecoverySummary, Status};
use crate::store::{CoordinatorStore, EtcdStore, FileStore, keep_leading};
use crate::transport::{Handler, Peer, TcpTransport, TransportConfig, serve};
use crate::wire::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest};

/// How many of the newest replica recovery events a status carries.
const STATUS_REPLICA_EVENTS: usize = 50;

/// How often the live generation is checked and storage is pumped, unless
/// the failure detector wakes the check sooner.
const MONITOR_EVERY: Duration = Duration::from_millis(200);

/// The shortest bound on a call to a worker that answers its heartbeat.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The coordinator's request handler and shared state.
pub struct Coordinator {
    cluster: Arc<RemoteCluster>,
    store: Arc<dyn CoordinatorStore>,
    progress: Mutex<Progress>,
    /// The director's replica recovery sessions, whose events status shows.
    sessions: Arc<Mutex<Sessions>>,
}

/// What the director is doing, and how its last recovery went.
#[derive(Clone, Default)]
struct Progress {
    state: String,
    /// The newest recoveries, oldest first.
    recoveries: std::collections::VecDeque<RecoverySummary>,
}

impl Coordinator {
    /// The status `ratchet status` shows: the persisted layout, what the
    /// director does, the last recovery, and the workers as they answer now.
    async fn status(&self) -> Status {
        // A proxy that does not answer leaves the last figure.
        if let Err(err) = self.cluster.refresh_committed().await {
            tracing::debug!(?err, "status shows the last committed version known");
        }
        let mut status = self.recorded_status();
        (status.nodes, status.services) = self.cluster.survey().await;
        status.degraded = self.cluster.degraded();
        status
    }

    fn recorded_status(&self) -> Status {
        let persisted = self.store.state().ok().and_then(|s| s.layout);
        let progress = self.progress().clone();
        Status {
            epoch: persisted.as_ref().map(|l| l.epoch),
            layout: persisted,
            state: progress.state,
            committed: self.cluster.committed_version(),
            nodes: Vec::new(),
            services: Vec::new(),
            recoveries: progress.recoveries.into(),
            joining: self.cluster.joining().into_iter().collect(),
            degraded: Vec::new(),
            replica_events: {
                let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
                let events = sessions.events();
                events[events.len().saturating_sub(STATUS_REPLICA_EVENTS)..].to_vec()
            },
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, state: &str) {
        self.progress().state = state.into();
    }

    /// Records a recovery that ended: its attempts, and its wall time since
    /// `since` when it persisted a layout.
    fn recovered(&self, state: &str, trigger: &str, since: Instant, report: &RecoveryReport) {
        let mut progress = self.progress();
        progress.state = state.into();
        if progress.recoveries.len() == RECENT_RECOVERIES {
            progress.recoveries.pop_front();
        }
        let ended_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        progress.recoveries.push_back(RecoverySummary {
            trigger: trigger.into(),
            ended_unix_ms,
            millis: report.layout().is_some().then(|| since.elapsed().as_secs_f64() * 1e3),
            attempts: summarize(report),
        });
    }
}

#[async_trait::async_trait]
impl Handler<CoordinatorProtocol> for Coordinator {
    async fn handle(&self, request: CoordinatorRequest) -> Result<CoordinatorReply, String> {
        match request {
            CoordinatorRequest::Register { node, zone, capacity, addr } => {
                self.cluster.register(&node, &zone, capacity, &addr);
                Ok(CoordinatorReply::Registered)
            }
            CoordinatorRequest::Generation => Ok(CoordinatorReply::Generation(self.cluster.live_layout().map(|l| Box::new((*l).clone())))),
            CoordinatorRequest::Read { key } => self.cluster.read(&key).await.map(CoordinatorReply::Value).map_err(|e| e.to_string()),
            CoordinatorRequest::Status => Ok(CoordinatorReply::Status(Box::new(Coordinator::status(self).await))),
        }
    }

    /// A worker registers only as the node its certificate names; anyone
    /// of the cluster may read the generation, data and status.
    fn forbids(&self, peer: &Peer, request: &CoordinatorRequest) -> Option<String> {
        if !peer.holds_a_role() {
            return Some(format!("{} may ask the coordinator nothing", peer.describe()));
        }
        match request {
            CoordinatorRequest::Register { node, .. } if !peer.is_node(node) => {
                Some(format!("registering as node {node} takes that node's worker certificate, not {}", peer.describe()))
            }
            _ => None,
        }
    }
}

/// How a coordinator process is set up.
pub struct Setup {
    /// Where workers and clients reach it.
    pub listener: tokio::net::TcpListener,
    /// Where operators reach it: the admin endpoint.
    pub admin: tokio::net::TcpListener,
    /// The admin endpoint's token and automatic rollback.
    pub admin_options: AdminOptions,
    /// A directory of `SLOT.wasm` files to watch and swap in.
    pub plugin_dir: Option<std::path::PathBuf>,
    /// Versions each log keeps behind its newest (see
    /// [`RemoteCluster::with_log_retention`]).
    pub log_retention: Version,
    /// How long a restarted coordinator waits for the workers of the
    /// persisted layout to register before its first recovery.
    pub boot_grace: Duration,
    /// How long a worker may go without answering its heartbeat before it
    /// is failed (see [`crate::cluster::FailureDetector`]).
    pub failure_timeout: Duration,
    /// Where the coordinator state lives.
    pub store: StoreChoice,
    /// Mutual TLS on its port and to its workers; `None` on loopback only.
    pub tls: Option<Arc<crate::transport::TlsIdentity>>,
}

/// Where the coordinator state lives.
pub enum StoreChoice {
    /// A file in the data directory: the embedded default.
    File,
    /// etcd, shared by several coordinators of which one leads at a time.
    Etcd {
        /// The connected store.
        store: Arc<EtcdStore>,
        /// This coordinator's name as a leader: its listening address and
        /// process id are added.
        id: String,
        /// The leader lease's time to live.
        ttl: Duration,
    },
}

/// How often the plugin directory is scanned.
const PLUGIN_DIR_EVERY: Duration = Duration::from_millis(500);

#[async_trait::async_trait]
impl AdminHost for Coordinator {
    async fn status(&self) -> Status {
        Coordinator::status(self).await
    }

    async fn nodes(&self) -> Vec<Node> {
        self.cluster.nodes().await
    }
}

/// Runs the coordinator until the process ends: serves its endpoints and
/// drives recovery against the workers that register.
pub async fn run(data: &Path, setup: Setup, registry: Arc<Registry>, config: RecoveryConfig) -> anyhow::Result<()> {
    let Setup { listener, admin, admin_options, plugin_dir, log_retention, boot_grace, failure_timeout, store: choice, tls } = setup;
    let store: Arc<dyn CoordinatorStore> = match &choice {
        StoreChoice::File => Arc::new(FileStore::open(data)?),
        StoreChoice::Etcd { store, .. } => store.clone(),
    };
    let metrics = Arc::new(Metrics::new());
    let audit = AuditLog::open(&data.join("audit.jsonl"))?;
    for slot in all_slots() {
        if let Some(active) = registry.active(slot) {
            let entry = AuditEntry::now("load", slot, "startup", "ok").component(active.sha256, Some(active.number));
            audit.record(&entry)?;
        }
    }
    // A call to a worker the detector fails ends then; this bounds a slow
    // call to a worker that still answers its heartbeat.
    let base = TransportConfig { tls: tls.clone(), ..TransportConfig::default() };
    let transport = TransportConfig { call_timeout: failure_timeout.max(CALL_TIMEOUT), ..base.clone() };
    // The detector's long polls have connections of their own, each call
    // bounded by the failure timeout.
    let heartbeats = TransportConfig { call_timeout: failure_timeout, ..base.clone() };
    // Data movement is bounded by the replica session's budget.
    let bulk = TransportConfig { call_timeout: Budget::default().max_duration, ..base };
    // Workers register whenever they start; known ones are reached at once.
    let cluster = Arc::new(
        RemoteCluster::new(transport.clone())
            .with_log_retention(log_retention)
            .with_failure_detector(Arc::new(TcpTransport::new(heartbeats)), failure_timeout)
            .with_bulk_transport(Arc::new(TcpTransport::new(bulk))),
    );
    let coordinator = Arc::new(Coordinator {
        cluster: cluster.clone(),
        store: store.clone(),
        progress: Mutex::new(Progress { state: "waiting for workers".into(), ..Progress::default() }),
        sessions: Arc::new(Mutex::new(Sessions::new(Budget::default()))),
    });
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, data = %data.display(), "coordinator listening");
    tokio::spawn(serve::<CoordinatorProtocol, _>(listener, coordinator.clone(), transport));
    let admin_state = Arc::new(Admin::new(registry.clone(), coordinator.clone(), audit, metrics.clone(), config, admin_options));
    registry.set_observer(admin_state.clone());
    registry.set_shadow_sink(admin_state.clone());
    if let Some(dir) = plugin_dir {
        tracing::info!(dir = %dir.display(), "watching the plugin directory");
        tokio::spawn(crate::admin::plugin_dir::watch(dir, admin_state.clone(), PLUGIN_DIR_EVERY));
    }
    tracing::info!(addr = %admin.local_addr()?, "admin endpoint listening");
    tokio::spawn(async move {
        if let Err(err) = crate::admin::serve(admin, admin_state).await {
            tracing::error!(%err, "the admin endpoint stopped");
        }
    });

    if let StoreChoice::Etcd { store, id, ttl } = choice {
        lead(&coordinator, store, format!("{id}@{addr}#{}", std::process::id()), ttl).await?;
    }
    await_layout_nodes(&coordinator, boot_grace).await;
    let options = DirectorOptions { max_attempts: u32::MAX, max_backoff: Duration::from_secs(1), ..Default::default() };
    let director = Director::new(registry, cluster.clone(), store, config, options).with_replica_sessions(coordinator.sessions.clone());
    let mut trigger = String::from("boot");
    let mut since = Instant::now();
    // The newest epoch that superseded this coordinator's recovery.
    let mut superseded_by = 0;
    loop {
        coordinator.set_state("recovering");
        if let Some(epoch) = coordinator.store.state().ok().and_then(|s| s.layout).map(|l| l.epoch) {
            metrics.set_epoch(epoch);
        }
        let report = match director.recover().await {
            Ok(report) => {
                metrics.record_recovery(&report);
                report
            }
            Err(err) => {
                tracing::error!(%err, "recovery could not run");
                tokio::time::sleep(PAUSE_AFTER_INCOMPLETE).await;
                continue;
            }
        };
        let Some(layout) = report.layout().cloned() else {
            coordinator.recovered("recovery did not complete", &trigger, since, &report);
            // Superseded by an epoch newer than any seen before (its store
            // issued older epochs than the cluster holds): the director's
            // next attempt takes an epoch above it, at once.
            match report.attempts.last().map(|a| &a.outcome) {
                Some(AttemptOutcome::Superseded(newer)) if *newer > superseded_by => superseded_by = *newer,
                _ => tokio::time::sleep(PAUSE_AFTER_INCOMPLETE).await,
            }
            continue;
        };
        coordinator.recovered("serving", &trigger, since, &report);
        cluster.note_joining(report.attempts.last().map(|a| a.joining.as_slice()).unwrap_or_default());
        tracing::info!(epoch = layout.epoch, "generation live");
        trigger = monitor(&cluster, coordinator.store.as_ref(), &layout).await;
        since = Instant::now();
        tracing::warn!(epoch = layout.epoch, %trigger, "the live generation is broken: recovering");
    }
}

/// Stands by until this coordinator holds etcd's leader key, then keeps
/// its lease alive. Only the leader runs a director; when the lease is lost
/// the process ends at once (I8), for its successor recovers with a higher
/// epoch and anything this one would still do is fenced.
async fn lead(coordinator: &Coordinator, store: Arc<EtcdStore>, id: String, ttl: Duration) -> anyhow::Result<()> {
    coordinator.set_state("standby: another coordinator leads");
    tracing::info!(%id, "campaigning for leadership");
    loop {
        let (campaign, who) = (store.clone(), id.clone());
        match tokio::task::spawn_blocking(move || campaign.campaign(&who, ttl, Duration::from_millis(200))).await? {
            Ok(_) => break,
            // etcd unreachable: act on nothing, and try again.
            Err(err) => {
                tracing::warn!(%err, "cannot campaign for leadership; retrying");
                coordinator.set_state(&format!("standby: {err}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    println!("leading as {id}");
    keep_leading(store, |reason| {
        tracing::error!(reason, "leadership lost: stopping");
        eprintln!("leadership lost ({reason}): stopping");
        std::process::exit(3);
    });
    Ok(())
}

/// Waits, up to `grace`, until every node the persisted layout places a
/// service on has registered. Workers register within a heartbeat of a
/// coordinator's start: a recovery that began at once would find most of
/// them missing and replace their replicas, copying whole shards for a
/// restart that lost nothing.
async fn await_layout_nodes(coordinator: &Coordinator, grace: Duration) {
    let Some(layout) = coordinator.store.state().ok().and_then(|s| s.layout) else { return };
    let needed: BTreeSet<String> = layout.services.iter().map(|s| s.node.clone()).collect();
    let deadline = Instant::now() + grace;
    coordinator.set_state("waiting for the layout's workers");
    loop {
        let missing: Vec<String> = needed.difference(&coordinator.cluster.registered_nodes()).cloned().collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(?missing, "recovering without the workers that have not registered");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// No recovery runs while serving, so a service the persisted layout does
/// not name (as a member or a departing replica) is needed by nothing: an old generation's, one an attempt created
/// on a worker that was down during its rollback, or one a restarted worker
/// reloaded. Each is released, journal and all, so that they cannot fill a
/// node's capacity over many recoveries.
async fn release_strays(cluster: &RemoteCluster, epoch: Epoch, kept: &BTreeSet<String>, hosted: &[ServiceDescriptor]) {
    for stray in hosted.iter().filter(|s| !kept.contains(&s.id)) {
        tracing::info!(service = %stray.id, node = %stray.node, "releasing a service no generation needs");
        cluster.release(&stray.id, epoch).await;
    }
}

/// Pumps storage and watches the live generation until it breaks; returns
/// what broke it. The previous generation's services are released first;
/// the store's service directory follows the generation's services.
async fn monitor(cluster: &RemoteCluster, store: &dyn CoordinatorStore, layout: &Layout) -> String {
    let members = named_services(layout);
    let kept = kept_services(layout);
    let mut failures = cluster.detector().map(|d| d.failures());
    if may_act(store) {
        release_strays(cluster, layout.epoch, &kept, &cluster.services().await).await;
    }
    let mut recorded = Vec::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(MONITOR_EVERY) => {}
            () = next_failure(&mut failures) => tracing::debug!("the failure detector woke the check"),
        }
        if let Some(failed) = cluster.failed_member(&members) {
            return failed.to_string();
        }
        // The probe before the check: the check's pump then brings storage
        // to the probe's version too, so an idle generation's replicas
        // stand at the committed version, and a recovery has none to
        // catch up.
        if let Some(detector) = cluster.detector() {
            let probe = cluster.probe(detector.timeout());
            if let Err(breakage) = unless_a_member_fails(cluster, &members, &mut failures, probe).await.and_then(|p| p) {
                return breakage.to_string();
            }
        }
        // Housekeeping (releasing, popping) is fenced like the store's
        // writes: a coordinator unsure it still leads drops nothing.
        let acting = may_act(store);
        // A pump can take long (a replica catching up a large range, or
        // one whose disk turned slow): the probe goes on meanwhile.
        let check = probing_meanwhile(cluster, cluster.check(&members, acting));
        let hosted = match unless_a_member_fails(cluster, &members, &mut failures, check).await.and_then(|c| c) {
            Ok(hosted) => hosted,
            Err(breakage) => return breakage.to_string(),
        };
        if acting {
            release_strays(cluster, layout.epoch, &kept, &hosted).await;
        }
        // The directory in the store follows what the workers host.
        let mut directory: Vec<ServiceDescriptor> = hosted.into_iter().filter(|s| members.contains(&s.id)).collect();
        directory.sort_by(|a, b| a.id.cmp(&b.id));
        if directory != recorded {
            match store.sync_services(&directory) {
                Ok(_) => recorded = directory,
                Err(err) => tracing::warn!(%err, "cannot record the service directory"),
            }
        }
    }
}

/// Runs `work` to its end, probing the live generation every
/// [`MONITOR_EVERY`] meanwhile: answers the first probe's breakage instead.
/// A generation that cannot commit is found broken within a failure
/// timeout of the probe that saw it, however long the work takes (the
/// netns test's slow log disk held its pump, and so its next probe, for
/// seconds).
async fn probing_meanwhile<T>(
    cluster: &RemoteCluster,
    work: impl std::future::Future<Output = Result<T, Breakage>>,
) -> Result<T, Breakage> {
    let Some(detector) = cluster.detector() else { return work.await };
    let probes = async {
        loop {
            tokio::time::sleep(MONITOR_EVERY).await;
            if let Err(breakage) = cluster.probe(detector.timeout()).await {
                return breakage;
            }
        }
    };
    tokio::select! {
        done = work => done,
        breakage = probes => Err(breakage),
    }
}

/// Runs `work` to its end, unless a member of `members` fails first (the
/// probe waits on a hung member up to the failure timeout, a pump on a
/// large catch-up): then answers at once why the generation broke.
async fn unless_a_member_fails<T>(
    cluster: &RemoteCluster,
    members: &BTreeSet<String>,
    failures: &mut Option<crate::cluster::RegistrationWatch>,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Breakage> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            () = next_failure(failures) => {
                if let Some(breakage) = cluster.failed_member(members) {
                    return Err(breakage);
                }
            }
        }
    }
}

/// Ends when the failure detector announces a failure; never without one.
async fn next_failure(failures: &mut Option<crate::cluster::RegistrationWatch>) {
    match failures {
        Some(failures) => failures.changed().await,
        None => std::future::pending().await,
    }
}

/// Whether this coordinator may release and pop now (see
/// [`CoordinatorStore::may_act`]).
fn may_act(store: &dyn CoordinatorStore) -> bool {
    match store.may_act() {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(%err, "housekeeping held back");
            false
        }
    }
}

fn summarize(report: &RecoveryReport) -> Vec<AttemptSummary> {
    report
        .attempts
        .iter()
        .map(|a| AttemptSummary {
            epoch: a.epoch,
            attempt: a.attempt,
            outcome: a.outcome.to_string(),
            millis: a.duration.as_secs_f64() * 1e3,
            host_millis: a.host_time.as_secs_f64() * 1e3,
            plugin_millis: a.wasm_time().as_secs_f64() * 1e3,
            guest_millis: a.guest_time().as_secs_f64() * 1e3,
            phases: a.timeline.iter().map(|p| (p.phase.clone(), p.duration.as_secs_f64() * 1e3, p.outcome.clone())).collect(),
        })
        .collect()
}
