//! The sandbox's start page (`GET /`), its stylesheet route and the not-found page for browsers.
//!
//! The start page is where `make run`'s banner sends a person: links to the inbox, the login
//! dialog and the app around the sandbox (its API, OpenAPI document, website — when whoever
//! started the sandbox named them, see `RunningSandbox::set_links`), the state of the opt-ins and
//! switches, and the control endpoints in one list.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::errors::unknown_path;
use crate::html::{STYLE_PATH, error_page, escape_html, page, stylesheet, wants_html};
use crate::ids::is_graph_version;
use crate::oauth::MESSENGER_SCOPE;
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(index))
        .route(STYLE_PATH, get(stylesheet))
}

/// The control endpoints, one line each (the modules' docs have the details).
const CONTROLS: &[(&str, &str)] = &[
    (
        "POST /_sandbox/optin {\"login_id\"}",
        "a person opts in: record it and post the signed webhook",
    ),
    (
        "POST /_sandbox/message {\"login_id\",\"text\"}",
        "the person writes to the Page (try \"STOP\")",
    ),
    (
        "POST /_sandbox/notification-status {\"login_id\"}",
        "the person stops notifications",
    ),
    (
        "POST /_sandbox/policy {\"action\":\"block\"}",
        "Messenger blocks (unblocks, warns) the Page",
    ),
    (
        "POST /_sandbox/hold {\"login_id\"} · /_sandbox/release",
        "hold a person's deliveries (or every one with {}) to try STOP by hand",
    ),
    (
        "POST|GET|DELETE /_sandbox/faults",
        "inject Graph errors, timeouts, closed connections",
    ),
    (
        "GET|PUT /_sandbox/limits · GET /_sandbox/stats",
        "rate limit and latency; Send API counters",
    ),
    (
        "GET|PUT|DELETE /_sandbox/api_version",
        "answer as another Graph version",
    ),
    (
        "GET|PUT|DELETE /_sandbox/page_token {\"state\":\"expired\"}",
        "expire or invalidate the Page token (debug_token, Send API)",
    ),
    (
        "GET|PUT|DELETE /_sandbox/subscriptions {\"page_subscribed\":false}",
        "unsubscribe the Page, drop a field, move the callback URL, deactivate",
    ),
    (
        "POST /_sandbox/deauthorize · /_sandbox/data-deletion {\"asid\"}",
        "Facebook's signed callbacks",
    ),
    (
        "GET|PUT /_sandbox/webhook_url · POST /_sandbox/reset",
        "where webhooks go; forget everything",
    ),
];

async fn index(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Html<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let query = query.map(|Query(q)| q).unwrap_or_default();
    Html(render(&state, host, &query))
}

/// The login dialog as an app would open it, coming back here; `sandbox_webhook=none` keeps the
/// app out of it (no opt-in webhook is posted).
fn dialog_preview_url(state: &AppState, host: &str) -> String {
    let config = &state.config;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &config.app_id)
        .append_pair("redirect_uri", &format!("http://{host}/"))
        .append_pair("scope", &format!("public_profile,{MESSENGER_SCOPE}"))
        .append_pair("messenger_page_id", &config.page_id)
        .append_pair("response_type", "code")
        .append_pair("state", "sandbox-preview")
        .append_pair("sandbox_webhook", "none")
        .finish();
    format!(
        "/{}/dialog/oauth?{query}",
        shared::config::settings::DEFAULT_GRAPH_API_VERSION
    )
}

fn render(state: &AppState, host: &str, query: &HashMap<String, String>) -> String {
    let records = state.snapshot();
    let config = &state.config;
    let mut body = String::from(
        "<h1>Messenger sandbox</h1>\n<p class=\"muted\">A local stand-in for graph.facebook.com \
         and www.facebook.com: the app's Send API calls land here, the login dialog runs here, and \
         the controls below play the person, the Page and Facebook.</p>\n",
    );
    // Back from the dialog preview.
    if query.get("state").map(String::as_str) == Some("sandbox-preview") {
        let outcome = if query.contains_key("code") {
            "The dialog came back with a code (the app would exchange it now)."
        } else {
            "The dialog came back without a login (cancelled)."
        };
        let _ = writeln!(
            body,
            "<div class=\"card\" id=\"preview-outcome\">{outcome}</div>"
        );
    }
    let _ = writeln!(
        body,
        "<div class=\"card\"><h2>Open</h2><ul class=\"links\">\
         <li><a id=\"inbox-link\" href=\"/_sandbox/inbox?format=html\">Inbox</a> — the conversation \
         with each person, refreshed every 2 s</li>\
         <li><a id=\"dialog-link\" href=\"{}\">The login dialog</a> — a preview as {} would open \
         it (nothing is sent to the app)</li></ul></div>",
        escape_html(&dialog_preview_url(state, host)),
        escape_html(&config.app_name),
    );

    body.push_str("<div class=\"card\" id=\"app-links\"><h2>The app</h2><ul class=\"links\">");
    let links = state.links();
    for (label, url) in &links {
        let _ = write!(
            body,
            "<li>{}: <a href=\"{url}\">{url}</a></li>",
            escape_html(label),
            url = escape_html(url)
        );
    }
    match state.webhook_url() {
        Some(url) => {
            let _ = write!(
                body,
                "<li>Webhooks go to <code>{}</code></li>",
                escape_html(&url)
            );
        }
        None => body.push_str(
            "<li>No webhook URL yet: opt-ins are not delivered (<code>PUT /_sandbox/webhook_url</code>)</li>",
        ),
    }
    if links.is_empty() {
        body.push_str(
            "<li class=\"muted\">The local API's links (OpenAPI document, website) show here \
             when the sandbox runs inside <code>make run</code>.</li>",
        );
    }
    body.push_str(
        "<li>Compliance report: <code>make report</code> in the repository</li>\n<li>Preflight checklist: <code>make doctor</code></li></ul></div>\n",
    );

    let held = state.holds.current();
    let held = if held.all {
        "every send".to_owned()
    } else if held.login_ids.is_empty() {
        "nothing".to_owned()
    } else {
        format!("{} person(s)", held.login_ids.len())
    };
    let stats = state.faults.stats();
    let _ = writeln!(
        body,
        "<div class=\"card\" id=\"state\"><h2>State</h2><table>\
         <tr><th>Opt-ins</th><td id=\"optins\">{optins}</td></tr>\
         <tr><th>Messages sent by the Page</th><td>{sent}</td></tr>\
         <tr><th>Messages from people</th><td>{replies}</td></tr>\
         <tr><th>Held</th><td>{held}</td></tr>\
         <tr><th>Page policy</th><td>{policy}</td></tr>\
         <tr><th>Rate limit</th><td>{rate} per second and Page ({limited} refused)</td></tr>\
         <tr><th>Fault rules</th><td>{rules} ({injected} injected)</td></tr>\
         <tr><th>Answers as version</th><td>{version}</td></tr>\
         </table></div>",
        optins = records.optins.len(),
        sent = records.inbox.len(),
        replies = records.person_events.len(),
        policy = escape_html(records.policy.as_deref().unwrap_or("none")),
        rate = state.rate_limiter.limit(),
        limited = stats.rate_limited,
        rules = state.faults.rules().len(),
        injected = stats.faults_injected,
        version = escape_html(
            &state
                .api_version
                .get()
                .unwrap_or_else(|| "the one asked for".into())
        ),
    );
    body.push_str("<div class=\"card\" id=\"controls\"><h2>Controls</h2><table>");
    for (route, what) in CONTROLS {
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            escape_html(route),
            escape_html(what)
        );
    }
    body.push_str("</table><p class=\"muted\">JSON in, JSON out, e.g. <code>curl -s -X POST ");
    let _ = write!(
        body,
        "http://{}/_sandbox/optin -d '{{}}'</code>.</p></div>",
        escape_html(host)
    );
    page("Start", "", "", &body)
}

/// The fallback: Graph's 404 for Graph paths and API clients, a page with a way back for browsers.
pub(crate) async fn not_found(headers: HeaderMap, uri: Uri) -> Response {
    let graph_path = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .is_some_and(is_graph_version);
    if wants_html(&headers) && !graph_path {
        return error_page(
            StatusCode::NOT_FOUND,
            "Page not found",
            &format!("The sandbox has no page at {}.", uri.path()),
        );
    }
    unknown_path(uri.path()).into_response()
}
