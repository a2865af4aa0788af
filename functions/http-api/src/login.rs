//! Facebook Login's redirect flow: `GET /login/start` and `GET /login/callback`.
//!
//! The `state` is 256 random bits, stored (by its SHA-256) for 10 minutes and consumed by one
//! conditional delete, and bound to the browser by a `Secure; HttpOnly; SameSite=Lax` cookie that
//! holds HMAC(key derived from the app secret, state), compared in constant time. A refused
//! callback answers 400 and writes nothing; once the state is consumed the browser always goes
//! back to `return_to` with `messenger=granted|declined|cancelled|error`.

use crate::verify::{self, Refusal};
use crate::{Deps, error_response};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use shared::login::{
    LoginSource, LoginState, Permission, STATE_TTL_MS, StateConsumed, check_return_to, cookie_key,
    state_cookie_matches, state_cookie_value, state_hash, with_outcome,
};
use tracing::{error, info, warn};

/// The cookie that binds a login `state` to the browser that started it.
pub const STATE_COOKIE: &str = "lcm_login_state";
pub const CALLBACK_PATH: &str = "/login/callback";
/// Longest `state` / `code` accepted from the query string.
const MAX_PARAM_LEN: usize = 2048;

fn query_param<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
}

/// The value of cookie `name` from the request's `Cookie` header(s).
pub fn cookie<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn set_cookie(value: &str, max_age: i64) -> String {
    format!(
        "{STATE_COOKIE}={value}; Path={CALLBACK_PATH}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
    )
}

fn insert(response: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

/// A 302 that sets (or clears) the state cookie.
fn redirect(location: &str, cookie: &str) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::FOUND;
    insert(&mut response, header::LOCATION, location);
    insert(&mut response, header::SET_COOKIE, cookie);
    insert(&mut response, header::CACHE_CONTROL, "no-store");
    insert(&mut response, header::REFERRER_POLICY, "no-referrer");
    response
}

/// `{PUBLIC_BASE_URL}/login/callback`, or the API's own domain when no public URL is configured.
fn callback_url(deps: &Deps, request: &Request) -> Option<String> {
    if let Some(base) = &deps.config.public_base_url {
        return Some(format!("{base}{CALLBACK_PATH}"));
    }
    let domain = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.clone(),
        _ => None,
    }
    .or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    })?;
    Some(format!("https://{domain}{CALLBACK_PATH}"))
}

/// 256 random bits, hex (the thread RNG is a CSPRNG seeded from the OS).
fn new_state() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// `GET /login/start?return_to=URL` → 302 to the Facebook login dialog.
pub async fn start(deps: &Deps, request: &Request) -> Response<Body> {
    let allowed = &deps.config.login.allowed_return_origins;
    if allowed.is_empty() {
        error!("ALLOWED_RETURN_ORIGINS is empty: the login flow cannot send anyone back");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "login_not_configured",
            "no return_to origin is allowed (ALLOWED_RETURN_ORIGINS is empty)",
        );
    }
    let return_to = match check_return_to(query_param(request, "return_to"), allowed) {
        Ok(url) => url,
        Err(e) => {
            info!(reason = %e, "login start refused: return_to");
            return error_response(StatusCode::BAD_REQUEST, "invalid_return_to", &e.to_string());
        }
    };
    let Some(redirect_uri) = callback_url(deps, request) else {
        error!("no PUBLIC_BASE_URL and no request domain: cannot build redirect_uri");
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the callback URL cannot be determined",
        );
    };
    let state = new_state();
    let now = deps.clock.now();
    let stored = LoginState {
        state_hash: state_hash(&state),
        return_to: return_to.into(),
        redirect_uri: redirect_uri.clone(),
        created_at: now,
        expires_at_ms: now + STATE_TTL_MS,
    };
    let dialog =
        match shared::adapters::graph::login_dialog_url(&deps.config, &redirect_uri, &state) {
            Ok(url) => url,
            Err(e) => {
                error!(error = %e, "cannot build the dialog URL");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the login dialog URL cannot be built",
                );
            }
        };
    if let Err(e) = deps.logins.put_state(&stored).await {
        error!(error = %e, "could not store the login state");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the login could not be started; please try again",
        );
    }
    let key = cookie_key(deps.secrets.app_secret.expose());
    let cookie = set_cookie(&state_cookie_value(&key, &state), STATE_TTL_MS / 1000);
    redirect(&dialog, &cookie)
}

fn wants_html(request: &Request) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// A refused callback: 400, nothing written, the state cookie cleared. HTML for browsers.
fn refused(request: &Request, status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let mut response = if wants_html(request) {
        let page = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <title>Sign-in link not valid</title></head><body>\
             <h1>This sign-in link is not valid</h1><p>{message}</p>\
             <p>Please go back to the website and start again.</p>\
             <p><small>Error code: <code>{code}</code></small></p></body></html>"
        );
        let mut r = Response::new(Body::Text(page));
        *r.status_mut() = status;
        insert(&mut r, header::CONTENT_TYPE, "text/html; charset=utf-8");
        insert(&mut r, header::CACHE_CONTROL, "no-store");
        r
    } else {
        error_response(status, code, message)
    };
    insert(&mut response, header::SET_COOKIE, &set_cookie("", 0));
    insert(
        &mut response,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'",
    );
    response
}

/// `GET /login/callback?code&state` (or `?error=…&state`).
pub async fn callback(deps: &Deps, request: &Request) -> Response<Body> {
    let state = query_param(request, "state").filter(|s| !s.is_empty() && s.len() <= MAX_PARAM_LEN);
    let Some(state) = state else {
        return refused(
            request,
            StatusCode::BAD_REQUEST,
            "missing_state",
            "The request has no valid state parameter.",
        );
    };
    let key = cookie_key(deps.secrets.app_secret.expose());
    let bound = cookie(request, STATE_COOKIE).is_some_and(|c| state_cookie_matches(&key, state, c));
    if !bound {
        info!("login callback refused: state not bound to this browser");
        return refused(
            request,
            StatusCode::BAD_REQUEST,
            "state_mismatch",
            "This sign-in was started in another browser (or its cookie is missing).",
        );
    }
    let stored = match deps
        .logins
        .consume_state(&state_hash(state), deps.clock.now())
        .await
    {
        Ok(StateConsumed::Consumed(s)) => s,
        Ok(StateConsumed::Expired) => {
            info!("login callback refused: state expired");
            return refused(
                request,
                StatusCode::BAD_REQUEST,
                "state_expired",
                "This sign-in took longer than 10 minutes.",
            );
        }
        Ok(StateConsumed::Unknown) => {
            info!("login callback refused: state unknown or already used");
            return refused(
                request,
                StatusCode::BAD_REQUEST,
                "state_unknown",
                "This sign-in link was already used or was never issued.",
            );
        }
        Err(e) => {
            error!(error = %e, "could not consume the login state");
            return refused(
                request,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Sign-in is temporarily unavailable; please try again.",
            );
        }
    };
    let back = |outcome: &str| {
        redirect(
            &with_outcome(&stored.return_to, outcome),
            &set_cookie("", 0),
        )
    };

    if let Some(fb_error) = query_param(request, "error") {
        let outcome = if fb_error == "access_denied" {
            "cancelled"
        } else {
            "error"
        };
        info!(outcome, "login dialog returned an error");
        return back(outcome);
    }
    let Some(code) =
        query_param(request, "code").filter(|c| !c.is_empty() && c.len() <= MAX_PARAM_LEN)
    else {
        warn!("login callback without code or error");
        return back("error");
    };
    let verified = match verify::verify_code(deps, code, &stored.redirect_uri).await {
        Ok(v) => v,
        Err(e) => {
            match &e {
                Refusal::Unavailable(_) | Refusal::Store(_) => error!(reason = %e, "login failed"),
                _ => warn!(reason = %e, "login refused"),
            }
            return back("error");
        }
    };
    if let Err(e) = verify::record(deps, &verified, LoginSource::Callback).await {
        error!(reason = %e, "login verified but not recorded");
        return back("error");
    }
    back(match verified.permission {
        Permission::Granted => "granted",
        Permission::Declined => "declined",
    })
}
