//! Facebook Login, sandbox side: the login dialog (see [`crate::dialog`]) issues codes; this module
//! holds the grants and answers the server-side calls an app makes with them, with Graph's bodies:
//!
//! - `GET /{version}/oauth/access_token?client_id&redirect_uri&client_secret&code` — single-use
//!   codes (10 minutes); used, expired and wrong-redirect codes get code 100 with subcodes
//!   36009 / 36007 / 36008 (reference notes §2.2, §7.6 #16);
//! - `GET /{version}/debug_token?input_token&access_token={app_id}|{app_secret}` (user tokens here,
//!   the Page token's answer in `page_setup`);
//! - `GET /{version}/me?fields=…` and `GET /{version}/me/permissions` — user token and
//!   `appsecret_proof` required, as with "Require App Secret";
//! - `POST /_sandbox/user_token` — mint a user token directly (the JavaScript SDK's login, or a
//!   token of another app), optionally with the opt-in webhook.
//!
//! After "Allow" with `user_messenger_contact`, the sandbox posts the signed `messaging_optins`
//! webhook with `login_id = hex(HMAC-SHA256(client_token, "umc_{asid}_{app_id}_{page_id}"))`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::errors::{
    ACTIVE_TOKEN_REQUIRED, APP_ID_INVALID, CLIENT_SECRET_INVALID, CODE_EXPIRED, CODE_INVALID,
    CODE_REDIRECT_MISMATCH, CODE_USED, GRAPH_METHOD_EXCEPTION, GraphError, INVALID_TOKEN,
    OAUTH_EXCEPTION, OTHER_APP_TOKEN, PROOF_INVALID, PROOF_REQUIRED,
};
use crate::graph_calls::{Params, check_app_token, non_empty, params};
use crate::ids::{now_ms, random_alphanumeric, random_asid};
use crate::state::AppState;
use crate::webhooks::{optin_webhook_body, post_webhook};

pub(crate) const MESSENGER_SCOPE: &str = "user_messenger_contact";
/// How long a code from the dialog may be exchanged.
pub(crate) const CODE_TTL_MS: i64 = 10 * 60_000;
/// `expires_in` of user tokens (about 60 days, as long-lived tokens).
const TOKEN_EXPIRES_IN_S: i64 = 5_183_944;
/// Default delay of the opt-in webhook after "Allow" (Facebook sends it asynchronously).
pub(crate) const DEFAULT_WEBHOOK_DELAY_MS: u64 = 1_000;
/// The first name of the sandbox's person unless another is given.
pub const DEFAULT_FIRST_NAME: &str = "Alex";

/// What a person granted to an app.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub app_id: String,
    pub asid: String,
    pub first_name: String,
    pub granted: Vec<String>,
    pub declined: Vec<String>,
    pub issued_at_ms: i64,
}

struct Code {
    grant: Grant,
    redirect_uri: String,
    expires_at_ms: i64,
    used: bool,
}

/// Codes and tokens issued by the sandbox.
pub(crate) struct OAuthState {
    pub app: Arc<AppState>,
    codes: Mutex<HashMap<String, Code>>,
    tokens: Mutex<HashMap<String, Grant>>,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl OAuthState {
    pub fn new(app: Arc<AppState>) -> Self {
        Self {
            app,
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn issue_code(&self, grant: Grant, redirect_uri: &str, ttl_ms: i64) -> String {
        let code = format!("AQ{}", random_alphanumeric(94));
        guard(&self.codes).insert(
            code.clone(),
            Code {
                expires_at_ms: grant.issued_at_ms.saturating_add(ttl_ms),
                grant,
                redirect_uri: redirect_uri.to_owned(),
                used: false,
            },
        );
        code
    }

    pub fn issue_token(&self, grant: Grant) -> String {
        let token = format!("EAAS{}", random_alphanumeric(120));
        guard(&self.tokens).insert(token.clone(), grant);
        token
    }

    fn token(&self, token: &str) -> Option<Grant> {
        guard(&self.tokens).get(token).cloned()
    }

    /// Exchange a code: Graph's checks in order. A successful exchange uses the code up.
    fn exchange(&self, code: &str, redirect_uri: &str, now: i64) -> Result<Grant, GraphError> {
        let mut codes = guard(&self.codes);
        let Some(entry) = codes.get_mut(code) else {
            return Err(GraphError::invalid_parameter(CODE_INVALID));
        };
        if entry.used {
            return Err(GraphError::invalid_parameter(CODE_USED).with_subcode(36_009));
        }
        if now >= entry.expires_at_ms {
            return Err(GraphError::invalid_parameter(CODE_EXPIRED).with_subcode(36_007));
        }
        if entry.redirect_uri != redirect_uri {
            return Err(GraphError::invalid_parameter(CODE_REDIRECT_MISMATCH).with_subcode(36_008));
        }
        entry.used = true;
        Ok(entry.grant.clone())
    }
}

/// The login_id Facebook gives the Page for this person (the direct-integrator formula).
pub(crate) fn login_id_for(app: &AppState, asid: &str) -> String {
    let c = &app.config;
    shared::facebook::crypto::derive_login_id(&c.client_token, asid, &c.app_id, &c.page_id)
}

/// When the opt-in webhook goes out after "Allow".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WebhookTiming {
    /// Delivered (and awaited) before the dialog redirects back to the app.
    Before,
    /// Delivered in the background after a delay (the default).
    After(Duration),
    /// Not delivered: the caller triggers it with `POST /_sandbox/optin`.
    None,
}

impl WebhookTiming {
    pub fn parse(mode: Option<&str>, delay_ms: Option<u64>) -> Result<Self, String> {
        match mode.unwrap_or("async") {
            "before" => Ok(Self::Before),
            "async" => Ok(Self::After(Duration::from_millis(
                delay_ms.unwrap_or(DEFAULT_WEBHOOK_DELAY_MS).min(60_000),
            ))),
            "none" => Ok(Self::None),
            other => Err(format!(
                "sandbox_webhook must be before, async or none (got {other:?})"
            )),
        }
    }
}

/// Record the opt-in of `asid` and post its signed webhook (per `timing`). Returns the login_id
/// and, when delivered before returning, the webhook's HTTP status (0: no answer).
pub(crate) async fn opt_in_after_allow(
    app: &Arc<AppState>,
    asid: &str,
    timing: WebhookTiming,
) -> (String, Option<u16>) {
    let login_id = login_id_for(app, asid);
    if timing == WebhookTiming::None {
        return (login_id, None);
    }
    // The login_id is messageable from "Allow" on, before its webhook is delivered (Meta's FAQ: it
    // exists before the auth flow finishes), so an app that sends at login (START_AT_LOGIN) can.
    app.record_optin(&login_id, now_ms());
    let Some(url) = app.webhook_url() else {
        tracing::warn!("no webhook URL configured: the opt-in webhook is not sent");
        return (login_id, None);
    };
    let deliver = {
        let app = app.clone();
        let login_id = login_id.clone();
        move || async move {
            let now = now_ms();
            app.record_optin(&login_id, now);
            let body = optin_webhook_body(&app.config.page_id, &login_id, now);
            let signature = shared::facebook::webhook::sign_webhook(
                app.config.app_secret.as_bytes(),
                body.as_bytes(),
            );
            post_webhook(&app.http, &url, &body, &signature).await
        }
    };
    match timing {
        WebhookTiming::Before => (login_id, Some(deliver().await)),
        WebhookTiming::After(delay) => {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                deliver().await;
            });
            (login_id, None)
        }
        WebhookTiming::None => (login_id, None),
    }
}

/// The server-side Login routes; the dialog's (`crate::dialog::routes`) share the same `OAuthState`.
pub(crate) fn routes(state: Arc<OAuthState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/{version}/oauth/access_token", get(access_token))
        .route("/{version}/debug_token", get(debug_token))
        .route("/{version}/me", get(me))
        .route("/{version}/me/permissions", get(permissions))
        .route("/_sandbox/user_token", post(user_token))
        .with_state(state)
}

fn version_ok(path: &Result<Path<String>, PathRejection>, rest: &str) -> Result<(), GraphError> {
    crate::graph_calls::version_ok(path, String::as_str, rest)
}

#[derive(Serialize)]
struct AccessToken {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
}

async fn access_token(
    State(oauth): State<Arc<OAuthState>>,
    path: Result<Path<String>, PathRejection>,
    query: Params,
) -> Response {
    if let Err(e) = version_ok(&path, "oauth/access_token") {
        return e.into_response();
    }
    let q = params(query);
    let config = &oauth.app.config;
    let result = (|| {
        let client_id = non_empty(&q, "client_id")
            .ok_or_else(|| GraphError::new(101, OAUTH_EXCEPTION, "Missing client_id parameter."))?;
        if client_id != config.app_id {
            return Err(GraphError::new(101, OAUTH_EXCEPTION, APP_ID_INVALID));
        }
        let redirect_uri = non_empty(&q, "redirect_uri").ok_or_else(|| {
            GraphError::new(191, OAUTH_EXCEPTION, "Missing redirect_uri parameter.")
        })?;
        if non_empty(&q, "client_secret") != Some(config.app_secret.as_str()) {
            return Err(GraphError::new(1, OAUTH_EXCEPTION, CLIENT_SECRET_INVALID));
        }
        let code = non_empty(&q, "code")
            .ok_or_else(|| GraphError::invalid_parameter("Missing authorization code"))?;
        oauth.exchange(code, redirect_uri, now_ms())
    })();
    match result {
        Ok(grant) => Json(AccessToken {
            access_token: oauth.issue_token(grant),
            token_type: "bearer",
            expires_in: TOKEN_EXPIRES_IN_S,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn debug_token(
    State(oauth): State<Arc<OAuthState>>,
    path: Result<Path<String>, PathRejection>,
    query: Params,
) -> Response {
    if let Err(e) = version_ok(&path, "debug_token") {
        return e.into_response();
    }
    let q = params(query);
    if let Err(e) = check_app_token(&oauth.app.config, &q) {
        return e.into_response();
    }
    let Some(input) = non_empty(&q, "input_token") else {
        return GraphError::invalid_parameter("(#100) The parameter input_token is required")
            .into_response();
    };
    let config = &oauth.app.config;
    // The Page token: what an operator's preflight checks inspect (see `page_setup`).
    if input == config.page_access_token {
        return Json(json!({"data": crate::page_setup::page_token_debug(&oauth.app)}))
            .into_response();
    }
    let Some(grant) = oauth.token(input) else {
        return Json(json!({"data": {
            "error": {"code": 190, "message": INVALID_TOKEN},
            "is_valid": false,
            "scopes": [],
        }}))
        .into_response();
    };
    if grant.app_id != config.app_id {
        return GraphError::invalid_parameter(OTHER_APP_TOKEN).into_response();
    }
    let issued_s = grant.issued_at_ms / 1000;
    let granular: Vec<_> = grant
        .granted
        .iter()
        .filter(|s| s.as_str() == MESSENGER_SCOPE)
        .map(|s| json!({"scope": s, "target_ids": [config.page_id]}))
        .collect();
    Json(json!({"data": {
        "app_id": grant.app_id,
        "type": "USER",
        "application": "Messenger Sandbox App",
        "data_access_expires_at": issued_s + 90 * 86_400,
        "expires_at": issued_s + TOKEN_EXPIRES_IN_S,
        "is_valid": true,
        "issued_at": issued_s,
        "scopes": grant.granted,
        "granular_scopes": granular,
        "user_id": grant.asid,
    }}))
    .into_response()
}

/// A user token with its `appsecret_proof` (required, as with "Require App Secret").
fn check_user_token(oauth: &OAuthState, q: &HashMap<String, String>) -> Result<Grant, GraphError> {
    let Some(token) = non_empty(q, "access_token") else {
        return Err(GraphError::new(
            2500,
            OAUTH_EXCEPTION,
            ACTIVE_TOKEN_REQUIRED,
        ));
    };
    let grant = oauth
        .token(token)
        .ok_or_else(|| GraphError::new(190, OAUTH_EXCEPTION, INVALID_TOKEN))?;
    let expected = shared::facebook::crypto::appsecret_proof(&oauth.app.config.app_secret, token);
    match non_empty(q, "appsecret_proof") {
        None => Err(GraphError::new(100, GRAPH_METHOD_EXCEPTION, PROOF_REQUIRED)),
        Some(p) if !p.eq_ignore_ascii_case(&expected) => {
            Err(GraphError::new(100, GRAPH_METHOD_EXCEPTION, PROOF_INVALID))
        }
        Some(_) => Ok(grant),
    }
}

/// The checks of a call made with a user token: the version, then the token and its proof.
fn user_call(
    oauth: &OAuthState,
    path: &Result<Path<String>, PathRejection>,
    query: Params,
    rest: &str,
) -> Result<(HashMap<String, String>, Grant), GraphError> {
    version_ok(path, rest)?;
    let q = params(query);
    let grant = check_user_token(oauth, &q)?;
    Ok((q, grant))
}

async fn me(
    State(oauth): State<Arc<OAuthState>>,
    path: Result<Path<String>, PathRejection>,
    query: Params,
) -> Response {
    let (q, grant) = match user_call(&oauth, &path, query, "me") {
        Ok(call) => call,
        Err(e) => return e.into_response(),
    };
    let fields = q.get("fields").map_or("id,name", String::as_str);
    let mut out = serde_json::Map::new();
    for field in fields.split(',').map(str::trim) {
        let value = match field {
            "id" => grant.asid.clone(),
            "first_name" => grant.first_name.clone(),
            "last_name" => "Sandbox".to_owned(),
            "name" => format!("{} Sandbox", grant.first_name),
            "" => continue,
            other => {
                return GraphError::invalid_parameter(format!(
                    "(#100) Tried accessing nonexisting field ({other}) on node type (User)"
                ))
                .into_response();
            }
        };
        out.insert(field.to_owned(), value.into());
    }
    out.insert("id".to_owned(), grant.asid.into());
    Json(serde_json::Value::Object(out)).into_response()
}

async fn permissions(
    State(oauth): State<Arc<OAuthState>>,
    path: Result<Path<String>, PathRejection>,
    query: Params,
) -> Response {
    let (_, grant) = match user_call(&oauth, &path, query, "me/permissions") {
        Ok(call) => call,
        Err(e) => return e.into_response(),
    };
    let rows: Vec<_> = grant
        .granted
        .iter()
        .map(|p| json!({"permission": p, "status": "granted"}))
        .chain(
            grant
                .declined
                .iter()
                .map(|p| json!({"permission": p, "status": "declined"})),
        )
        .collect();
    Json(json!({"data": rows})).into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UserTokenRequest {
    app_id: Option<String>,
    asid: Option<String>,
    first_name: Option<String>,
    /// `allow` (default) or `decline` the Messenger permission.
    messenger: Option<String>,
    /// `before` (default here), `async` or `none`.
    webhook: Option<String>,
}

/// `POST /_sandbox/user_token`: what the JavaScript SDK's `FB.login` leaves in the browser.
async fn user_token(State(oauth): State<Arc<OAuthState>>, body: Bytes) -> Response {
    let request: UserTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        UserTokenRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return GraphError::sandbox(
                    StatusCode::BAD_REQUEST,
                    format!("invalid request: {e}"),
                )
                .into_response();
            }
        }
    };
    let allow = match request.messenger.as_deref() {
        None | Some("allow") => true,
        Some("decline") => false,
        Some(other) => {
            return GraphError::sandbox(
                StatusCode::BAD_REQUEST,
                format!("messenger must be allow or decline (got {other:?})"),
            )
            .into_response();
        }
    };
    let timing =
        match WebhookTiming::parse(Some(request.webhook.as_deref().unwrap_or("before")), None) {
            Ok(t) => t,
            Err(e) => return GraphError::sandbox(StatusCode::BAD_REQUEST, e).into_response(),
        };
    let app = &oauth.app;
    let app_id = request.app_id.unwrap_or_else(|| app.config.app_id.clone());
    let asid = request.asid.unwrap_or_else(random_asid);
    let ours = app_id == app.config.app_id;
    let grant = Grant {
        app_id,
        asid: asid.clone(),
        first_name: request
            .first_name
            .unwrap_or_else(|| DEFAULT_FIRST_NAME.to_owned()),
        granted: std::iter::once("public_profile".to_owned())
            .chain(allow.then(|| MESSENGER_SCOPE.to_owned()))
            .collect(),
        declined: (!allow)
            .then(|| MESSENGER_SCOPE.to_owned())
            .into_iter()
            .collect(),
        issued_at_ms: now_ms(),
    };
    let access_token = oauth.issue_token(grant);
    let (login_id, webhook_status) = if allow && ours {
        let (id, status) = opt_in_after_allow(app, &asid, timing).await;
        (Some(id), status)
    } else {
        (None, None)
    };
    Json(json!({
        "access_token": access_token,
        "asid": asid,
        "login_id": login_id,
        "webhook_status": webhook_status,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            app_id: "1".into(),
            asid: "42".into(),
            first_name: "Ana".into(),
            granted: vec!["public_profile".into()],
            declined: vec![],
            issued_at_ms: 1_000,
        }
    }

    #[test]
    fn codes_are_single_use_expire_and_need_the_same_redirect() {
        let oauth = OAuthState::new(Arc::new(
            AppState::new(crate::SandboxConfig::default()).unwrap(),
        ));
        let code = oauth.issue_code(grant(), "https://app/cb", CODE_TTL_MS);
        let sub = |r: Result<Grant, GraphError>| r.err().and_then(|e| e.subcode);
        assert_eq!(
            sub(oauth.exchange(&code, "https://app/other", 2_000)),
            Some(36_008)
        );
        assert_eq!(
            sub(oauth.exchange(&code, "https://app/cb", 1_000 + CODE_TTL_MS)),
            Some(36_007)
        );
        assert_eq!(
            oauth.exchange(&code, "https://app/cb", 2_000).unwrap().asid,
            "42"
        );
        assert_eq!(
            sub(oauth.exchange(&code, "https://app/cb", 2_000)),
            Some(36_009)
        );
        let unknown = oauth.exchange("nope", "https://app/cb", 2_000).unwrap_err();
        assert_eq!(
            (unknown.code, unknown.message.as_str()),
            (100, CODE_INVALID)
        );
    }

    #[test]
    fn webhook_timing_parses() {
        assert_eq!(
            WebhookTiming::parse(Some("before"), None),
            Ok(WebhookTiming::Before)
        );
        assert_eq!(
            WebhookTiming::parse(Some("none"), None),
            Ok(WebhookTiming::None)
        );
        assert_eq!(
            WebhookTiming::parse(None, None),
            Ok(WebhookTiming::After(Duration::from_millis(
                DEFAULT_WEBHOOK_DELAY_MS
            )))
        );
        assert_eq!(
            WebhookTiming::parse(Some("async"), Some(5)),
            Ok(WebhookTiming::After(Duration::from_millis(5)))
        );
        assert!(WebhookTiming::parse(Some("later"), None).is_err());
        let asid = random_asid();
        assert_eq!(asid.len(), 16);
        assert!(asid.bytes().all(|b| b.is_ascii_digit()));
    }
}
