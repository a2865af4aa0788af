//! `GET /_sandbox/inbox`: what the app sent, as JSON or as a small HTML page.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::html::escape_html;
use crate::state::{AppState, InboxMessage};

#[derive(Deserialize, Default)]
struct InboxQuery {
    login_id: Option<String>,
    format: Option<String>,
}

#[derive(Serialize)]
struct InboxResponse {
    messages: Vec<InboxMessage>,
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/_sandbox/inbox", get(inbox))
}

async fn inbox(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let login_id = query.login_id.as_deref().filter(|s| !s.is_empty());
    let messages = state.inbox(login_id);
    let wants_html = query.format.as_deref() == Some("html")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        Html(render_html(&messages, login_id)).into_response()
    } else {
        Json(InboxResponse { messages }).into_response()
    }
}

fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn prefix(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn render_html(messages: &[InboxMessage], login_id: Option<&str>) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Messenger sandbox inbox</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
         td.text{white-space:pre-wrap}</style></head><body>\n<h1>Messenger sandbox inbox</h1>\n",
    );
    if let Some(id) = login_id {
        let _ = writeln!(html, "<p>login_id: <code>{}</code></p>", escape_html(id));
    }
    if messages.is_empty() {
        html.push_str("<p>No messages yet.</p>\n");
    } else {
        html.push_str(
            "<table>\n<tr><th>Received</th><th>login_id</th><th>Type</th><th>Text</th></tr>\n",
        );
        for m in messages {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td title=\"{}\"><code>{}</code></td><td>{}</td><td class=\"text\">{}</td></tr>",
                escape_html(&format_time(m.received_at_ms)),
                escape_html(&m.login_id),
                escape_html(&prefix(&m.login_id, 12)),
                escape_html(&m.messaging_type),
                escape_html(&m.text),
            );
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_lists_messages_escaped() {
        let m = InboxMessage {
            message_id: "m_1".into(),
            page_id: "p".into(),
            login_id: "<b>0123456789abcdef".into(),
            text: "<script>alert(1)</script>".into(),
            messaging_type: "UPDATE".into(),
            received_at_ms: 0,
            opted_in_at_ms: 0,
        };
        let html = render_html(&[m], Some("<i>"));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>"));
        assert!(!html.contains("<i>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("1970-01-01 00:00:00.000 UTC"));
        assert!(html.contains("&lt;b&gt;012345678…"));
    }
}
