//! A client of the real cluster. It learns the live generation from the
//! coordinator and commits through that generation's proxies directly, as a
//! FoundationDB client does: the coordinator is not on the commit path.

use std::collections::BTreeMap;

use crate::bindings::types::{Epoch, Layout, Version};
use crate::transport::{Client, TransportConfig};
use crate::wire::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest};
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
    /// Every coordinator; only the leader knows a live generation.
    coordinators: Vec<Client<CoordinatorProtocol>>,
    config: TransportConfig,
    layout: Option<Layout>,
    /// One client per worker address.
    workers: BTreeMap<String, Client<WorkerProtocol>>,
    next: usize,
}

impl CommitClient {
    /// A client of the cluster whose coordinator listens at `coordinator`
    /// (a comma-separated list when several share an etcd store).
    pub fn new(coordinator: &str, config: TransportConfig) -> Self {
        CommitClient {
            coordinators: coordinator.split(',').filter(|a| !a.is_empty()).map(|a| Client::new(a, config.clone())).collect(),
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

    /// The newest live generation any coordinator knows.
    async fn generation(&self) -> Result<Layout, ClientError> {
        let asks = self.coordinators.iter().map(|c| c.call(CoordinatorRequest::Generation));
        let (mut newest, mut failures, mut answered) = (None::<Layout>, Vec::new(), false);
        for answer in futures::future::join_all(asks).await {
            match answer {
                Ok(Ok(CoordinatorReply::Generation(Some(layout)))) => {
                    answered = true;
                    if newest.as_ref().is_none_or(|n| n.epoch < layout.epoch) {
                        newest = Some(*layout);
                    }
                }
                Ok(Ok(CoordinatorReply::Generation(None))) => answered = true,
                Ok(Ok(other)) => failures.push(format!("unexpected reply {other:?}")),
                Ok(Err(reason)) => failures.push(reason),
                Err(err) => failures.push(err.to_string()),
            }
        }
        match newest {
            Some(layout) => Ok(layout),
            None if answered => Err(ClientError::NoGeneration),
            None => Err(ClientError::Coordinator(failures.join("; "))),
        }
    }
}
