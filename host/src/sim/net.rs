//! The simulated network: every message of the worker protocol, from the
//! cluster client (the director's and the clients') to a foreman and from
//! one foreman to another (a proxy's pushes), goes through a
//! [`SimTransport`], which delays it by a seeded latency and, while faults
//! are on, loses it or its reply, duplicates it, delivers it late or cuts
//! it off at a partition, as the fault profile says. A node with a slow
//! disk carries out late every request that needs its disk, while it
//! answers its heartbeats at once. The foremen behind it are the code the
//! worker processes run.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::sleep;

use super::faults::FaultProfile;
use super::history::History;
use super::rng::SimRng;
use crate::bindings::kind_name;
use crate::bindings::types::ClusterError;
use crate::cluster::{LocalCluster, Wire};
use crate::transport::{Transport, TransportError};
use crate::worker::{WorkerProtocol, WorkerReply, WorkerRequest};

/// How long a sender waits for any one reply.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// The fault switches and the network's random stream, shared by the
/// simulated cluster, the plugin wrapper and the run's driver.
pub struct Network {
    state: Mutex<NetState>,
}

struct NetState {
    rng: SimRng,
    profile: FaultProfile,
    /// Whether faults are being injected (the fault window is open).
    on: bool,
    /// Nodes cut off from every other node and from the client.
    partitioned: BTreeSet<String>,
    /// Nodes whose disk is slow (see [`needs_disk`]).
    slow_disks: BTreeSet<String>,
}

/// What happens to one message.
enum Fate {
    /// Delivered; the round trip takes `latency` (past the timeout, the
    /// caller gives up although the request was carried out). `twice`
    /// delivers the request a second time.
    Deliver { latency: Duration, twice: bool },
    /// The sender's or the target's node is partitioned away: no answer.
    Partitioned,
    /// The request is lost.
    LoseRequest,
    /// The request is carried out and the reply lost.
    LoseReply { latency: Duration },
    /// A request that times out at the caller and is carried out later: a
    /// late lock, or any request for a slow disk.
    Late { after: Duration },
}

impl Network {
    /// A network drawing from `seed`, with faults off.
    pub fn new(seed: u64, profile: FaultProfile) -> Self {
        let state = NetState { rng: SimRng::new(seed), profile, on: false, partitioned: BTreeSet::new(), slow_disks: BTreeSet::new() };
        Network { state: Mutex::new(state) }
    }

    fn state(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens or closes the fault window.
    pub fn set_faults(&self, on: bool) {
        self.state().on = on;
    }

    /// Whether faults are being injected.
    pub fn faults_on(&self) -> bool {
        self.state().on
    }

    /// Cuts `node` off, or reconnects it.
    pub fn set_partitioned(&self, node: &str, cut: bool) {
        mark(&mut self.state().partitioned, node, cut);
    }

    /// Whether `node` is cut off.
    pub fn is_partitioned(&self, node: &str) -> bool {
        self.state().partitioned.contains(node)
    }

    /// Slows `node`'s disk, or makes it fast again.
    pub fn set_slow_disk(&self, node: &str, slow: bool) {
        mark(&mut self.state().slow_disks, node, slow);
    }

    /// Whether `node`'s disk is slow.
    pub fn has_slow_disk(&self, node: &str) -> bool {
        self.state().slow_disks.contains(node)
    }

    /// Reconnects every node and makes every disk fast again.
    pub fn heal(&self) {
        let mut state = self.state();
        state.partitioned.clear();
        state.slow_disks.clear();
    }

    /// Draws `true` with the probability `pick` takes from the profile, when
    /// faults are on.
    pub fn draw(&self, pick: impl Fn(&FaultProfile) -> f64) -> bool {
        let mut state = self.state();
        let p = pick(&state.profile);
        state.on && state.rng.chance(p)
    }

    /// What happens to a message from `from` (`None`: the client) to `to`.
    fn fate(&self, from: Option<&str>, to: Option<&str>, request: &WorkerRequest) -> Fate {
        let mut s = self.state();
        let s = &mut *s;
        let cut = |node: Option<&str>| node.is_some_and(|n| s.partitioned.contains(n));
        if from != to && (cut(from) || cut(to)) {
            return Fate::Partitioned;
        }
        if needs_disk(request) && to.is_some_and(|n| s.slow_disks.contains(n)) {
            // Past the caller's timeout, or one time in two just within it
            // (after 60-95 % of it), as a disk that takes most of a call
            // timeout a write answers.
            if s.rng.chance(0.5) {
                let timeout = CALL_TIMEOUT.as_millis() as u64;
                return Fate::Deliver { latency: s.rng.millis(timeout * 6 / 10, timeout * 95 / 100), twice: false };
            }
            return Fate::Late { after: CALL_TIMEOUT + s.rng.millis(0, 750) };
        }
        let (idempotent, lock) = (may_duplicate(request), matches!(request, WorkerRequest::Lock { .. }));
        let mut latency = s.rng.millis(0, 2);
        if !s.on {
            return Fate::Deliver { latency, twice: false };
        }
        let p = s.profile.clone();
        if lock && s.rng.chance(p.lock_timeout) {
            return Fate::Late { after: CALL_TIMEOUT + s.rng.millis(0, 500) };
        }
        if s.rng.chance(p.lost_request) {
            return Fate::LoseRequest;
        }
        if s.rng.chance(p.lost_reply) {
            return Fate::LoseReply { latency };
        }
        if s.rng.chance(p.slow_reply) {
            latency += s.rng.millis(20, 400);
        }
        let twice = idempotent && s.rng.chance(p.duplicate);
        Fate::Deliver { latency, twice }
    }
}

/// Puts `node` in `nodes`, or takes it out.
fn mark(nodes: &mut BTreeSet<String>, node: &str, on: bool) {
    if on {
        nodes.insert(node.to_string());
    } else {
        nodes.remove(node);
    }
}

/// One sender's side of the simulated network, in front of the in-memory
/// transport.
#[derive(Clone)]
pub struct SimTransport {
    inner: Arc<dyn Transport<WorkerProtocol>>,
    net: Arc<Network>,
    history: History,
    /// The sender's node; `None` for the cluster client.
    from: Option<String>,
}

impl SimTransport {
    /// The [`Wire`] that puts `net` between every sender of a
    /// [`LocalCluster`] and the others, recording into `history`.
    pub fn wire(net: Arc<Network>, history: History) -> Wire {
        Arc::new(move |from: Option<&str>, inner: Arc<dyn Transport<WorkerProtocol>>| {
            let transport: Arc<dyn Transport<WorkerProtocol>> =
                Arc::new(SimTransport { inner, net: net.clone(), history: history.clone(), from: from.map(str::to_string) });
            transport
        })
    }

    /// Delivers `request` and records what the service accepted.
    async fn deliver(&self, endpoint: &str, request: WorkerRequest) -> Result<Result<WorkerReply, ClusterError>, TransportError> {
        let reply = self.inner.call(endpoint, request.clone()).await;
        record(&self.history, &request, &reply);
        reply
    }

    fn timed_out(endpoint: &str) -> TransportError {
        TransportError::Timeout { addr: endpoint.to_string(), after: CALL_TIMEOUT }
    }
}

#[async_trait::async_trait]
impl Transport<WorkerProtocol> for SimTransport {
    async fn call(&self, endpoint: &str, request: WorkerRequest) -> Result<Result<WorkerReply, ClusterError>, TransportError> {
        let to = LocalCluster::node_at(endpoint);
        let what = Message { from: self.from.as_deref(), to: endpoint, request: &request };
        match self.net.fate(self.from.as_deref(), to, &request) {
            Fate::Partitioned => {
                sleep(CALL_TIMEOUT).await;
                self.history.event("net", format_args!("{what} -> no answer: partitioned"));
                Err(TransportError::Unreachable { addr: endpoint.to_string(), reason: "partitioned".into() })
            }
            Fate::LoseRequest => {
                sleep(CALL_TIMEOUT).await;
                self.history.event("net", format_args!("{what} -> request lost"));
                Err(Self::timed_out(endpoint))
            }
            Fate::Late { after } => {
                self.history.event("net", format_args!("{what} -> delayed; arrives in {after:?}"));
                let late = self.clone();
                let (endpoint_late, request_late) = (endpoint.to_string(), request.clone());
                tokio::spawn(async move {
                    sleep(after).await;
                    let reply = late.deliver(&endpoint_late, request_late.clone()).await;
                    let what = Message { from: late.from.as_deref(), to: &endpoint_late, request: &request_late };
                    late.history.event("net", format_args!("{what} arrives late -> {}", Shown(&reply)));
                });
                sleep(CALL_TIMEOUT).await;
                Err(Self::timed_out(endpoint))
            }
            Fate::LoseReply { latency } => {
                sleep(latency / 2).await;
                let reply = self.deliver(endpoint, request.clone()).await;
                self.history.event("net", format_args!("{what} -> {} (reply lost)", Shown(&reply)));
                sleep(CALL_TIMEOUT.saturating_sub(latency / 2)).await;
                Err(Self::timed_out(endpoint))
            }
            Fate::Deliver { latency, twice } => {
                let half = latency / 2;
                sleep(half.min(CALL_TIMEOUT)).await;
                if half >= CALL_TIMEOUT {
                    self.history.event("net", format_args!("{what} -> too slow, dropped"));
                    return Err(Self::timed_out(endpoint));
                }
                let reply = self.deliver(endpoint, request.clone()).await;
                if twice {
                    let again = self.deliver(endpoint, request.clone()).await;
                    self.history.event("net", format_args!("{what} delivered twice: again {}", Shown(&again)));
                }
                if latency >= CALL_TIMEOUT {
                    sleep(CALL_TIMEOUT - half).await;
                    self.history.event("net", format_args!("{what} -> {} (reply too late)", Shown(&reply)));
                    return Err(Self::timed_out(endpoint));
                }
                sleep(latency - half).await;
                self.history.event("call", format_args!("{what} -> {}", Shown(&reply)));
                reply
            }
        }
    }
}

/// Whether `request` needs its node's disk: all but a heartbeat and the
/// stateless roles' own requests (starting one, taking a version,
/// resolving, a proxy's commit and read version). A request to a stateless
/// role that locks, unlocks or releases it is counted too: the simulated
/// disk is slow for everything the node keeps.
fn needs_disk(request: &WorkerRequest) -> bool {
    !matches!(
        request,
        WorkerRequest::Info { .. }
            | WorkerRequest::StartRole { .. }
            | WorkerRequest::NextVersion { .. }
            | WorkerRequest::ReadVersion { .. }
            | WorkerRequest::Resolve { .. }
            | WorkerRequest::Commit { .. }
    )
}

/// Whether the network may deliver `request` twice: a request that a
/// sender could retry, which its service must take twice safely. A created
/// worker or role, a version taken from the sequencer, a commit and a
/// staged rebuild page would each be done twice.
fn may_duplicate(request: &WorkerRequest) -> bool {
    !matches!(
        request,
        WorkerRequest::CreateWorker { .. }
            | WorkerRequest::StartRole { .. }
            | WorkerRequest::NextVersion { .. }
            | WorkerRequest::Commit { .. }
            | WorkerRequest::Rebuild { .. }
    )
}

/// Records in `history` what a service accepted, when it accepted it: the
/// checker judges fencing, and a layout's descriptors, by these.
fn record(history: &History, request: &WorkerRequest, reply: &Result<Result<WorkerReply, ClusterError>, TransportError>) {
    let Ok(Ok(reply)) = reply else { return };
    match (request, reply) {
        (WorkerRequest::CreateWorker { epoch, .. } | WorkerRequest::StartRole { epoch, .. }, WorkerReply::Created(created)) => {
            history.recruited(created, *epoch)
        }
        (WorkerRequest::Release { id, .. }, _) => history.event("cluster", format_args!("released {id}")),
        (WorkerRequest::Rebuild { last: false, .. }, _) => {}
        _ => {
            if let (Some(id), Some(epoch)) = (request.service(), request.epoch()) {
                history.accepted(id, epoch, request.kind());
            }
        }
    }
}

/// A message as the trace shows it.
struct Message<'a> {
    from: Option<&'a str>,
    to: &'a str,
    request: &'a WorkerRequest,
}

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = LocalCluster::node_at(self.to).unwrap_or(self.to);
        write!(f, "{}->{to} {}", self.from.unwrap_or("client"), self.request.kind().name())?;
        match self.request {
            WorkerRequest::CreateWorker { kind, .. } | WorkerRequest::StartRole { kind, .. } => write!(f, " {}", kind_name(*kind))?,
            WorkerRequest::Push { version, .. } => write!(f, " v{version}")?,
            WorkerRequest::InstallRange { first, last, .. } | WorkerRequest::ReadRange { first, last, .. } => {
                write!(f, " [{first}, {last}]")?
            }
            WorkerRequest::Pull { after, upto, .. } => write!(f, " ({after}, {upto}]")?,
            _ => {}
        }
        if let Some(id) = self.request.service() {
            write!(f, " {id}")?;
        }
        if let Some(epoch) = self.request.epoch() {
            write!(f, " e{epoch}")?;
        }
        Ok(())
    }
}

/// A reply as the trace shows it.
struct Shown<'a>(&'a Result<Result<WorkerReply, ClusterError>, TransportError>);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(Ok(_)) => write!(f, "ok"),
            Ok(Err(err)) => write!(f, "{err:?}"),
            Err(err) => write!(f, "{err}"),
        }
    }
}
