//! The dashboard at `GET /`: one self-contained page (no external assets)
//! that draws the epoch and state, the live layout by zone and node, the
//! recent recoveries as one Gantt row per attempt, the plugin slots, the
//! shadows and the audit tail, refreshed every second from the JSON routes.
//!
//! The page itself holds nothing secret, so it is served without the token;
//! behind a token, the page asks for it and sends it with each request.

use axum::http::header;
use axum::response::IntoResponse;

/// The page, compiled into the binary.
const PAGE: &str = include_str!("dashboard.html");

/// Scripts and styles only from the page itself, requests only to this
/// origin, and no framing by another site (a click on a framed page is
/// still the operator's).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`.
pub(super) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
}
