//! `GET /login/start?return_to=URL` → 302 to the Facebook login dialog, with a fresh `state`
//! stored for 10 minutes and bound to this browser by the state cookie.

use super::browser::{CALLBACK_PATH, query_param, redirect, set_cookie};
use crate::deps::Deps;
use crate::response::HttpError;
use lambda_http::http::{StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use shared::domain::login::{
    LoginState, STATE_TTL_MS, check_return_to, check_user_ref, cookie_key, state_cookie_value,
    state_hash,
};
use tracing::{error, info};

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

/// `GET /login/start?return_to=URL[&user_ref=REF]`.
pub async fn start(deps: &Deps, request: &Request) -> Result<Response<Body>, HttpError> {
    let allowed = &deps.config.login.allowed_return_origins;
    if allowed.is_empty() {
        error!("ALLOWED_RETURN_ORIGINS is empty: the login flow cannot send anyone back");
        return Err(HttpError::refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "login_not_configured",
            "no return_to origin is allowed (ALLOWED_RETURN_ORIGINS is empty)",
        ));
    }
    let return_to = check_return_to(query_param(request, "return_to"), allowed).map_err(|e| {
        info!(reason = %e, "login start refused: return_to");
        HttpError::bad_request("invalid_return_to", e.to_string())
    })?;
    let user_ref = query_param(request, "user_ref")
        .map(|raw| {
            check_user_ref(raw).map_err(|reason| {
                info!(reason, "login start refused: user_ref");
                HttpError::bad_request("invalid_user_ref", reason)
            })
        })
        .transpose()?;
    let redirect_uri = callback_url(deps, request).ok_or_else(|| {
        error!("no PUBLIC_BASE_URL and no request domain: cannot build redirect_uri");
        HttpError::refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the callback URL cannot be determined",
        )
    })?;
    let state = new_state();
    let now = deps.ports.clock.now();
    let stored = LoginState {
        state_hash: state_hash(&state),
        return_to: return_to.into(),
        redirect_uri: redirect_uri.clone(),
        created_at: now,
        expires_at_ms: now + STATE_TTL_MS,
        user_ref,
    };
    let dialog = shared::facebook::dialog::login_dialog_url(&deps.config, &redirect_uri, &state)
        .map_err(|e| {
            HttpError::failed("cannot build the dialog URL", e).answered(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the login dialog URL cannot be built",
            )
        })?;
    deps.ports.logins.put_state(&stored).await.map_err(|e| {
        HttpError::failed("could not store the login state", e).answered(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the login could not be started; please try again",
        )
    })?;
    let key = cookie_key(deps.secrets.app_secret.expose());
    let cookie = set_cookie(&state_cookie_value(&key, &state), STATE_TTL_MS / 1000);
    Ok(redirect(&dialog, &cookie))
}
