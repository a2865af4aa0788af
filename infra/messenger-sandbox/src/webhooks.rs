//! `POST /_sandbox/optin`: simulate a person opting in through the Login dialog, and post the
//! signed `optin` webhook to the app the way Facebook does.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};

use crate::errors::GraphError;
use crate::ids::{now_ms, random_login_id};
use crate::state::AppState;

/// Upper bound of `deliveries` in one request.
pub(crate) const MAX_DELIVERIES: u32 = 100;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/_sandbox/optin", post(optin))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OptinRequest {
    login_id: Option<String>,
    timestamp_ms: Option<i64>,
    deliver: Option<bool>,
    deliveries: Option<u32>,
}

#[derive(Serialize)]
struct OptinResponse {
    login_id: String,
    page_id: String,
    opted_in_at_ms: i64,
    /// The exact bytes posted (and signed).
    body: String,
    signature: String,
    /// One HTTP status per delivery attempt; 0 when the connection failed.
    webhook_statuses: Vec<u16>,
}

// The webhook payload, as structs so the keys keep Facebook's order.
#[derive(Serialize)]
struct Envelope<'a> {
    object: &'static str,
    entry: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    id: &'a str,
    time: i64,
    messaging: [Messaging<'a>; 1],
}

#[derive(Serialize)]
struct Messaging<'a> {
    recipient: Recipient<'a>,
    timestamp: i64,
    optin: Optin<'a>,
}

#[derive(Serialize)]
struct Recipient<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Optin<'a> {
    login_id: &'a str,
}

/// The body of the Login Connect `optin` webhook Facebook posts:
/// `{"object":"page","entry":[{"id":PAGE,"time":TS,"messaging":[{"recipient":{"id":PAGE},"timestamp":TS,"optin":{"login_id":ID}}]}]}`.
pub fn optin_webhook_body(page_id: &str, login_id: &str, timestamp_ms: i64) -> String {
    let envelope = Envelope {
        object: "page",
        entry: [Entry {
            id: page_id,
            time: timestamp_ms,
            messaging: [Messaging {
                recipient: Recipient { id: page_id },
                timestamp: timestamp_ms,
                optin: Optin { login_id },
            }],
        }],
    };
    // Serialising plain strings and integers cannot fail.
    serde_json::to_string(&envelope).unwrap_or_default()
}

async fn optin(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        OptinRequest::default()
    } else {
        match serde_json::from_slice::<OptinRequest>(&body) {
            Ok(r) => r,
            Err(e) => {
                return GraphError::sandbox(
                    StatusCode::BAD_REQUEST,
                    format!("invalid opt-in request: {e}"),
                )
                .into_response();
            }
        }
    };
    let login_id = match request.login_id {
        Some(id) if id.trim().is_empty() => {
            return GraphError::sandbox(StatusCode::BAD_REQUEST, "login_id must not be empty")
                .into_response();
        }
        Some(id) => id,
        None => random_login_id(),
    };
    let deliver = request.deliver.unwrap_or(true);
    let deliveries = request.deliveries.unwrap_or(1);
    if deliveries > MAX_DELIVERIES {
        return GraphError::sandbox(
            StatusCode::BAD_REQUEST,
            format!("deliveries must be at most {MAX_DELIVERIES}"),
        )
        .into_response();
    }
    let webhook_url = state.webhook_url();
    if deliver && webhook_url.is_none() {
        return GraphError::sandbox(
            StatusCode::CONFLICT,
            "no webhook URL is configured: set WEBHOOK_URL, PUT /_sandbox/webhook_url, or send \"deliver\": false",
        )
        .into_response();
    }

    let config = &state.config;
    let opted_in_at_ms = request.timestamp_ms.unwrap_or_else(now_ms);
    state.record_optin(&login_id, opted_in_at_ms);
    let body = optin_webhook_body(&config.page_id, &login_id, opted_in_at_ms);
    let signature =
        shared::facebook::webhook::sign_webhook(config.app_secret.as_bytes(), body.as_bytes());

    let mut webhook_statuses = Vec::new();
    if let (true, Some(url)) = (deliver, webhook_url) {
        for _ in 0..deliveries {
            webhook_statuses.push(post_webhook(&state.http, &url, &body, &signature).await);
        }
    }
    Json(OptinResponse {
        login_id,
        page_id: config.page_id.clone(),
        opted_in_at_ms,
        body,
        signature,
        webhook_statuses,
    })
    .into_response()
}

/// Post one webhook; the HTTP status, or 0 when no answer came back.
pub(crate) async fn post_webhook(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    signature: &str,
) -> u16 {
    let result = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Hub-Signature-256", signature)
        .body(body.to_owned())
        .send()
        .await;
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            // Drain the answer so the connection can be reused.
            let _ = response.bytes().await;
            tracing::info!(status, "sandbox delivered an opt-in webhook");
            status
        }
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "sandbox could not deliver an opt-in webhook");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_facebooks_shape_and_order() {
        let body = optin_webhook_body("P", "L", 1_767_225_600_007);
        assert_eq!(
            body,
            r#"{"object":"page","entry":[{"id":"P","time":1767225600007,"messaging":[{"recipient":{"id":"P"},"timestamp":1767225600007,"optin":{"login_id":"L"}}]}]}"#
        );
        let (object, events) = shared::facebook::webhook::parse_webhook(body.as_bytes()).unwrap();
        assert_eq!(object, "page");
        assert_eq!(
            events,
            vec![shared::facebook::webhook::MessagingEvent::OptIn {
                page_id: "P".into(),
                login_id: "L".into(),
                timestamp: Some(1_767_225_600_007),
            }]
        );
    }
}
