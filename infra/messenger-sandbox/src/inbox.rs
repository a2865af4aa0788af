//! `GET /_sandbox/inbox`: what the app sent, as JSON (`{"messages": […]}`, unchanged for tools and
//! tests) or, for browsers, a page with one conversation per person: the Page's messages, the
//! person's replies and notification changes, and the person's state as far as the sandbox knows
//! it (opted in, message sent, window closed, held, asked to stop, Page blocked). The page reloads
//! itself every 2 s, so a message in flight shows up without touching anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::hold::HoldSet;
use crate::html::{escape_html, page, wants_html};
use crate::ids::now_ms;
use crate::state::{AppState, InboxMessage, PersonAct, Records};

/// How often the page reloads itself, in seconds.
pub(crate) const REFRESH_SECONDS: u32 = 2;

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
    if query.format.as_deref() == Some("html") || wants_html(&headers) {
        let view = View {
            records: state.snapshot(),
            holds: state.holds.current(),
            optin_window_ms: state.config.optin_window_ms,
            now_ms: now_ms(),
        };
        Html(render_html(&view, login_id)).into_response()
    } else {
        Json(InboxResponse {
            messages: state.inbox(login_id),
        })
        .into_response()
    }
}

/// Everything the page shows, read once.
pub(crate) struct View {
    pub records: Records,
    pub holds: HoldSet,
    pub optin_window_ms: i64,
    pub now_ms: i64,
}

pub(crate) fn format_time(ms: i64) -> String {
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

/// One line of a conversation.
enum Line<'a> {
    OptedIn,
    Page(&'a InboxMessage),
    Person(&'a str),
    Notifications(&'a str),
}

/// One person's conversation, in time order.
#[derive(Default)]
struct Conversation<'a> {
    lines: Vec<(i64, Line<'a>)>,
    opted_in_at_ms: Option<i64>,
    sent: usize,
    replies: usize,
    asked_to_stop: bool,
}

/// A person's state as far as the sandbox knows it: label and badge class (good, warn, bad or "").
fn person_state(c: &Conversation<'_>, held: bool, view: &View) -> (&'static str, &'static str) {
    let window_closed = c
        .opted_in_at_ms
        .is_some_and(|at| view.now_ms >= at.saturating_add(view.optin_window_ms));
    if view.records.policy.as_deref() == Some("block") {
        ("Page blocked", "bad")
    } else if c.asked_to_stop {
        ("opted out (asked to stop)", "bad")
    } else if held {
        ("held: sends wait", "warn")
    } else if c.sent > 0 {
        ("message sent", "good")
    } else if window_closed {
        ("window closed, nothing sent", "warn")
    } else if c.opted_in_at_ms.is_some() {
        ("opted in, waiting for the message", "")
    } else {
        ("not opted in", "")
    }
}

fn conversations<'a>(
    records: &'a Records,
    only: Option<&str>,
) -> BTreeMap<&'a str, Conversation<'a>> {
    let keywords: Vec<String> = shared::domain::message::DEFAULT_STOP_KEYWORDS
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    let mut people: BTreeMap<&str, Conversation<'_>> = BTreeMap::new();
    let wanted = |id: &str| only.is_none_or(|o| o == id);
    for (login_id, optin) in records.optins.iter().filter(|(id, _)| wanted(id.as_str())) {
        let c = people.entry(login_id.as_str()).or_default();
        c.opted_in_at_ms = Some(optin.opted_in_at_ms);
        c.lines.push((optin.opted_in_at_ms, Line::OptedIn));
    }
    for m in records.inbox.iter().filter(|m| wanted(m.login_id.as_str())) {
        let c = people.entry(m.login_id.as_str()).or_default();
        c.sent += 1;
        c.lines.push((m.received_at_ms, Line::Page(m)));
    }
    for e in records
        .person_events
        .iter()
        .filter(|e| wanted(e.login_id.as_str()))
    {
        let c = people.entry(e.login_id.as_str()).or_default();
        match &e.act {
            PersonAct::Wrote(text) => {
                c.replies += 1;
                c.asked_to_stop |= shared::domain::message::is_stop_request(text, &keywords);
                c.lines.push((e.at_ms, Line::Person(text)));
            }
            PersonAct::NotificationStatus(status) => {
                c.asked_to_stop |= status.to_ascii_uppercase().contains("STOP");
                c.lines.push((e.at_ms, Line::Notifications(status)));
            }
        }
    }
    for c in people.values_mut() {
        // Stable: an opt-in and its message in the same millisecond keep that order.
        c.lines.sort_by_key(|(at, _)| *at);
    }
    people
}

fn render_line(html: &mut String, at: i64, line: &Line<'_>) {
    let time = escape_html(&format_time(at));
    let _ = match line {
        Line::OptedIn => writeln!(
            html,
            "<div class=\"msg note\">Opted in to messages from the Page · {time}</div>"
        ),
        Line::Page(m) => writeln!(
            html,
            "<div class=\"msg page\"><time>Page · {time} · {}</time>{}</div>",
            escape_html(&m.messaging_type),
            escape_html(&m.text),
        ),
        Line::Person(text) => writeln!(
            html,
            "<div class=\"msg person\"><time>Person · {time}</time>{}</div>",
            escape_html(text),
        ),
        Line::Notifications(status) => writeln!(
            html,
            "<div class=\"msg note\">Notification status: {} · {time}</div>",
            escape_html(status),
        ),
    };
}

pub(crate) fn render_html(view: &View, login_id: Option<&str>) -> String {
    let mut html = String::from(
        "<h1>Inbox</h1>\n<p class=\"muted\">What the Page sent on Messenger and what people \
         answered, one conversation per person. This page refreshes every 2 seconds.</p>\n",
    );
    match view.records.policy.as_deref() {
        Some("block") => html.push_str(
            "<div class=\"card\"><span class=\"badge bad\" id=\"page-state\">Page blocked</span> \
             Messenger blocked the Page (policy enforcement): no message goes out.</div>\n",
        ),
        Some("warning") => html.push_str(
            "<div class=\"card\"><span class=\"badge warn\" id=\"page-state\">Page warned</span> \
             Messenger warned the Page (policy enforcement).</div>\n",
        ),
        _ => {}
    }
    if let Some(id) = login_id {
        let _ = writeln!(
            html,
            "<p>One person: <code>{}</code> · <a href=\"?format=html\">everyone</a></p>",
            escape_html(id)
        );
    }
    let people = conversations(&view.records, login_id);
    if people.is_empty() {
        html.push_str(
            "<div class=\"card\"><p>No conversations yet.</p><p class=\"muted\">Log in with \
             Messenger on the app's website (or <code>POST /_sandbox/optin</code>): the Page's \
             first message shows up here.</p></div>\n",
        );
    }
    // The most recent conversation first.
    let mut people: Vec<_> = people.into_iter().collect();
    people.sort_by_key(|(_, c)| std::cmp::Reverse(c.lines.last().map_or(0, |(at, _)| *at)));
    for (id, c) in &people {
        let held = view.holds.holds(Some(*id));
        let (label, class) = person_state(c, held, view);
        let _ = writeln!(
            html,
            "<section class=\"card person\" data-login-id=\"{full}\"><h2>Person \
             <code title=\"{full}\">{short}</code><span class=\"badge {class}\" \
             data-state=\"{label}\">{label}</span></h2>\n<p class=\"muted\">{sent} sent by the \
             Page · {replies} from the person</p>\n<div class=\"thread\">",
            full = escape_html(id),
            short = escape_html(&prefix(id, 12)),
            sent = c.sent,
            replies = c.replies,
        );
        for (at, line) in &c.lines {
            render_line(&mut html, *at, line);
        }
        html.push_str("</div></section>\n");
    }
    let refresh = format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">");
    page("Inbox", &refresh, "", &html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{OptIn, PersonEvent};

    fn view(records: Records) -> View {
        View {
            records,
            holds: HoldSet::default(),
            optin_window_ms: 86_400_000,
            now_ms: 1_000,
        }
    }

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
        let records = Records {
            inbox: vec![m],
            ..Records::default()
        };
        let html = render_html(&view(records), Some("<i>"));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>"));
        assert!(!html.contains("<i>"));
        // The filter keeps only that person: none here.
        assert!(html.contains("No conversations yet"), "{html}");
        let records = Records {
            inbox: vec![InboxMessage {
                login_id: "<b>0123456789abcdef".into(),
                text: "<script>alert(1)</script>".into(),
                messaging_type: "UPDATE".into(),
                message_id: "m".into(),
                page_id: "p".into(),
                received_at_ms: 0,
                opted_in_at_ms: 0,
            }],
            ..Records::default()
        };
        let html = render_html(&view(records), None);
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("1970-01-01 00:00:00.000 UTC"));
        assert!(html.contains("&lt;b&gt;012345678…"));
    }

    #[test]
    fn a_conversation_shows_both_sides_in_order_with_the_person_s_state() {
        let mut records = Records::default();
        records
            .optins
            .insert("a".repeat(64), OptIn { opted_in_at_ms: 10 });
        records.inbox.push(InboxMessage {
            message_id: "m".into(),
            page_id: "p".into(),
            login_id: "a".repeat(64),
            text: "Hi Hana!".into(),
            messaging_type: "UPDATE".into(),
            received_at_ms: 20,
            opted_in_at_ms: 10,
        });
        records.person_events.push(PersonEvent {
            login_id: "a".repeat(64),
            at_ms: 30,
            act: PersonAct::Wrote("Stop!".into()),
        });
        records
            .optins
            .insert("b".repeat(64), OptIn { opted_in_at_ms: 5 });
        let html = render_html(&view(records.clone()), None);
        let (opted, sent, wrote) = (
            html.find("Opted in to messages").unwrap(),
            html.find("Hi Hana!").unwrap(),
            html.find("Stop!").unwrap(),
        );
        assert!(opted < sent && sent < wrote, "{html}");
        assert!(
            html.contains("data-state=\"opted out (asked to stop)\""),
            "{html}"
        );
        assert!(
            html.contains("data-state=\"opted in, waiting for the message\""),
            "{html}"
        );
        assert!(html.contains("http-equiv=\"refresh\""), "{html}");
        // The window of the silent person closed: the page says so.
        let mut late = view(records);
        late.now_ms = 10 + 86_400_000;
        let html = render_html(&late, None);
        assert!(
            html.contains("data-state=\"window closed, nothing sent\""),
            "{html}"
        );
        late.records.policy = Some("block".into());
        assert!(render_html(&late, None).contains("id=\"page-state\""));
    }
}
