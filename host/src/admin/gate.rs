//! The admin endpoint against browsers and slow clients.
//!
//! A web page the operator opens can send requests to a loopback address:
//! a cross-site `POST` with a "simple" content type needs no preflight, and
//! a DNS name rebound to 127.0.0.1 makes the page same-origin. So:
//!
//! - every request must carry a `Host` that names the address the endpoint
//!   is bound to (or `localhost` for a loopback bind), which a rebound name
//!   does not;
//! - a request that changes something (`POST`) must say
//!   `Content-Type: application/wasm` or `application/json` and carry the
//!   header [`ADMIN_HEADER`] (or the bearer token): a browser sends neither
//!   cross-site without a preflight, which this endpoint never grants;
//! - a request body must arrive whole within the body timeout and be at
//!   most the upload limit (`--max-plugin-bytes`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error;

/// The header a client of the admin API sends with every request that
/// changes something (`ratchet plugin ...` does).
pub const ADMIN_HEADER: &str = "x-ratchet-admin";

/// What the gate checks each request against.
#[derive(Clone, Debug)]
pub struct Gate {
    /// The address the endpoint is bound to.
    pub bound: SocketAddr,
    /// Whether a bearer token is required (and checked before the gate).
    pub token: bool,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
}

impl Gate {
    /// Why a request with `host` (the `Host` header) is refused, if it is.
    fn host_refusal(&self, host: Option<&str>) -> Option<String> {
        let Some(host) = host else { return Some("the request names no Host".into()) };
        let (name, port) = split_host(host);
        let named = format!("the Host {host:?} does not name this endpoint ({})", self.bound);
        if port.and_then(|p| p.parse::<u16>().ok()) != Some(self.bound.port()) {
            return Some(named);
        }
        let bound = self.bound.ip();
        let same = match name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => ip == bound || (bound.is_unspecified() && self.token),
            Err(_) => (bound.is_loopback() && name.eq_ignore_ascii_case("localhost")) || (bound.is_unspecified() && self.token),
        };
        (!same).then_some(named)
    }
}

/// `host[:port]` split at the port, for a name, an IPv4 address or a
/// bracketed IPv6 address.
fn split_host(host: &str) -> (&str, Option<&str>) {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => (&host[..i], Some(&host[i + 1..])),
        _ => (host, None),
    }
}

/// Middleware: refuses what a browser could send on a page's behalf.
pub(super) async fn check(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(reason) = gate.host_refusal(host) {
        return error(StatusCode::MISDIRECTED_REQUEST, "host", reason).into_response();
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let kind = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = kind.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/wasm" && essence != "application/json" {
            let reason = format!("Content-Type {kind:?}: a change is sent as application/wasm or application/json");
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "request", reason).into_response();
        }
        if !gate.token && !request.headers().contains_key(ADMIN_HEADER) {
            let reason = format!("a change needs the header {ADMIN_HEADER} (or a bearer token): a browser does not send it cross-site");
            return error(StatusCode::FORBIDDEN, "request", reason).into_response();
        }
    }
    next.run(request).await
}

/// Middleware: reads the body whole within the body timeout and the upload
/// limit, after the token was checked (a stranger uploads nothing).
pub(super) async fn read_body(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(gate.body_timeout, axum::body::to_bytes(body, gate.max_body)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            let reason = format!("the body exceeds {} bytes (--max-plugin-bytes) or was cut off", gate.max_body);
            return error(StatusCode::PAYLOAD_TOO_LARGE, "upload", reason).into_response();
        }
        Err(_) => {
            let reason = format!("the body did not arrive within {:?}", gate.body_timeout);
            return error(StatusCode::REQUEST_TIMEOUT, "upload", reason).into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(bound: &str, token: bool) -> Gate {
        Gate { bound: bound.parse().unwrap(), token, max_body: 1, body_timeout: Duration::from_secs(1) }
    }

    #[test]
    fn a_host_must_name_the_bound_address() {
        let loopback = gate("127.0.0.1:7401", false);
        assert_eq!(loopback.host_refusal(Some("127.0.0.1:7401")), None);
        assert_eq!(loopback.host_refusal(Some("localhost:7401")), None);
        assert_eq!(loopback.host_refusal(Some("LOCALHOST:7401")), None);
        for rebound in ["evil.example:7401", "127.0.0.1:80", "127.0.0.1", "10.0.0.1:7401", "localhost.evil.example:7401"] {
            let refused = loopback.host_refusal(Some(rebound)).expect(rebound);
            assert!(refused.contains("does not name this endpoint (127.0.0.1:7401)"), "{refused}");
        }
        assert!(loopback.host_refusal(None).is_some());
        let v6 = gate("[::1]:7401", false);
        assert_eq!(v6.host_refusal(Some("[::1]:7401")), None);
        assert!(v6.host_refusal(Some("[::2]:7401")).is_some());
        // Bound to every address, the token (required there) guards it.
        assert_eq!(gate("0.0.0.0:7401", true).host_refusal(Some("admin.example:7401")), None);
        assert!(gate("10.0.0.5:7401", true).host_refusal(Some("admin.example:7401")).is_some());
    }
}
