//! The worker process: a foreman serving its roles, registering with the
//! coordinator every second (its heartbeat).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Foreman, WorkerProtocol};
use crate::services::Disk;
use crate::topology::NodeSpec;
use crate::transport::{Client, TcpTransport, TlsIdentity, TransportConfig, serve};
use crate::wire::{CoordinatorProtocol, CoordinatorRequest};

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
    tls: Option<Arc<TlsIdentity>>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?.to_string();
    let transport = TransportConfig { tls, ..TransportConfig::default() };
    let foreman = Arc::new(
        Foreman::open(spec.clone(), Disk::Dir(data.to_path_buf()), addr.clone())?
            .with_page_bytes(page_bytes)
            .with_transport(Arc::new(TcpTransport::new(transport.clone()))),
    );
    tracing::info!(node = %spec.id, %addr, data = %data.display(), "worker listening");
    tokio::spawn(serve::<WorkerProtocol, _>(listener, foreman, transport.clone()));
    let register = CoordinatorRequest::Register { node: spec.id.clone(), zone: spec.zone.clone(), capacity: spec.capacity, addr };
    // Coordinators sharing an etcd store stand by for each other: a worker
    // registers with each, so whichever leads knows it; each on its own, so
    // a hung coordinator never delays the registrations with the others.
    let calls = TransportConfig { call_timeout: HEARTBEAT, ..transport };
    let registrations: Vec<_> = coordinator
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|a| tokio::spawn(keep_registering(Client::new(a, calls.clone()), register.clone())))
        .collect();
    for registration in registrations {
        registration.await?;
    }
    Ok(())
}

/// Registers with the coordinator `client` reaches, every [`HEARTBEAT`],
/// for as long as the process runs.
async fn keep_registering(client: Client<CoordinatorProtocol>, register: CoordinatorRequest) {
    let coordinator = client.addr().to_string();
    loop {
        match client.call(register.clone()).await {
            Ok(Ok(_)) => tracing::debug!(%coordinator, "registered"),
            Ok(Err(reason)) => tracing::warn!(%coordinator, %reason, "the coordinator refused the registration"),
            Err(err) => tracing::warn!(%coordinator, %err, "cannot reach the coordinator"),
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}
