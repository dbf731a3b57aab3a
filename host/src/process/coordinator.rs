//! The coordinator process: the durable store, the remote cluster its
//! workers register with, and a director that recovers whenever the live
//! generation loses a member.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::protocol::{AttemptSummary, CoordinatorProtocol, CoordinatorReply, CoordinatorRequest, Status};
use crate::bindings::types::{Layout, RecoveryConfig};
use crate::cluster::{Cluster, RemoteCluster};
use crate::coordinator::{CoordinatorStore, FileStore};
use crate::director::{Director, DirectorOptions, RecoveryReport};
use crate::guard::named_services;
use crate::registry::Registry;
use crate::transport::{Handler, TransportConfig, serve};

/// How often the live generation is checked and storage is pumped.
const MONITOR_EVERY: Duration = Duration::from_millis(200);

/// The coordinator's request handler and shared state.
pub struct Coordinator {
    cluster: Arc<RemoteCluster>,
    store: Arc<FileStore>,
    state: Mutex<(String, Vec<AttemptSummary>)>,
}

impl Coordinator {
    fn status(&self) -> Status {
        let persisted = self.store.state().ok().and_then(|s| s.layout);
        let (state, last) = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Status {
            epoch: persisted.as_ref().map(|l| l.epoch),
            layout: persisted,
            state,
            committed: self.cluster.committed_version(),
            nodes: Vec::new(),
            last_recovery: last,
        }
    }

    fn set_state(&self, state: &str, report: Option<&RecoveryReport>) {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        guard.0 = state.into();
        if let Some(report) = report {
            guard.1 = summarize(report);
        }
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
            CoordinatorRequest::Commit { writes } => {
                self.cluster.commit(&writes).await.map(CoordinatorReply::Committed).map_err(|e| e.to_string())
            }
            CoordinatorRequest::Read { key } => Ok(CoordinatorReply::Value(self.cluster.read(&key).await)),
            CoordinatorRequest::Status => {
                let mut status = self.status();
                status.nodes = self.cluster.nodes().await;
                Ok(CoordinatorReply::Status(Box::new(status)))
            }
        }
    }
}

/// Runs the coordinator until the process ends: serves `listener` and
/// drives recovery against the workers that register.
pub async fn run(
    data: &Path,
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    config: RecoveryConfig,
) -> anyhow::Result<()> {
    let store = Arc::new(FileStore::open(data)?);
    let transport = TransportConfig { call_timeout: Duration::from_secs(2), ..TransportConfig::default() };
    // Workers register whenever they start; known ones are reached at once.
    let cluster = Arc::new(RemoteCluster::new(transport.clone()));
    let coordinator = Arc::new(Coordinator {
        cluster: cluster.clone(),
        store: store.clone(),
        state: Mutex::new(("waiting for workers".into(), Vec::new())),
    });
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, data = %data.display(), "coordinator listening");
    tokio::spawn(serve::<CoordinatorProtocol, _>(listener, coordinator.clone(), transport));

    let options = DirectorOptions { max_attempts: u32::MAX, max_backoff: Duration::from_secs(1), ..Default::default() };
    let director = Director::new(registry, cluster.clone(), store, config, options);
    loop {
        coordinator.set_state("recovering", None);
        let report = match director.recover().await {
            Ok(report) => report,
            Err(err) => {
                tracing::error!(%err, "recovery could not run");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(layout) = report.layout().cloned() else {
            coordinator.set_state("recovery did not complete", Some(&report));
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        coordinator.set_state("serving", Some(&report));
        tracing::info!(epoch = layout.epoch, "generation live");
        monitor(&cluster, &layout).await;
        tracing::warn!(epoch = layout.epoch, "a member of the live generation is gone: recovering");
    }
}

/// Pumps storage and watches the live generation until a member is gone.
async fn monitor(cluster: &RemoteCluster, layout: &Layout) {
    let members = named_services(layout);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MONITOR_EVERY) => {}
            _ = cluster.generation_broken() => {
                tracing::warn!("a commit failed after taking a version");
                return;
            }
        }
        cluster.pump().await;
        let live: std::collections::BTreeSet<String> = cluster.services().await.into_iter().map(|s| s.id).collect();
        if let Some(gone) = members.iter().find(|id| !live.contains(*id)) {
            tracing::warn!(service = %gone, "member unreachable");
            return;
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
            phases: a.timeline.iter().map(|p| (p.phase.clone(), p.duration.as_secs_f64() * 1e3, p.outcome.clone())).collect(),
        })
        .collect()
}
