//! The worker process: a foreman serving its roles, registering with the
//! coordinator every second (its heartbeat).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::protocol::{CoordinatorProtocol, CoordinatorRequest};
use crate::cluster::NodeSpec;
use crate::transport::{Client, TransportConfig, serve};
use crate::worker::{Foreman, WorkerProtocol};

/// How often a worker registers again.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Runs a worker until the process ends, serving bulk transfers in pages
/// of at most `page_bytes`.
pub async fn run(
    spec: NodeSpec,
    data: &Path,
    listener: tokio::net::TcpListener,
    coordinator: &str,
    page_bytes: usize,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?.to_string();
    let foreman = Arc::new(Foreman::open(spec.clone(), data, addr.clone())?.with_page_bytes(page_bytes));
    tracing::info!(node = %spec.id, %addr, data = %data.display(), "worker listening");
    let transport = TransportConfig::default();
    tokio::spawn(serve::<WorkerProtocol, _>(listener, foreman, transport.clone()));
    let client = Client::<CoordinatorProtocol>::new(coordinator, transport);
    let register = CoordinatorRequest::Register {
        node: spec.id.clone(),
        zone: spec.zone.clone(),
        capacity: spec.capacity,
        addr,
    };
    loop {
        match client.call(register.clone()).await {
            Ok(Ok(_)) => tracing::debug!("registered"),
            Ok(Err(reason)) => tracing::warn!(%reason, "the coordinator refused the registration"),
            Err(err) => tracing::warn!(%err, "cannot reach the coordinator"),
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}
