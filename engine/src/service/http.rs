//! The writer service's HTTP API (SPEC §8), on the service's tokio runtime: steps are posted as
//! one JSON object or an atomic NDJSON batch and go through the same append driver as the
//! socket's; reads run on the blocking pool. API keys bind a caller to a tenant and a role.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::protocol;
use super::server::Appends;
use crate::ledger::export::{report_json, step_json, summary_json};
use crate::ledger::{Ledger, LedgerError, StepRequest};
use crate::log::Durability;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Post steps.
    Append,
    /// Read runs, verify, export, metrics.
    Read,
    /// Everything, for any tenant (named with `X-Meshflow-Tenant`).
    Admin,
}

/// One API key.
#[derive(Clone)]
struct ApiKey {
    digest: [u8; 32],
    tenant: String,
    role: Role,
}

/// The API keys of `MESHFLOW_API_KEYS`: `KEY=TENANT:ROLE[,KEY=TENANT:ROLE…]`.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

impl ApiKeys {
    /// Parses `KEY=TENANT:ROLE[,…]`; an empty text is no keys.
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let mut keys = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (key, rest) = entry
                .split_once('=')
                .ok_or_else(|| "each API key is KEY=TENANT:ROLE".to_string())?;
            let (tenant, role) = rest
                .rsplit_once(':')
                .ok_or_else(|| "each API key is KEY=TENANT:ROLE".to_string())?;
            if key.len() < 8 {
                return Err("an API key has at least 8 characters".to_string());
            }
            crate::log::check_tenant(tenant).map_err(|e| format!("API key tenant: {e}"))?;
            let role = match role {
                "append" => Role::Append,
                "read" => Role::Read,
                "admin" => Role::Admin,
                other => return Err(format!("role '{other}' is not append, read or admin")),
            };
            keys.push(ApiKey {
                digest: key_digest(key.as_bytes()),
                tenant: tenant.to_string(),
                role,
            });
        }
        Ok(ApiKeys { keys })
    }

    /// No keys configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key presented, compared in constant time with every configured one (as SHA-256
    /// digests, so neither the content nor the length of a key shows in the timing).
    fn find(&self, presented: &[u8]) -> Option<&ApiKey> {
        let presented = key_digest(presented);
        let mut found = None;
        for k in &self.keys {
            let same = bool::from(k.digest.ct_eq(&presented));
            if same && found.is_none() {
                found = Some(k);
            }
        }
        found
    }
}

fn key_digest(key: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(key).into()
}

/// Counters and histograms for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    appends: Mutex<BTreeMap<String, (u64, u64)>>,
    errors: Mutex<BTreeMap<String, u64>>,
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

/// Upper bounds (seconds) of the append latency histogram's buckets.
const LATENCY_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, by: u64) {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry(key).or_insert(0) += by;
}

impl Metrics {
    fn request(&self, route: &str, status: StatusCode) {
        bump(&self.requests, (route.to_string(), status.as_u16()), 1);
    }

    fn append(&self, tenant: &str, steps: u64, started: Instant) {
        {
            let mut m = self.appends.lock().unwrap_or_else(|p| p.into_inner());
            let e = m.entry(tenant.to_string()).or_insert((0, 0));
            e.0 += 1;
            e.1 += steps;
        }
        let secs = started.elapsed().as_secs_f64();
        for (bound, bucket) in LATENCY_BOUNDS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn error(&self, kind: &str) {
        bump(&self.errors, kind.to_string(), 1);
    }

    /// The Prometheus text exposition (format 0.0.4); with `tenant`, the per-tenant series of
    /// that tenant only (what a non-admin key may see).
    pub fn render(&self, tenant: Option<&str>) -> String {
        let shown = |t: &str| tenant.is_none_or(|only| only == t);
        let mut out = String::new();
        let esc = |v: &str| {
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        out.push_str("# HELP meshflow_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE meshflow_http_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            out.push_str(&format!(
                "meshflow_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}\n",
                esc(route)
            ));
        }
        out.push_str("# HELP meshflow_appends_total Append requests acknowledged, by tenant.\n");
        out.push_str("# TYPE meshflow_appends_total counter\n");
        let appends = self
            .appends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (tenant, (n, _)) in appends.iter().filter(|(t, _)| shown(t)) {
            out.push_str(&format!(
                "meshflow_appends_total{{tenant=\"{}\"}} {n}\n",
                esc(tenant)
            ));
        }
        out.push_str("# HELP meshflow_append_steps_total Steps acknowledged, by tenant.\n");
        out.push_str("# TYPE meshflow_append_steps_total counter\n");
        for (tenant, (_, steps)) in appends.iter().filter(|(t, _)| shown(t)) {
            out.push_str(&format!(
                "meshflow_append_steps_total{{tenant=\"{}\"}} {steps}\n",
                esc(tenant)
            ));
        }
        out.push_str("# HELP meshflow_errors_total Refused or failed requests, by kind.\n");
        out.push_str("# TYPE meshflow_errors_total counter\n");
        for (kind, n) in self.errors.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            out.push_str(&format!(
                "meshflow_errors_total{{kind=\"{}\"}} {n}\n",
                esc(kind)
            ));
        }
        out.push_str(
            "# HELP meshflow_append_latency_seconds Time from receiving an append to its acknowledgement.\n",
        );
        out.push_str("# TYPE meshflow_append_latency_seconds histogram\n");
        for (bound, bucket) in LATENCY_BOUNDS.iter().zip(&self.latency_buckets) {
            out.push_str(&format!(
                "meshflow_append_latency_seconds_bucket{{le=\"{bound}\"}} {}\n",
                bucket.load(Ordering::Relaxed)
            ));
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        out.push_str(&format!(
            "meshflow_append_latency_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        out.push_str(&format!(
            "meshflow_append_latency_seconds_sum {}\n",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!("meshflow_append_latency_seconds_count {count}\n"));
        out
    }

    /// The log writer's counters in the Prometheus text format.
    pub fn render_log(counters: &crate::log::WriterCounters) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, help, value) in [
            (
                "meshflow_log_records_total",
                "Records sequenced by the writer.",
                load(&counters.records),
            ),
            (
                "meshflow_log_bytes_written_total",
                "Bytes written to segment files.",
                load(&counters.bytes_written),
            ),
            (
                "meshflow_log_fsyncs_total",
                "fdatasync calls on segment files.",
                load(&counters.fsyncs),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        out.push_str(
            "# HELP meshflow_log_group_commit_records Records made durable by each group commit.\n",
        );
        out.push_str("# TYPE meshflow_log_group_commit_records histogram\n");
        for (bound, bucket) in crate::log::GROUP_BOUNDS
            .iter()
            .zip(&counters.group_records_le)
        {
            out.push_str(&format!(
                "meshflow_log_group_commit_records_bucket{{le=\"{bound}\"}} {}\n",
                load(bucket)
            ));
        }
        let groups = load(&counters.groups);
        out.push_str(&format!(
            "meshflow_log_group_commit_records_bucket{{le=\"+Inf\"}} {groups}\n"
        ));
        out.push_str(&format!(
            "meshflow_log_group_commit_records_sum {}\n",
            load(&counters.group_records_sum)
        ));
        out.push_str(&format!(
            "meshflow_log_group_commit_records_count {groups}\n"
        ));
        out
    }
}

/// The HTTP API's shared state.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) ledger: Ledger,
    pub(crate) appends: Appends,
    pub(crate) keys: Arc<ApiKeys>,
    pub(crate) metrics: Arc<Metrics>,
}

/// The routes of SPEC §8, with the request body limit.
pub(crate) fn router(state: AppState, max_body_bytes: usize) -> Router {
    let keyed = axum::middleware::from_fn_with_state(state.clone(), require_key);
    Router::new()
        .route("/v1/runs/{run_id}/steps", post(post_steps))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{run_id}", get(get_run))
        .route("/v1/runs/{run_id}/verify", get(verify_run))
        .route("/v1/runs/{run_id}/export", get(export_run))
        .route("/traces/{run_id}", get(trace))
        .route("/metrics", get(metrics))
        .layer(keyed)
        .route("/health", get(health))
        .route("/ready", get(ready))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::map_response(json_rejections))
        .with_state(state)
}

/// Refusals made by the framework before a handler runs (a body over the limit, an unknown
/// route, a wrong method, a malformed path) come as plain text; every error of the API is
/// `{"error": {"kind", "message"}}`, so they are rewritten in that shape.
async fn json_rejections(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let kind = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "invalid_input",
        s if s.is_client_error() => "invalid_input",
        _ => "error",
    };
    let text = axum::body::to_bytes(response.into_body(), 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    error_response(status, kind, &message)
}

fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"error": {"kind": kind, "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn status_of(kind: &str) -> StatusCode {
    match kind {
        "invalid_input" | "limit_exceeded" | "unsupported_version" => StatusCode::BAD_REQUEST,
        "not_found" => StatusCode::NOT_FOUND,
        "conflict" | "rejected" => StatusCode::CONFLICT,
        "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "shutting_down" | "locked" | "busy" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A field of a protocol error response (`{"error": {field: …}}`).
fn error_field<'a>(response: &'a Value, field: &str) -> Option<&'a str> {
    response.get("error")?.get(field)?.as_str()
}

fn ledger_error(e: &LedgerError) -> Response {
    let v = protocol::ledger_error(e);
    let kind = error_field(&v, "kind").unwrap_or("error").to_string();
    let message = error_field(&v, "message").unwrap_or("").to_string();
    error_response(status_of(&kind), &kind, &message)
}

fn json_response(value: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The tenant a request acts for, or the refusal: no key 401, an unknown key 401, a role that
/// may not do this 403. With no keys configured (loopback only) every request is an admin's.
#[expect(clippy::result_large_err, reason = "the error is the response to send")]
fn authorize(state: &AppState, headers: &HeaderMap, need: Role) -> Result<String, Response> {
    let named = match headers.get("x-meshflow-tenant").map(|v| v.to_str()) {
        None => None,
        Some(Ok(t)) => Some(t.to_string()),
        Some(Err(_)) => {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                "X-Meshflow-Tenant is not visible ASCII",
            ))
        }
    };
    if state.keys.is_empty() {
        return Ok(named.unwrap_or_else(|| "default".to_string()));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(presented) = presented else {
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an API key is required (Authorization: Bearer KEY or X-API-Key: KEY)",
        ));
    };
    let Some(key) = state.keys.find(presented.trim().as_bytes()) else {
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown API key",
        ));
    };
    if key.role != Role::Admin && key.role != need {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this API key's role may not do this",
        ));
    }
    Ok(match (key.role, named) {
        (Role::Admin, Some(t)) => t,
        _ => key.tenant.clone(),
    })
}

/// Whether the request carries an admin key (or no keys are configured: loopback only).
fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    if state.keys.is_empty() {
        return true;
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    presented
        .and_then(|p| state.keys.find(p.trim().as_bytes()))
        .is_some_and(|k| k.role == Role::Admin)
}

/// Refuses a request without a valid API key before its body is read (when keys are
/// configured), so an unauthenticated client cannot make the service buffer a body; the
/// handlers then check the role and the tenant.
async fn require_key(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.keys.is_empty() {
        return next.run(request).await;
    }
    match authorize(&state, request.headers(), Role::Admin) {
        // Any valid key passes here (a role refusal is the handler's 403).
        Ok(_) => next.run(request).await,
        Err(refusal) if refusal.status() == StatusCode::FORBIDDEN => next.run(request).await,
        Err(refusal) => {
            state.metrics.request("unauthenticated", refusal.status());
            state.metrics.error("unauthorized");
            refusal
        }
    }
}

/// Runs a blocking read on the blocking pool for `tenant`.
async fn blocking_read(
    state: &AppState,
    tenant: String,
    read: impl FnOnce(Ledger) -> Result<Value, LedgerError> + Send + 'static,
) -> Response {
    let ledger = match state.ledger.with_tenant(&tenant) {
        Ok(l) => l,
        Err(e) => return ledger_error(&e),
    };
    match tokio::task::spawn_blocking(move || read(ledger)).await {
        Ok(Ok(value)) => json_response(&value),
        Ok(Err(e)) => ledger_error(&e),
        Err(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "error", "a read failed"),
    }
}

fn finish(state: &AppState, route: &str, response: Response) -> Response {
    state.metrics.request(route, response.status());
    if !response.status().is_success() {
        let kind = match response.status() {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::BAD_REQUEST => "invalid_input",
            _ => "error",
        };
        state.metrics.error(kind);
    }
    response
}

async fn post_steps(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let route = "/v1/runs/{run_id}/steps";
    let tenant = match authorize(&state, &headers, Role::Append) {
        Ok(t) => t,
        Err(refusal) => return finish(&state, route, refusal),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let ndjson = content_type.starts_with("application/x-ndjson");
    // Only JSON bodies: a web page cannot send these cross-origin without a preflight, so a
    // browser cannot be made to post steps to a loopback service.
    if !ndjson && !content_type.starts_with("application/json") {
        let r = error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_input",
            "the body must be application/json (one step) or application/x-ndjson (a batch)",
        );
        return finish(&state, route, r);
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        let r = error_response(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "the body is not UTF-8",
        );
        return finish(&state, route, r);
    };
    // (line number in the body, text): blank lines are skipped but keep their numbers.
    let lines: Vec<(usize, &str)> = if ndjson {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, l))
            .collect()
    } else {
        vec![(1, text)]
    };
    if lines.is_empty() {
        let r = error_response(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "no steps in the body",
        );
        return finish(&state, route, r);
    }
    let mut requests = Vec::with_capacity(lines.len());
    for (number, line) in &lines {
        match StepRequest::from_json_for_run(line, Some(&run_id)) {
            Ok(r) => requests.push(r),
            Err(e) => {
                let message = if ndjson {
                    format!("line {number}: {e}")
                } else {
                    e.to_string()
                };
                let r = error_response(StatusCode::BAD_REQUEST, "invalid_input", &message);
                return finish(&state, route, r);
            }
        }
    }
    let handle = match state.ledger.with_tenant(&tenant) {
        Ok(h) => h,
        Err(e) => return finish(&state, route, ledger_error(&e)),
    };
    let steps = requests.len() as u64;
    let response = match state
        .appends
        .append(handle, requests, Durability::Sync)
        .await
    {
        Ok(receipts) => {
            state.metrics.append(&tenant, steps, started);
            let receipts: Vec<_> = receipts.iter().map(protocol::WireReceipt).collect();
            json_response(&json!({ "receipts": receipts }))
        }
        Err(e) => {
            let (kind, message) = e.kind_and_message();
            error_response(status_of(kind), kind, &message)
        }
    };
    finish(&state, route, response)
}

async fn list_runs(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let route = "/v1/runs";
    let response = match authorize(&state, &headers, Role::Read) {
        Err(r) => r,
        Ok(tenant) => {
            blocking_read(&state, tenant, |ledger| {
                let mut out = Vec::new();
                for run in ledger.list_runs()? {
                    out.push(summary_json(&ledger.run_summary(&run)?));
                }
                Ok(Value::Array(out))
            })
            .await
        }
    };
    finish(&state, route, response)
}

async fn get_run(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let route = "/v1/runs/{run_id}";
    let response = match authorize(&state, &headers, Role::Read) {
        Err(r) => r,
        Ok(tenant) => {
            blocking_read(&state, tenant, move |ledger| {
                let steps = ledger.get_run(&run_id)?;
                Ok(Value::Array(steps.iter().map(step_json).collect()))
            })
            .await
        }
    };
    finish(&state, route, response)
}

async fn verify_run(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let route = "/v1/runs/{run_id}/verify";
    let response = match authorize(&state, &headers, Role::Read) {
        Err(r) => r,
        Ok(tenant) => {
            blocking_read(&state, tenant, move |ledger| {
                Ok(report_json(&ledger.verify_chain(&run_id)?))
            })
            .await
        }
    };
    finish(&state, route, response)
}

async fn export_run(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let route = "/v1/runs/{run_id}/export";
    let response = match authorize(&state, &headers, Role::Read) {
        Err(r) => r,
        Ok(tenant) => {
            blocking_read(&state, tenant, move |ledger| {
                let mut out = Vec::new();
                ledger.export_run(&run_id, &mut out)?;
                serde_json::from_slice(&out).map_err(|e| LedgerError::Invalid {
                    reason: format!("export: {e}"),
                })
            })
            .await
        }
    };
    finish(&state, route, response)
}

async fn trace(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let route = "/traces/{run_id}";
    let response = match authorize(&state, &headers, Role::Read) {
        Err(r) => r,
        Ok(tenant) => {
            blocking_read(&state, tenant, move |ledger| {
                let steps = ledger.get_run(&run_id)?;
                let summary = crate::ledger::RunSummary::of(&run_id, &steps);
                let report = ledger.verify_chain(&run_id)?;
                Ok(json!({
                    "run_id": run_id,
                    "summary": summary_json(&summary),
                    "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
                    "chain_valid": report.valid,
                }))
            })
            .await
        }
    };
    finish(&state, route, response)
}

async fn health(State(state): State<AppState>) -> Response {
    finish(&state, "/health", json_response(&json!({"status": "ok"})))
}

async fn ready(State(state): State<AppState>) -> Response {
    let reader = state.ledger.reader().clone();
    let head = tokio::task::spawn_blocking(move || reader.snapshot().is_ok())
        .await
        .unwrap_or(false);
    let poisoned = state.ledger.log().and_then(|l| l.poisoned());
    let response = match (head, poisoned) {
        (true, None) => json_response(&json!({"status": "ready"})),
        (_, Some(why)) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            &format!("the writer stopped after a failed write: {why}"),
        ),
        (false, None) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the log's HEAD cannot be read",
        ),
    };
    finish(&state, "/ready", response)
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let response = match authorize(&state, &headers, Role::Read) {
        Err(r) => r,
        Ok(tenant) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            {
                let mut text = state
                    .metrics
                    .render((!is_admin(&state, &headers)).then_some(tenant.as_str()));
                if let Some(log) = state.ledger.log() {
                    text.push_str(&Metrics::render_log(log.counters()));
                }
                text
            },
        )
            .into_response(),
    };
    finish(&state, "/metrics", response)
}
