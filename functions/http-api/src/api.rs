//! The website-backend API (`Authorization: Bearer <api key>`):
//! - `POST /v1/logins {"user_access_token"}` — a login made with the JavaScript SDK, verified
//!   server side and recorded;
//! - `GET /v1/users/{asid}` — the person's state and timestamps;
//! - `POST /v1/users/{asid}/opt-out` — off-Messenger opt-out, idempotent.
//!
//! Errors are `{"error":{"code","message"}}`; nothing is written on a 4xx. Checks run in this
//! order: API key (401), route and method (404/405), content type (415), size (413), body (400).

use crate::verify::{self, Refusal};
use crate::{Deps, error_response, json_response};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::domain::{Millis, OptIn, login_id_prefix};
use shared::login::{Login, Permission, UserToken, is_valid_asid};
use tracing::{error, info};

/// Largest body the `/v1` routes accept.
pub const MAX_API_BODY_BYTES: usize = 16 * 1024;
/// Longest user access token accepted.
const MAX_TOKEN_LEN: usize = 4096;
/// `opt_out_source` of an opt-out that arrived (through this API) before the opt-in itself
/// ([`shared::use_cases::opt_out::placeholder_source`] of [`OPT_OUT_API`]).
pub const OPT_OUT_BEFORE_OPT_IN: &str = "api_before_opt_in";
/// `opt_out_source` of an opt-out through this API.
pub const OPT_OUT_API: &str = "api";

fn unauthorized() -> Response<Body> {
    let mut r = error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid API key is required: Authorization: Bearer <api key>",
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn method_not_allowed() -> Response<Body> {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

fn unavailable() -> Response<Body> {
    ApiError::unavailable().into_response()
}

/// A refusal, turned into the JSON error answer at the edge.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            UNAVAILABLE_MESSAGE,
        )
    }

    fn into_response(self) -> Response<Body> {
        error_response(self.status, self.code, &self.message)
    }
}

const UNAVAILABLE_MESSAGE: &str = "the request could not be completed; please retry";

/// Route a `/v1/…` request (the path has no trailing slash).
pub async fn route(deps: &Deps, request: &Request, path: &str) -> Response<Body> {
    if !crate::auth::authorized(request, &deps.secrets.api_key_hashes) {
        return unauthorized();
    }
    let method = request.method();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "logins"] if method == Method::POST => record_login(deps, request).await,
        ["v1", "logins"] => method_not_allowed(),
        ["v1", "users", asid] if method == Method::GET => get_user(deps, asid).await,
        ["v1", "users", _] => method_not_allowed(),
        ["v1", "users", asid, "opt-out"] if method == Method::POST => {
            opt_out(deps, request, asid).await
        }
        ["v1", "users", _, "opt-out"] => method_not_allowed(),
        _ => error_response(StatusCode::NOT_FOUND, "not_found", "no such route"),
    }
}

fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Content type, size and JSON shape, in that order.
fn json_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    if !is_json(request) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be application/json",
        ));
    }
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_API_BODY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
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
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLoginRequest {
    user_access_token: String,
}

/// `POST /v1/logins`.
async fn record_login(deps: &Deps, request: &Request) -> Response<Body> {
    let body: RecordLoginRequest = match json_body(request) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let token = body.user_access_token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "user_access_token must be a non-empty string",
        );
    }
    let token = UserToken::new(token);
    let verified = match verify::verify_token(deps, &token).await {
        Ok(v) => v,
        Err(e) => return refusal_response(&e),
    };
    drop(token);
    let login = match verify::record(deps, &verified, shared::login::LoginSource::Api).await {
        Ok(l) => l,
        Err(e) => return refusal_response(&e),
    };
    let opt_in = match load_opt_in(deps, &login).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    json_response(
        StatusCode::CREATED,
        &serde_json::json!({
            "asid": verified.asid,
            "permission": verified.permission.as_str(),
            "state": user_state(&login, opt_in.as_ref()),
        }),
    )
}

fn refusal_response(e: &Refusal) -> Response<Body> {
    match e {
        Refusal::InvalidToken => {
            info!("login refused: invalid token");
            error_response(
                StatusCode::BAD_REQUEST,
                "invalid_user_token",
                "Facebook says this user access token is not valid (expired, revoked or malformed)",
            )
        }
        Refusal::OtherApp => {
            info!("login refused: token of another app");
            error_response(
                StatusCode::BAD_REQUEST,
                "token_of_another_app",
                "this user access token was issued to another Facebook app",
            )
        }
        Refusal::Unavailable(g) => {
            error!(error = %g, "Graph unavailable during login");
            error_response(
                StatusCode::BAD_GATEWAY,
                "facebook_unavailable",
                "Facebook could not be reached to verify the token; please retry",
            )
        }
        Refusal::Store(s) => {
            error!(error = %s, "login not recorded");
            unavailable()
        }
    }
}

async fn load_login(deps: &Deps, asid: &str) -> Result<Login, ApiError> {
    if !is_valid_asid(asid) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_asid",
            "asid must be the person's numeric app-scoped user id",
        ));
    }
    match deps.logins.get_login(&deps.config.fb_page_id, asid).await {
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_person",
            "no login is recorded for this asid",
        )),
        Err(e) => {
            error!(error = %e, "could not read the login");
            Err(ApiError::unavailable())
        }
    }
}

async fn load_opt_in(deps: &Deps, login: &Login) -> Result<Option<OptIn>, ApiError> {
    let Some(key) = login.opt_in_key() else {
        return Ok(None);
    };
    deps.store.get_opt_in(&key).await.map_err(|e| {
        error!(error = %e, "could not read the opt-in");
        ApiError::unavailable()
    })
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
async fn get_user(deps: &Deps, asid: &str) -> Response<Body> {
    let login = match load_login(deps, asid).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    match load_opt_in(deps, &login).await {
        Ok(opt_in) => json_response(StatusCode::OK, &user_view(&login, opt_in.as_ref())),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptOutRequest {}

/// `POST /v1/users/{asid}/opt-out`: idempotent. Effective before any later send: the opt-in moves
/// to OPTED_OUT with the same conditional write the sender's claim checks, and when no opt-in
/// exists yet an OPTED_OUT one is created in its place, so the webhook that arrives later finds it
/// and nothing is sent. `in_flight: true` when a send was already under way (the opt-in was
/// SENDING): that message may still land, and the caller is told so instead of a clean 200.
async fn opt_out(deps: &Deps, request: &Request, asid: &str) -> Response<Body> {
    if !request.body().is_empty()
        && let Err(e) = json_body::<OptOutRequest>(request)
    {
        return e.into_response();
    }
    let login = match load_login(deps, asid).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let Some(key) = login.opt_in_key() else {
        return error_response(
            StatusCode::CONFLICT,
            "not_correlated",
            "login_id derivation is off, so the opt-in of this person cannot be found",
        );
    };
    let now = deps.clock.now();
    match crate::conversation::opt_outs(deps)
        .opt_out_person(&key, OPT_OUT_API, now)
        .await
    {
        Ok(out) => {
            info!(
                login_id_prefix = %login_id_prefix(&key.login_id),
                state = %out.item.state,
                in_flight = out.in_flight(),
                "opt-out through the API"
            );
            json_response(StatusCode::OK, &user_view(&login, Some(&out.item)))
        }
        Err(e) => {
            error!(error = %e, "could not record the opt-out");
            unavailable()
        }
    }
}
