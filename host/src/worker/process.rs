//! The worker process: a foreman serving its roles, registering with the
//! coordinator every second (its heartbeat).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::wire::{CoordinatorProtocol, CoordinatorRequest};
use crate::services::Disk;
use crate::topology::NodeSpec;
use crate::transport::{Client, TransportConfig, serve};
use super::{Foreman, WorkerProtocol};

/// How often a worker registers again.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Runs a worker until the process ends, serving bulk transfers in pages
/// of at most `page_bytes`, registering with every coordinator of the
/// comma-separated list `coordinator`.
pub async fn run(
    spec: NodeSpec,
    data: &Path,
    listener: tokio::net::TcpListener,
    coordinator: &str,
    page_bytes: usize,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?.to_string();
    let foreman = Arc::new(Foreman::open(spec.clone(), Disk::Dir(data.to_path_buf()), addr.clone())?.with_page_bytes(page_bytes));
    tracing::info!(node = %spec.id, %addr, data = %data.display(), "worker listening");
    let transport = TransportConfig::default();
    tokio::spawn(serve::<WorkerProtocol, _>(listener, foreman, transport.clone()));
    // Coordinators sharing an etcd store stand by for each other: a worker
    // registers with each, so whichever leads knows it.
    let clients: Vec<(String, Client<CoordinatorProtocol>)> = coordinator
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|a| (a.to_string(), Client::new(a, transport.clone())))
        .collect();
    let register = CoordinatorRequest::Register {
        node: spec.id.clone(),
        zone: spec.zone.clone(),
        capacity: spec.capacity,
        addr,
    };
    loop {
        let calls = clients.iter().map(|(_, client)| client.call(register.clone()));
        for ((coordinator, _), answer) in clients.iter().zip(futures::future::join_all(calls).await) {
            match answer {
                Ok(Ok(_)) => tracing::debug!(%coordinator, "registered"),
                Ok(Err(reason)) => tracing::warn!(%coordinator, %reason, "the coordinator refused the registration"),
                Err(err) => tracing::warn!(%coordinator, %err, "cannot reach the coordinator"),
            }
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}
