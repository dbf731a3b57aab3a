//! Nodes that answer their heartbeats but not their work: a slow disk, a
//! machine too loaded to keep up.
//!
//! The failure detector sees a node that is hung or cut off; it cannot see
//! one whose heartbeats come back at once while every call that touches
//! its disk runs past its timeout. Such a node looks healthy, so each
//! attempt of a recovery placed a new log on it, timed out creating it and
//! stalled, until the disk was fast again. A call that times out is
//! evidence enough: the node is degraded for a while (five call timeouts,
//! [`DEGRADED_CALL_TIMEOUTS`]) and reported unhealthy meanwhile, so placement goes around it. Only a call its node
//! answers alone counts ([`WorkerRequest::answered_alone`]); a commit
//! waits on other nodes, and its timeout says nothing of the proxy's.
//!
//! So does a lock, a creation, a role's start or an unlock answered after
//! more than half its timeout ([`WorkerRequest::sets_up_a_generation`],
//! [`DegradedNodes::answered`]): a disk that takes a second a write
//! answers each just within the 2 s timeout, and a recovery that went by
//! timeouts alone placed a new log on it again (the netns benchmark's
//! throttled disk: a lock in 1,015 ms, a log recruited in 1,011 ms). Other
//! calls are not timed this way: their time grows with the data (a pull,
//! a truncation, a release), or says nothing of the disk (a heartbeat, a
//! read).
//!
//! The clock is tokio's, so a simulated run replays from its seed.
//!
//! [`WorkerRequest::answered_alone`]: crate::wire::WorkerRequest::answered_alone
//! [`WorkerRequest::sets_up_a_generation`]: crate::wire::WorkerRequest::sets_up_a_generation

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long a node whose call timed out is reported unhealthy, in call
/// timeouts (10 s with the coordinator's 2 s). Long enough for the attempt
/// that saw the timeout, and the ones after it, to place their workers
/// elsewhere; short enough that a node slowed for a moment is soon
/// recruited again.
pub const DEGRADED_CALL_TIMEOUTS: u32 = 5;

/// Why one node is degraded, and until when.
#[derive(Clone, Debug)]
struct Strike {
    until: Instant,
    reason: String,
}

/// The degraded nodes; see the module documentation.
pub struct DegradedNodes {
    /// How long a strike lasts.
    lasts: Duration,
    /// A control call answered later than this is a strike.
    slow_after: Duration,
    strikes: Mutex<BTreeMap<String, Strike>>,
}

impl DegradedNodes {
    /// No node degraded yet; a strike will last [`DEGRADED_CALL_TIMEOUTS`]
    /// times `call_timeout`.
    pub fn new(call_timeout: Duration) -> Self {
        DegradedNodes { lasts: call_timeout * DEGRADED_CALL_TIMEOUTS, slow_after: call_timeout / 2, strikes: Mutex::default() }
    }

    /// A control call `what` to `node` was answered after `took`: a strike
    /// when that is past half the call timeout.
    pub fn answered(&self, node: &str, what: &str, took: Duration) {
        if took > self.slow_after {
            self.strike(node, format!("{what}: answered after {took:.2?}, over half the call timeout"));
        }
    }

    /// A call to `node` timed out for `reason`: it is degraded from now on,
    /// for a while.
    pub fn strike(&self, node: &str, reason: String) {
        let lasts = self.lasts;
        let until = Instant::now() + lasts;
        let mut strikes = self.lock();
        let was = strikes.get(node).is_some_and(|s| s.until > Instant::now());
        if !was {
            tracing::warn!(%node, %reason, "node degraded: a call was slow or timed out while it answers its heartbeats; not recruited for {lasts:?}");
        }
        strikes.insert(node.to_string(), Strike { until, reason });
    }

    /// Why `node` is degraded, if it still is.
    pub fn reason(&self, node: &str) -> Option<String> {
        let mut strikes = self.lock();
        match strikes.get(node) {
            Some(strike) if strike.until > Instant::now() => Some(strike.reason.clone()),
            Some(_) => {
                strikes.remove(node);
                tracing::info!(%node, "node no longer degraded");
                None
            }
            None => None,
        }
    }

    /// Every node still degraded, with why.
    pub fn all(&self) -> Vec<(String, String)> {
        let now = Instant::now();
        self.lock().iter().filter(|(_, s)| s.until > now).map(|(node, s)| (node.clone(), s.reason.clone())).collect()
    }

    /// `node` is a new process (it registered at a new address): what its
    /// old process did is not held against it.
    pub fn forgive(&self, node: &str) {
        self.lock().remove(node);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Strike>> {
        self.strikes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);
    const LASTS: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_struck_node_is_degraded_for_five_call_timeouts_then_healthy_again() {
        let degraded = DegradedNodes::new(TIMEOUT);
        assert_eq!(degraded.reason("n1"), None);
        degraded.strike("n1", "lock log-n1: no reply within 2s".into());
        assert_eq!(degraded.reason("n1").as_deref(), Some("lock log-n1: no reply within 2s"));
        assert_eq!(degraded.reason("n2"), None, "only the struck node");
        tokio::time::advance(LASTS - Duration::from_millis(1)).await;
        assert!(degraded.reason("n1").is_some(), "still degraded just before the end");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(degraded.reason("n1"), None);
        assert!(degraded.all().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_answered_after_half_its_timeout_is_a_strike() {
        let degraded = DegradedNodes::new(TIMEOUT);
        degraded.answered("n1", "lock", TIMEOUT / 2);
        assert_eq!(degraded.reason("n1"), None, "half the timeout is still in time");
        degraded.answered("n1", "lock", TIMEOUT / 2 + Duration::from_millis(20));
        let why = degraded.reason("n1").expect("degraded");
        assert_eq!(why, "lock: answered after 1.02s, over half the call timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_strike_extends_it_and_a_new_process_is_forgiven() {
        let degraded = DegradedNodes::new(TIMEOUT);
        degraded.strike("n1", "first".into());
        tokio::time::advance(LASTS / 2).await;
        degraded.strike("n1", "second".into());
        tokio::time::advance(LASTS / 2 + Duration::from_millis(1)).await;
        assert_eq!(degraded.reason("n1").as_deref(), Some("second"), "the later strike counts from when it was made");
        assert_eq!(degraded.all(), vec![("n1".to_string(), "second".to_string())]);
        degraded.forgive("n1");
        assert_eq!(degraded.reason("n1"), None);
    }
}
