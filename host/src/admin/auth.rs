//! Who may use the admin endpoint. Bound to loopback it may run without a
//! token; bound to any other address it must have one, and the coordinator
//! refuses to start otherwise. With a token, every request must carry it as
//! `Authorization: Bearer TOKEN`, or it gets 401.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Admin, error};

/// Why the admin endpoint cannot start as configured.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Bound beyond loopback without a token.
    #[error("--admin {0} is not a loopback address: give a bearer token with --admin-token FILE")]
    TokenRequired(SocketAddr),
    /// The token file could not be read, or is empty.
    #[error("--admin-token {path}: {reason}")]
    BadTokenFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Reads the bearer token from `path`: its content, without surrounding
/// whitespace, which must not be empty.
pub fn read_token(path: &Path) -> Result<String, AuthError> {
    let bad = |reason: String| AuthError::BadTokenFile { path: path.display().to_string(), reason };
    let token = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?.trim().to_string();
    if token.is_empty() {
        return Err(bad("the file is empty".into()));
    }
    Ok(token)
}

/// Checks that binding `addr` with `token` is allowed.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), AuthError> {
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(AuthError::TokenRequired(addr));
    }
    Ok(())
}

/// Middleware: with a token configured, a request without it is refused.
pub(super) async fn require_token(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    if let Some(token) = &admin.token {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let ok = given.is_some_and(|given| constant_time_eq::constant_time_eq(given.as_bytes(), token.as_bytes()));
        if !ok {
            let mut response = error(StatusCode::UNAUTHORIZED, "auth", "missing or wrong bearer token").into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_a_token_is_required() {
        let loopback: SocketAddr = "127.0.0.1:7401".parse().unwrap();
        let v6: SocketAddr = "[::1]:7401".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7401".parse().unwrap();
        assert!(check_bind(loopback, None).is_ok());
        assert!(check_bind(v6, None).is_ok());
        assert!(matches!(check_bind(any, None), Err(AuthError::TokenRequired(_))));
        assert!(check_bind(any, Some("secret")).is_ok());
    }

    #[test]
    fn an_empty_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  \n").unwrap();
        assert!(matches!(read_token(&path), Err(AuthError::BadTokenFile { .. })));
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "s3cret");
    }
}
