//! The commit path of a proxy hosted by a worker. A client sends its writes
//! to a proxy of the live generation; the proxy takes a version from the
//! sequencer, checks with every resolver, and pushes the version to every
//! log, each on its own worker, reached through the addresses in the layout
//! the proxy was unlocked with. The proxy answers only when every log has
//! made the version durable, so an acknowledged write survives any failure
//! the logs' replication covers.
//!
//! A failure after the version was taken leaves a gap no later push can
//! cross: the proxy then refuses every further commit and reports its
//! generation broken (in its worker's `Info`), and the coordinator recovers.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;

use crate::bindings::types::{ClusterError, Epoch, Layout, Version};
use crate::services::Mutation;
use crate::topology::tag_of;
use crate::transport::Transport;
use crate::wire::{WorkerProtocol, WorkerReply, WorkerRequest};

/// What a proxy knows of its generation once unlocked.
#[derive(Clone)]
pub(super) struct Generation {
    pub route: Arc<Route>,
    /// The newest version this proxy acknowledged.
    pub committed: Version,
    /// Set when a commit failed after taking a version.
    pub broken: bool,
}

impl Generation {
    pub fn new(layout: Layout) -> Self {
        Generation { committed: layout.recovery_version, route: Arc::new(Route::new(layout)), broken: false }
    }
}

/// A generation's layout with its members' addresses indexed: a commit
/// asks the sequencer, the resolvers and every log, and a layout lists
/// every replica too.
pub(super) struct Route {
    pub layout: Layout,
    addresses: HashMap<String, String>,
}

impl Route {
    fn new(layout: Layout) -> Self {
        let addresses = layout.services.iter().map(|s| (s.id.clone(), s.address.clone())).collect();
        Route { layout, addresses }
    }

    fn address(&self, id: &str) -> Result<&str, ClusterError> {
        self.addresses
            .get(id)
            .map(String::as_str)
            .ok_or_else(|| ClusterError::NotFound(format!("no address for {id} in the layout of epoch {}", self.layout.epoch)))
    }
}

/// How a proxy reaches the other workers: the transport its foreman was
/// given, to the addresses in the layout.
#[derive(Clone)]
pub(super) struct Peers {
    transport: Arc<dyn Transport<WorkerProtocol>>,
}

impl Peers {
    pub fn new(transport: Arc<dyn Transport<WorkerProtocol>>) -> Self {
        Peers { transport }
    }

    /// Sends `request` to the worker hosting service `id` of `route`.
    pub async fn ask(&self, route: &Route, id: &str, request: WorkerRequest) -> Result<WorkerReply, ClusterError> {
        let address = route.address(id)?;
        match self.transport.call(address, request).await {
            Ok(reply) => reply,
            Err(err) => Err(ClusterError::Unreachable(format!("{id}: {err}"))),
        }
    }
}

/// Takes the next version from the generation's sequencer: `(prev, version)`.
pub(super) async fn take_version(peers: &Peers, route: &Route, epoch: Epoch) -> Result<(Version, Version), ClusterError> {
    let layout = &route.layout;
    let sequencer = layout.sequencer.as_deref().ok_or_else(|| ClusterError::Failed("the layout has no sequencer".into()))?;
    match peers.ask(route, sequencer, WorkerRequest::NextVersion { id: sequencer.into(), epoch }).await? {
        WorkerReply::Versions { prev, version } => Ok((prev, version)),
        other => Err(ClusterError::Failed(format!("{sequencer}: unexpected reply {other:?}"))),
    }
}

/// Checks `version` with every resolver, then pushes it to every log at
/// once; done when every log has made it durable.
pub(super) async fn finish(
    peers: &Peers,
    route: &Route,
    epoch: Epoch,
    (prev, version): (Version, Version),
    writes: &[(String, String)],
) -> Result<(), ClusterError> {
    let layout = &route.layout;
    for resolver in &layout.resolvers {
        peers.ask(route, resolver, WorkerRequest::Resolve { id: resolver.clone(), epoch }).await?;
    }
    let mutations: Vec<Mutation> =
        writes.iter().map(|(key, value)| Mutation { tag: tag_of(layout, key), key: key.clone(), value: value.clone() }).collect();
    let pushes = layout.logs.iter().map(|log| {
        let request = WorkerRequest::Push { id: log.id.clone(), epoch, prev, version, mutations: mutations.clone() };
        peers.ask(route, &log.id, request)
    });
    for result in join_all(pushes).await {
        result?;
    }
    Ok(())
}
