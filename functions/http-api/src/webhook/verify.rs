//! `GET /webhooks/messenger`: the handshake Meta performs when the callback URL is configured.
//! The verify token is compared in constant time.

use crate::deps::Deps;
use crate::response::{HttpError, typed};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use subtle::ConstantTimeEq;

/// Echo `hub.challenge` when `hub.mode` is `subscribe` and `hub.verify_token` matches.
pub fn verify_subscription(deps: &Deps, request: &Request) -> Result<Response<Body>, HttpError> {
    let query = request.query_string_parameters_ref();
    let get = |name: &str| query.and_then(|q| q.first(name));
    let mode_ok = get("hub.mode") == Some("subscribe");
    let token_ok = get("hub.verify_token").is_some_and(|t| {
        bool::from(
            t.as_bytes()
                .ct_eq(deps.secrets.verify_token.expose().as_bytes()),
        )
    });
    let challenge = get("hub.challenge")
        .filter(|c| mode_ok && token_ok && c.len() <= 256)
        .ok_or_else(|| {
            HttpError::refused(
                StatusCode::FORBIDDEN,
                "verification_failed",
                "hub.mode must be subscribe and hub.verify_token must match",
            )
        })?;
    let mut response = typed(challenge.to_owned(), "text/plain; charset=utf-8");
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
