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

use crate::bindings::types::ClusterError;
use crate::runtime::{HostCall, HostReply, PluginHost};

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

/// The most host calls of the active version recorded for its shadow to
/// replay; past it the shadow reads for itself and changes nothing.
const MAX_RECORDED: usize = 10_000;

/// The most calls a shadow's divergence lists as ones it would have made;
/// the last entry says how many more there were.
const MAX_WOULD_HAVE_MADE: usize = 100;

/// Where the registry reports shadow calls.
pub trait ShadowSink: Send + Sync {
    /// A shadow call ended; `divergence` is set when the decisions differ.
    fn shadow_call(&self, slot: &str, divergence: Option<Divergence>);
}

/// The active version's host, noting every call with its result (but the
/// clock's: a shadow reads the clock afresh and never sleeps).
pub(super) struct Recorder {
    inner: Arc<dyn PluginHost>,
    calls: Mutex<Vec<(HostCall, HostReply)>>,
}

impl Recorder {
    pub fn new(inner: Arc<dyn PluginHost>) -> Self {
        Recorder { inner, calls: Mutex::default() }
    }

    /// A replayer of what was recorded, reading through `self`'s host.
    pub fn replayer(&self) -> Replayer {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Replayer { reads: self.inner.clone(), calls: Mutex::new(calls.into()), would_have_made: Mutex::default() }
    }
}

#[async_trait::async_trait]
impl PluginHost for Recorder {
    async fn answer(&self, call: HostCall) -> HostReply {
        if matches!(call, HostCall::NowMs | HostCall::Sleep { .. }) {
            return self.inner.answer(call).await;
        }
        let reply = self.inner.answer(call.clone()).await;
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if calls.len() < MAX_RECORDED {
            calls.push((call, reply.clone()));
        }
        reply
    }
}

/// The shadow's host: recorded results where it repeats the active
/// version's calls, nothing done where it does not.
pub(super) struct Replayer {
    reads: Arc<dyn PluginHost>,
    calls: Mutex<VecDeque<(HostCall, HostReply)>>,
    would_have_made: Mutex<Vec<String>>,
}

impl Replayer {
    /// The recorded reply to `call`, if the next recorded call is `call`.
    fn replay(&self, call: &HostCall) -> Option<HostReply> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if calls.front().is_some_and(|(recorded, _)| recorded == call) {
            return calls.pop_front().map(|(_, reply)| reply);
        }
        None
    }

    /// The calls made by the shadow only: the first ones, and how many more.
    pub fn would_have_made(&self) -> Vec<String> {
        self.would_have_made.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn note_would_have_made(&self, call: &HostCall) {
        let mut made = self.would_have_made.lock().unwrap_or_else(|e| e.into_inner());
        match made.len() {
            n if n < MAX_WOULD_HAVE_MADE => made.push(call.to_string()),
            MAX_WOULD_HAVE_MADE => made.push("and 1 more".into()),
            _ => {
                let more = made.last().and_then(|l| l.strip_prefix("and ")?.strip_suffix(" more")?.parse::<u64>().ok());
                if let (Some(last), Some(more)) = (made.last_mut(), more) {
                    *last = format!("and {} more", more + 1);
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl PluginHost for Replayer {
    async fn answer(&self, call: HostCall) -> HostReply {
        match call {
            // A shadow never holds anything up.
            HostCall::Sleep { .. } => return HostReply::Slept,
            HostCall::NowMs => return self.reads.answer(call).await,
            _ => {}
        }
        if let Some(reply) = self.replay(&call) {
            return reply;
        }
        // A read the active version made at the same point is answered as it
        // was then, so the shadow decides on the same view; any other is read.
        if call.is_read() {
            return self.reads.answer(call).await;
        }
        // Unlock and persist act on the staged layout, which is not among
        // their arguments: they replay on the ids alone. A shadow that staged
        // a different layout is reported at its stage call; where the active
        // version staged in the same call, the queue still holds that stage,
        // so the shadow's later calls are not replayed either. A placement
        // asked for real would count against the live attempt (the host
        // checks every answer): it is not asked.
        self.note_would_have_made(&call);
        match call {
            HostCall::Place(_) => HostReply::refused(&call, ClusterError::Refused("shadow mode: not asked".into()), "shadow"),
            _ => HostReply::refused(&call, ClusterError::Refused("shadow mode: not made".into()), "shadow"),
        }
    }
}
