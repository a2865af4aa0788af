//! The sandbox's own control endpoints: health, reset, webhook target.

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
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
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
            return GraphError::sandbox(StatusCode::BAD_REQUEST, format!("invalid request: {e}"))
                .into_response();
        }
    };
    let url = request
        .url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    if let Some(u) = &url {
        let valid = reqwest::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
        if !valid {
            return GraphError::sandbox(StatusCode::BAD_REQUEST, "url must be an http(s) URL")
                .into_response();
        }
    }
    state.set_webhook_url(url.clone());
    Json(WebhookUrl { url }).into_response()
}
