//! The admin endpoint's accept loop: HTTP/1 with a bound on open
//! connections and a deadline on each request's headers (hyper's header
//! read timeout, which also closes a kept-alive connection left idle). The
//! body's bounds are the [`gate`](super::gate)'s.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

/// The bounds of the admin endpoint's connections.
#[derive(Clone, Debug)]
pub struct HttpBounds {
    /// The most connections open at once; one beyond is answered 503 and
    /// closed.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive, and how long a
    /// kept-alive connection may wait for its next request.
    pub header_timeout: Duration,
}

impl Default for HttpBounds {
    fn default() -> Self {
        HttpBounds { max_connections: 64, header_timeout: Duration::from_secs(10) }
    }
}

/// What a connection beyond the limit is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n\
Content-Length: 71\r\n\r\n{\"stage\":\"connections\",\"error\":\"too many connections to the admin API\"}";

/// Serves `app` on `listener` within `bounds` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, bounds: HttpBounds) -> std::io::Result<()> {
    let open = Arc::new(tokio::sync::Semaphore::new(bounds.max_connections));
    loop {
        let (stream, peer) = crate::transport::accept(&listener, "admin endpoint").await;
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = bounds.max_connections, "admin endpoint: connection refused, too many");
            // A fresh socket's send buffer takes these few bytes at once.
            if let Err(err) = stream.try_write(BUSY) {
                tracing::debug!(%peer, %err, "could not tell a refused admin connection why");
            }
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let header_timeout = bounds.header_timeout;
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                tracing::debug!(%peer, %err, "admin connection closed");
            }
            drop(permit);
        });
    }
}
