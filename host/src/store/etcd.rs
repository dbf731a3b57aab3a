//! Coordinator state on etcd, for clusters that outgrow one machine: the
//! state lives under consensus in a trusted engine, not in a home-made one.
//!
//! Spoken over etcd's v3 JSON gateway (`/v3/kv/txn` and friends), so the
//! store stays synchronous like [`super::FileStore`] and needs no gRPC
//! stack. `etcds://` reaches the members over https, checking their
//! certificates against the cluster's CA and presenting the coordinator's
//! own (etcd's `--client-cert-auth`). Under `PREFIX` (`/ratchet/` unless told otherwise):
//!
//! - `epoch`: the newest epoch issued, in decimal. A new one is written by a
//!   transaction that compares the key's revision with the one read, so two
//!   coordinators can never issue the same epoch (I1).
//! - `layout`: the persisted layout (JSON), written by a transaction guarded
//!   on `epoch` still holding the layout's epoch (I7).
//! - `services/<id>`: the service directory (JSON).
//! - `leader`: the coordinator that may run a director, held with a lease.
//!   Once a store has won it ([`EtcdStore::campaign`]), every epoch and
//!   every layout it writes is also guarded on still holding it: a leader
//!   that lost its lease (paused, cut off) cannot change anything (I8).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::{CoordinatorState, CoordinatorStore, StoreError};
use crate::bindings::types::{Epoch, Layout, ServiceDescriptor};

/// How long one request to an etcd member may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a request keeps going round the members while none can serve
/// it (one is down, a new etcd leader is being elected).
const PATIENCE: Duration = Duration::from_secs(5);

/// How often a conflicting epoch transaction is retried before giving up.
const MAX_CONFLICTS: usize = 1_000;

/// The coordinator state in etcd.
pub struct EtcdStore {
    /// `http://host:port` of each member, in the order given.
    endpoints: Vec<String>,
    /// The member that answered last: asked first.
    preferred: Mutex<usize>,
    prefix: String,
    agent: ureq::Agent,
    /// Set once this store leads, and kept: a store that led and lost
    /// the lease stays fenced ([`EtcdStore::deposed`]).
    leadership: Mutex<Option<Leadership>>,
    /// The lease was lost or given up: every change is refused.
    deposed: AtomicBool,
    /// When the leader's lease was last known renewed: the time its
    /// renewal (or the winning campaign round) was sent, so the lease lives
    /// at least its time to live from then.
    renewed: Mutex<Option<Instant>>,
}

/// This store's hold on the leader key.
#[derive(Clone, Debug)]
pub struct Leadership {
    /// Who leads: the value of the leader key.
    pub id: String,
    /// The lease the key is attached to.
    pub lease: i64,
    /// The lease's time to live.
    pub ttl: Duration,
}

/// How a keep-alive of the leader's lease went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAlive {
    /// Renewed for another time to live.
    Renewed,
    /// etcd did not answer: the lease may still hold, until its time to live.
    Unanswered,
    /// The lease has expired or was revoked: this store no longer leads.
    Lost,
}

impl EtcdStore {
    /// Parses `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]` and checks that a
    /// member answers: a coordinator must not start on a store it cannot
    /// reach.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, None)
    }

    /// [`EtcdStore::connect`], with the TLS files an `etcds://` URL needs:
    /// the CA the members' certificates chain to, and the client
    /// certificate and key presented to them.
    pub fn connect_with(url: &str, tls: Option<&crate::transport::TlsFiles>) -> Result<Self, StoreError> {
        let (endpoints, prefix) = parse_url(url)?;
        let https = endpoints.iter().any(|e| e.starts_with("https://"));
        let mut config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(REQUEST_TIMEOUT));
        match (https, tls) {
            (true, Some(files)) => config = config.tls_config(tls_config(files)?),
            (true, None) => {
                return Err(StoreError::BadUrl {
                    url: url.to_string(),
                    reason: "etcds:// needs --store-tls-ca, --store-tls-cert and --store-tls-key".into(),
                });
            }
            (false, _) => {}
        }
        let config = config.build();
        let store = EtcdStore {
            endpoints,
            preferred: Mutex::new(0),
            prefix,
            agent: config.into(),
            leadership: Mutex::new(None),
            deposed: AtomicBool::new(false),
            renewed: Mutex::new(None),
        };
        store.call_within("/v3/maintenance/status", &json!({}), Duration::ZERO)?;
        Ok(store)
    }

    /// Waits until this store holds the leader key as `id`, attached to a
    /// new lease of `ttl`, polling every `poll`. Keep the lease alive with
    /// [`EtcdStore::keep_alive`] at a fraction of `ttl`. Fails when etcd
    /// cannot be reached; keeps waiting while another store leads. A key
    /// that already holds `id` is this campaign's own (an earlier round's
    /// winning transaction whose answer was lost): it has won, on that
    /// key's lease.
    pub fn campaign(&self, id: &str, ttl: Duration, poll: Duration) -> Result<Leadership, StoreError> {
        let seconds = ttl.as_secs().max(1);
        let granted = self.call("/v3/lease/grant", json!({ "TTL": seconds.to_string() }))?;
        let lease = int(&granted["ID"]).ok_or_else(|| unexpected("lease grant", &granted))?;
        let key = self.key("leader");
        loop {
            let txn = json!({
                "compare": [{ "key": b64(&key), "target": "CREATE", "result": "EQUAL", "create_revision": "0" }],
                "success": [{ "request_put": { "key": b64(&key), "value": b64(id), "lease": lease.to_string() } }],
                "failure": [{ "request_range": { "key": b64(&key) } }],
            });
            let asked = Instant::now();
            let answer = self.call("/v3/kv/txn", txn)?;
            let won = if answer["succeeded"].as_bool() == Some(true) { Some(lease) } else { own_key(&answer, id)? };
            if let Some(held) = won {
                if held != lease {
                    // The lease granted for this round is not needed: the
                    // key is on the earlier one.
                    if let Err(err) = self.call("/v3/lease/revoke", json!({ "ID": lease.to_string() })) {
                        tracing::debug!(%err, lease, "cannot revoke an unused lease; it expires");
                    }
                }
                let leadership = Leadership { id: id.to_string(), lease: held, ttl: Duration::from_secs(seconds) };
                *self.leader() = Some(leadership.clone());
                self.deposed.store(false, Ordering::SeqCst);
                // An earlier lease's remaining time is unknown until renewed.
                *self.renewed() = (held == lease).then_some(asked);
                tracing::info!(id, lease = held, "leading: holding the leader key");
                return Ok(leadership);
            }
            // Renew our own lease while we wait, so it is still ours if we win.
            if let Err(err) = self.call("/v3/lease/keepalive", json!({ "ID": lease.to_string() })) {
                // The next campaign round finds out whether the lease is gone.
                tracing::debug!(%err, lease, "cannot renew the campaign's lease");
            }
            std::thread::sleep(poll);
        }
    }

    /// Renews the leader's lease once.
    pub fn keep_alive(&self) -> KeepAlive {
        let Some(leadership) = self.leader().clone() else { return KeepAlive::Lost };
        if self.deposed() {
            return KeepAlive::Lost;
        }
        let renew = json!({ "ID": leadership.lease.to_string() });
        let asked = Instant::now();
        match self.call_within("/v3/lease/keepalive", &renew, leadership.ttl / 3) {
            Ok(answer) if int(&answer["result"]["TTL"]).unwrap_or(0) > 0 => {
                *self.renewed() = Some(asked);
                KeepAlive::Renewed
            }
            // An expired lease is renewed for no time, or is not found.
            Ok(_) | Err(StoreError::Etcd { .. }) => {
                self.deposed.store(true, Ordering::SeqCst);
                KeepAlive::Lost
            }
            Err(_) => KeepAlive::Unanswered,
        }
    }

    /// Gives the leadership up: revokes the lease, which deletes the key.
    /// The store changes nothing more until it wins a campaign again.
    pub fn resign(&self) -> Result<(), StoreError> {
        let Some(leadership) = self.leader().clone() else { return Ok(()) };
        self.deposed.store(true, Ordering::SeqCst);
        self.call("/v3/lease/revoke", json!({ "ID": leadership.lease.to_string() })).map(drop)
    }

    /// Whether this store led and lost (or gave up) the lease: it may
    /// change nothing until it wins a campaign again.
    pub fn deposed(&self) -> bool {
        self.deposed.load(Ordering::SeqCst)
    }

    /// Who holds the leader key now, if anyone.
    pub fn leader_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self.get(&self.key("leader"))?.map(|(value, _)| value))
    }

    fn leader(&self) -> std::sync::MutexGuard<'_, Option<Leadership>> {
        self.leadership.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The comparisons every change of a leader carries: it still holds
    /// the leader key.
    fn leader_guard(&self) -> Vec<Value> {
        match &*self.leader() {
            Some(leadership) => vec![json!({
                "key": b64(&self.key("leader")),
                "target": "VALUE",
                "result": "EQUAL",
                "value": b64(&leadership.id),
            })],
            None => Vec::new(),
        }
    }

    /// Before a change, and after a failed guarded transaction: the error
    /// when this store led and no longer does.
    fn check_still_leader(&self) -> Result<(), StoreError> {
        let Some(leadership) = self.leader().clone() else { return Ok(()) };
        let deposed = self.deposed();
        let holder = match self.leader_id() {
            Ok(holder) => holder,
            // Not known to be deposed: etcd's silence proves nothing.
            Err(err) if !deposed => return Err(err),
            Err(_) => None,
        };
        if !deposed && holder.as_deref() == Some(leadership.id.as_str()) {
            return Ok(());
        }
        self.deposed.store(true, Ordering::SeqCst);
        Err(StoreError::NotLeader { id: leadership.id, holder })
    }

    fn renewed(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.renewed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a change at once when this store was deposed.
    fn refuse_if_deposed(&self) -> Result<(), StoreError> {
        if self.deposed() { self.check_still_leader() } else { Ok(()) }
    }

    /// The value and modification revision of `key`, if it exists.
    fn get(&self, key: &str) -> Result<Option<(String, i64)>, StoreError> {
        let answer = self.call("/v3/kv/range", json!({ "key": b64(key) }))?;
        let Some(kv) = answer["kvs"].as_array().and_then(|kvs| kvs.first()) else { return Ok(None) };
        let value = unb64(kv["value"].as_str().unwrap_or_default())?;
        let revision = int(&kv["mod_revision"]).ok_or_else(|| unexpected("range", &answer))?;
        Ok(Some((value, revision)))
    }

    fn put(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.call("/v3/kv/put", json!({ "key": b64(key), "value": b64(value) })).map(drop)
    }

    fn call(&self, path: &str, body: Value) -> Result<Value, StoreError> {
        self.call_within(path, &body, PATIENCE)
    }

    /// [`EtcdStore::call_round`] again while no member can serve, for up to
    /// `patience`. A transaction retried this way may have been applied the
    /// first time: each one here is safe to repeat (its comparisons then
    /// fail, or it writes the same value again).
    fn call_within(&self, path: &str, body: &Value, patience: Duration) -> Result<Value, StoreError> {
        let deadline = Instant::now() + patience;
        blocking(|| {
            loop {
                match self.call_round(path, body) {
                    Err(StoreError::Unreachable { .. }) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    answer => return answer,
                }
            }
        })
    }

    /// Posts `body` to `path` on the preferred member, then on each other
    /// member in turn while they cannot be reached.
    fn call_round(&self, path: &str, body: &Value) -> Result<Value, StoreError> {
        let first = *self.preferred.lock().unwrap_or_else(|e| e.into_inner());
        let mut failures = Vec::new();
        for i in 0..self.endpoints.len() {
            let at = (first + i) % self.endpoints.len();
            let endpoint = &self.endpoints[at];
            let sent = self.agent.post(format!("{endpoint}{path}")).header("Content-Type", "application/json").send(body.to_string());
            let mut response = match sent {
                Ok(response) => response,
                Err(err) => {
                    failures.push(format!("{endpoint}: {err}"));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let text = match response.body_mut().with_config().limit(64 << 20).read_to_string() {
                Ok(text) => text,
                Err(err) => {
                    failures.push(format!("{endpoint}: reading the answer: {err}"));
                    continue;
                }
            };
            let answer: Value = serde_json::from_str(&text)
                .map_err(|e| StoreError::Etcd { reason: format!("{endpoint}{path} answered {status} with no JSON ({e}): {text}") })?;
            if status >= 400 || answer.get("error").is_some() {
                let reason = answer["error"].as_str().or(answer["message"].as_str()).unwrap_or(&text).to_string();
                // A member without a quorum cannot serve: another may.
                if status >= 500 {
                    failures.push(format!("{endpoint}: {reason}"));
                    continue;
                }
                return Err(StoreError::Etcd { reason: format!("{endpoint}{path}: {reason}") });
            }
            *self.preferred.lock().unwrap_or_else(|e| e.into_inner()) = at;
            return Ok(answer);
        }
        Err(StoreError::Unreachable { endpoints: self.endpoints.join(","), reason: failures.join("; ") })
    }
}

impl CoordinatorStore for EtcdStore {
    fn next_epoch_above(&self, seen: Epoch) -> Result<Epoch, StoreError> {
        self.refuse_if_deposed()?;
        let key = self.key("epoch");
        for _ in 0..MAX_CONFLICTS {
            let current = self.get(&key)?;
            let (epoch, unchanged) = match &current {
                Some((value, revision)) => (
                    parse_epoch(&key, value)?,
                    json!({ "key": b64(&key), "target": "MOD", "result": "EQUAL", "mod_revision": revision.to_string() }),
                ),
                None => (0, json!({ "key": b64(&key), "target": "CREATE", "result": "EQUAL", "create_revision": "0" })),
            };
            let next = epoch.max(seen) + 1;
            let mut compare = vec![unchanged];
            compare.extend(self.leader_guard());
            let txn = json!({ "compare": compare, "success": [{ "request_put": { "key": b64(&key), "value": b64(&next.to_string()) } }] });
            if self.call("/v3/kv/txn", txn)?["succeeded"].as_bool() == Some(true) {
                return Ok(next);
            }
            self.check_still_leader()?;
        }
        Err(StoreError::Etcd { reason: format!("{key} kept changing: {MAX_CONFLICTS} conflicting transactions") })
    }

    fn may_act(&self) -> Result<(), StoreError> {
        let Some(leadership) = self.leader().clone() else { return Ok(()) };
        let since = self.renewed().map(|at| at.elapsed());
        // Two thirds of the lease: a margin for the clocks of this process
        // and of etcd, which count the lease down apart.
        let certain = since.is_some_and(|since| since < leadership.ttl * 2 / 3);
        if self.deposed() || !certain {
            return Err(StoreError::LeaseUncertain { id: leadership.id, since });
        }
        Ok(())
    }

    fn state(&self) -> Result<CoordinatorState, StoreError> {
        // One range over the prefix: a snapshot at a single revision.
        let answer = self.call("/v3/kv/range", json!({ "key": b64(&self.prefix), "range_end": b64(&prefix_end(&self.prefix)) }))?;
        let mut state = CoordinatorState::default();
        for kv in answer["kvs"].as_array().into_iter().flatten() {
            let key = unb64(kv["key"].as_str().unwrap_or_default())?;
            let value = unb64(kv["value"].as_str().unwrap_or_default())?;
            let name = key.strip_prefix(&self.prefix).unwrap_or(&key);
            let corrupt = |reason: String| StoreError::Corrupt { path: key.clone(), reason };
            match name {
                "epoch" => state.epoch = parse_epoch(&key, &value)?,
                "layout" => state.layout = Some(serde_json::from_str(&value).map_err(|e| corrupt(e.to_string()))?),
                _ if name.starts_with("services/") => {
                    state.services.push(serde_json::from_str(&value).map_err(|e| corrupt(e.to_string()))?)
                }
                _ => {}
            }
        }
        Ok(state)
    }

    fn persist_layout(&self, layout: &Layout) -> Result<(), StoreError> {
        self.refuse_if_deposed()?;
        let (epoch_key, layout_key) = (self.key("epoch"), self.key("layout"));
        let encoded = serde_json::to_string(layout).expect("a layout always encodes");
        let mut compare = vec![json!({
            "key": b64(&epoch_key),
            "target": "VALUE",
            "result": "EQUAL",
            "value": b64(&layout.epoch.to_string()),
        })];
        compare.extend(self.leader_guard());
        let txn = json!({ "compare": compare, "success": [{ "request_put": { "key": b64(&layout_key), "value": b64(&encoded) } }] });
        if self.call("/v3/kv/txn", txn)?["succeeded"].as_bool() == Some(true) {
            return Ok(());
        }
        let current = match self.get(&epoch_key)? {
            Some((value, _)) => parse_epoch(&epoch_key, &value)?,
            None => 0,
        };
        if current != layout.epoch {
            return Err(StoreError::Fenced { layout_epoch: layout.epoch, current });
        }
        self.check_still_leader()?;
        Err(StoreError::Etcd { reason: format!("the layout of epoch {} was refused for no reason etcd gave", layout.epoch) })
    }

    fn register_service(&self, service: ServiceDescriptor) -> Result<(), StoreError> {
        let encoded = serde_json::to_string(&service).expect("a descriptor always encodes");
        self.put(&self.key(&format!("services/{}", service.id)), &encoded)
    }

    fn remove_service(&self, id: &str) -> Result<(), StoreError> {
        self.call("/v3/kv/deleterange", json!({ "key": b64(&self.key(&format!("services/{id}"))) })).map(drop)
    }
}

/// Runs `work`, which blocks on the network, telling a multi-threaded tokio
/// runtime first (the store's trait is synchronous, and is called from the
/// director's tasks): the runtime moves its other tasks off this thread,
/// so a slow or unreachable etcd does not stall the coordinator's serving.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]` into the members' base URLs
/// and the key prefix (ending in `/`).
/// The https configuration of `files`: the CA as the only root, the
/// certificate and key as the client's.
fn tls_config(files: &crate::transport::TlsFiles) -> Result<ureq::tls::TlsConfig, StoreError> {
    use ureq::tls::{ClientCert, PemItem, RootCerts, TlsConfig, TlsProvider};
    let pem = |path: &std::path::Path| -> Result<Vec<PemItem<'static>>, StoreError> {
        let bad = |reason: String| StoreError::Io { path: path.display().to_string(), source: std::io::Error::other(reason) };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let items: Result<Vec<PemItem<'static>>, _> = ureq::tls::parse_pem(&bytes).collect();
        items.map_err(|e| bad(e.to_string()))
    };
    let certs = |items: Vec<PemItem<'static>>| {
        items.into_iter().filter_map(|item| if let PemItem::Certificate(c) = item { Some(c) } else { None }).collect::<Vec<_>>()
    };
    let roots = certs(pem(&files.ca)?);
    let chain = certs(pem(&files.cert)?);
    let key = pem(&files.key)?.into_iter().find_map(|item| if let PemItem::PrivateKey(k) = item { Some(k) } else { None });
    let Some(key) = key else {
        let source = std::io::Error::other("no private key in the file");
        return Err(StoreError::Io { path: files.key.display().to_string(), source });
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::new_with_certs(&roots))
        .client_cert(Some(ClientCert::new_with_certs(&chain, key)))
        .build())
}

fn parse_url(url: &str) -> Result<(Vec<String>, String), StoreError> {
    let bad = |reason: &str| StoreError::BadUrl { url: url.to_string(), reason: reason.to_string() };
    let (scheme, rest) = match (url.strip_prefix("etcd://"), url.strip_prefix("etcds://")) {
        (Some(rest), _) => ("http", rest),
        (None, Some(rest)) => ("https", rest),
        (None, None) => return Err(bad("it does not start with etcd:// (or etcds:// for https)")),
    };
    let (hosts, prefix) = match rest.split_once('/') {
        Some((hosts, prefix)) if !prefix.trim_matches('/').is_empty() => (hosts, format!("/{}/", prefix.trim_matches('/'))),
        Some((hosts, _)) => (hosts, "/ratchet/".to_string()),
        None => (rest, "/ratchet/".to_string()),
    };
    let mut endpoints = Vec::new();
    for host in hosts.split(',') {
        let (name, port) = host.rsplit_once(':').ok_or_else(|| bad(&format!("`{host}` is not HOST:PORT")))?;
        if name.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad(&format!("`{host}` is not HOST:PORT")));
        }
        // The epoch counter is what fences every change: in the clear only
        // on loopback.
        if scheme == "http" && !loopback(name) {
            return Err(bad(&format!("`{host}` is beyond loopback: reach it over https, with etcds://")));
        }
        endpoints.push(format!("{scheme}://{host}"));
    }
    Ok((endpoints, prefix))
}

/// Whether `name` (a host of a URL) is this machine's loopback.
fn loopback(name: &str) -> bool {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The end of the range of every key starting with `prefix`.
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).expect("a prefix ending in `/` stays ASCII")
}

fn parse_epoch(key: &str, value: &str) -> Result<Epoch, StoreError> {
    value.parse().map_err(|_| StoreError::Corrupt { path: key.to_string(), reason: format!("`{value}` is not an epoch") })
}

/// The lease of the leader key a failed campaign transaction read back,
/// when the key holds `id`: the campaign's own.
fn own_key(answer: &Value, id: &str) -> Result<Option<i64>, StoreError> {
    let Some(kv) = answer["responses"][0]["response_range"]["kvs"].get(0) else { return Ok(None) };
    if unb64(kv["value"].as_str().unwrap_or_default())? != id {
        return Ok(None);
    }
    Ok(int(&kv["lease"]))
}

fn b64(text: &str) -> String {
    BASE64.encode(text)
}

fn unb64(text: &str) -> Result<String, StoreError> {
    let bytes = BASE64.decode(text).map_err(|e| StoreError::Etcd { reason: format!("bad base64 from etcd: {e}") })?;
    String::from_utf8(bytes).map_err(|e| StoreError::Etcd { reason: format!("a value that is not UTF-8: {e}") })
}

/// etcd's JSON gateway writes 64-bit integers as strings.
fn int(value: &Value) -> Option<i64> {
    value.as_str().and_then(|s| s.parse().ok()).or_else(|| value.as_i64())
}

fn unexpected(what: &str, answer: &Value) -> StoreError {
    StoreError::Etcd { reason: format!("unexpected answer to {what}: {answer}") }
}

/// Keeps `store`'s lease alive every third of its time to live, on a thread
/// of its own, until it is lost or cannot be renewed within the time to
/// live; then calls `lost` once and returns.
pub fn keep_leading(store: std::sync::Arc<EtcdStore>, lost: impl FnOnce(&str) + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(leadership) = store.leader().clone() else {
            lost("not leading");
            return;
        };
        let every = leadership.ttl / 3;
        let mut renewed = Instant::now();
        loop {
            std::thread::sleep(every);
            match store.keep_alive() {
                KeepAlive::Renewed => renewed = Instant::now(),
                KeepAlive::Lost => return lost("the leader's lease expired or was revoked"),
                KeepAlive::Unanswered if renewed.elapsed() >= leadership.ttl => {
                    return lost("etcd did not renew the leader's lease within its time to live");
                }
                KeepAlive::Unanswered => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_members_and_a_prefix() {
        let (endpoints, prefix) = parse_url("etcd://127.0.0.1:2379").unwrap();
        assert_eq!((endpoints, prefix.as_str()), (vec!["http://127.0.0.1:2379".to_string()], "/ratchet/"));
        let (endpoints, prefix) = parse_url("etcd://localhost:1,[::1]:2,127.0.0.2:3/prod/east").unwrap();
        assert_eq!(endpoints, ["http://localhost:1", "http://[::1]:2", "http://127.0.0.2:3"]);
        assert_eq!(prefix, "/prod/east/");
        let err = parse_url("etcd://10.0.0.5:2379").unwrap_err();
        assert!(err.to_string().contains("beyond loopback") && err.to_string().contains("etcds://"), "{err}");
        let (endpoints, _) = parse_url("etcds://a:1,b:2").unwrap();
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints, ["https://a:1", "https://b:2"]);
        for bad in ["http://a:1", "etcd://a", "etcd://a:port", "etcd://:1", "etcd://a:1,", "etcds://"] {
            let err = parse_url(bad).unwrap_err();
            assert!(matches!(err, StoreError::BadUrl { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn the_prefix_range_ends_after_every_key_under_it() {
        assert_eq!(prefix_end("/ratchet/"), "/ratchet0");
        assert!("/ratchet/zzz" < prefix_end("/ratchet/").as_str());
    }
}
