//! What a plugin's host calls reach: the cluster, the placement policy and
//! host time.
//!
//! The guest's `cluster`, `placement` and `clock` imports are implemented
//! once, on the call's [`HostView`](super::HostView). It turns each import
//! into a [`HostCall`] and asks the call's [`PluginHost`] for the
//! [`HostReply`]. The director's host is its attempt's invariant guard;
//! shadow mode records and replays calls, and tests intercept them, by
//! wrapping a host; tools that only inspect or benchmark plugins use
//! [`Detached`].
//!
//! A call is data, not a method, because the generated host traits are
//! not object-safe (their methods return `impl Future`) and the host
//! behind a call is chosen at run time.

use std::fmt;
use std::time::{Duration, Instant};

use crate::bindings::kind_name;
use crate::bindings::types::LogCopy;
use crate::bindings::types::{
    Assignment, ClusterError, Layout, LockInfo, Node, PlacementError, PlacementRequest, ServiceDescriptor, ServiceKind, ShardTag, Version,
};

/// One host call of a plugin, with its arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum HostCall {
    /// `cluster.services`: the service directory.
    Services,
    /// `cluster.nodes`: every known node.
    Nodes,
    /// `cluster.lock`: locks services at the attempt's epoch.
    Lock {
        /// The services to lock.
        ids: Vec<String>,
    },
    /// `cluster.create-worker`: creates and locks a log or storage server.
    CreateWorker {
        /// The node to create it on.
        node: String,
        /// Which to create: a log or a storage server.
        kind: ServiceKind,
    },
    /// `cluster.create-workers`: creates and locks logs or storage servers,
    /// all at once.
    CreateWorkers {
        /// Each worker's node and kind, in order.
        requests: Vec<(String, ServiceKind)>,
    },
    /// `cluster.recover-logs`: makes logs copy ranges, all at once.
    RecoverLogs {
        /// The copies, in order.
        copies: Vec<LogCopy>,
    },
    /// `cluster.recover-log`: makes log `target` copy `[first, last]` of
    /// `tags` from `sources`.
    RecoverLog {
        /// The log to copy into.
        target: String,
        /// The logs to copy from, each page from the first that serves it.
        sources: Vec<String>,
        /// The shards whose mutations to copy.
        tags: Vec<ShardTag>,
        /// The first version of the range.
        first: Version,
        /// The last version of the range.
        last: Version,
    },
    /// `cluster.known-durable`: the version each storage replica was last
    /// seen durable at.
    KnownDurable {
        /// The replicas asked about.
        ids: Vec<String>,
    },
    /// `cluster.start-role`: starts a stateless role.
    StartRole {
        /// The node to start it on.
        node: String,
        /// Which role to start: a sequencer, proxy or resolver.
        kind: ServiceKind,
    },
    /// `cluster.stage-layout`: checks the new layout and keeps it.
    StageLayout(Box<Layout>),
    /// `cluster.unlock`: unlocks services, handing them the staged layout.
    Unlock {
        /// The services to unlock.
        ids: Vec<String>,
    },
    /// `cluster.persist-layout`: persists the staged layout.
    PersistLayout,
    /// `placement.place`: asks the active placement policy.
    Place(Box<PlacementRequest>),
    /// `clock.now-ms`: host time in milliseconds.
    NowMs,
    /// `clock.sleep-ms`: waits `ms` milliseconds of host time.
    Sleep {
        /// How long to wait, in milliseconds.
        ms: u64,
    },
}

impl HostCall {
    /// Whether the call changes nothing in the cluster: it may be made
    /// again, or read afresh.
    pub fn is_read(&self) -> bool {
        matches!(self, HostCall::Services | HostCall::Nodes | HostCall::KnownDurable { .. } | HostCall::NowMs)
    }
}

impl fmt::Display for HostCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostCall::Services => write!(f, "list the services"),
            HostCall::Nodes => write!(f, "list the nodes"),
            HostCall::Lock { ids } => write!(f, "lock {ids:?}"),
            HostCall::CreateWorker { node, kind } => write!(f, "create-worker {} on {node}", kind_name(*kind)),
            HostCall::CreateWorkers { requests } => {
                let each: Vec<String> = requests.iter().map(|(node, kind)| format!("{} on {node}", kind_name(*kind))).collect();
                write!(f, "create-workers {}", each.join(", "))
            }
            HostCall::RecoverLogs { copies } => {
                let each: Vec<String> = copies
                    .iter()
                    .map(|c| format!("{} from {:?} tags {:?} [{}, {}]", c.target, c.sources, c.tags, c.first, c.last))
                    .collect();
                write!(f, "recover-logs {}", each.join("; "))
            }
            HostCall::RecoverLog { target, sources, tags, first, last } => {
                write!(f, "recover-log {target} from {sources:?} tags {tags:?} [{first}, {last}]")
            }
            HostCall::StartRole { node, kind } => write!(f, "start-role {} on {node}", kind_name(*kind)),
            HostCall::KnownDurable { ids } => write!(f, "known-durable {ids:?}"),
            HostCall::StageLayout(layout) => write!(f, "stage a layout of epoch {}", layout.epoch),
            HostCall::Unlock { ids } => write!(f, "unlock {ids:?}"),
            HostCall::PersistLayout => write!(f, "persist the staged layout"),
            HostCall::Place(request) => write!(f, "ask placement for {} vacancies", request.vacancies.len()),
            HostCall::NowMs => write!(f, "read the clock"),
            HostCall::Sleep { ms } => write!(f, "sleep {ms} ms"),
        }
    }
}

/// The answer to a [`HostCall`], in the shape its import returns.
#[derive(Clone, Debug, PartialEq)]
pub enum HostReply {
    /// To `Services`.
    Services(Vec<ServiceDescriptor>),
    /// To `Nodes`.
    Nodes(Vec<Node>),
    /// To `Lock`: one result per id, in order.
    Locked(Vec<Result<LockInfo, ClusterError>>),
    /// To `CreateWorker` and `StartRole`.
    Started(Result<ServiceDescriptor, ClusterError>),
    /// To `CreateWorkers`: one result per request, in order.
    StartedEach(Vec<Result<ServiceDescriptor, ClusterError>>),
    /// To `RecoverLogs`: one result per copy, in order.
    DoneEach(Vec<Result<(), ClusterError>>),
    /// To `RecoverLog`, `StageLayout` and `PersistLayout`.
    Done(Result<(), ClusterError>),
    /// To `Unlock`: one result per id, in order.
    Unlocked(Vec<Result<(), ClusterError>>),
    /// To `KnownDurable`: one answer per id, in order.
    Versions(Result<Vec<Option<Version>>, ClusterError>),
    /// To `Place`.
    Placed(Result<Vec<Assignment>, PlacementError>),
    /// To `NowMs`.
    Now(u64),
    /// To `Sleep`.
    Slept,
}

impl HostReply {
    /// `call` refused with `err`, in the shape its import returns; a
    /// placement is refused as `constraint` with `err`'s text.
    pub fn refused(call: &HostCall, err: ClusterError, constraint: &str) -> HostReply {
        match call {
            HostCall::Services => HostReply::Services(Vec::new()),
            HostCall::Nodes => HostReply::Nodes(Vec::new()),
            HostCall::Lock { ids } => HostReply::Locked(ids.iter().map(|_| Err(err.clone())).collect()),
            HostCall::CreateWorker { .. } | HostCall::StartRole { .. } => HostReply::Started(Err(err)),
            HostCall::CreateWorkers { requests } => HostReply::StartedEach(requests.iter().map(|_| Err(err.clone())).collect()),
            HostCall::RecoverLogs { copies } => HostReply::DoneEach(copies.iter().map(|_| Err(err.clone())).collect()),
            HostCall::RecoverLog { .. } | HostCall::StageLayout(_) | HostCall::PersistLayout => HostReply::Done(Err(err)),
            HostCall::Unlock { ids } => HostReply::Unlocked(ids.iter().map(|_| Err(err.clone())).collect()),
            HostCall::KnownDurable { .. } => HostReply::Versions(Err(err)),
            HostCall::Place(_) => {
                HostReply::Placed(Err(PlacementError { vacancy: 0, constraint: constraint.into(), message: reason(&err) }))
            }
            HostCall::NowMs => HostReply::Now(0),
            HostCall::Sleep { .. } => HostReply::Slept,
        }
    }
}

/// The text of a refusal.
fn reason(err: &ClusterError) -> String {
    match err {
        ClusterError::Unreachable(text) | ClusterError::Refused(text) | ClusterError::Failed(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// What answers a plugin's host calls.
#[async_trait::async_trait]
pub trait PluginHost: Send + Sync {
    /// Answers `call`.
    async fn answer(&self, call: HostCall) -> HostReply;
}

/// The host of a plugin that is not part of a recovery: every cluster call
/// fails with `unreachable`, placement is unavailable, and time is real.
#[derive(Debug)]
pub struct Detached {
    origin: Instant,
}

impl Default for Detached {
    fn default() -> Self {
        Detached { origin: Instant::now() }
    }
}

#[async_trait::async_trait]
impl PluginHost for Detached {
    async fn answer(&self, call: HostCall) -> HostReply {
        match call {
            HostCall::NowMs => HostReply::Now(self.origin.elapsed().as_millis() as u64),
            HostCall::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                HostReply::Slept
            }
            call => HostReply::refused(&call, ClusterError::Unreachable("no cluster is attached to this call".into()), "unavailable"),
        }
    }
}
