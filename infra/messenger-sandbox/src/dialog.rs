//! The login dialog, `GET /{version}/dialog/oauth`: a small page where a person chooses "Allow"
//! (log in and let the Page contact them on Messenger), "Not now" (log in, decline Messenger) or
//! "Cancel" (no login). The form posts back to the same path.
//!
//! Query switches for tests (not Facebook's): `sandbox_choice=allow|decline|cancel` skips the page,
//! `sandbox_asid` / `sandbox_first_name` choose the person, `sandbox_webhook=before|async|none`
//! (and `sandbox_webhook_delay_ms`) when the opt-in webhook goes out, and
//! `sandbox_code_ttl_ms` how long the code may be exchanged.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::html::{self, escape_html};
use crate::ids::{is_graph_version, now_ms, random_asid};
use crate::oauth::{
    CODE_TTL_MS, DEFAULT_FIRST_NAME, Grant, MESSENGER_SCOPE, OAuthState, WebhookTiming,
    opt_in_after_allow,
};
use crate::state::AppState;

/// The dialog's routes, sharing `oauth` (its codes) with the server-side Login routes.
pub(crate) fn routes(oauth: Arc<OAuthState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/{version}/dialog/oauth", get(show).post(decide))
        .with_state(oauth)
}

/// The person's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    Allow,
    Decline,
    Cancel,
}

impl Choice {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Self::Allow),
            "decline" => Some(Self::Decline),
            "cancel" => Some(Self::Cancel),
            _ => None,
        }
    }
}

/// Facebook's own error page (the dialog never redirects to an unverified redirect_uri).
fn error_page(status: StatusCode, message: &str) -> Response {
    html::error_page(status, "Sorry, something went wrong.", message)
}

/// A checked dialog request.
struct Request {
    version: String,
    redirect_uri: reqwest::Url,
    state: Option<String>,
    scopes: Vec<String>,
    params: HashMap<String, String>,
}

/// Why the dialog shows its error page instead of asking the person.
struct Refused(StatusCode, &'static str);

impl Refused {
    fn page(&self) -> Response {
        error_page(self.0, self.1)
    }
}

fn check(
    oauth: &OAuthState,
    version: &str,
    params: HashMap<String, String>,
) -> Result<Request, Refused> {
    let config = &oauth.app.config;
    if !is_graph_version(version) {
        return Err(Refused(StatusCode::NOT_FOUND, "This page isn't available."));
    }
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    if get("client_id") != Some(config.app_id.as_str()) {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "Invalid App ID: the provided app ID does not look like a valid app ID.",
        ));
    }
    let redirect_uri = get("redirect_uri")
        .and_then(|u| reqwest::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or(Refused(
            StatusCode::BAD_REQUEST,
            "URL blocked: this redirect failed because the redirect URI is missing or not an http(s) URL.",
        ))?;
    if get("response_type").is_some_and(|t| t != "code") {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "The sandbox supports only response_type=code.",
        ));
    }
    if get("messenger_page_id").is_some_and(|p| p != config.page_id) {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "The Page in messenger_page_id is not linked to this app.",
        ));
    }
    let mut scopes: Vec<String> = vec!["public_profile".to_owned()];
    for s in get("scope")
        .unwrap_or("")
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    Ok(Request {
        version: version.to_owned(),
        redirect_uri,
        state: get("state").map(str::to_owned),
        scopes,
        params,
    })
}

async fn show(
    State(oauth): State<Arc<OAuthState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Path(version)) = path else {
        return error_page(StatusCode::NOT_FOUND, "This page isn't available.");
    };
    let params = query.map(|Query(q)| q).unwrap_or_default();
    let request = match check(&oauth, &version, params) {
        Ok(r) => r,
        Err(refused) => return refused.page(),
    };
    match request.params.get("sandbox_choice").map(String::as_str) {
        None | Some("") => page(&oauth, &request),
        Some(raw) => match Choice::parse(raw) {
            Some(choice) => act(&oauth, &request, choice).await,
            None => error_page(
                StatusCode::BAD_REQUEST,
                "sandbox_choice must be allow, decline or cancel.",
            ),
        },
    }
}

/// The form's submission: the original parameters plus `choice`, `sandbox_asid`,
/// `sandbox_first_name`.
async fn decide(
    State(oauth): State<Arc<OAuthState>>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let Ok(Path(version)) = path else {
        return error_page(StatusCode::NOT_FOUND, "This page isn't available.");
    };
    let params: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let choice = params
        .get("choice")
        .and_then(|c| Choice::parse(c))
        .ok_or(());
    let request = match check(&oauth, &version, params) {
        Ok(r) => r,
        Err(refused) => return refused.page(),
    };
    match choice {
        Ok(choice) => act(&oauth, &request, choice).await,
        Err(()) => error_page(StatusCode::BAD_REQUEST, "No choice was made."),
    }
}

fn redirect(to: &reqwest::Url) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, to.as_str().to_owned())],
    )
        .into_response()
}

/// Carry out the person's choice: back to the app with a code, or with `error=access_denied`.
async fn act(oauth: &Arc<OAuthState>, request: &Request, choice: Choice) -> Response {
    let mut back = request.redirect_uri.clone();
    // Facebook appends this fragment to every redirect of the login dialog.
    back.set_fragment(Some("_=_"));
    let get = |name: &str| {
        request
            .params
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    if choice == Choice::Cancel {
        {
            let mut q = back.query_pairs_mut();
            q.append_pair("error", "access_denied")
                .append_pair("error_code", "200")
                .append_pair("error_description", "Permissions error")
                .append_pair("error_reason", "user_denied");
            if let Some(state) = &request.state {
                q.append_pair("state", state);
            }
        }
        return redirect(&back);
    }
    let timing = match WebhookTiming::parse(
        get("sandbox_webhook"),
        get("sandbox_webhook_delay_ms").and_then(|d| d.parse().ok()),
    ) {
        Ok(t) => t,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let asid = get("sandbox_asid")
        .filter(|a| a.bytes().all(|b| b.is_ascii_digit()))
        .map_or_else(random_asid, str::to_owned);
    let first_name = get("sandbox_first_name").unwrap_or(DEFAULT_FIRST_NAME);
    let wants_messenger = request.scopes.iter().any(|s| s == MESSENGER_SCOPE);
    let messenger = wants_messenger && choice == Choice::Allow;
    let grant = Grant {
        app_id: oauth.app.config.app_id.clone(),
        asid: asid.clone(),
        first_name: first_name.to_owned(),
        granted: request
            .scopes
            .iter()
            .filter(|s| messenger || s.as_str() != MESSENGER_SCOPE)
            .cloned()
            .collect(),
        declined: (wants_messenger && !messenger)
            .then(|| MESSENGER_SCOPE.to_owned())
            .into_iter()
            .collect(),
        issued_at_ms: now_ms(),
    };
    let ttl = get("sandbox_code_ttl_ms")
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(CODE_TTL_MS);
    let code = oauth.issue_code(grant, request_redirect_uri(request), ttl);
    if messenger {
        opt_in_after_allow(&oauth.app, &asid, timing).await;
    }
    {
        let mut q = back.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(state) = &request.state {
            q.append_pair("state", state);
        }
    }
    redirect(&back)
}

/// The redirect_uri exactly as the app sent it (the exchange compares it byte for byte).
fn request_redirect_uri(request: &Request) -> &str {
    request
        .params
        .get("redirect_uri")
        .map_or("", String::as_str)
}

/// What a scope means to the person (the dialog lists these, not the scope names).
fn scope_label(scope: &str) -> String {
    match scope {
        "public_profile" => "your public profile (name and profile picture)".to_owned(),
        MESSENGER_SCOPE => "contact you on Messenger".to_owned(),
        "email" => "your email address".to_owned(),
        other => other.replace('_', " "),
    }
}

/// The dialog as the person sees it: the app's and the Page's names (never their numeric ids),
/// what the app asks for, and the three answers. The request's parameters ride along as hidden
/// fields; the sandbox-only "log in as" field starts empty (the default person).
fn page(oauth: &OAuthState, request: &Request) -> Response {
    let config = &oauth.app.config;
    let mut hidden = String::new();
    let mut keys: Vec<&String> = request.params.keys().collect();
    keys.sort();
    for key in keys {
        if matches!(
            key.as_str(),
            "choice" | "sandbox_first_name" | "sandbox_choice"
        ) {
            continue;
        }
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape_html(key),
            escape_html(&request.params[key])
        );
    }
    let mut asks = String::new();
    for scope in &request.scopes {
        let _ = write!(asks, "<li>{}</li>", escape_html(&scope_label(scope)));
    }
    let wants_messenger = request.scopes.iter().any(|s| s == MESSENGER_SCOPE);
    let messenger_line = if wants_messenger {
        format!(
            "<p id=\"messenger\"><b>{}</b> would like to contact you on Messenger.</p>",
            escape_html(&config.page_name)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<div class=\"card\"><h1>Log in with Facebook</h1>\
         <p><b id=\"app-name\">{app}</b> asks for:</p><ul id=\"scopes\">{asks}</ul>{messenger_line}\
         <form method=\"post\" action=\"/{version}/dialog/oauth\">{hidden}\
         <div class=\"actions\">\
         <button id=\"allow\" class=\"primary\" name=\"choice\" value=\"allow\" type=\"submit\">Allow</button>\
         <button id=\"not-now\" name=\"choice\" value=\"decline\" type=\"submit\">Not now</button>\
         <button id=\"cancel\" name=\"choice\" value=\"cancel\" type=\"submit\">Cancel</button></div>\
         <p class=\"muted\"><label>Sandbox only — log in as (first name)\
         <input type=\"text\" name=\"sandbox_first_name\" value=\"\" autocomplete=\"off\"></label>\
         <small>Left empty: the sandbox's default person.</small></p>\
         </form></div>",
        app = escape_html(&config.app_name),
        version = escape_html(&request.version),
    );
    Html(html::page("Log in with Facebook", "", "narrow", &body)).into_response()
}
