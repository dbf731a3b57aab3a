//! A cluster in one process built from the parts the worker processes ship:
//! one [`Foreman`] per node, each with its journals on an in-memory
//! [`Disk`], reached through the [`MemoryTransport`] by the one cluster
//! client, [`RemoteCluster`]. A node can crash (its foreman is dropped with
//! every stateless role; its endpoint stops answering) and restart (a new
//! foreman replays the node's journals), as a worker process does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::RemoteCluster;
use crate::bindings::types::{ClusterError, Epoch, Layout, ShardTag, Version};
use crate::services::{Disk, JournalError};
use crate::topology::{NodeSpec, tag_of};
use crate::transport::{MemoryTransport, Transport, TransportError};
use crate::worker::{Foreman, RequestKind, WorkerProtocol, WorkerReply, WorkerRequest};

/// A replica's id, durable version and data, as a checker reads them.
pub type ReplicaContents = (String, Version, BTreeMap<String, String>);

/// A storage team's shard and each of its live replicas' contents.
pub type TeamContents = (ShardTag, Vec<ReplicaContents>);

/// How long an in-memory call may take: a push waits up to a second for
/// the versions before it.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How an in-memory endpoint names its node.
const NODE_SCHEME: &str = "mem://";

struct LocalNode {
    spec: NodeSpec,
    disk: Disk,
    /// Its foreman, while the node is up.
    foreman: Option<Arc<Foreman>>,
}

/// What stands between a sender and the in-memory transport: given the
/// node a request is sent from (`None` for the cluster client) and the
/// transport, the transport that sender uses. The simulator puts its
/// network there; [`LocalCluster::with_retention`] puts nothing between.
pub type Wire = Arc<dyn Fn(Option<&str>, Arc<dyn Transport<WorkerProtocol>>) -> Arc<dyn Transport<WorkerProtocol>> + Send + Sync>;

/// The in-memory transport, counting what is sent through it by kind.
struct Counted {
    inner: Arc<MemoryTransport<WorkerProtocol>>,
    sent: Mutex<BTreeMap<RequestKind, u64>>,
}

#[async_trait::async_trait]
impl Transport<WorkerProtocol> for Counted {
    async fn call(&self, endpoint: &str, request: WorkerRequest) -> Result<Result<WorkerReply, ClusterError>, TransportError> {
        *self.sent.lock().unwrap_or_else(|e| e.into_inner()).entry(request.kind()).or_default() += 1;
        self.inner.call(endpoint, request).await
    }
}

/// Foremen on the in-memory transport.
pub struct LocalCluster {
    transport: Arc<MemoryTransport<WorkerProtocol>>,
    counted: Arc<Counted>,
    wire: Wire,
    client: Arc<RemoteCluster>,
    nodes: Mutex<BTreeMap<String, LocalNode>>,
}

/// Why a node could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// No node has this id.
    #[error("no node {0}")]
    UnknownNode(String),
    /// Its journals do not open.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl LocalCluster {
    /// A cluster of `nodes`, each up with an empty disk and registered.
    pub fn new(nodes: impl IntoIterator<Item = NodeSpec>) -> Result<Self, LocalError> {
        Self::with_retention(nodes, None)
    }

    /// [`LocalCluster::new`], whose client pops the logs to `retention`
    /// versions (see [`RemoteCluster::with_log_retention`]); `None` keeps
    /// every version.
    pub fn with_retention(nodes: impl IntoIterator<Item = NodeSpec>, retention: Option<Version>) -> Result<Self, LocalError> {
        Self::wired(nodes, retention, Arc::new(|_, direct| direct), CALL_TIMEOUT)
    }

    /// [`LocalCluster::with_retention`], each sender reaching the others
    /// through `wire`, which gives a call `call_timeout` (see
    /// [`RemoteCluster::with_call_timeout`]).
    pub fn wired(
        nodes: impl IntoIterator<Item = NodeSpec>,
        retention: Option<Version>,
        wire: Wire,
        call_timeout: Duration,
    ) -> Result<Self, LocalError> {
        let transport = Arc::new(MemoryTransport::new(CALL_TIMEOUT));
        let counted = Arc::new(Counted { inner: transport.clone(), sent: Mutex::default() });
        let client = RemoteCluster::over(wire(None, counted.clone())).with_call_timeout(call_timeout);
        let client = match retention {
            Some(versions) => client.with_log_retention(versions),
            None => client,
        };
        let cluster = LocalCluster { client: Arc::new(client), transport, counted, wire, nodes: Mutex::default() };
        for spec in nodes {
            let id = spec.id.clone();
            cluster.lock().insert(id.clone(), LocalNode { spec, disk: Disk::memory(), foreman: None });
            cluster.start(&id)?;
        }
        Ok(cluster)
    }

    /// A cluster of [`NodeSpec::spread`]`(count, zones, capacity)`.
    pub fn with_zones(count: usize, zones: usize, capacity: u32) -> Result<Self, LocalError> {
        LocalCluster::new(NodeSpec::spread(count, zones, capacity))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LocalNode>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cluster client: what a director and a client use.
    pub fn client(&self) -> Arc<RemoteCluster> {
        self.client.clone()
    }

    /// The endpoint of `node` on the in-memory transport.
    pub fn address(node: &str) -> String {
        format!("{NODE_SCHEME}{node}")
    }

    /// The node at in-memory endpoint `address`.
    pub fn node_at(address: &str) -> Option<&str> {
        address.strip_prefix(NODE_SCHEME)
    }

    /// Starts `node`'s foreman on its disk, replaying its journals, and
    /// registers it. Starting a node that is up restarts it.
    pub fn start(&self, node: &str) -> Result<(), LocalError> {
        let (spec, disk) = {
            let nodes = self.lock();
            let local = nodes.get(node).ok_or_else(|| LocalError::UnknownNode(node.into()))?;
            (local.spec.clone(), local.disk.clone())
        };
        let address = Self::address(node);
        let transport = (self.wire)(Some(node), self.counted.clone());
        let foreman = Arc::new(Foreman::open(spec.clone(), disk, address.clone())?.with_transport(transport));
        self.transport.bind(&address, foreman.clone());
        if let Some(local) = self.lock().get_mut(node) {
            local.foreman = Some(foreman);
        }
        self.client.register(&spec.id, &spec.zone, spec.capacity, &address);
        // A restarted node registers the same address, which alone changes
        // nothing: wake a stalled director.
        self.client.announce();
        Ok(())
    }

    /// Crashes `node`: its foreman and every role only it held in memory
    /// are gone, and its endpoint stops answering. Returns whether it was up.
    pub fn crash(&self, node: &str) -> bool {
        let was_up = self.lock().get_mut(node).is_some_and(|local| local.foreman.take().is_some());
        self.transport.unbind(&Self::address(node));
        was_up
    }

    /// Whether `node` is up.
    pub fn is_up(&self, node: &str) -> bool {
        self.lock().get(node).is_some_and(|local| local.foreman.is_some())
    }

    // What every node holds, seen from outside the protocol: how a test or
    // the simulator's checker judges a run. Nodes that are down hold nothing.

    fn foremen(&self) -> Vec<Arc<Foreman>> {
        self.lock().values().filter_map(|local| local.foreman.clone()).collect()
    }

    /// Loses service `id` for good, its journal with it (a dead disk), on
    /// whichever node that is up hosts it. Returns whether one did.
    pub fn lose(&self, id: &str) -> bool {
        let host = self.foremen().into_iter().find(|f| f.hosts(id));
        host.is_some_and(|foreman| foreman.answer(WorkerRequest::Release { id: id.to_string(), epoch: Epoch::MAX }).is_ok())
    }

    /// How many requests of each kind the client and the foremen have sent.
    pub fn requests_sent(&self) -> BTreeMap<RequestKind, u64> {
        self.counted.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The ids of the services the nodes that are up host, node by node.
    pub fn hosted_ids(&self) -> Vec<String> {
        self.foremen().iter().flat_map(|f| f.service_ids()).collect()
    }

    /// The node that is up and hosts service `id`.
    pub fn node_of(&self, id: &str) -> Option<String> {
        self.foremen().iter().find(|f| f.hosts(id)).map(|f| f.node_id().to_string())
    }

    /// The epoch holding the lock of log or storage `id`.
    pub fn lock_holder(&self, id: &str) -> Option<Epoch> {
        self.foremen().iter().find_map(|foreman| foreman.lock_holder(id))
    }

    /// A member of generation `layout` that cannot serve it: on a node that
    /// is down, locked by a newer epoch, or a proxy whose generation broke
    /// (a storage replica still joining it is not one).
    pub fn unserving_member(&self, layout: &Layout) -> Option<String> {
        let foremen = self.foremen();
        let down = |id: &&String| !foremen.iter().any(|f| f.serves(id, layout.epoch) || f.joins(id, layout.epoch));
        layout.services.iter().map(|s| &s.id).find(down).cloned()
    }

    /// A storage replica of `layout` still joining it (up, locked by its
    /// epoch, not serving yet), if any.
    pub fn joining_member(&self, layout: &Layout) -> Option<String> {
        let foremen = self.foremen();
        layout.services.iter().map(|s| &s.id).find(|id| foremen.iter().any(|f| f.joins(id, layout.epoch))).cloned()
    }

    /// Each team of `layout` with the durable version and data of each of
    /// its replicas that is up.
    pub fn team_contents(&self, layout: &Layout) -> Vec<TeamContents> {
        let foremen = self.foremen();
        layout
            .storage_teams
            .iter()
            .map(|team| {
                let members = team
                    .storage_ids
                    .iter()
                    .filter_map(|id| foremen.iter().find_map(|f| f.replica(id)).map(|(v, data)| (id.clone(), v, data)))
                    .collect();
                (team.tag, members)
            })
            .collect()
    }

    /// Whether `key` holds `value` where `layout` keeps its data: in a
    /// replica of the key's team that is up, or in a log of its shard.
    pub fn kept_at_rest(&self, layout: &Layout, key: &str, value: &str) -> bool {
        let tag = tag_of(layout, key);
        let foremen = self.foremen();
        let stored = layout
            .storage_teams
            .iter()
            .filter(|t| t.tag == tag)
            .flat_map(|t| &t.storage_ids)
            .any(|id| foremen.iter().any(|f| f.replica(id).is_some_and(|(_, data)| data.get(key).map(String::as_str) == Some(value))));
        stored
            || layout
                .logs
                .iter()
                .filter(|l| l.tags.contains(&tag))
                .any(|l| foremen.iter().any(|f| f.log_holds_write(&l.id, tag, key, value)))
    }
}

impl Drop for LocalCluster {
    /// Each foreman holds the transport that holds it: unbinding them all
    /// breaks the cycle.
    fn drop(&mut self) {
        let nodes: Vec<String> = self.lock().keys().cloned().collect();
        for node in nodes {
            self.transport.unbind(&Self::address(&node));
        }
    }
}
