//! The coordinator's admin endpoint: HTTP with JSON, for operators (through
//! `ratchet plugin ... --admin ADDR`, `ratchet status --admin ADDR`, or curl).
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the live dashboard (`dashboard.html`), served without the token |
//! | `GET /status` | the coordinator's status, as `ratchet status` shows it |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /plugins` | every slot and its active version |
//! | `POST /plugins/{slot}` | swap: the body is the component; `?source=NAME` labels it |
//! | `GET /plugins/{slot}/history` | the slot's versions and its audit entries |
//! | `POST /plugins/{slot}/rollback` | back to the previous version, or `?to=N` |
//! | `POST /plugins/{slot}?shadow=true` | run the body in shadow beside the active version |
//! | `GET /plugins/{slot}/shadow` | the shadow's calls and every call where it decided differently |
//! | `POST /plugins/{slot}/shadow/promote` | make the shadow active |
//! | `POST /plugins/{slot}/shadow/discard` | stop the shadow |
//! | `GET /audit` | the whole audit trail; `?tail=N` its newest `N` entries |
//!
//! A swap is validated before it serves: the component must compile and
//! satisfy the slot's world, then pass a dry run ([`dry_run`]) against a
//! simulated copy of the cluster. A refused candidate changes nothing, and
//! the answer (422) says at which stage and why. An accepted one serves from
//! the next call of its slot; a recovery already running is not disturbed.

pub mod auth;
mod dashboard;
pub mod dry_run;
pub mod gate;
pub mod listener;
pub mod plugin_dir;
mod watchdog;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, AuditLog};
use crate::bindings::types::{Node, RecoveryConfig};
use crate::metrics::Metrics;
use crate::registry::{CallObserver, CallOutcome, Candidate, Divergence, Registry, RegistryError, ShadowSink, VersionInfo, all_slots};
use crate::runtime::Digest256;
use crate::status::Status;
use crate::topology::NodeSpec;

/// The largest component a swap accepts by default, in bytes
/// (`--max-plugin-bytes`).
pub const MAX_COMPONENT: usize = 64 << 20;

/// How long a request body (a component) may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What the admin endpoint asks of the process it serves.
#[async_trait::async_trait]
pub trait AdminHost: Send + Sync {
    /// The status `ratchet status` shows.
    async fn status(&self) -> Status;
    /// The registered nodes, for the dry run's copy of the cluster.
    async fn nodes(&self) -> Vec<Node>;
}

/// How the admin endpoint behaves.
#[derive(Clone, Debug)]
pub struct AdminOptions {
    /// The bearer token every request must carry, if any.
    pub token: Option<String>,
    /// Consecutive traps or timeouts of a version after which its slot rolls
    /// back to the version before; 0 never rolls back.
    pub rollback_after: u32,
    /// The largest component accepted, by upload or from the plugin
    /// directory, in bytes.
    pub max_plugin_bytes: usize,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions { token: None, rollback_after: 3, max_plugin_bytes: MAX_COMPONENT }
    }
}

/// The admin endpoint's state. It is also the registry's [`CallObserver`]:
/// it counts every call and rolls a failing version back.
pub struct Admin {
    registry: Arc<Registry>,
    host: Arc<dyn AdminHost>,
    audit: AuditLog,
    metrics: Arc<Metrics>,
    config: RecoveryConfig,
    token: Option<String>,
    max_plugin_bytes: usize,
    streaks: watchdog::Streaks,
    rollback_after: u32,
    /// Swaps and rollbacks run one at a time.
    changes: tokio::sync::Mutex<()>,
    /// What each slot's shadow did.
    shadows: std::sync::Mutex<BTreeMap<String, ShadowRecord>>,
}

/// The most divergences kept per slot; older ones are dropped.
const MAX_DIVERGENCES: usize = 1_000;

/// A slot's shadow run so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ShadowRecord {
    /// Shadow calls made.
    pub calls: u64,
    /// Calls where the shadow decided differently, newest last.
    pub divergences: Vec<Divergence>,
}

/// `GET /plugins/{slot}/shadow`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShadowReport {
    /// The slot.
    pub slot: String,
    /// The version running in shadow, if any.
    pub shadow: Option<PluginVersion>,
    /// What it did.
    pub record: ShadowRecord,
}

impl Admin {
    /// The admin endpoint of `registry`, recording into `audit` and
    /// `metrics`. Set it as the registry's observer for the metrics of
    /// plugin calls and automatic rollback.
    pub fn new(
        registry: Arc<Registry>,
        host: Arc<dyn AdminHost>,
        audit: AuditLog,
        metrics: Arc<Metrics>,
        config: RecoveryConfig,
        options: AdminOptions,
    ) -> Self {
        Admin {
            registry,
            host,
            audit,
            metrics,
            config,
            token: options.token,
            max_plugin_bytes: options.max_plugin_bytes,
            streaks: watchdog::Streaks::new(options.rollback_after),
            rollback_after: options.rollback_after,
            changes: tokio::sync::Mutex::new(()),
            shadows: std::sync::Mutex::default(),
        }
    }

    /// Validates `bytes` for `slot` (compile and world check) and runs it in
    /// shadow beside the active version: no dry run, as it changes nothing.
    pub async fn shadow(&self, slot: &str, bytes: Vec<u8>, source: String, trigger: &str) -> Result<PluginVersion, Refused> {
        let _one_at_a_time = self.changes.lock().await;
        let candidate = self.validate(slot, bytes, source, trigger).await?;
        let info = self
            .registry
            .start_shadow(candidate, &self.write_ahead("shadow", trigger, "ok".into()))
            .map_err(|err| Refused { stage: Stage::Audit, reason: err.to_string() })?;
        self.shadows().insert(slot.to_string(), ShadowRecord::default());
        Ok(PluginVersion::of(&info, false))
    }

    /// Ends the shadow of `slot`: `promote` makes it active, once it has
    /// passed the same dry run as a swap; otherwise it is discarded.
    pub async fn end_shadow(&self, slot: &str, promote: bool, trigger: &str) -> Result<PluginVersion, Refused> {
        let _one_at_a_time = self.changes.lock().await;
        if promote {
            let (trial, shadow) =
                self.registry.fork_promoting(slot).map_err(|err| Refused { stage: Stage::Shadow, reason: err.to_string() })?;
            if let Err(reason) = self.dry_run(slot, trial).await {
                return Err(self.refuse(slot, trigger, shadow.sha256, Stage::DryRun, reason));
            }
        }
        let ended = if promote {
            self.registry.promote_shadow(slot, &self.write_ahead("promote", trigger, "ok".into()))
        } else {
            self.registry.discard_shadow(slot, &self.write_ahead("discard", trigger, "ok".into()))
        };
        match ended {
            Ok(info) => {
                if promote {
                    self.metrics.swap(slot, "activated");
                }
                Ok(PluginVersion::of(&info, promote))
            }
            Err(err @ RegistryError::Unrecorded(_)) => Err(Refused { stage: Stage::Audit, reason: err.to_string() }),
            Err(err) => Err(Refused { stage: Stage::Shadow, reason: err.to_string() }),
        }
    }

    /// The dry run a candidate passes before it serves: `trial` is the
    /// registry as it would be, the candidate active in `slot`. It checks
    /// liveness and quality; safety never depends on it (the guard holds
    /// whatever a plugin does).
    async fn dry_run(&self, slot: &str, trial: Registry) -> Result<dry_run::Passed, String> {
        if slot == crate::registry::REPLICA {
            return dry_run::run_replica(&trial).await;
        }
        let nodes = self.host.nodes().await;
        let shape = dry_run::Shape {
            nodes: nodes.iter().map(|n| NodeSpec { id: n.id.clone(), zone: n.zone.clone(), capacity: n.capacity }).collect(),
            config: self.config,
        };
        dry_run::run(Arc::new(trial), &shape).await
    }

    /// The shadow of `slot` and what it did.
    pub fn shadow_report(&self, slot: &str) -> ShadowReport {
        ShadowReport {
            slot: slot.to_string(),
            shadow: self.registry.shadow(slot).map(|info| PluginVersion::of(&info, false)),
            record: self.shadows().get(slot).cloned().unwrap_or_default(),
        }
    }

    fn shadows(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ShadowRecord>> {
        self.shadows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rolls `slot` back from `version` after its run of failed calls.
    fn auto_rollback(&self, slot: &str, version: u32) {
        // A call of an older version still in flight says nothing of the
        // version serving now.
        if self.registry.active(slot).map(|a| a.number) != Some(version) {
            return;
        }
        let why = format!("v{version} trapped or timed out {} calls in a row", self.rollback_after);
        match self.registry.rollback(slot, None, &self.write_ahead("rollback", "auto-rollback", format!("ok: {why}"))) {
            Ok(info) => {
                tracing::warn!(slot, from = version, to = info.number, "{why}: rolled back");
                self.metrics.rollback(slot, "auto-rollback");
            }
            Err(err) => {
                tracing::error!(slot, version, %err, "{why}, and it cannot be rolled back");
                self.record(AuditEntry::now("rollback", slot, "auto-rollback", format!("refused: {why}: {err}")));
            }
        }
    }

    /// The audit trail.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Records an event that changes nothing (a refusal): a trail that
    /// cannot take it is logged.
    fn record(&self, entry: AuditEntry) {
        if let Err(err) = self.audit.record(&entry) {
            tracing::error!(%err, "could not write the audit trail");
        }
    }

    /// The write-ahead of a change: the registry calls it with the version
    /// concerned, under its lock, before the change takes effect, and makes
    /// no change the trail did not take.
    fn write_ahead<'a>(
        &'a self,
        action: &'a str,
        trigger: &'a str,
        result: String,
    ) -> impl Fn(&VersionInfo) -> Result<(), String> + Sync + 'a {
        move |info: &VersionInfo| {
            let entry = AuditEntry::now(action, &info.slot, trigger, result.clone()).component(info.sha256, Some(info.number));
            self.audit.record(&entry).map_err(|err| {
                tracing::error!(%err, action, slot = %info.slot, "the audit trail cannot record a change: not made");
                err.to_string()
            })
        }
    }

    /// Validates `bytes` for `slot` and, if it passes, activates it.
    pub async fn swap(&self, slot: &str, bytes: Vec<u8>, source: String, trigger: &str) -> Result<Swapped, Refused> {
        let _one_at_a_time = self.changes.lock().await;
        let candidate = self.validate(slot, bytes, source, trigger).await?;
        let sha256 = candidate.sha256();
        let trial = self.registry.fork();
        trial.activate(candidate.clone());
        let passed = match self.dry_run(slot, trial).await {
            Ok(passed) => passed,
            Err(reason) => return Err(self.refuse(slot, trigger, sha256, Stage::DryRun, reason)),
        };
        let info = self
            .registry
            .activate_recorded(candidate, &self.write_ahead("swap", trigger, "ok".into()))
            .map_err(|err| Refused { stage: Stage::Audit, reason: err.to_string() })?;
        self.metrics.swap(slot, "activated");
        Ok(Swapped { version: PluginVersion::of(&info, true), dry_run: passed })
    }

    /// Compiles `bytes` and checks them against the world of `slot`, off the
    /// async threads: the first stage of a swap or a shadow.
    async fn validate(&self, slot: &str, bytes: Vec<u8>, source: String, trigger: &str) -> Result<Candidate, Refused> {
        let sha256 = Digest256::of(&bytes);
        let registry = self.registry.clone();
        let slot_name = slot.to_string();
        let prepared = tokio::task::spawn_blocking(move || registry.prepare(&slot_name, &bytes, source)).await;
        match prepared {
            Ok(Ok(candidate)) => Ok(candidate),
            Ok(Err(err)) => Err(self.refuse(slot, trigger, sha256, Stage::Validate, err.to_string())),
            Err(err) => Err(self.refuse(slot, trigger, sha256, Stage::Validate, format!("the compiler stopped: {err}"))),
        }
    }

    /// Counts, audits and logs a refused candidate.
    fn refuse(&self, slot: &str, trigger: &str, sha256: Digest256, stage: Stage, reason: String) -> Refused {
        self.metrics.swap(slot, "refused");
        self.record(AuditEntry::now("refuse", slot, trigger, format!("{}: {reason}", stage.as_str())).component(sha256, None));
        tracing::warn!(slot, %sha256, stage = stage.as_str(), %reason, "candidate refused");
        Refused { stage, reason }
    }

    /// Rolls `slot` back to the previous version, or to version `to`.
    pub async fn rollback(&self, slot: &str, to: Option<u32>, trigger: &str) -> Result<VersionInfo, RegistryError> {
        let _one_at_a_time = self.changes.lock().await;
        match self.registry.rollback(slot, to, &self.write_ahead("rollback", trigger, "ok".into())) {
            Ok(info) => {
                self.metrics.rollback(slot, trigger);
                Ok(info)
            }
            Err(err @ RegistryError::Unrecorded(_)) => Err(err),
            Err(err) => {
                self.record(AuditEntry::now("rollback", slot, trigger, format!("refused: {err}")));
                Err(err)
            }
        }
    }
}

impl ShadowSink for Admin {
    fn shadow_call(&self, slot: &str, divergence: Option<Divergence>) {
        let mut shadows = self.shadows();
        let record = shadows.entry(slot.to_string()).or_default();
        record.calls += 1;
        if let Some(divergence) = divergence {
            tracing::info!(slot, epoch = divergence.epoch, attempt = divergence.attempt, "shadow decided differently");
            if record.divergences.len() == MAX_DIVERGENCES {
                record.divergences.remove(0);
            }
            record.divergences.push(divergence);
        }
    }
}

impl CallObserver for Admin {
    fn call_ended(&self, slot: &str, version: u32, outcome: CallOutcome) {
        self.metrics.call_ended(slot, version, outcome);
        if self.streaks.note(slot, version, outcome) {
            self.auto_rollback(slot, version);
        }
    }
}

/// A version of a slot, as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginVersion {
    /// The slot.
    pub slot: String,
    /// Its number in the slot, from 1.
    pub number: u32,
    /// The component's sha256.
    pub sha256: String,
    /// The component's size in bytes.
    pub size: usize,
    /// When it was loaded, in RFC 3339.
    pub loaded_at: String,
    /// Where it came from.
    pub source: String,
    /// Whether it is the slot's active version.
    pub active: bool,
}

impl PluginVersion {
    fn of(info: &VersionInfo, active: bool) -> Self {
        PluginVersion {
            slot: info.slot.clone(),
            number: info.number,
            sha256: info.sha256.to_string(),
            size: info.size,
            loaded_at: humantime::format_rfc3339_millis(info.loaded_at).to_string(),
            source: info.source.clone(),
            active,
        }
    }
}

/// One slot in `GET /plugins`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlotSummary {
    /// The slot.
    pub slot: String,
    /// Its active version.
    pub active: Option<PluginVersion>,
    /// How many versions it holds.
    pub versions: usize,
    /// The version running in its shadow, if any.
    #[serde(default)]
    pub shadow: Option<PluginVersion>,
}

/// `GET /plugins/{slot}/history`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct History {
    /// The slot.
    pub slot: String,
    /// Every version, oldest first.
    pub versions: Vec<PluginVersion>,
    /// The audit entries of the slot, oldest first.
    pub events: Vec<AuditEntry>,
}

/// The answer to an accepted swap.
#[derive(Clone, Debug, Serialize)]
pub struct Swapped {
    /// The version now active.
    pub version: PluginVersion,
    /// What the dry run did.
    pub dry_run: dry_run::Passed,
}

/// Why a swap was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Where.
    pub stage: Stage,
    /// Why.
    pub reason: String,
}

/// Where a candidate was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// It does not compile or does not satisfy its slot's world.
    Validate,
    /// It failed the dry run.
    DryRun,
    /// There is no shadow to promote or discard.
    Shadow,
    /// The audit trail could not record the change, so it was not made.
    Audit,
}

impl Stage {
    /// The stage as the JSON answer and the audit trail name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::DryRun => "dry-run",
            Stage::Shadow => "shadow",
            Stage::Audit => "audit",
        }
    }
}

impl IntoResponse for Refused {
    /// 422 for a candidate refused, 500 for a change the audit trail could
    /// not record (the server's fault, not the candidate's).
    fn into_response(self) -> Response {
        let status = match self.stage {
            Stage::Audit => StatusCode::INTERNAL_SERVER_ERROR,
            Stage::Validate | Stage::DryRun | Stage::Shadow => StatusCode::UNPROCESSABLE_ENTITY,
        };
        error(status, self.stage.as_str(), self.reason).into_response()
    }
}

/// The JSON body of every error answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Where it went wrong: `auth`, `validate`, `dry-run`, `rollback`, ...
    pub stage: String,
    /// Why.
    pub error: String,
}

fn error(status: StatusCode, stage: &str, message: impl Into<String>) -> (StatusCode, axum::Json<ErrorBody>) {
    (status, axum::Json(ErrorBody { stage: stage.into(), error: message.into() }))
}

/// The router of the admin endpoint bound to `bound`.
pub fn router(admin: Arc<Admin>, bound: std::net::SocketAddr) -> Router {
    let gate = Arc::new(gate::Gate { bound, token: admin.token.is_some(), max_body: admin.max_plugin_bytes, body_timeout: BODY_TIMEOUT });
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/plugins", get(list))
        .route("/plugins/{slot}", post(swap))
        .route("/plugins/{slot}/history", get(history))
        .route("/plugins/{slot}/rollback", post(rollback))
        .route("/plugins/{slot}/shadow", get(shadow_report))
        .route("/plugins/{slot}/shadow/promote", post(promote))
        .route("/plugins/{slot}/shadow/discard", post(discard))
        .route("/audit", get(audit))
        .layer(DefaultBodyLimit::max(admin.max_plugin_bytes))
        // The outermost runs first: the browser checks, the token, then the
        // body is read.
        .layer(axum::middleware::from_fn_with_state(gate.clone(), gate::read_body))
        .layer(axum::middleware::from_fn_with_state(admin.clone(), auth::require_token))
        // Added after the token's layer, so outside it.
        .route("/", get(dashboard::page))
        .layer(axum::middleware::from_fn_with_state(gate, gate::check))
        .with_state(admin)
}

/// Serves the admin endpoint on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, admin: Arc<Admin>) -> std::io::Result<()> {
    let app = router(admin, listener.local_addr()?);
    listener::serve(listener, app, listener::HttpBounds::default()).await
}

async fn status(State(admin): State<Arc<Admin>>) -> Response {
    axum::Json(admin.host.status().await).into_response()
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], admin.metrics.render()).into_response()
}

async fn list(State(admin): State<Arc<Admin>>) -> Response {
    let slots: Vec<SlotSummary> = all_slots()
        .map(|slot| SlotSummary {
            slot: slot.to_string(),
            active: admin.registry.active(slot).map(|info| PluginVersion::of(&info, true)),
            versions: admin.registry.history(slot).len(),
            shadow: admin.registry.shadow(slot).map(|info| PluginVersion::of(&info, false)),
        })
        .collect();
    axum::Json(slots).into_response()
}

fn known_slot(slot: &str) -> Result<(), (StatusCode, axum::Json<ErrorBody>)> {
    if all_slots().any(|s| s == slot) {
        return Ok(());
    }
    let slots: Vec<&str> = all_slots().collect();
    Err(error(StatusCode::NOT_FOUND, "slot", format!("unknown slot `{slot}` (slots: {})", slots.join(", "))))
}

async fn history(State(admin): State<Arc<Admin>>, Path(slot): Path<String>) -> Response {
    if let Err(err) = known_slot(&slot) {
        return err.into_response();
    }
    let active = admin.registry.active(&slot).map(|v| v.number);
    let versions = admin.registry.history(&slot).iter().map(|v| PluginVersion::of(v, Some(v.number) == active)).collect();
    let events = match admin.audit.entries() {
        Ok(entries) => entries.into_iter().filter(|e| e.slot == slot).collect(),
        Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, "audit", err.to_string()).into_response(),
    };
    axum::Json(History { slot, versions, events }).into_response()
}

#[derive(Deserialize)]
struct SwapQuery {
    source: Option<String>,
    #[serde(default)]
    shadow: bool,
}

async fn swap(
    State(admin): State<Arc<Admin>>,
    Path(slot): Path<String>,
    Query(query): Query<SwapQuery>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(err) = known_slot(&slot) {
        return err.into_response();
    }
    let source = query.source.unwrap_or_else(|| "admin upload".into());
    if query.shadow {
        return match admin.shadow(&slot, body.to_vec(), source, "admin").await {
            Ok(version) => axum::Json(version).into_response(),
            Err(refused) => refused.into_response(),
        };
    }
    match admin.swap(&slot, body.to_vec(), source, "admin").await {
        Ok(swapped) => axum::Json(swapped).into_response(),
        Err(refused) => refused.into_response(),
    }
}

#[derive(Deserialize)]
struct RollbackQuery {
    to: Option<u32>,
}

async fn rollback(State(admin): State<Arc<Admin>>, Path(slot): Path<String>, Query(query): Query<RollbackQuery>) -> Response {
    if let Err(err) = known_slot(&slot) {
        return err.into_response();
    }
    match admin.rollback(&slot, query.to, "admin").await {
        Ok(info) => axum::Json(PluginVersion::of(&info, true)).into_response(),
        Err(err @ RegistryError::Unrecorded(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, "audit", err.to_string()).into_response(),
        Err(err) => error(StatusCode::CONFLICT, "rollback", err.to_string()).into_response(),
    }
}

async fn shadow_report(State(admin): State<Arc<Admin>>, Path(slot): Path<String>) -> Response {
    if let Err(err) = known_slot(&slot) {
        return err.into_response();
    }
    axum::Json(admin.shadow_report(&slot)).into_response()
}

async fn promote(State(admin): State<Arc<Admin>>, Path(slot): Path<String>) -> Response {
    end_shadow(admin, slot, true).await
}

async fn discard(State(admin): State<Arc<Admin>>, Path(slot): Path<String>) -> Response {
    end_shadow(admin, slot, false).await
}

async fn end_shadow(admin: Arc<Admin>, slot: String, promote: bool) -> Response {
    if let Err(err) = known_slot(&slot) {
        return err.into_response();
    }
    match admin.end_shadow(&slot, promote, "admin").await {
        Ok(version) => axum::Json(version).into_response(),
        Err(refused) if matches!(refused.stage, Stage::DryRun | Stage::Audit) => refused.into_response(),
        Err(refused) => error(StatusCode::CONFLICT, refused.stage.as_str(), refused.reason).into_response(),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    tail: Option<usize>,
}

async fn audit(State(admin): State<Arc<Admin>>, Query(query): Query<AuditQuery>) -> Response {
    match admin.audit.entries() {
        Ok(mut entries) => {
            if let Some(tail) = query.tail {
                entries.drain(..entries.len().saturating_sub(tail));
            }
            axum::Json(entries).into_response()
        }
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, "audit", err.to_string()).into_response(),
    }
}
