//! `GET /login/callback?code&state` (or `?error=…&state`): where the dialog sends the browser.
//!
//! A refused callback answers 400 (an HTML page for browsers), clears the state cookie and writes
//! nothing; once the state is consumed the browser always goes back to `return_to` with
//! `messenger=granted|declined|cancelled|error`.

use super::browser::{STATE_COOKIE, cookie, insert, query_param, redirect, set_cookie};
use super::verify::{self, Refusal};
use crate::deps::Deps;
use crate::response::HttpError;
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};
use shared::domain::login::{
    LoginSource, Permission, StateConsumed, cookie_key, state_cookie_matches, state_hash,
    with_outcome,
};
use tracing::{error, info, warn};

/// Longest `state` / `code` accepted from the query string.
const MAX_PARAM_LEN: usize = 2048;

/// `GET /login/callback`. Its refusals are shown to a person in a browser, so they are rendered
/// here ([`refused`]) rather than at the edge.
pub async fn callback(deps: &Deps, request: &Request) -> Response<Body> {
    match consume(deps, request).await {
        Ok(response) => response,
        Err(e) => refused(request, e),
    }
}

/// A refused callback: nothing written, the state cookie cleared. HTML for browsers.
fn refused(request: &Request, e: HttpError) -> Response<Body> {
    let mut response = if crate::pages::wants_html(request) {
        crate::pages::error_response(e)
    } else {
        e.into_response()
    };
    insert(&mut response, header::SET_COOKIE, &set_cookie("", 0));
    if !response
        .headers()
        .contains_key(header::CONTENT_SECURITY_POLICY)
    {
        insert(
            &mut response,
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'",
        );
    }
    response
}

/// Check and consume the state, then verify the code and record the LOGIN.
async fn consume(deps: &Deps, request: &Request) -> Result<Response<Body>, HttpError> {
    let state = query_param(request, "state")
        .filter(|s| !s.is_empty() && s.len() <= MAX_PARAM_LEN)
        .ok_or_else(|| {
            HttpError::bad_request("missing_state", "The request has no valid state parameter.")
        })?;
    let key = cookie_key(deps.secrets.app_secret.expose());
    let bound = cookie(request, STATE_COOKIE).is_some_and(|c| state_cookie_matches(&key, state, c));
    if !bound {
        info!("login callback refused: state not bound to this browser");
        return Err(HttpError::bad_request(
            "state_mismatch",
            "This sign-in was started in another browser (or its cookie is missing).",
        ));
    }
    let consumed = deps
        .ports
        .logins
        .consume_state(&state_hash(state), deps.ports.clock.now())
        .await
        .map_err(|e| {
            HttpError::failed("could not consume the login state", e).answered(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Sign-in is temporarily unavailable; please try again.",
            )
        })?;
    let stored = match consumed {
        StateConsumed::Consumed(s) => s,
        StateConsumed::Expired => {
            info!("login callback refused: state expired");
            return Err(HttpError::bad_request(
                "state_expired",
                "This sign-in took longer than 10 minutes.",
            ));
        }
        StateConsumed::Unknown => {
            info!("login callback refused: state unknown or already used");
            return Err(HttpError::bad_request(
                "state_unknown",
                "This sign-in link was already used or was never issued.",
            ));
        }
    };
    let back = |outcome: &str| {
        Ok(redirect(
            &with_outcome(&stored.return_to, outcome),
            &set_cookie("", 0),
        ))
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
    if let Err(e) = verify::record(
        deps,
        &verified,
        LoginSource::Callback,
        stored.user_ref.clone(),
    )
    .await
    {
        error!(reason = %e, "login verified but not recorded");
        return back("error");
    }
    back(match verified.permission {
        Permission::Granted => "granted",
        Permission::Declined => "declined",
    })
}
