//! The client side of the coordinator's admin endpoint, for `ratchet plugin
//! list|swap|rollback|history --admin ADDR` and `ratchet status --admin ADDR`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::de::DeserializeOwned;

use super::Failure;
use ratchet::admin::ErrorBody;

/// Where the admin endpoint is, and the token to show it.
#[derive(Clone, Debug, Args)]
pub struct AdminArgs {
    /// The coordinator's admin endpoint (HOST:PORT), as given to `--admin`.
    #[arg(long = "admin", value_name = "ADDR")]
    pub addr: String,
    /// A file holding the bearer token, when the endpoint has one.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// A client of one admin endpoint.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl AdminClient {
    pub fn new(args: &AdminArgs) -> Result<Self, Failure> {
        let token = match &args.token_file {
            Some(path) => Some(ratchet::admin::auth::read_token(path).map_err(|e| Failure::input(e.to_string()))?),
            None => None,
        };
        let base = if args.addr.starts_with("http://") { args.addr.clone() } else { format!("http://{}", args.addr) };
        // A swap compiles and dry-runs the component: give it time.
        let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(120))).build();
        Ok(AdminClient { base: base.trim_end_matches('/').to_string(), token, agent: config.into() })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.answer(path, request.call())
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)], body: &[u8]) -> Result<T, Failure> {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/wasm")
            .header(ratchet::admin::gate::ADMIN_HEADER, "1");
        for (key, value) in query {
            request = request.query(*key, *value);
        }
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.answer(path, request.send(body))
    }

    fn read(&self, path: &str, sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<(u16, String), Failure> {
        let mut response = sent.map_err(|e| anyhow::anyhow!("admin endpoint {}{path}: {e}", self.base))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| anyhow::anyhow!("admin endpoint {}{path}: reading the answer: {e}", self.base))?;
        Ok((status, body))
    }

    fn answer<T: DeserializeOwned>(&self, path: &str, sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<T, Failure> {
        let (status, body) = self.read(path, sent)?;
        if status >= 400 {
            return Err(refusal(status, &body));
        }
        serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("admin endpoint {}{path}: unexpected answer: {e}", self.base).into())
    }
}

/// An error answer: one line naming the stage and the reason; exit 1.
fn refusal(status: u16, body: &str) -> Failure {
    let message = match serde_json::from_str::<ErrorBody>(body) {
        Ok(error) => format!("{} ({status}): {}", error.stage, error.error),
        Err(_) => format!("HTTP {status}: {}", body.trim()),
    };
    Failure { code: 1, message }
}
