//! The Graph calls an operator's preflight checks (`ops doctor`) make, with Graph's bodies:
//!
//! - `debug_token` of the Page token (the route is in `oauth`; its answer is [`page_token_debug`]):
//!   `type: PAGE`, `profile_id` = the Page, `scopes`, `expires_at` (0: never), or `is_valid: false`
//!   with the error when the token expired (190/463) or was invalidated (190/460);
//! - `GET /{version}/{page_id}/subscribed_apps` (Page token): `{"data":[{"id","name",
//!   "subscribed_fields":[…]}]}`, empty when the Page has not subscribed the app;
//! - `POST /{version}/{page_id}/subscribed_apps?subscribed_fields=a,b` (Page token): subscribes
//!   the app with exactly those fields, `{"success":true}`;
//! - `GET /{version}/{app_id}/subscriptions` (app token): `{"data":[{"object":"page",
//!   "callback_url","active","fields":[{"name","version"}]}]}`.
//!
//! And the switches that break one thing each (see `setup`):
//! - `GET|PUT|DELETE /_sandbox/page_token`: `{"state":"valid|expired|invalidated"}`, optionally
//!   `"scopes":[…]` and `"expires_in_seconds":N` (`null`: never); DELETE restores a valid token;
//! - `GET|PUT|DELETE /_sandbox/subscriptions`: any of `"page_subscribed":false`,
//!   `"page_fields":[…]`, `"app_active":false`, `"app_fields":[…]`, `"callback_url":"…"` (the
//!   webhook URL itself); DELETE restores the product's subscription (not the callback URL).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::{
    APP_TOKEN_REQUIRED, GraphError, OAUTH_EXCEPTION, SUBSCRIBED_FIELDS_REQUIRED, TOKEN_EXPIRED,
    TOKEN_INVALIDATED, unknown_path,
};
use crate::graph_calls::{
    Params, check_app_token, check_page_token, non_empty, params, version_ok,
};
use crate::ids::now_ms;
use crate::setup::{PageTokenState, Setup};
use crate::state::AppState;

/// The `page` webhook fields Graph knows (a field outside them is refused, as by Graph).
const KNOWN_FIELDS: [&str; 14] = [
    "messages",
    "messaging_optins",
    "messaging_policy_enforcement",
    "messaging_postbacks",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "messaging_referrals",
    "messaging_handovers",
    "standby",
    "message_reactions",
    "messaging_account_linking",
    "messaging_optouts",
    "feed",
];

/// The Page admin who generated the Page token (`debug_token`'s `user_id`).
const PAGE_ADMIN_USER_ID: &str = "300000000000003";

pub(crate) fn routes() -> Router<Arc<AppState>> {
    // `{page_id}` is the app id on `/subscriptions`: one parameter name per position (matchit).
    Router::new()
        .route(
            "/{version}/{page_id}/subscribed_apps",
            get(subscribed_apps).post(subscribe_app),
        )
        .route("/{version}/{page_id}/subscriptions", get(app_subscriptions))
        .route(
            "/_sandbox/page_token",
            get(get_page_token)
                .put(put_page_token)
                .delete(reset_page_token),
        )
        .route(
            "/_sandbox/subscriptions",
            get(get_subscriptions)
                .put(put_subscriptions)
                .delete(reset_subscriptions),
        )
}

/// `debug_token`'s `data` for the Page token, in the token's current state.
pub(crate) fn page_token_debug(app: &AppState) -> Value {
    let config = &app.config;
    let setup = app.setup.get();
    let now_s = now_ms() / 1000;
    let granular: Vec<Value> = setup
        .page_token_scopes
        .iter()
        .map(|s| json!({"scope": s, "target_ids": [config.page_id]}))
        .collect();
    let mut data = json!({
        "app_id": config.app_id,
        "type": "PAGE",
        "application": config.app_name,
        "data_access_expires_at": now_s + 90 * 86_400,
        "expires_at": setup.page_token_expires_in_s.map_or(0, |s| now_s + s),
        "is_valid": true,
        "issued_at": now_s - 30 * 86_400,
        "profile_id": config.page_id,
        "scopes": setup.page_token_scopes,
        "granular_scopes": granular,
        "user_id": PAGE_ADMIN_USER_ID,
    });
    let error = match setup.page_token {
        PageTokenState::Valid => None,
        PageTokenState::Expired => {
            data["expires_at"] = json!(now_s - 86_400);
            Some((463, TOKEN_EXPIRED))
        }
        PageTokenState::Invalidated => Some((460, TOKEN_INVALIDATED)),
    };
    if let Some((subcode, message)) = error {
        data["is_valid"] = json!(false);
        data["error"] = json!({"code": 190, "message": message, "subcode": subcode});
    }
    data
}

type PagePath = Result<Path<(String, String)>, PathRejection>;

/// The checks of a Page call: version, the Page, the Page token.
fn page_call(
    app: &AppState,
    path: &PagePath,
    q: &HashMap<String, String>,
) -> Result<(), GraphError> {
    version_ok(path, |(v, _)| v.as_str(), "subscribed_apps")?;
    if let Ok(Path((version, page_id))) = path
        && page_id != &app.config.page_id
    {
        return Err(unknown_path(&format!(
            "/{version}/{page_id}/subscribed_apps"
        )));
    }
    check_page_token(&app.config, app.setup.get().page_token, q)
}

fn subscribed_app(app: &AppState, setup: &Setup) -> Vec<Value> {
    if !setup.page_subscribed {
        return Vec::new();
    }
    vec![json!({
        "category": "Business",
        "link": format!("https://www.facebook.com/games/?app_id={}", app.config.app_id),
        "name": app.config.app_name,
        "id": app.config.app_id,
        "subscribed_fields": setup.page_fields,
    })]
}

async fn subscribed_apps(
    State(app): State<Arc<AppState>>,
    path: PagePath,
    query: Params,
) -> Response {
    let q = params(query);
    if let Err(e) = page_call(&app, &path, &q) {
        return e.into_response();
    }
    Json(json!({"data": subscribed_app(&app, &app.setup.get())})).into_response()
}

/// `subscribed_fields` from the query or a form body: `a,b` or a JSON array.
fn requested_fields(q: &HashMap<String, String>, body: &Bytes) -> Option<Vec<String>> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let raw =
        non_empty(q, "subscribed_fields").or_else(|| non_empty(&form, "subscribed_fields"))?;
    let list: Vec<String> = match serde_json::from_str::<Vec<String>>(raw) {
        Ok(list) => list,
        Err(_) => raw.split(',').map(|f| f.trim().to_owned()).collect(),
    };
    let list: Vec<String> = list.into_iter().filter(|f| !f.is_empty()).collect();
    (!list.is_empty()).then_some(list)
}

async fn subscribe_app(
    State(app): State<Arc<AppState>>,
    path: PagePath,
    query: Params,
    body: Bytes,
) -> Response {
    let q = params(query);
    if let Err(e) = page_call(&app, &path, &q) {
        return e.into_response();
    }
    let Some(fields) = requested_fields(&q, &body) else {
        return GraphError::invalid_parameter(SUBSCRIBED_FIELDS_REQUIRED).into_response();
    };
    if let Some((i, bad)) = fields
        .iter()
        .enumerate()
        .find(|(_, f)| !KNOWN_FIELDS.contains(&f.as_str()))
    {
        return GraphError::invalid_parameter(format!(
            "(#100) Param subscribed_fields[{i}] must be one of {{{}}} - got \"{bad}\"",
            KNOWN_FIELDS.join(", ")
        ))
        .into_response();
    }
    app.setup.update(|s| {
        s.page_subscribed = true;
        s.page_fields = fields;
    });
    Json(json!({"success": true})).into_response()
}

async fn app_subscriptions(
    State(app): State<Arc<AppState>>,
    path: PagePath,
    query: Params,
) -> Response {
    let q = params(query);
    let checked = version_ok(&path, |(v, _)| v.as_str(), "subscriptions").and_then(|()| {
        if non_empty(&q, "access_token") == Some(app.config.page_access_token.as_str()) {
            // A Page token where Graph wants the app's.
            return Err(GraphError::new(15, OAUTH_EXCEPTION, APP_TOKEN_REQUIRED));
        }
        check_app_token(&app.config, &q)
    });
    if let Err(e) = checked {
        return e.into_response();
    }
    let Ok(Path((version, app_id))) = path else {
        return unknown_path("/subscriptions").into_response();
    };
    if app_id != app.config.app_id {
        return unknown_path(&format!("/{version}/{app_id}/subscriptions")).into_response();
    }
    let setup = app.setup.get();
    let data: Vec<Value> = app
        .webhook_url()
        .map(|callback_url| {
            let fields: Vec<Value> = setup
                .app_fields
                .iter()
                .map(|f| json!({"name": f, "version": version}))
                .collect();
            json!({
                "object": "page",
                "callback_url": callback_url,
                "active": setup.app_active,
                "fields": fields,
            })
        })
        .into_iter()
        .collect();
    Json(json!({"data": data})).into_response()
}

// The switches.

fn bad_request(message: impl Into<String>) -> Response {
    GraphError::sandbox(StatusCode::BAD_REQUEST, message).into_response()
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid request: {e}"))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PageTokenSwitch {
    #[serde(default)]
    state: Option<PageTokenState>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// Present with `null`: never expires.
    #[serde(default, with = "serde_with_null")]
    expires_in_seconds: Option<Option<i64>>,
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
mod serde_with_null {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        Option::<i64>::deserialize(d).map(Some)
    }
}

fn page_token_view(setup: &Setup) -> Json<Value> {
    Json(json!({
        "state": setup.page_token,
        "scopes": setup.page_token_scopes,
        "expires_in_seconds": setup.page_token_expires_in_s,
    }))
}

async fn get_page_token(State(app): State<Arc<AppState>>) -> Json<Value> {
    page_token_view(&app.setup.get())
}

async fn put_page_token(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let switch: PageTokenSwitch = match parse_body(&body) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    let setup = app.setup.update(|s| {
        if let Some(state) = switch.state {
            s.page_token = state;
        }
        if let Some(scopes) = switch.scopes {
            s.page_token_scopes = scopes;
        }
        if let Some(expires) = switch.expires_in_seconds {
            s.page_token_expires_in_s = expires;
        }
    });
    page_token_view(&setup).into_response()
}

async fn reset_page_token(State(app): State<Arc<AppState>>) -> Json<Value> {
    let fresh = Setup::default();
    let setup = app.setup.update(|s| {
        s.page_token = fresh.page_token;
        s.page_token_scopes = fresh.page_token_scopes;
        s.page_token_expires_in_s = fresh.page_token_expires_in_s;
    });
    page_token_view(&setup)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SubscriptionsSwitch {
    #[serde(default)]
    page_subscribed: Option<bool>,
    #[serde(default)]
    page_fields: Option<Vec<String>>,
    #[serde(default)]
    app_active: Option<bool>,
    #[serde(default)]
    app_fields: Option<Vec<String>>,
    #[serde(default)]
    callback_url: Option<String>,
}

fn subscriptions_view(app: &AppState, setup: &Setup) -> Json<Value> {
    Json(json!({
        "page_subscribed": setup.page_subscribed,
        "page_fields": setup.page_fields,
        "app_active": setup.app_active,
        "app_fields": setup.app_fields,
        "callback_url": app.webhook_url(),
    }))
}

async fn get_subscriptions(State(app): State<Arc<AppState>>) -> Json<Value> {
    subscriptions_view(&app, &app.setup.get())
}

async fn put_subscriptions(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let switch: SubscriptionsSwitch = match parse_body(&body) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    if let Some(url) = &switch.callback_url {
        let valid = reqwest::Url::parse(url).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
        if !valid {
            return bad_request("callback_url must be an http(s) URL");
        }
        app.set_webhook_url(Some(url.clone()));
    }
    let setup = app.setup.update(|s| {
        if let Some(v) = switch.page_subscribed {
            s.page_subscribed = v;
        }
        if let Some(v) = switch.page_fields {
            s.page_fields = v;
        }
        if let Some(v) = switch.app_active {
            s.app_active = v;
        }
        if let Some(v) = switch.app_fields {
            s.app_fields = v;
        }
    });
    subscriptions_view(&app, &setup).into_response()
}

async fn reset_subscriptions(State(app): State<Arc<AppState>>) -> Json<Value> {
    let fresh = Setup::default();
    let setup = app.setup.update(|s| {
        s.page_subscribed = fresh.page_subscribed;
        s.page_fields = fresh.page_fields;
        s.app_active = fresh.app_active;
        s.app_fields = fresh.app_fields;
    });
    subscriptions_view(&app, &setup)
}
