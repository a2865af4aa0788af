//! Meta's Deauthorize and Data Deletion callbacks (form field `signed_request`), and the deletion
//! status page.
//!
//! Both stop every send for the person at once (the opt-out is the same conditional write the
//! sender's claim checks). Deletion then erases every item holding their ids or name, keeping only
//! non-identifying records, and answers `{"url", "confirmation_code"}` as Meta requires. The
//! opt-in is found by every link the product has ([`shared::use_cases::deletion`]); when none is
//! known the status says `partial`, with why.

use crate::deps::Deps;
use crate::response::{HttpError, json, typed};
use lambda_http::{Body, Request, RequestExt, Response, http::StatusCode};
use shared::domain::erasure::deletion_code;
use shared::facebook::crypto::derive_login_id;
use shared::facebook::signed_request::{
    SignedRequest, parse_signed_request, signed_request_from_form,
};
use shared::use_cases::deletion::{DERIVATION_OFF, Deletions, Derivation, NO_CLIENT_TOKEN, Person};
use tracing::{info, warn};

pub const OPT_OUT_DEAUTHORIZE: &str = "deauthorize";
pub const OPT_OUT_DELETION: &str = "data_deletion";

fn is_form(request: &Request) -> bool {
    request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// Verify the request; the error answer otherwise (nothing is changed on any of them).
fn verified(deps: &Deps, request: &Request) -> Result<(SignedRequest, String), HttpError> {
    if !is_form(request) {
        return Err(HttpError::unsupported_media_type(
            "send application/x-www-form-urlencoded with a signed_request field",
        ));
    }
    let raw = signed_request_from_form(request.body().as_ref()).ok_or_else(|| {
        HttpError::bad_request(
            "invalid_signed_request",
            "the signed_request field is missing",
        )
    })?;
    let now_seconds = deps.ports.clock.now() / 1000;
    let parsed = parse_signed_request(
        deps.secrets.app_secret.expose().as_bytes(),
        &raw,
        now_seconds,
    )
    .map_err(|e| {
        warn!(reason = %e, "signed_request refused");
        HttpError::bad_request("invalid_signed_request", e.to_string())
    })?;
    Ok((parsed, raw))
}

/// The person as the callbacks know them: the asid, and the login_id derived from it when
/// derivation is on (the LOGIN's recorded login_id is looked up by the use case).
fn person<'a>(deps: &'a Deps, asid: &'a str) -> Person<'a> {
    let page_id = &deps.config.fb_page_id;
    let client_token = deps.secrets.client_token.expose();
    let derivation = if !deps.config.login.derive_login_id {
        Derivation::Unavailable(DERIVATION_OFF)
    } else if client_token.is_empty() {
        Derivation::Unavailable(NO_CLIENT_TOKEN)
    } else {
        Derivation::Derived(derive_login_id(
            client_token,
            asid,
            &deps.config.fb_app_id,
            page_id,
        ))
    };
    Person {
        page_id,
        asid,
        derivation,
    }
}

/// Deauthorize and deletion over this function's ports.
fn deletions(deps: &Deps) -> Deletions<'_> {
    Deletions {
        opt_outs: deps.ports.opt_outs(&deps.config),
        logins: deps.ports.logins.as_ref(),
        erasure: deps.ports.erasure.as_ref(),
        follow_ups: deps.ports.follow_ups.as_ref(),
        app_secret: deps.secrets.app_secret.expose(),
    }
}

/// `POST /facebook/deauthorize`: the person removed the app. Stop sending to them.
pub async fn deauthorize(deps: &Deps, request: &Request) -> Result<Response<Body>, HttpError> {
    let (parsed, _) = verified(deps, request)?;
    deletions(deps)
        .deauthorize(
            &person(deps, &parsed.user_id),
            OPT_OUT_DEAUTHORIZE,
            deps.ports.clock.now(),
        )
        .await
        .map_err(|e| HttpError::failed("deauthorize failed", e))?;
    Ok(json(StatusCode::OK, &serde_json::json!({"ok": true})))
}

fn status_url(deps: &Deps, request: &Request, code: &str) -> String {
    let base = deps.config.public_base_url.clone().unwrap_or_else(|| {
        let host = request
            .headers()
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        format!("https://{host}")
    });
    format!("{base}/facebook/data-deletion/status?code={code}")
}

/// `POST /facebook/data-deletion`: stop sending, erase the person's data, answer the status URL.
pub async fn data_deletion(deps: &Deps, request: &Request) -> Result<Response<Body>, HttpError> {
    let (parsed, raw) = verified(deps, request)?;
    let code = deletion_code(deps.secrets.app_secret.expose(), &raw);
    let record = deletions(deps)
        .delete_person(
            &person(deps, &parsed.user_id),
            OPT_OUT_DELETION,
            &code,
            deps.ports.clock.now(),
        )
        .await
        .map_err(|e| HttpError::failed("data deletion failed", e))?;
    info!(
        items_erased = record.items_erased,
        status = %record.status,
        "data deletion done"
    );
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "url": status_url(deps, request, &record.confirmation_code),
            "confirmation_code": record.confirmation_code,
        }),
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /facebook/data-deletion/status?code=…`: a small page for the person (JSON on request).
pub async fn deletion_status(deps: &Deps, request: &Request) -> Result<Response<Body>, HttpError> {
    let code = request
        .query_string_parameters_ref()
        .and_then(|q| q.first("code"))
        .unwrap_or("")
        .to_owned();
    if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(HttpError::bad_request(
            "invalid_code",
            "code must be the confirmation code",
        ));
    }
    let record = deps
        .ports
        .erasure
        .get_deletion_record(&code)
        .await
        .map_err(|e| HttpError::failed("deletion status read failed", e))?
        .ok_or_else(|| HttpError::not_found("no deletion request has this code"))?;
    let wants_json = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return Ok(json(
            StatusCode::OK,
            &serde_json::to_value(&record).unwrap_or_default(),
        ));
    }
    let when = shared::domain::opt_in::utc(record.completed_at);
    // Say only what is true: a partial deletion says what was not found, and why.
    let what = match &record.partial_reason {
        Some(reason) => escape(reason),
        None => "Every record of your login and Messenger opt-in held by this service has been \
                 deleted."
            .to_owned(),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Data deletion status</title></head>\
         <body><h1>Data deletion request</h1><p>Confirmation code: <code>{}</code></p>\
         <p>Status: <strong>{}</strong> ({})</p><p>{what}</p></body></html>",
        escape(&record.confirmation_code),
        escape(&record.status),
        escape(&when),
    );
    Ok(typed(html, "text/html; charset=utf-8"))
}
