//! The website-backend API (`Authorization: Bearer <api key>`):
//! - `POST /v1/logins {"user_access_token"}` — a login made with the JavaScript SDK, verified
//!   server side and recorded;
//! - `GET /v1/users/{asid}` — the person's state and timestamps;
//! - `POST /v1/users/{asid}/opt-out` — off-Messenger opt-out, idempotent.
//!
//! Errors are `{"error":{"code","message"}}`; nothing is written on a 4xx. Checks run in this
//! order: API key and route and method (401, 404/405: the route table in `lib.rs`), then here
//! content type (415), size (413), body (400).

use crate::deps::Deps;
use crate::login::verify::{self, Refusal};
use crate::response::{HttpError, json};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::domain::login::{Login, Permission, UserToken, is_valid_asid};
use shared::domain::opt_in::{Millis, OptIn, login_id_prefix};
use tracing::info;

/// Largest body the `/v1` routes accept.
pub const MAX_API_BODY_BYTES: usize = 16 * 1024;
/// Longest user access token accepted.
const MAX_TOKEN_LEN: usize = 4096;
/// `opt_out_source` of an opt-out that arrived (through this API) before the opt-in itself
/// ([`shared::use_cases::opt_out::placeholder_source`] of [`OPT_OUT_API`]).
pub const OPT_OUT_BEFORE_OPT_IN: &str = "api_before_opt_in";
/// `opt_out_source` of an opt-out through this API.
pub const OPT_OUT_API: &str = "api";

fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Content type, size and JSON shape, in that order.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, HttpError> {
    if !is_json(request) {
        return Err(HttpError::unsupported_media_type(
            "the body must be application/json",
        ));
    }
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_API_BODY_BYTES {
        return Err(HttpError::too_large(
            "the request body is larger than 16 KiB",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let (code, message) = match e.classify() {
            serde_json::error::Category::Data => (
                "invalid_request",
                format!("the body does not have the expected fields: {e}"),
            ),
            _ => ("invalid_json", "the body is not valid JSON".to_owned()),
        };
        HttpError::bad_request(code, message)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLoginRequest {
    user_access_token: String,
    /// The website's own reference for the person (1–64 of `[A-Za-z0-9_-]`), echoed back.
    #[serde(default)]
    user_ref: Option<String>,
}

/// `POST /v1/logins`.
pub async fn record_login(deps: &Deps, request: &Request) -> Result<Response<Body>, HttpError> {
    let body: RecordLoginRequest = json_body(request)?;
    let token = body.user_access_token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(HttpError::bad_request(
            "invalid_request",
            "user_access_token must be a non-empty string",
        ));
    }
    let user_ref = body
        .user_ref
        .as_deref()
        .map(|raw| {
            shared::domain::login::check_user_ref(raw)
                .map_err(|reason| HttpError::bad_request("invalid_user_ref", reason))
        })
        .transpose()?;
    let token = UserToken::new(token);
    let verified = verify::verify_token(deps, &token)
        .await
        .map_err(refused_login)?;
    drop(token);
    let login = verify::record(
        deps,
        &verified,
        shared::domain::login::LoginSource::Api,
        user_ref,
    )
    .await
    .map_err(refused_login)?;
    let opt_in = load_opt_in(deps, &login).await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({
            "asid": verified.asid,
            "permission": verified.permission.as_str(),
            "state": user_state(&login, opt_in.as_ref()),
            "user_ref": login.user_ref,
        }),
    ))
}

/// Why a token was not accepted, as the API answers it.
fn refused_login(e: Refusal) -> HttpError {
    match e {
        Refusal::InvalidToken => {
            info!("login refused: invalid token");
            HttpError::bad_request(
                "invalid_user_token",
                "Facebook says this user access token is not valid (expired, revoked or malformed)",
            )
        }
        Refusal::OtherApp => {
            info!("login refused: token of another app");
            HttpError::bad_request(
                "token_of_another_app",
                "this user access token was issued to another Facebook app",
            )
        }
        Refusal::Unavailable(g) => HttpError::failed("Graph unavailable during login", g).answered(
            StatusCode::BAD_GATEWAY,
            "facebook_unavailable",
            "Facebook could not be reached to verify the token; please retry",
        ),
        Refusal::Store(s) => HttpError::failed("login not recorded", s),
    }
}

pub(crate) async fn load_login(deps: &Deps, asid: &str) -> Result<Login, HttpError> {
    if !is_valid_asid(asid) {
        return Err(HttpError::bad_request(
            "invalid_asid",
            "asid must be the person's numeric app-scoped user id",
        ));
    }
    deps.ports
        .logins
        .get_login(&deps.config.fb_page_id, asid)
        .await
        .map_err(|e| HttpError::failed("could not read the login", e))?
        .ok_or_else(|| {
            HttpError::refused(
                StatusCode::NOT_FOUND,
                "unknown_person",
                "no login is recorded for this asid",
            )
        })
}

pub(crate) async fn load_opt_in(deps: &Deps, login: &Login) -> Result<Option<OptIn>, HttpError> {
    let Some(key) = login.opt_in_key() else {
        return Ok(None);
    };
    deps.ports
        .opt_ins
        .get_opt_in(&key)
        .await
        .map_err(|e| HttpError::failed("could not read the opt-in", e))
}

/// The person's state as the API reports it: the opt-in's state once there is one, otherwise what
/// the LOGIN says.
pub fn user_state(login: &Login, opt_in: Option<&OptIn>) -> &'static str {
    match opt_in {
        Some(o) => o.state.as_str(),
        None if login.expected_login_id.is_none() => "UNCORRELATED",
        None => match login.permission {
            Permission::Granted => "AWAITING_OPT_IN",
            Permission::Declined => "DECLINED",
        },
    }
}

fn time(ms: Option<Millis>) -> serde_json::Value {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| serde_json::Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(serde_json::Value::Null)
}

/// The JSON view of a person (no tokens, no login_id).
pub fn user_view(login: &Login, opt_in: Option<&OptIn>) -> serde_json::Value {
    // An opt-out recorded before any opt-in holds no opt-in evidence.
    let real = opt_in.filter(|o| !shared::use_cases::opt_out::is_placeholder(o));
    serde_json::json!({
        "asid": login.asid,
        "state": user_state(login, opt_in),
        "permission": login.permission.as_str(),
        "login_at": time(Some(login.login_at)),
        "last_login_at": time(Some(login.last_login_at)),
        "user_ref": login.user_ref,
        "opted_in_at": time(real.map(|o| o.opted_in_at)),
        "deadline_at": time(real.map(|o| o.deadline_at)),
        "sent_at": time(opt_in.and_then(|o| o.sent_at)),
        "terminal_at": time(opt_in.and_then(|o| o.terminal_at)),
        "opted_out_at": time(opt_in.and_then(|o| o.opted_out_at)),
        // The opt-out found a send in flight: the initial message may still land (see sent_at).
        "in_flight": opt_in.is_some_and(shared::use_cases::opt_out::in_flight),
    })
}

/// `GET /v1/users/{asid}`.
pub async fn get_user(deps: &Deps, asid: &str) -> Result<Response<Body>, HttpError> {
    let login = load_login(deps, asid).await?;
    let opt_in = load_opt_in(deps, &login).await?;
    Ok(json(StatusCode::OK, &user_view(&login, opt_in.as_ref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptOutRequest {}

/// `POST /v1/users/{asid}/opt-out`: idempotent. Effective before any later send: the opt-in moves
/// to OPTED_OUT with the same conditional write the sender's claim checks, and when no opt-in
/// exists yet an OPTED_OUT one is created in its place, so the webhook that arrives later finds it
/// and nothing is sent. `in_flight: true` when a send was already under way (the opt-in was
/// SENDING): that message may still land, and the caller is told so instead of a clean 200.
pub async fn opt_out(
    deps: &Deps,
    request: &Request,
    asid: &str,
) -> Result<Response<Body>, HttpError> {
    if !request.body().is_empty() {
        json_body::<OptOutRequest>(request)?;
    }
    let login = load_login(deps, asid).await?;
    let key = login.opt_in_key().ok_or_else(|| {
        HttpError::refused(
            StatusCode::CONFLICT,
            "not_correlated",
            "login_id derivation is off, so the opt-in of this person cannot be found",
        )
    })?;
    let out = deps
        .ports
        .opt_outs(&deps.config)
        .opt_out_person(&key, OPT_OUT_API, deps.ports.clock.now())
        .await
        .map_err(|e| HttpError::failed("could not record the opt-out", e))?;
    info!(
        login_id_prefix = %login_id_prefix(&key.login_id),
        state = %out.item.state,
        in_flight = out.in_flight(),
        "opt-out through the API"
    );
    Ok(json(StatusCode::OK, &user_view(&login, Some(&out.item))))
}
