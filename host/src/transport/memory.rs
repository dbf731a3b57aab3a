//! The transport within one process: each endpoint is a [`Handler`] bound
//! to a name; a call that must wait is served on a task of its own. An
//! endpoint can be taken down (a crashed process: every call to it fails at
//! once, as a refused connection does) and rebound (the process restarted).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;

use super::{Handler, Protocol, Transport, TransportError};

/// In-process calls to handlers bound by name.
pub struct MemoryTransport<P: Protocol> {
    endpoints: Mutex<BTreeMap<String, Arc<dyn Handler<P>>>>,
    timeout: Duration,
}

impl<P: Protocol> MemoryTransport<P> {
    /// A transport with no endpoints, whose calls time out after `timeout`
    /// (a handler may wait, as a push waits for the versions before it).
    pub fn new(timeout: Duration) -> Self {
        MemoryTransport { endpoints: Mutex::default(), timeout }
    }

    fn endpoints(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<dyn Handler<P>>>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `endpoint` with `handler`, replacing whatever served it.
    pub fn bind(&self, endpoint: &str, handler: Arc<dyn Handler<P>>) {
        self.endpoints().insert(endpoint.to_string(), handler);
    }

    /// Takes `endpoint` down: calls to it fail until it is bound again.
    /// Returns whether it was up.
    pub fn unbind(&self, endpoint: &str) -> bool {
        self.endpoints().remove(endpoint).is_some()
    }
}

#[async_trait::async_trait]
impl<P: Protocol> Transport<P> for MemoryTransport<P> {
    async fn call(&self, endpoint: &str, request: P::Request) -> Result<P::Response, TransportError> {
        let handler = self.endpoints().get(endpoint).cloned();
        let Some(handler) = handler else {
            return Err(TransportError::Unreachable { addr: endpoint.to_string(), reason: "down".into() });
        };
        // A handler that must wait finishes as a task of its own, as a
        // worker process serves a connection: a caller that gives up does
        // not cancel the work half way (a proxy that took a version still
        // pushes it, or takes its generation for broken). Most answer at
        // once, without the cost of a task.
        let mut work = Box::pin(async move { handler.handle(request).await });
        if let Some(reply) = (&mut work).now_or_never() {
            return Ok(reply);
        }
        match tokio::time::timeout(self.timeout, tokio::spawn(work)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(failed)) => {
                Err(TransportError::Unreachable { addr: endpoint.to_string(), reason: format!("the handler failed: {failed}") })
            }
            Err(_) => Err(TransportError::Timeout { addr: endpoint.to_string(), after: self.timeout }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde::{Deserialize, Serialize};

    use super::*;

    struct Echo;

    #[derive(Debug, Serialize, Deserialize)]
    struct Wait(u64);

    impl Protocol for Echo {
        const SERVICE: &'static str = "echo";
        type Request = Wait;
        type Response = u64;
    }

    /// Answers after the request's milliseconds, and says it finished.
    struct Slow(Arc<AtomicBool>);

    #[async_trait::async_trait]
    impl Handler<Echo> for Slow {
        async fn handle(&self, Wait(ms): Wait) -> u64 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            self.0.store(true, Ordering::SeqCst);
            ms
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_caller_that_gives_up_does_not_cancel_the_work() {
        let transport = MemoryTransport::<Echo>::new(Duration::from_millis(50));
        let finished = Arc::new(AtomicBool::new(false));
        transport.bind("slow", Arc::new(Slow(finished.clone())));
        assert_eq!(transport.call("slow", Wait(0)).await.ok(), Some(0), "a handler that need not wait answers");

        finished.store(false, Ordering::SeqCst);
        let late = transport.call("slow", Wait(200)).await;
        assert!(matches!(late, Err(TransportError::Timeout { .. })), "{late:?}");
        assert!(!finished.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(finished.load(Ordering::SeqCst), "the work went on after its caller gave up");

        transport.unbind("slow");
        assert!(matches!(transport.call("slow", Wait(0)).await, Err(TransportError::Unreachable { .. })));
    }
}
