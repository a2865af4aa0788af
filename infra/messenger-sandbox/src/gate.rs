//! The middlewares in front of the routes: the Send API gate (rate limit, latency, fault rules,
//! see `faults`) and the `facebook-api-version` stamp on every versioned answer (see
//! `api_version`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_version::API_VERSION_HEADER;
use crate::errors::{GraphError, OAUTH_EXCEPTION, RATE_LIMITED};
use crate::faults::{DEFAULT_TIMEOUT_DELAY_MS, FaultKind, FaultRule, rule_error};
use crate::ids::is_graph_version;
use crate::listener::Conn;
use crate::state::AppState;

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
        FaultKind::Error => rule_error(&rule).into_response(),
        FaultKind::Timeout => {
            let delay = Duration::from_millis(rule.delay_ms.unwrap_or(DEFAULT_TIMEOUT_DELAY_MS));
            if rule.deliver != Some(true) {
                tokio::time::sleep(delay).await;
                return rule_error(&FaultRule::error(2, None)).into_response();
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
                conn.kill();
            }
            // Never written: the connection refuses every write from now on.
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Stamp the header on every answer to a `/{version}/…` path.
pub(crate) async fn stamp(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let asked = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|segment| is_graph_version(segment))
        .map(str::to_owned);
    let mut response = next.run(request).await;
    if let Some(asked) = asked {
        let served = state.api_version.get().unwrap_or(asked);
        if let Ok(value) = HeaderValue::from_str(&served) {
            response.headers_mut().insert(API_VERSION_HEADER, value);
        }
    }
    response
}
