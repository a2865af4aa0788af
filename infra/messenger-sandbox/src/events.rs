//! What a person or Facebook does after the opt-in, sent to the app as Facebook would:
//! - `POST /_sandbox/message`      the person writes to the Page (signed `messages` webhook, with
//!   their PSID and the `prior_message` link to their login_id);
//! - `POST /_sandbox/policy`       Page policy enforcement (`block`, `unblock`, `warning`);
//! - `POST /_sandbox/notification-status`  a `messaging_optins` notification status change;
//! - `POST /_sandbox/deauthorize`  the person removes the app (form `signed_request`);
//! - `POST /_sandbox/data-deletion` the person asks for their data to be deleted.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use crate::errors::GraphError;
use crate::ids::{now_ms, random_alphanumeric};
use crate::state::{AppState, PersonAct, PersonEvent};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_sandbox/message", post(message))
        .route("/_sandbox/policy", post(policy))
        .route("/_sandbox/notification-status", post(notification_status))
        .route("/_sandbox/deauthorize", post(deauthorize))
        .route("/_sandbox/data-deletion", post(data_deletion))
}

/// The PSID Facebook gives the person behind `login_id` for this Page (stable, numeric).
pub fn psid_for(app_secret: &str, login_id: &str) -> String {
    let digest = shared::facebook::crypto::hmac_sha256_hex(
        app_secret.as_bytes(),
        format!("psid:{login_id}").as_bytes(),
    );
    let n = u64::from_str_radix(&digest[..15], 16).unwrap_or(0);
    format!("{}", 1_000_000_000_000_000 + n % 8_000_000_000_000_000)
}

fn bad_request(message: impl Into<String>) -> Response {
    GraphError::sandbox(StatusCode::BAD_REQUEST, message).into_response()
}

fn parse<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))
}

/// Sign and post a messaging webhook with one item; answer what was sent and how the app answered.
async fn deliver_messaging(state: &AppState, item: serde_json::Value) -> Response {
    let Some(url) = state.webhook_url() else {
        return GraphError::sandbox(StatusCode::CONFLICT, "no webhook URL is configured")
            .into_response();
    };
    let config = &state.config;
    let now = now_ms();
    let body = serde_json::json!({
        "object": "page",
        "entry": [{"id": config.page_id, "time": now, "messaging": [item]}],
    })
    .to_string();
    let signature =
        shared::facebook::webhook::sign_webhook(config.app_secret.as_bytes(), body.as_bytes());
    let status = match state
        .http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Hub-Signature-256", &signature)
        .body(body.clone())
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    };
    Json(serde_json::json!({"body": body, "signature": signature, "webhook_status": status}))
        .into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MessageRequest {
    login_id: Option<String>,
    text: Option<String>,
    /// Leave out the `prior_message` link (a person who never opted in through Login Connect).
    unlinked: Option<bool>,
}

async fn message(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: MessageRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(login_id) = request.login_id.filter(|l| !l.is_empty()) else {
        return bad_request("login_id is required");
    };
    let config = &state.config;
    let psid = psid_for(&config.app_secret, &login_id);
    let text = request.text.unwrap_or_else(|| "Hi!".into());
    let now = now_ms();
    let mut item = serde_json::json!({
        "sender": {"id": psid},
        "recipient": {"id": config.page_id},
        "timestamp": now,
        "message": {"mid": format!("m_{}", random_alphanumeric(32)), "text": text},
    });
    if request.unlinked != Some(true) {
        item["prior_message"] =
            serde_json::json!({"source": "login_connect", "identifier": login_id});
    }
    // Meta's messaging window for messages to this PSID runs from here, whatever the app's
    // webhook answers (only a configured webhook means the person could write at all).
    if state.webhook_url().is_some() {
        state.record_person_message(&psid, &login_id, now);
    }
    let mut response = deliver_messaging(&state, item).await;
    if response.status() == StatusCode::OK {
        // The inbox page shows the person's side of the conversation too.
        state.push_person_event(PersonEvent {
            login_id,
            at_ms: now,
            act: PersonAct::Wrote(text),
        });
        // Tell the caller the PSID, too.
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        json["psid"] = serde_json::json!(psid);
        response = (parts.status, Json(json)).into_response();
    }
    response
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PolicyRequest {
    action: Option<String>,
    reason: Option<String>,
}

async fn policy(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: PolicyRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let action = request.action.unwrap_or_default();
    if !matches!(action.as_str(), "block" | "unblock" | "warning") {
        return bad_request("action must be block, unblock or warning");
    }
    let mut enforcement = serde_json::json!({"action": action});
    // Facebook sends no reason on unblock.
    if action != "unblock" {
        enforcement["reason"] = serde_json::json!(
            request
                .reason
                .unwrap_or_else(|| "The Page violated the Messenger policies.".into())
        );
    }
    let item = serde_json::json!({
        "recipient": {"id": state.config.page_id},
        "timestamp": now_ms(),
        "policy_enforcement": enforcement,
    });
    let response = deliver_messaging(&state, item).await;
    if response.status() == StatusCode::OK {
        state.set_policy(&action);
    }
    response
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NotificationStatusRequest {
    login_id: Option<String>,
    status: Option<String>,
}

async fn notification_status(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: NotificationStatusRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(login_id) = request.login_id.filter(|l| !l.is_empty()) else {
        return bad_request("login_id is required");
    };
    let status = request
        .status
        .unwrap_or_else(|| "STOP NOTIFICATIONS".into());
    let now = now_ms();
    let item = serde_json::json!({
        "sender": {"id": psid_for(&state.config.app_secret, &login_id)},
        "recipient": {"id": state.config.page_id},
        "timestamp": now,
        "optin": {
            "type": "notification_messages",
            "notification_messages_status": status,
        },
    });
    let response = deliver_messaging(&state, item).await;
    if response.status() == StatusCode::OK {
        state.push_person_event(PersonEvent {
            login_id,
            at_ms: now,
            act: PersonAct::NotificationStatus(status),
        });
    }
    response
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SignedRequestCall {
    /// The person's app-scoped user id.
    asid: Option<String>,
    /// Override `issued_at` (seconds), e.g. to send a stale request.
    issued_at: Option<i64>,
    /// Sign with another secret (a forged request).
    forge: Option<bool>,
}

async fn deauthorize(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    send_signed_request(&state, &body, "/facebook/deauthorize", false).await
}

async fn data_deletion(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    send_signed_request(&state, &body, "/facebook/data-deletion", true).await
}

/// POST `signed_request` (form-encoded) to the app's callback, as Facebook does.
async fn send_signed_request(
    state: &AppState,
    body: &Bytes,
    path: &str,
    deletion: bool,
) -> Response {
    let request: SignedRequestCall = match parse(body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(asid) = request.asid.filter(|a| !a.is_empty()) else {
        return bad_request("asid is required");
    };
    // The app's callbacks live beside its webhook: on the same host and, when the webhook URL
    // ends in `/webhooks/messenger`, under the same prefix (the app's secret path segment).
    let Some(origin) = state.webhook_url().and_then(|u| {
        let parsed = reqwest::Url::parse(&u).ok()?;
        Some(match parsed.path().strip_suffix("/webhooks/messenger") {
            Some(prefix) => format!("{}{prefix}", parsed.origin().ascii_serialization()),
            None => parsed.origin().ascii_serialization(),
        })
    }) else {
        return GraphError::sandbox(StatusCode::CONFLICT, "no webhook URL is configured")
            .into_response();
    };
    let issued_at = request.issued_at.unwrap_or(now_ms() / 1000);
    let mut payload =
        serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": issued_at, "user_id": asid});
    if deletion {
        payload["expires"] = serde_json::json!(issued_at + 3600);
    } else {
        payload["user"] = serde_json::json!({"country": "us", "locale": "en_US"});
    }
    let secret = if request.forge == Some(true) {
        "forged-secret"
    } else {
        state.config.app_secret.as_str()
    };
    let signed = shared::facebook::signed_request::sign_request(secret.as_bytes(), &payload);
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("signed_request", &signed)
        .finish();
    let result = state
        .http
        .post(format!("{origin}{path}"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await;
    let (status, answer) = match result {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or(serde_json::Value::String(text)),
            )
        }
        Err(_) => (0, serde_json::Value::Null),
    };
    Json(serde_json::json!({"signed_request": signed, "status": status, "answer": answer}))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psids_are_stable_numeric_and_distinct() {
        let a = psid_for("s", "login-a");
        assert_eq!(a, psid_for("s", "login-a"));
        assert_ne!(a, psid_for("s", "login-b"));
        assert!(a.len() >= 16 && a.bytes().all(|b| b.is_ascii_digit()));
    }
}
