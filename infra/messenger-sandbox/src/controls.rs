//! The sandbox's own switches, over HTTP (`/_sandbox/…`, JSON) and as `RunningSandbox` methods for
//! in-process tests: health, reset, webhook target, holds, the served API version, fault rules,
//! limits and counters. The switches themselves live in `hold`, `api_version`, `faults` and
//! `rate_limit`; this module only reads and sets them.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::errors::GraphError;
use crate::faults::{FaultRule, MAX_DELAY_MS, TrafficStats};
use crate::hold::HoldSet;
use crate::ids::is_graph_version;
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .merge(admin_routes())
        .merge(hold_routes())
        .merge(api_version_routes())
        .merge(fault_routes())
}

fn bad_request(message: impl Into<String>) -> Response {
    GraphError::sandbox(StatusCode::BAD_REQUEST, message).into_response()
}

// Health, reset, webhook target.

fn admin_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_sandbox/healthz", get(healthz))
        .route("/_sandbox/reset", post(reset))
        .route(
            "/_sandbox/webhook_url",
            get(get_webhook_url).put(put_webhook_url),
        )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "ok": true }))
}

/// Forget every opt-in and inbox message (configuration and webhook URL are kept).
async fn reset(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    state.reset();
    Json(json!({ "ok": true }))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookUrl {
    url: Option<String>,
}

async fn get_webhook_url(State(state): State<Arc<AppState>>) -> Json<WebhookUrl> {
    Json(WebhookUrl {
        url: state.webhook_url(),
    })
}

/// `{"url": "http://127.0.0.1:PORT/webhook"}` sets the target, `{"url": null}` clears it.
async fn put_webhook_url(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: WebhookUrl = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(format!("invalid request: {e}"));
        }
    };
    let url = request
        .url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    if let Some(u) = &url {
        let valid = reqwest::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
        if !valid {
            return bad_request("url must be an http(s) URL");
        }
    }
    state.set_webhook_url(url.clone());
    Json(WebhookUrl { url }).into_response()
}

// Holds (see `hold`).

fn hold_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_sandbox/hold", get(list).post(hold))
        .route("/_sandbox/release", post(release))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    #[serde(default)]
    login_id: Option<String>,
}

#[derive(Serialize)]
struct HoldStatus {
    #[serde(flatten)]
    set: HoldSet,
    waiting: u64,
}

fn status(state: &AppState) -> Json<HoldStatus> {
    Json(HoldStatus {
        set: state.holds.current(),
        waiting: state.holds.waiting(),
    })
}

/// An empty body means `{}`; a `login_id` that is blank means "every send" too.
fn parse(body: &Bytes) -> Result<Option<String>, String> {
    let request: HoldRequest = if body.iter().all(u8::is_ascii_whitespace) {
        HoldRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|e| format!("invalid request: {e}"))?
    };
    Ok(request
        .login_id
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty()))
}

async fn list(State(state): State<Arc<AppState>>) -> Json<HoldStatus> {
    status(&state)
}

async fn hold(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match parse(&body) {
        Ok(login_id) => {
            state.holds.hold(login_id);
            status(&state).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn release(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match parse(&body) {
        Ok(login_id) => {
            state.holds.release(login_id.as_deref());
            status(&state).into_response()
        }
        Err(e) => bad_request(e),
    }
}

// The served API version (see `api_version`).

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    #[serde(default)]
    serve: Option<String>,
}

fn api_version_routes() -> Router<Arc<AppState>> {
    Router::new().route(
        "/_sandbox/api_version",
        get(get_switch).put(put_switch).delete(clear_switch),
    )
}

async fn get_switch(State(state): State<Arc<AppState>>) -> Json<Switch> {
    Json(Switch {
        serve: state.api_version.get(),
    })
}

async fn put_switch(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let switch = match serde_json::from_slice::<Switch>(&body) {
        Ok(s) => s,
        Err(e) => {
            return bad_request(format!("invalid switch: {e}"));
        }
    };
    if let Some(v) = switch.serve.as_deref()
        && !is_graph_version(v)
    {
        return bad_request("serve must look like v26.0");
    }
    state.api_version.set(switch.serve);
    get_switch(State(state)).await.into_response()
}

async fn clear_switch(State(state): State<Arc<AppState>>) -> Json<Switch> {
    state.api_version.set(None);
    Json(Switch::default())
}

// Fault rules, limits and counters (see `faults`).

fn fault_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/_sandbox/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_sandbox/limits", get(get_limits).put(put_limits))
        .route("/_sandbox/stats", get(get_stats))
}

#[derive(Serialize)]
struct FaultList {
    faults: Vec<FaultRule>,
}

async fn list_faults(State(state): State<Arc<AppState>>) -> Json<FaultList> {
    Json(FaultList {
        faults: state.faults.rules(),
    })
}

async fn add_fault(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let rule = match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) => rule,
        Err(e) => return bad_request(format!("invalid fault: {e}")),
    };
    match rule.validate() {
        Ok(rule) => {
            state.faults.add(rule);
            list_faults(State(state)).await.into_response()
        }
        Err(message) => bad_request(message),
    }
}

async fn clear_faults(State(state): State<Arc<AppState>>) -> Json<FaultList> {
    state.faults.clear_rules();
    Json(FaultList { faults: Vec::new() })
}

/// `GET|PUT /_sandbox/limits`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

fn limits(state: &AppState) -> Limits {
    Limits {
        rate_limit_per_second: Some(state.rate_limiter.limit()),
        latency_ms: Some(state.faults.latency_ms()),
    }
}

async fn get_limits(State(state): State<Arc<AppState>>) -> Json<Limits> {
    Json(limits(&state))
}

async fn put_limits(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let update = match serde_json::from_slice::<Limits>(&body) {
        Ok(u) => u,
        Err(e) => return bad_request(format!("invalid limits: {e}")),
    };
    if update.latency_ms.is_some_and(|l| l > MAX_DELAY_MS) {
        return bad_request(format!("latency_ms must be at most {MAX_DELAY_MS}"));
    }
    apply_limits(&state, &update);
    Json(limits(&state)).into_response()
}

fn apply_limits(state: &AppState, update: &Limits) {
    if let Some(rate) = update.rate_limit_per_second {
        state.rate_limiter.set_limit(rate);
    }
    if let Some(latency) = update.latency_ms {
        state.faults.set_latency_ms(latency);
    }
}

async fn get_stats(State(state): State<Arc<AppState>>) -> Json<TrafficStats> {
    Json(state.faults.stats())
}

impl crate::RunningSandbox {
    /// Name the app's pages around the sandbox (label, URL), for the start page: the local API,
    /// its `/openapi.json`, the example website… Replaces the previous list.
    pub fn set_links(&self, links: &[(&str, &str)]) {
        self.state.set_links(
            links
                .iter()
                .map(|(label, url)| ((*label).to_owned(), (*url).to_owned()))
                .collect(),
        );
    }

    /// Add a fault rule (as `POST /_sandbox/faults`).
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), String> {
        let rule = rule.validate()?;
        self.state.faults.add(rule);
        Ok(())
    }

    /// Remove every fault rule.
    pub fn clear_faults(&self) {
        self.state.faults.clear_rules();
    }

    /// Set the rate limit and/or the latency (as `PUT /_sandbox/limits`).
    pub fn set_limits(&self, limits: Limits) {
        apply_limits(&self.state, &limits);
    }

    /// Counters of Send API calls.
    pub fn stats(&self) -> TrafficStats {
        self.state.faults.stats()
    }

    /// Answer every versioned call as `version` (`None`: as the version asked for).
    pub fn serve_api_version(&self, version: Option<&str>) {
        self.state.api_version.set(version.map(str::to_owned));
    }
}
