//! Shadow mode: a candidate runs beside the active version of its slot on
//! every call, with no side effects, and every call where the two decide
//! differently is reported.
//!
//! A placement policy is a function of its request: the shadow gets the same
//! request and the answers are compared. A phase talks to the cluster, so the
//! active version's call runs against a [`Recorder`] that notes every host
//! call and its result; the shadow then runs against a [`Replayer`]. A call
//! the shadow makes that the active version made too, in the same order with
//! the same arguments, gets the recorded result; any other call that would
//! change the cluster is not made: it is listed as one the shadow *would have
//! made*, and answered with an error. Reads of the cluster the active version
//! made at the same point are answered as they were then; others are read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::bindings::types::{
    Assignment, ClusterError, Layout, LockInfo, Node, PlacementError, PlacementRequest, ServiceDescriptor,
    ServiceKind, ShardTag, Version,
};
use crate::runtime::HostServices;

/// One call where the shadow decided differently from the active version.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Divergence {
    /// The slot.
    pub slot: String,
    /// The active version's number.
    pub active_version: u32,
    /// The shadow's number.
    pub shadow_version: u32,
    /// The attempt's epoch (0 for a placement call).
    pub epoch: u64,
    /// The attempt (0 for a placement call).
    pub attempt: u32,
    /// What the active version decided.
    pub active: String,
    /// What the shadow decided.
    pub shadow: String,
    /// Calls that would have changed the cluster, made by the shadow only.
    pub would_have_made: Vec<String>,
}

/// Where the registry reports shadow calls.
pub trait ShadowSink: Send + Sync {
    /// A shadow call ended; `divergence` is set when the decisions differ.
    fn shadow_call(&self, slot: &str, divergence: Option<Divergence>);
}

/// A host call of the active version and its result.
#[derive(Clone, Debug)]
enum Recorded {
    Services(Vec<ServiceDescriptor>),
    Nodes(Vec<Node>),
    Lock(Vec<String>, Vec<Result<LockInfo, ClusterError>>),
    CreateWorker(String, ServiceKind, Result<ServiceDescriptor, ClusterError>),
    RecoverLog((String, Vec<String>, Vec<ShardTag>, Version, Version), Result<(), ClusterError>),
    StartRole(String, ServiceKind, Result<ServiceDescriptor, ClusterError>),
    Stage(Box<Layout>, Result<(), ClusterError>),
    Unlock(Vec<String>, Vec<Result<(), ClusterError>>),
    Persist(Result<(), ClusterError>),
    Place(Box<PlacementRequest>, Result<Vec<Assignment>, PlacementError>),
}

/// The active version's host, noting every call that changes the cluster
/// (and every placement) with its result.
pub(super) struct Recorder {
    inner: Arc<dyn HostServices>,
    calls: Mutex<Vec<Recorded>>,
}

impl Recorder {
    pub fn new(inner: Arc<dyn HostServices>) -> Self {
        Recorder { inner, calls: Mutex::default() }
    }

    fn note(&self, call: Recorded) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(call);
    }

    /// A replayer of what was recorded, reading through `self`'s host.
    pub fn replayer(&self) -> Replayer {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Replayer { reads: self.inner.clone(), calls: Mutex::new(calls.into()), would_have_made: Mutex::default() }
    }
}

#[async_trait::async_trait]
impl HostServices for Recorder {
    async fn services(&self) -> Vec<ServiceDescriptor> {
        let result = self.inner.services().await;
        self.note(Recorded::Services(result.clone()));
        result
    }

    async fn nodes(&self) -> Vec<Node> {
        let result = self.inner.nodes().await;
        self.note(Recorded::Nodes(result.clone()));
        result
    }

    async fn lock(&self, ids: Vec<String>) -> Vec<Result<LockInfo, ClusterError>> {
        let result = self.inner.lock(ids.clone()).await;
        self.note(Recorded::Lock(ids, result.clone()));
        result
    }

    async fn create_worker(&self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        let result = self.inner.create_worker(node.clone(), kind).await;
        self.note(Recorded::CreateWorker(node, kind, result.clone()));
        result
    }

    async fn recover_log(
        &self,
        target: String,
        sources: Vec<String>,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError> {
        let result = self.inner.recover_log(target.clone(), sources.clone(), tags.clone(), first, last).await;
        self.note(Recorded::RecoverLog((target, sources, tags, first, last), result.clone()));
        result
    }

    async fn start_role(&self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        let result = self.inner.start_role(node.clone(), kind).await;
        self.note(Recorded::StartRole(node, kind, result.clone()));
        result
    }

    async fn stage_layout(&self, layout: Layout) -> Result<(), ClusterError> {
        let result = self.inner.stage_layout(layout.clone()).await;
        self.note(Recorded::Stage(Box::new(layout), result.clone()));
        result
    }

    async fn unlock(&self, ids: Vec<String>) -> Vec<Result<(), ClusterError>> {
        let result = self.inner.unlock(ids.clone()).await;
        self.note(Recorded::Unlock(ids, result.clone()));
        result
    }

    async fn persist_layout(&self) -> Result<(), ClusterError> {
        let result = self.inner.persist_layout().await;
        self.note(Recorded::Persist(result.clone()));
        result
    }

    async fn place(&self, request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        let result = self.inner.place(request.clone()).await;
        self.note(Recorded::Place(Box::new(request), result.clone()));
        result
    }

    fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    async fn sleep_ms(&self, ms: u64) {
        self.inner.sleep_ms(ms).await
    }
}

/// The shadow's host: recorded results where it repeats the active
/// version's calls, nothing done where it does not.
pub(super) struct Replayer {
    reads: Arc<dyn HostServices>,
    calls: Mutex<VecDeque<Recorded>>,
    would_have_made: Mutex<Vec<String>>,
}

/// What the shadow gets for a call that was not made.
fn not_made() -> ClusterError {
    ClusterError::Refused("shadow mode: not made".into())
}

impl Replayer {
    /// The next recorded call, if `matches` it; otherwise the call is noted
    /// as one the shadow would have made.
    fn replay<T>(&self, described: impl FnOnce() -> String, matches: impl FnOnce(&Recorded) -> Option<T>) -> Option<T> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(result) = calls.front().and_then(matches) {
            calls.pop_front();
            return Some(result);
        }
        self.would_have_made.lock().unwrap_or_else(|e| e.into_inner()).push(described());
        None
    }

    /// The next recorded call, if it is the read `matches` takes.
    fn read<T>(&self, matches: impl FnOnce(&Recorded) -> Option<T>) -> Option<T> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let result = calls.front().and_then(matches)?;
        calls.pop_front();
        Some(result)
    }

    /// The calls made by the shadow only.
    pub fn would_have_made(&self) -> Vec<String> {
        self.would_have_made.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait::async_trait]
impl HostServices for Replayer {
    // A read the active version made at the same point is answered as it
    // was then, so the shadow decides on the same view; any other is read.
    async fn services(&self) -> Vec<ServiceDescriptor> {
        let recorded = self.read(|c| match c {
            Recorded::Services(result) => Some(result.clone()),
            _ => None,
        });
        match recorded {
            Some(result) => result,
            None => self.reads.services().await,
        }
    }

    async fn nodes(&self) -> Vec<Node> {
        let recorded = self.read(|c| match c {
            Recorded::Nodes(result) => Some(result.clone()),
            _ => None,
        });
        match recorded {
            Some(result) => result,
            None => self.reads.nodes().await,
        }
    }

    async fn lock(&self, ids: Vec<String>) -> Vec<Result<LockInfo, ClusterError>> {
        let described = || format!("lock {ids:?}");
        let replayed = self.replay(described, |c| match c {
            Recorded::Lock(i, result) if *i == ids => Some(result.clone()),
            _ => None,
        });
        replayed.unwrap_or_else(|| ids.iter().map(|_| Err(not_made())).collect())
    }

    async fn create_worker(&self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        let described = || format!("create-worker {kind:?} on {node}");
        self.replay(described, |c| match c {
            Recorded::CreateWorker(n, k, result) if *n == node && *k == kind => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| Err(not_made()))
    }

    async fn recover_log(
        &self,
        target: String,
        sources: Vec<String>,
        tags: Vec<ShardTag>,
        first: Version,
        last: Version,
    ) -> Result<(), ClusterError> {
        let args = (target, sources, tags, first, last);
        let described = || format!("recover-log {} from {:?} tags {:?} [{}, {}]", args.0, args.1, args.2, args.3, args.4);
        self.replay(described, |c| match c {
            Recorded::RecoverLog(a, result) if *a == args => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| Err(not_made()))
    }

    async fn start_role(&self, node: String, kind: ServiceKind) -> Result<ServiceDescriptor, ClusterError> {
        let described = || format!("start-role {kind:?} on {node}");
        self.replay(described, |c| match c {
            Recorded::StartRole(n, k, result) if *n == node && *k == kind => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| Err(not_made()))
    }

    async fn stage_layout(&self, layout: Layout) -> Result<(), ClusterError> {
        let described = || format!("stage a layout of epoch {}", layout.epoch);
        self.replay(described, |c| match c {
            Recorded::Stage(l, result) if **l == layout => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| Err(not_made()))
    }

    // Unlock and persist act on the staged layout, which is not among their
    // arguments: they replay on the ids alone. A shadow that staged a
    // different layout is reported at its stage call (`would_have_made`);
    // where the active version staged in the same call, the queue still
    // holds that stage, so the shadow's later calls are not replayed either.
    async fn unlock(&self, ids: Vec<String>) -> Vec<Result<(), ClusterError>> {
        let described = || format!("unlock {ids:?}");
        let replayed = self.replay(described, |c| match c {
            Recorded::Unlock(i, result) if *i == ids => Some(result.clone()),
            _ => None,
        });
        replayed.unwrap_or_else(|| ids.iter().map(|_| Err(not_made())).collect())
    }

    async fn persist_layout(&self) -> Result<(), ClusterError> {
        let described = || "persist the staged layout".to_string();
        self.replay(described, |c| match c {
            Recorded::Persist(result) => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| Err(not_made()))
    }

    async fn place(&self, request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
        // Asked for real, a new question would count against the live
        // attempt (the host checks every answer): it is not asked.
        let described = || format!("ask placement for {} vacancies", request.vacancies.len());
        self.replay(described, |c| match c {
            Recorded::Place(r, result) if **r == request => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| {
            Err(PlacementError { vacancy: 0, constraint: "shadow".into(), message: "shadow mode: not asked".into() })
        })
    }

    fn now_ms(&self) -> u64 {
        self.reads.now_ms()
    }

    async fn sleep_ms(&self, _ms: u64) {
        // A shadow never holds anything up.
    }
}
