//! The transport between processes: one [`Client`] per endpoint address,
//! opened on first use and kept.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Client, Protocol, Transport, TransportConfig, TransportError};

/// Framed postcard calls over TCP, to `host:port` endpoints.
pub struct TcpTransport<P: Protocol> {
    config: TransportConfig,
    clients: Mutex<BTreeMap<String, Arc<Client<P>>>>,
}

impl<P: Protocol> TcpTransport<P> {
    /// A transport whose calls have the bounds of `config`.
    pub fn new(config: TransportConfig) -> Self {
        TcpTransport { config, clients: Mutex::default() }
    }

    fn client(&self, endpoint: &str) -> Arc<Client<P>> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.entry(endpoint.to_string()).or_insert_with(|| Arc::new(Client::new(endpoint, self.config.clone()))).clone()
    }
}

#[async_trait::async_trait]
impl<P: Protocol> Transport<P> for TcpTransport<P> {
    async fn call(&self, endpoint: &str, request: P::Request) -> Result<P::Response, TransportError> {
        self.client(endpoint).call(request).await
    }
}

/// The next connection `listener` accepts. A failed accept (the process is
/// out of file descriptors, say) is logged and retried after a short pause,
/// so a server never spins on it nor stops for it.
pub async fn accept(listener: &tokio::net::TcpListener, server: &str) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(err) => {
                tracing::warn!(%err, server, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
