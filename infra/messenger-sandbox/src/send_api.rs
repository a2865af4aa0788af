//! The Send API: `POST /{version}/{page_id}/messages` and `POST /{version}/me/messages`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::errors::{
    GRAPH_METHOD_EXCEPTION, GraphError, INVALID_PARAMETER, INVALID_TOKEN, NO_MATCHING_USER,
    OAUTH_EXCEPTION, OUTSIDE_WINDOW, PROOF_INVALID, PROOF_REQUIRED, TAG_ON_LOGIN_ID,
};
use crate::ids::{is_graph_version, now_ms, random_alphanumeric};
use crate::state::{AppState, InboxMessage};

pub(crate) const MAX_TEXT_CHARS: usize = 2000;
const MESSAGING_TYPES: [&str; 3] = ["RESPONSE", "UPDATE", "MESSAGE_TAG"];
const NOTIFICATION_TYPES: [&str; 3] = ["REGULAR", "SILENT_PUSH", "NO_PUSH"];
/// The recipient kinds Graph accepts; the sandbox only knows `login_id` recipients.
const RECIPIENT_KINDS: [&str; 5] = [
    "login_id",
    "id",
    "user_ref",
    "phone_number",
    "notification_messages_token",
];

pub(crate) fn routes() -> Router<Arc<AppState>> {
    // `me` is matched by `{page_id}` and accepted as an alias of the sandbox Page.
    Router::new().route("/{version}/{page_id}/messages", post(send_message))
}

#[derive(Serialize)]
struct SendResponse {
    message_id: String,
}

async fn send_message(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Response {
    let Ok(Path((version, page_id))) = path else {
        return GraphError::invalid_parameter(INVALID_PARAMETER).into_response();
    };
    if !is_graph_version(&version) {
        return crate::errors::unknown_path(&format!("/{version}/{page_id}/messages"))
            .into_response();
    }
    let query = query.map(|Query(q)| q).unwrap_or_default();
    // A held person's call waits here, unanswered, until released; then Graph's checks run.
    let recipient = serde_json::from_slice::<Value>(&body).ok().and_then(|b| {
        let b = b.as_object()?;
        let r = object_field(b, "recipient")?;
        match non_empty_str(&r, "login_id") {
            Some(login_id) => Some(login_id.to_owned()),
            // A PSID's person is held by their login_id too.
            None => state
                .conversation(non_empty_str(&r, "id")?)
                .map(|c| c.login_id),
        }
    });
    state.holds.wait_until_released(recipient.as_deref()).await;
    match handle(&state, &page_id, &query, &body) {
        Ok(message_id) => Json(SendResponse { message_id }).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A parameter from the query string or, failing that, a string field of the JSON body.
fn param<'a>(
    query: &'a HashMap<String, String>,
    body: Option<&'a Map<String, Value>>,
    name: &str,
) -> Option<&'a str> {
    query
        .get(name)
        .map(String::as_str)
        .or_else(|| body.and_then(|b| b.get(name)).and_then(Value::as_str))
}

/// An object field; clients that form-encode send objects as JSON strings, accept both.
fn object_field(body: &Map<String, Value>, name: &str) -> Option<Map<String, Value>> {
    match body.get(name)? {
        Value::Object(o) => Some(o.clone()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        },
        _ => None,
    }
}

fn non_empty_str<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    o.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Run Graph's checks in order; on success record the message and return its id.
fn handle(
    state: &AppState,
    page_id: &str,
    query: &HashMap<String, String>,
    raw_body: &[u8],
) -> Result<String, GraphError> {
    let config = &state.config;
    let parsed: Option<Value> = serde_json::from_slice(raw_body).ok();
    let body = parsed.as_ref().and_then(Value::as_object);

    // 1. Token.
    let token = param(query, body, "access_token");
    if token != Some(config.page_access_token.as_str()) {
        return Err(GraphError::new(190, OAUTH_EXCEPTION, INVALID_TOKEN));
    }
    // An expired or invalidated Page token (`/_sandbox/page_token`) is refused as Graph does.
    if let Some(e) = crate::graph_calls::page_token_state_error(state.setup.get().page_token) {
        return Err(e);
    }
    // 2. appsecret_proof.
    let expected =
        shared::facebook::crypto::appsecret_proof(&config.app_secret, &config.page_access_token);
    match param(query, body, "appsecret_proof") {
        None => return Err(GraphError::new(100, GRAPH_METHOD_EXCEPTION, PROOF_REQUIRED)),
        Some(p) if !p.eq_ignore_ascii_case(&expected) => {
            return Err(GraphError::new(100, GRAPH_METHOD_EXCEPTION, PROOF_INVALID));
        }
        Some(_) => {}
    }
    // 3. Page.
    if page_id != "me" && page_id != config.page_id {
        return Err(GraphError::invalid_parameter(INVALID_PARAMETER));
    }
    // 4. Body.
    let body = body.ok_or_else(|| GraphError::invalid_parameter(INVALID_PARAMETER))?;
    let messaging_type = match body.get("messaging_type").and_then(Value::as_str) {
        None => {
            return Err(GraphError::invalid_parameter(
                "(#100) The parameter messaging_type is required",
            ));
        }
        Some(t) if !MESSAGING_TYPES.contains(&t) => {
            return Err(GraphError::invalid_parameter(
                "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}",
            ));
        }
        Some(t) => t,
    };
    let recipient = object_field(body, "recipient").ok_or_else(|| {
        GraphError::invalid_parameter("(#100) The parameter recipient is required")
    })?;
    let kinds: Vec<&str> = RECIPIENT_KINDS
        .into_iter()
        .filter(|k| non_empty_str(&recipient, k).is_some())
        .collect();
    if kinds.len() != 1 {
        return Err(GraphError::invalid_parameter(
            "(#100) Invalid parameter: recipient must have exactly one of id, login_id, user_ref, phone_number, notification_messages_token",
        ));
    }
    let message = object_field(body, "message").ok_or_else(|| {
        GraphError::invalid_parameter(
            "(#100) Message cannot be empty, must provide valid attachment or text",
        )
    })?;
    let text = non_empty_str(&message, "text").ok_or_else(|| {
        GraphError::invalid_parameter(
            "(#100) Message cannot be empty, must provide valid attachment or text",
        )
    })?;
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(GraphError::invalid_parameter(format!(
            "(#100) Length of param message[text] must be less than or equal to {MAX_TEXT_CHARS}"
        )));
    }
    if let Some(n) = body.get("notification_type")
        && !n.as_str().is_some_and(|n| NOTIFICATION_TYPES.contains(&n))
    {
        return Err(GraphError::invalid_parameter(
            "(#100) Param notification_type must be one of {REGULAR, SILENT_PUSH, NO_PUSH}",
        ));
    }
    if let Some(psid) = non_empty_str(&recipient, "id") {
        return send_to_psid(state, psid, body, messaging_type, text);
    }
    let Some(login_id) = non_empty_str(&recipient, "login_id") else {
        // user_refs, phone numbers: the sandbox knows no such person.
        return Err(GraphError::invalid_parameter(NO_MATCHING_USER).with_subcode(2_018_001));
    };
    // 5. No tags for the initial message to a login_id.
    let has_tag = body.get("tag").is_some_and(|t| !t.is_null());
    if messaging_type == "MESSAGE_TAG" || has_tag {
        return Err(GraphError::invalid_parameter(TAG_ON_LOGIN_ID));
    }
    // 6. Known login_id, inside the window.
    let optin = state
        .optin(login_id)
        .ok_or_else(|| GraphError::invalid_parameter(NO_MATCHING_USER).with_subcode(2_018_001))?;
    let now = now_ms();
    if now >= optin.opted_in_at_ms.saturating_add(config.optin_window_ms) {
        return Err(GraphError::new(10, OAUTH_EXCEPTION, OUTSIDE_WINDOW).with_subcode(2_018_278));
    }
    let message_id = format!("m_{}", random_alphanumeric(48));
    state.push_message(InboxMessage {
        message_id: message_id.clone(),
        page_id: config.page_id.clone(),
        login_id: login_id.to_owned(),
        text: text.to_owned(),
        messaging_type: messaging_type.to_owned(),
        received_at_ms: now,
        opted_in_at_ms: optin.opted_in_at_ms,
    });
    tracing::info!(%message_id, messaging_type, "sandbox received a message");
    Ok(message_id)
}

/// A message to a PSID (`recipient.id`, a person who wrote to the Page): inside Meta's standard
/// window (24 hours after the person's last message), or the `HUMAN_AGENT` tag's 7 days with
/// `messaging_type: MESSAGE_TAG`, `tag: HUMAN_AGENT`; after it, Graph's `10`/`2018278`.
fn send_to_psid(
    state: &AppState,
    psid: &str,
    body: &Map<String, Value>,
    messaging_type: &str,
    text: &str,
) -> Result<String, GraphError> {
    let config = &state.config;
    let person = state
        .conversation(psid)
        .ok_or_else(|| GraphError::invalid_parameter(NO_MATCHING_USER).with_subcode(2_018_001))?;
    let human_agent = messaging_type == "MESSAGE_TAG"
        && body.get("tag").and_then(Value::as_str) == Some("HUMAN_AGENT");
    let window = if human_agent {
        config.human_agent_window_ms
    } else {
        config.reply_window_ms
    };
    let now = now_ms();
    if now >= person.last_message_at_ms.saturating_add(window) {
        return Err(GraphError::new(10, OAUTH_EXCEPTION, OUTSIDE_WINDOW).with_subcode(2_018_278));
    }
    let message_id = format!("m_{}", random_alphanumeric(48));
    state.push_message(InboxMessage {
        message_id: message_id.clone(),
        page_id: config.page_id.clone(),
        login_id: person.login_id.clone(),
        text: text.to_owned(),
        messaging_type: messaging_type.to_owned(),
        received_at_ms: now,
        opted_in_at_ms: state
            .optin(&person.login_id)
            .map_or(0, |o| o.opted_in_at_ms),
    });
    tracing::info!(%message_id, messaging_type, "sandbox received a message to a PSID");
    Ok(message_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_may_be_json_strings() {
        let body: Map<String, Value> = serde_json::from_str(
            r#"{"recipient":"{\"login_id\":\"abc\"}","message":{"text":"hi"},"bad":"[1]"}"#,
        )
        .unwrap();
        assert_eq!(
            object_field(&body, "recipient").and_then(|o| o.get("login_id").cloned()),
            Some(Value::from("abc"))
        );
        assert!(object_field(&body, "message").is_some());
        assert!(object_field(&body, "bad").is_none());
        assert!(object_field(&body, "missing").is_none());
    }
}
