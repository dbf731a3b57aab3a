//! The transport within one process: each endpoint is a [`Handler`] bound
//! to a name, called directly. An endpoint can be taken down (a crashed
//! process: every call to it fails at once, as a refused connection does)
//! and rebound (the process restarted).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
        tokio::time::timeout(self.timeout, handler.handle(request))
            .await
            .map_err(|_| TransportError::Timeout { addr: endpoint.to_string(), after: self.timeout })
    }
}
