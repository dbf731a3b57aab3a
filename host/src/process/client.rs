//! A client of the real cluster. It learns the live generation from the
//! coordinator and commits through that generation's proxies directly, as a
//! FoundationDB client does: the coordinator is not on the commit path.

use std::collections::BTreeMap;

use super::protocol::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest};
use crate::bindings::types::{Epoch, Layout, Version};
use crate::transport::{Client, TransportConfig};
use crate::worker::{WorkerProtocol, WorkerReply, WorkerRequest};

/// Why a commit was not acknowledged. Nothing is known of its writes: they
/// may or may not have been committed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator could not be asked for the live generation.
    #[error("the coordinator: {0}")]
    Coordinator(String),
    /// No recovery has completed yet.
    #[error("no generation serves yet")]
    NoGeneration,
    /// The proxy refused the commit or could not be reached.
    #[error("{proxy} (epoch {epoch}): {reason}")]
    Proxy {
        /// The proxy.
        proxy: String,
        /// Its generation.
        epoch: Epoch,
        /// What went wrong.
        reason: String,
    },
}

/// Commits through the proxies of the live generation, each in turn.
pub struct CommitClient {
    coordinator: Client<CoordinatorProtocol>,
    config: TransportConfig,
    layout: Option<Layout>,
    /// One client per worker address.
    workers: BTreeMap<String, Client<WorkerProtocol>>,
    next: usize,
}

impl CommitClient {
    /// A client of the cluster whose coordinator listens at `coordinator`.
    pub fn new(coordinator: &str, config: TransportConfig) -> Self {
        CommitClient {
            coordinator: Client::new(coordinator, config.clone()),
            config,
            layout: None,
            workers: BTreeMap::new(),
            next: 0,
        }
    }

    /// The epoch of the generation commits go to, once known.
    pub fn epoch(&self) -> Option<Epoch> {
        self.layout.as_ref().map(|l| l.epoch)
    }

    /// Commits `writes`; returns the acknowledged version. After a failure
    /// the next call asks the coordinator for the live generation again.
    pub async fn commit(&mut self, writes: &[(String, String)]) -> Result<Version, ClientError> {
        if self.layout.is_none() {
            self.layout = Some(self.generation().await?);
        }
        let result = self.commit_to_live(writes).await;
        if result.is_err() {
            self.layout = None;
        }
        result
    }

    async fn commit_to_live(&mut self, writes: &[(String, String)]) -> Result<Version, ClientError> {
        let layout = self.layout.as_ref().ok_or(ClientError::NoGeneration)?;
        let epoch = layout.epoch;
        if layout.commit_proxies.is_empty() {
            return Err(ClientError::NoGeneration);
        }
        let proxy = layout.commit_proxies[self.next % layout.commit_proxies.len()].clone();
        self.next = self.next.wrapping_add(1);
        let failed = |reason: String| ClientError::Proxy { proxy: proxy.clone(), epoch, reason };
        let address = layout
            .services
            .iter()
            .find(|s| s.id == proxy)
            .map(|s| s.address.clone())
            .ok_or_else(|| failed("not described in the layout".into()))?;
        let config = self.config.clone();
        let worker = self.workers.entry(address.clone()).or_insert_with(|| Client::new(address, config));
        match worker.call(WorkerRequest::Commit { id: proxy.clone(), writes: writes.to_vec() }).await {
            Ok(Ok(WorkerReply::Committed(version))) => Ok(version),
            Ok(Ok(other)) => Err(failed(format!("unexpected reply {other:?}"))),
            Ok(Err(err)) => Err(failed(err.to_string())),
            Err(err) => Err(failed(err.to_string())),
        }
    }

    async fn generation(&self) -> Result<Layout, ClientError> {
        match self.coordinator.call(CoordinatorRequest::Generation).await {
            Ok(Ok(CoordinatorReply::Generation(Some(layout)))) => Ok(*layout),
            Ok(Ok(CoordinatorReply::Generation(None))) => Err(ClientError::NoGeneration),
            Ok(Ok(other)) => Err(ClientError::Coordinator(format!("unexpected reply {other:?}"))),
            Ok(Err(reason)) => Err(ClientError::Coordinator(reason)),
            Err(err) => Err(ClientError::Coordinator(err.to_string())),
        }
    }
}
