//! Send API traffic control: the rate limit, added latency and fault injection, applied in front
//! of the Send API route as a middleware.
//!
//! Control endpoints:
//! - `POST /_sandbox/faults` — add a rule (below); `GET` lists the rules, `DELETE` clears them.
//! - `GET|PUT /_sandbox/limits` — `{"rate_limit_per_second": 300, "latency_ms": 50}` (0 = off).
//! - `GET /_sandbox/stats` — counters of Send API calls (requests, accepted, rate limited, faults)
//!   and the most calls one Page had in a one-second window.
//!
//! A fault rule (`POST /_sandbox/faults`):
//! ```json
//! {"kind": "error", "code": 1200, "subcode": 2018024,  // any Graph error; message, type and
//!  "status": 500, "message": "…", "is_transient": true, //   status default to Graph's own
//!  "fbtrace_id": "TRACE",                               // fixed trace id (random otherwise)
//!  "count": 3}                                          // the next 3 sends …
//! {"kind": "timeout", "delay_ms": 15000, "deliver": false, "fraction": 0.2}  // … or 20 % of sends
//! {"kind": "close", "page_id": "…"}                     // close the connection without answering
//! ```
//! `count` (default 1) and `fraction` are exclusive; a `count` rule ends when used up, a
//! `fraction` rule stays until cleared. Rules are tried in order; the first that applies answers.
//! A `timeout` waits `delay_ms` (longer than the client's timeout) and then answers Graph's
//! "unexpected error", or, with `"deliver": true`, delivers the message anyway (Graph processed it
//! but the answer was lost).
//!
//! Order for each Send API call: rate limit (613) → latency → fault rule → the Send API.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::errors::{GraphError, OAUTH_EXCEPTION};
use crate::rate_limit::RATE_LIMITED;
use crate::state::{AppState, random_alphanumeric};

/// Longest `delay_ms` a timeout rule may ask for.
pub(crate) const MAX_DELAY_MS: u64 = 300_000;
pub(crate) const DEFAULT_TIMEOUT_DELAY_MS: u64 = 15_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    #[default]
    Error,
    Timeout,
    Close,
}

/// A fault rule, as posted and as listed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    #[serde(default)]
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_transient: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<bool>,
    /// Sends left for this rule (`count` rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
}

impl FaultRule {
    /// The next send answers Graph error `code`/`subcode` (message and status as Graph's).
    pub fn error(code: i64, subcode: Option<i64>) -> Self {
        Self {
            code: Some(code),
            subcode,
            ..Self::default()
        }
    }

    fn validate(mut self) -> Result<Self, String> {
        if self.kind == FaultKind::Error && self.code.is_none() {
            return Err("an error fault needs a code".into());
        }
        if self.kind != FaultKind::Error
            && (self.code.is_some() || self.subcode.is_some() || self.status.is_some())
        {
            return Err("code, subcode and status are for error faults".into());
        }
        if let Some(status) = self.status
            && !(400..=599).contains(&status)
        {
            return Err("status must be from 400 to 599".into());
        }
        if self.delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
            return Err(format!("delay_ms must be at most {MAX_DELAY_MS}"));
        }
        match (self.count, self.fraction) {
            (Some(_), Some(_)) => return Err("count and fraction are exclusive".into()),
            (Some(0), None) => return Err("count must be at least 1".into()),
            (None, Some(f)) if !(f > 0.0 && f <= 1.0) => {
                return Err("fraction must be in (0, 1]".into());
            }
            (None, None) => self.count = Some(1),
            _ => {}
        }
        Ok(self)
    }

    fn applies_to(&self, page_id: &str) -> bool {
        self.page_id.as_deref().is_none_or(|p| p == page_id)
    }
}

/// Counters of Send API calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficStats {
    pub send_requests: u64,
    pub accepted: u64,
    pub rate_limited: u64,
    pub faults_injected: u64,
    /// The most admitted calls one Page had in a one-second window.
    pub max_in_window: u64,
}

/// The fault rules, latency and counters of a running sandbox.
pub(crate) struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    latency_ms: AtomicU64,
    stats: Mutex<TrafficStats>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Faults {
    pub fn new(latency_ms: u64) -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            latency_ms: AtomicU64::new(latency_ms),
            stats: Mutex::new(TrafficStats::default()),
        }
    }

    pub fn clear(&self) {
        lock(&self.rules).clear();
        *lock(&self.stats) = TrafficStats::default();
    }

    fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::SeqCst))
    }

    /// The rule that answers this send, if any (a `count` rule is used up by it).
    fn take(&self, page_id: &str) -> Option<FaultRule> {
        let mut rules = lock(&self.rules);
        let index = rules.iter().position(|r| {
            r.applies_to(page_id)
                && match (r.count, r.fraction) {
                    (Some(n), _) => n > 0,
                    (None, Some(f)) => rand::random::<f64>() < f,
                    (None, None) => false,
                }
        })?;
        let rule = rules[index].clone();
        if let Some(n) = rules[index].count.as_mut() {
            *n -= 1;
            if *n == 0 {
                rules.remove(index);
            }
        }
        Some(rule)
    }

    fn count(&self, f: impl FnOnce(&mut TrafficStats)) {
        f(&mut lock(&self.stats));
    }

    pub fn stats(&self) -> TrafficStats {
        lock(&self.stats).clone()
    }
}

/// Graph's own message, type and HTTP status for the errors of the reference table
/// (`shared/reference/messenger.md` §3.5 and §7.6).
fn graph_defaults(code: i64, subcode: Option<i64>) -> (&'static str, &'static str, u16, bool) {
    const OAUTH: &str = OAUTH_EXCEPTION;
    match (code, subcode) {
        (1, _) => ("An unknown error occurred", OAUTH, 500, false),
        (2, _) => (
            "An unexpected error has occurred. Please retry your request later.",
            OAUTH,
            500,
            true,
        ),
        (4, _) => ("(#4) Application request limit reached", OAUTH, 400, true),
        (10, Some(2_018_278)) => (crate::send_api::OUTSIDE_WINDOW, OAUTH, 400, false),
        (10, Some(2_018_065)) => (
            "(#10) This message is sent outside of allowed window. You need page_messaging_subscriptions permission to be able to do it. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
            OAUTH,
            400,
            false,
        ),
        (10, Some(2_018_108)) => (
            "(#10) This person isn't receiving messages from you right now.",
            OAUTH,
            400,
            false,
        ),
        (10, Some(2_534_022)) => (
            "(#10) This message is sent outside of allowed window.",
            OAUTH,
            400,
            false,
        ),
        (10, Some(1_893_015)) => (
            "(#10) This user has currently stopped notification messages for this topic",
            OAUTH,
            400,
            false,
        ),
        (10, Some(1_893_063)) => (
            "(#10) This Page is temporarily restricted from sending messages.",
            OAUTH,
            400,
            false,
        ),
        (10, _) => (
            "(#10) Application does not have permission for this action",
            OAUTH,
            400,
            false,
        ),
        (17, _) => ("(#17) User request limit reached", OAUTH, 400, true),
        (32, _) => ("(#32) Page request limit reached", OAUTH, 400, true),
        (100, Some(2_018_001)) => (crate::send_api::NO_MATCHING_USER, OAUTH, 400, false),
        (100, _) => ("(#100) Invalid parameter", OAUTH, 400, false),
        (190, Some(463)) => (
            "Error validating access token: Session has expired.",
            OAUTH,
            400,
            false,
        ),
        (190, _) => (crate::send_api::INVALID_TOKEN, OAUTH, 400, false),
        (200, Some(1_545_041)) => (
            "(#200) This person isn't available right now.",
            OAUTH,
            400,
            false,
        ),
        (200, Some(2_018_028)) => (
            "(#200) Cannot message users who are not admins, developers or testers of the app until pages_messaging permission is reviewed and the app is live.",
            OAUTH,
            400,
            false,
        ),
        (200, _) => ("(#200) Permissions error", OAUTH, 400, false),
        (230, _) => (
            "(#230) Requires pages_messaging permission to manage the object",
            OAUTH,
            400,
            false,
        ),
        (551, _) => (
            "(#551) This person isn't available right now.",
            OAUTH,
            400,
            false,
        ),
        (341, _) => ("(#341) Application limit reached", OAUTH, 400, true),
        (368, _) => (
            "The action attempted has been deemed abusive or is otherwise disallowed",
            OAUTH,
            400,
            false,
        ),
        (613, Some(2_018_338)) => (
            "(#613) Warning! You are engaging in behavior that may be considered bothersome or abusive by the recipient.",
            OAUTH,
            400,
            false,
        ),
        (613, _) => (RATE_LIMITED, OAUTH, 400, true),
        (1200, _) => (
            "(#1200) Temporary send message failure. Please try again later.",
            OAUTH,
            500,
            false,
        ),
        (80_000..=80_008, _) => (
            "There have been too many messenger api calls to this Page account. Wait a while and try again.",
            OAUTH,
            400,
            true,
        ),
        _ => ("Sandbox-injected error", OAUTH, 400, false),
    }
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_subcode: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    is_transient: bool,
    fbtrace_id: String,
}

/// The Graph error answer of an error rule.
fn error_response(rule: &FaultRule) -> Response {
    let code = rule.code.unwrap_or(2);
    let (message, kind, status, transient) = graph_defaults(code, rule.subcode);
    let status =
        StatusCode::from_u16(rule.status.unwrap_or(status)).unwrap_or(StatusCode::BAD_REQUEST);
    let envelope = ErrorEnvelope {
        error: ErrorBody {
            message: rule.message.as_deref().unwrap_or(message),
            kind: rule.error_type.as_deref().unwrap_or(kind),
            code,
            error_subcode: rule.subcode,
            is_transient: rule.is_transient.unwrap_or(transient),
            fbtrace_id: rule
                .fbtrace_id
                .clone()
                .unwrap_or_else(|| random_alphanumeric(23)),
        },
    };
    (status, Json(envelope)).into_response()
}

/// The Page a Send API path names (`/{version}/{page_id}/messages`; `me` is the sandbox Page).
fn page_of(state: &AppState, path: &str) -> String {
    match path.trim_start_matches('/').split('/').nth(1) {
        Some("me") | None => state.config.page_id.clone(),
        Some(p) => p.to_owned(),
    }
}

/// The middleware in front of the Send API.
pub(crate) async fn send_api_gate(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let page_id = page_of(&state, request.uri().path());
    let faults = &state.faults;
    faults.count(|s| s.send_requests += 1);
    let (admitted, in_window) = state.rate_limiter.admit(&page_id, Instant::now());
    faults.count(|s| s.max_in_window = s.max_in_window.max(in_window as u64));
    if !admitted {
        faults.count(|s| s.rate_limited += 1);
        return GraphError::new(613, OAUTH_EXCEPTION, RATE_LIMITED).into_response();
    }
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some(rule) = faults.take(&page_id) else {
        let response = next.run(request).await;
        if response.status().is_success() {
            faults.count(|s| s.accepted += 1);
        }
        return response;
    };
    faults.count(|s| s.faults_injected += 1);
    match rule.kind {
        FaultKind::Error => error_response(&rule),
        FaultKind::Timeout => {
            let delay = Duration::from_millis(rule.delay_ms.unwrap_or(DEFAULT_TIMEOUT_DELAY_MS));
            if rule.deliver != Some(true) {
                tokio::time::sleep(delay).await;
                return error_response(&FaultRule::error(2, None));
            }
            // Graph goes on processing when the client gives up (and drops this future): the
            // delivery runs in its own task.
            let state = state.clone();
            let task = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let response = next.run(request).await;
                if response.status().is_success() {
                    state.faults.count(|s| s.accepted += 1);
                }
                response
            });
            match task.await {
                Ok(response) => response,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        FaultKind::Close => {
            let conn = request.extensions().get::<ConnectInfo<Conn>>().cloned();
            // Read the request to its end, so the close is a clean one, not a reset.
            let _ = axum::body::to_bytes(request.into_body(), 1 << 20).await;
            if let Some(ConnectInfo(conn)) = conn {
                tracing::info!(peer = %conn.peer, "closing the connection without an answer (fault)");
                conn.kill.store(true, Ordering::SeqCst);
            }
            // Never written: the connection refuses every write from now on.
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
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
        faults: lock(&state.faults.rules).clone(),
    })
}

fn bad_request(message: impl Into<String>) -> Response {
    GraphError::sandbox(StatusCode::BAD_REQUEST, message).into_response()
}

async fn add_fault(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let rule = match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) => rule,
        Err(e) => return bad_request(format!("invalid fault: {e}")),
    };
    match rule.validate() {
        Ok(rule) => {
            lock(&state.faults.rules).push(rule);
            list_faults(State(state)).await.into_response()
        }
        Err(message) => bad_request(message),
    }
}

async fn clear_faults(State(state): State<Arc<AppState>>) -> Json<FaultList> {
    lock(&state.faults.rules).clear();
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
        latency_ms: Some(state.faults.latency_ms.load(Ordering::SeqCst)),
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
        state.faults.latency_ms.store(latency, Ordering::SeqCst);
    }
}

async fn get_stats(State(state): State<Arc<AppState>>) -> Json<TrafficStats> {
    Json(state.faults.stats())
}

impl crate::RunningSandbox {
    /// Add a fault rule (as `POST /_sandbox/faults`).
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), String> {
        let rule = rule.validate()?;
        lock(&self.state.faults.rules).push(rule);
        Ok(())
    }

    /// Remove every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.state.faults.rules).clear();
    }

    /// Set the rate limit and/or the latency (as `PUT /_sandbox/limits`).
    pub fn set_limits(&self, limits: Limits) {
        apply_limits(&self.state, &limits);
    }

    /// Counters of Send API calls.
    pub fn stats(&self) -> TrafficStats {
        self.state.faults.stats()
    }
}

// ------------------------------------------------------------------------------------------------
// Closing a connection from a handler: the listener hands every connection a kill switch, which a
// handler reaches through `ConnectInfo<Conn>`; once set, the connection refuses every write, so
// hyper drops it without answering.

/// The connection info every request carries.
#[derive(Clone, Debug)]
pub struct Conn {
    pub peer: SocketAddr,
    kill: Arc<AtomicBool>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, KillableListener>>
    for Conn
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

pub(crate) struct KillableListener(pub TcpListener);

impl axum::serve::Listener for KillableListener {
    type Io = KillableIo;
    type Addr = Conn;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((io, peer)) => {
                    let kill = Arc::new(AtomicBool::new(false));
                    return (
                        KillableIo {
                            io,
                            kill: kill.clone(),
                        },
                        Conn { peer, kill },
                    );
                }
                // Out of file descriptors and the like: wait, as axum's own listener does.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Conn {
            peer: self.0.local_addr()?,
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

pub(crate) struct KillableIo {
    io: TcpStream,
    kill: Arc<AtomicBool>,
}

impl KillableIo {
    fn killed(&self) -> bool {
        self.kill.load(Ordering::SeqCst)
    }
}

fn aborted() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "closed by a sandbox fault",
    )
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_validate() {
        assert!(
            FaultRule::default().validate().is_err(),
            "error without code"
        );
        let r = FaultRule::error(1200, None).validate().unwrap();
        assert_eq!(r.count, Some(1), "the next send by default");
        let both = FaultRule {
            count: Some(2),
            fraction: Some(0.5),
            ..FaultRule::error(1, None)
        };
        assert!(both.validate().is_err());
        let bad_fraction = FaultRule {
            fraction: Some(1.5),
            ..FaultRule::error(1, None)
        };
        assert!(bad_fraction.validate().is_err());
        let timeout_with_code = FaultRule {
            kind: FaultKind::Timeout,
            code: Some(1),
            ..FaultRule::default()
        };
        assert!(timeout_with_code.validate().is_err());
        let close = FaultRule {
            kind: FaultKind::Close,
            ..FaultRule::default()
        };
        assert!(close.validate().is_ok());
    }

    #[test]
    fn count_rules_are_used_up_and_page_filters_apply() {
        let f = Faults::new(0);
        lock(&f.rules).push(
            FaultRule {
                count: Some(2),
                page_id: Some("p".into()),
                ..FaultRule::error(1200, None)
            }
            .validate()
            .unwrap(),
        );
        assert!(f.take("q").is_none());
        assert_eq!(f.take("p").and_then(|r| r.code), Some(1200));
        assert!(f.take("p").is_some());
        assert!(f.take("p").is_none());
        assert!(lock(&f.rules).is_empty());
        lock(&f.rules).push(
            FaultRule {
                fraction: Some(1.0),
                ..FaultRule::error(2, None)
            }
            .validate()
            .unwrap(),
        );
        for _ in 0..5 {
            assert!(f.take("any").is_some(), "a fraction rule stays");
        }
    }
}
