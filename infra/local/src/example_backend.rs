//! The example website's "backend" (issue 12, section 4): what a business's own backend does with
//! the product. `POST /backend/events` receives the product's events and verifies them with the
//! Standard Webhooks reference crate (`standardwebhooks`, not the product's own signing code, so a
//! signing bug cannot verify itself), drops a replayed `webhook-id`, and keeps them in memory;
//! `GET /backend` shows them per person, each with a reply box; `POST /backend/reply` calls the
//! product's follow-up API (`POST /v1/users/{asid}/messages`, with the local API key, server side
//! as a real backend would) and shows its answer. No script: plain forms, a strict CSP.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

/// The project's one stylesheet, inlined (the CSP allows exactly it, by hash).
const STYLESHEET: &str = shared::domain::report_html::STYLESHEET;

/// The pages' `Content-Security-Policy`: no script at all, only the stylesheet, forms only to
/// this site.
pub static CONTENT_SECURITY_POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src 'sha256-{}'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLESHEET.as_bytes()))
    )
});

/// Events kept for the page (the oldest are dropped beyond it: a long `make run` stays small).
const MAX_EVENTS: usize = 1_000;

/// Longest reply text sent on (the API refuses longer ones itself; this only bounds the form).
const MAX_REPLY_BYTES: usize = 8 * 1024;

/// One verified event, as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub event_type: String,
    pub timestamp: String,
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl Received {
    fn field(&self, name: &str) -> Option<&str> {
        self.data
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    }

    /// Who it is about: the asid when known, else the website's `user_ref`.
    fn person(&self) -> String {
        match (self.field("asid"), self.field("user_ref")) {
            (Some(asid), _) => asid.to_owned(),
            (None, Some(user_ref)) => format!("user_ref {user_ref}"),
            (None, None) => "(not yet linked to a person)".to_owned(),
        }
    }
}

#[derive(Default)]
struct Log {
    seen: HashSet<String>,
    events: Vec<Received>,
    /// The last answer of the follow-up API, per asid.
    answers: BTreeMap<String, String>,
}

/// The backend's state: the signing secret's verifier, the product API to reply through, and what
/// it received.
pub struct Backend {
    verifier: standardwebhooks::Webhook,
    api_base_url: String,
    api_key: String,
    http: reqwest::Client,
    log: Mutex<Log>,
}

/// Why an event was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Missing or wrong signature, or a timestamp off by more than five minutes: 401.
    Unauthorized(String),
    /// Signed, but not a JSON event: 400.
    Malformed,
}

impl Backend {
    /// A backend verifying with `signing_secret` (`whsec_…`) and replying through the product
    /// API at `api_base_url` with `api_key`.
    /// `signing_secret` may list several keys separated by spaces (a rotation in progress, as the
    /// event sender signs with each); a website verifies with its own one: here the first.
    pub fn new(signing_secret: &str, api_base_url: &str, api_key: &str) -> Result<Self, String> {
        let own_key = signing_secret.split_whitespace().next().unwrap_or_default();
        let verifier = standardwebhooks::Webhook::new(own_key)
            .map_err(|e| format!("EVENTS_SIGNING_SECRET is not a whsec_ secret: {e}"))?;
        Ok(Self {
            verifier,
            api_base_url: api_base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            http: reqwest::Client::new(),
            log: Mutex::new(Log::default()),
        })
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Verify and keep one delivery. `Ok(false)`: a replay of a `webhook-id` already kept
    /// (answered 200 all the same, so the product stops retrying).
    pub fn receive(&self, headers: &HeaderMap, body: &[u8]) -> Result<bool, Refused> {
        self.verifier
            .verify(body, headers)
            .map_err(|e| Refused::Unauthorized(e.to_string()))?;
        let id = headers
            .get(standardwebhooks::HEADER_WEBHOOK_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let parsed: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| Refused::Malformed)?;
        let text = |k: &str| parsed.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(event_type), Some(timestamp), Some(data)) = (
            text("type"),
            text("timestamp"),
            parsed.get("data").and_then(|d| d.as_object()).cloned(),
        ) else {
            return Err(Refused::Malformed);
        };
        let mut log = self.log();
        if !log.seen.insert(id.clone()) {
            return Ok(false);
        }
        if log.events.len() >= MAX_EVENTS {
            log.events.remove(0);
        }
        log.events.push(Received {
            id,
            event_type,
            timestamp,
            data,
        });
        Ok(true)
    }

    /// Every event kept, in arrival order.
    pub fn events(&self) -> Vec<Received> {
        self.log().events.clone()
    }

    /// Send `text` to `asid` through the product's follow-up API and keep its answer for the page.
    pub async fn reply(&self, asid: &str, text: &str) -> String {
        let answer = self.call_follow_up(asid, text).await;
        self.log().answers.insert(asid.to_owned(), answer.clone());
        answer
    }

    async fn call_follow_up(&self, asid: &str, text: &str) -> String {
        if asid.is_empty() || !asid.bytes().all(|b| b.is_ascii_digit()) {
            return "not sent: no asid for this person yet".to_owned();
        }
        let url = format!("{}/v1/users/{asid}/messages", self.api_base_url);
        let sent = self
            .http
            .post(url)
            .bearer_auth(&self.api_key)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&serde_json::json!({ "text": text }))
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return format!("the API could not be reached: {e}"),
        };
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        describe_answer(status, &body)
    }

    /// `GET /backend`: the events per person, each with a reply box.
    pub fn page(&self) -> String {
        let log = self.log();
        let mut people: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
        for e in &log.events {
            people.entry(e.person()).or_default().push(e);
        }
        let mut html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <title>Example shop — backend</title><style>{STYLESHEET}</style></head><body>\
             <header class=\"top\"><a class=\"brand\" href=\"/\">Example shop</a>\
             <span class=\"where\">backend</span></header><main>\
             <h1>Backend: events and replies</h1>\
             <p class=\"muted\">What the shop's backend received from Login Connect (signed events, \
             verified with the Standard Webhooks library), per person. A reply goes through \
             <code>POST /v1/users/{{asid}}/messages</code>; the product refuses it outside \
             Meta's messaging window.</p><p><a id=\"back\" href=\"/\">← Back to the shop</a></p>"
        );
        if people.is_empty() {
            html.push_str(
                "<div class=\"card\" id=\"no-events\"><p>No event yet. Sign in on the \
                 <a href=\"/\">shop</a> and allow Messenger.</p></div>",
            );
        }
        for (person, events) in &people {
            let asid = events.iter().find_map(|e| e.field("asid"));
            let user_ref = events.iter().rev().find_map(|e| e.field("user_ref"));
            let heading = match (asid, user_ref) {
                (Some(_), Some(r)) => {
                    format!("{} <small>user_ref {}</small>", escape(person), escape(r))
                }
                _ => escape(person),
            };
            html.push_str(&format!(
                "<section class=\"card person\"><h2>{heading}</h2><table><thead><tr><th>when</th>\
                 <th>event</th><th>data</th></tr></thead><tbody>"
            ));
            for e in events {
                html.push_str(&format!(
                    "<tr><td><small>{}</small></td><td><code>{}</code></td><td>{}</td></tr>",
                    escape(&e.timestamp),
                    escape(&e.event_type),
                    escape(&summary(&e.data)),
                ));
            }
            html.push_str("</tbody></table>");
            if let Some(asid) = asid {
                let asid = escape(asid);
                html.push_str(&format!(
                    "<form method=\"post\" action=\"/backend/reply\">\
                     <input type=\"hidden\" name=\"asid\" value=\"{asid}\">\
                     <p><label>Reply on Messenger<br><textarea name=\"text\" rows=\"2\" cols=\"50\" \
                     maxlength=\"1999\" required></textarea></label></p>\
                     <p><button class=\"primary\" type=\"submit\">Send</button></p></form>"
                ));
            }
            if let Some(answer) = asid.and_then(|a| log.answers.get(a)) {
                html.push_str(&format!(
                    "<p class=\"answer\" role=\"status\">{}</p>",
                    escape(answer)
                ));
            }
            html.push_str("</section>");
        }
        html.push_str("</main></body></html>\n");
        html
    }
}

/// The follow-up API's answer as a line for the page: `202 queued (id …)` or `409 code: …`.
pub fn describe_answer(status: u16, body: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    if (200..300).contains(&status) {
        return format!("{status} {} (id {})", s(&body["state"]), s(&body["id"]));
    }
    let mut line = format!(
        "{status} {}: {}",
        s(&body["error"]["code"]),
        s(&body["error"]["message"])
    );
    if let Some(ended) = body["error"]["window_ended_at"].as_str() {
        line.push_str(&format!(" (window ended at {ended})"));
    }
    line
}

/// `key=value` pairs of an event's data, in the data's order.
fn summary(data: &serde_json::Map<String, serde_json::Value>) -> String {
    data.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// HTML text and attribute escaping.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn html_page(body: String) -> Response {
    // A policy that does not parse as a header value falls back to allowing nothing at all.
    let csp = HeaderValue::from_str(&CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    let html = HeaderValue::from_static("text/html; charset=utf-8");
    (
        [
            (header::CONTENT_TYPE, html),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        body,
    )
        .into_response()
}

async fn receive_events(
    State(backend): State<Arc<Backend>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match backend.receive(&headers, &body) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(Refused::Unauthorized(reason)) => {
            tracing::warn!(reason = %reason, "example backend refused an event");
            (StatusCode::UNAUTHORIZED, "invalid signature\n").into_response()
        }
        Err(Refused::Malformed) => (StatusCode::BAD_REQUEST, "not an event\n").into_response(),
    }
}

async fn show(State(backend): State<Arc<Backend>>) -> Response {
    html_page(backend.page())
}

async fn reply(State(backend): State<Arc<Backend>>, body: Bytes) -> Response {
    if body.len() > MAX_REPLY_BYTES {
        return (StatusCode::PAYLOAD_TOO_LARGE, "reply too long\n").into_response();
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let asid = form.get("asid").map(String::as_str).unwrap_or_default();
    let text = form.get("text").map(String::as_str).unwrap_or_default();
    backend.reply(asid, text).await;
    // Post/redirect/get: a reload of the page does not send again.
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/backend")]).into_response()
}

/// `GET /backend`, `POST /backend/events`, `POST /backend/reply`.
pub fn router(backend: Arc<Backend>) -> axum::Router {
    axum::Router::new()
        .route("/backend", get(show))
        .route("/backend/events", post(receive_events))
        .route("/backend/reply", post(reply))
        .with_state(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn backend() -> Backend {
        Backend::new(SECRET, "http://127.0.0.1:1", "k").unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// A delivery as the product makes it, signed by the reference library.
    fn signed(id: &str, timestamp: i64, body: &str, secret: &str) -> HeaderMap {
        let signature = standardwebhooks::Webhook::new(secret)
            .unwrap()
            .sign(id, timestamp, body.as_bytes())
            .unwrap();
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_str(id).unwrap());
        h.insert(
            "webhook-timestamp",
            HeaderValue::from_str(&timestamp.to_string()).unwrap(),
        );
        h.insert(
            "webhook-signature",
            HeaderValue::from_str(&signature).unwrap(),
        );
        h
    }

    fn event(event_type: &str, data: serde_json::Value) -> String {
        serde_json::json!({"type": event_type, "timestamp": "2026-11-30T18:00:00.000Z", "data": data})
            .to_string()
    }

    #[test]
    fn a_correctly_signed_event_is_kept_and_shown_under_its_person() {
        let b = backend();
        let body = event(
            "message.sent",
            serde_json::json!({"asid": "7654321", "kind": "initial", "user_ref": "cust_1"}),
        );
        assert_eq!(
            b.receive(&signed("evt_1", now(), &body, SECRET), body.as_bytes()),
            Ok(true)
        );
        let page = b.page();
        assert!(
            page.contains("<h2>7654321 <small>user_ref cust_1</small></h2>"),
            "{page}"
        );
        assert!(page.contains("<code>message.sent</code>"), "{page}");
        assert!(page.contains("user_ref=cust_1"), "{page}");
        assert!(page.contains("name=\"asid\" value=\"7654321\""), "{page}");
        assert!(page.contains("<a id=\"back\" href=\"/\">"), "{page}");
    }

    #[test]
    fn a_bad_signature_or_an_old_timestamp_is_refused_and_not_shown() {
        let b = backend();
        let body = event("optin.received", serde_json::json!({"asid": "1"}));
        let other = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        for (headers, what) in [
            (signed("evt_a", now(), &body, other), "another secret"),
            (
                signed("evt_b", now() - 301, &body, SECRET),
                "six minutes old",
            ),
            (
                signed("evt_c", now() + 301, &body, SECRET),
                "from the future",
            ),
            (HeaderMap::new(), "no headers"),
        ] {
            assert!(
                matches!(
                    b.receive(&headers, body.as_bytes()),
                    Err(Refused::Unauthorized(_))
                ),
                "{what}"
            );
        }
        // The body changed after signing.
        let headers = signed("evt_d", now(), &body, SECRET);
        let tampered = body.replace("\"1\"", "\"2\"");
        assert!(matches!(
            b.receive(&headers, tampered.as_bytes()),
            Err(Refused::Unauthorized(_))
        ));
        assert!(b.events().is_empty());
        assert!(b.page().contains("id=\"no-events\""));
    }

    #[test]
    fn a_replayed_webhook_id_is_shown_once() {
        let b = backend();
        let body = event(
            "person.replied",
            serde_json::json!({"asid": "1", "text": "hi"}),
        );
        assert_eq!(
            b.receive(&signed("evt_same", now(), &body, SECRET), body.as_bytes()),
            Ok(true)
        );
        // The product's retry: same id, a later attempt time, signed again.
        assert_eq!(
            b.receive(
                &signed("evt_same", now() + 1, &body, SECRET),
                body.as_bytes()
            ),
            Ok(false)
        );
        assert_eq!(b.events().len(), 1);
        assert_eq!(b.page().matches("<code>person.replied</code>").count(), 1);
    }

    #[test]
    fn the_page_escapes_what_people_wrote_and_allows_no_script() {
        let b = backend();
        let body = event(
            "person.replied",
            serde_json::json!({"asid": "1<i>", "user_ref": "r<u>",
                "text": "<script>alert(1)</script> & \"hi\""}),
        );
        b.receive(&signed("evt_x", now(), &body, SECRET), body.as_bytes())
            .unwrap();
        b.log()
            .answers
            .insert("1<i>".into(), "409 <b>outside_window</b>".into());
        let page = b.page();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;hi&quot;"));
        assert!(page.contains("409 &lt;b&gt;outside_window&lt;/b&gt;"));
        assert!(!page.contains("<i>") && !page.contains("<u>"), "{page}");
        assert!(page.contains("<h2>1&lt;i&gt; <small>user_ref r&lt;u&gt;</small></h2>"));
        assert!(!CONTENT_SECURITY_POLICY.contains("script-src"));
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none'"));
    }

    #[test]
    fn the_follow_up_api_s_answers_read_as_a_line() {
        assert_eq!(
            describe_answer(202, &serde_json::json!({"id": "msg_1", "state": "queued"})),
            "202 queued (id msg_1)"
        );
        let refused = serde_json::json!({"error": {"code": "outside_window",
            "message": "the window has ended", "window_ended_at": "2026-11-30T10:00:00Z"}});
        assert_eq!(
            describe_answer(409, &refused),
            "409 outside_window: the window has ended (window ended at 2026-11-30T10:00:00Z)"
        );
    }

    #[tokio::test]
    async fn a_reply_calls_the_follow_up_api_with_the_key_and_shows_its_answer() {
        // A stand-in for the product's API that checks the key and refuses outside the window.
        let api = axum::Router::new().route(
            "/v1/users/{asid}/messages",
            post(|headers: HeaderMap, body: Bytes| async move {
                let key = headers.get("authorization").and_then(|v| v.to_str().ok());
                let text: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if key != Some("Bearer k") || headers.get("idempotency-key").is_none() {
                    return (StatusCode::UNAUTHORIZED, "{}").into_response();
                }
                if text["text"] == "late" {
                    return (
                        StatusCode::CONFLICT,
                        axum::Json(serde_json::json!({"error": {"code": "outside_window", "message": "m"}})),
                    )
                        .into_response();
                }
                (
                    StatusCode::ACCEPTED,
                    axum::Json(serde_json::json!({"id": "msg_9", "state": "queued"})),
                )
                    .into_response()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, api).await });
        let b = Backend::new(SECRET, &format!("http://{addr}"), "k").unwrap();
        assert_eq!(b.reply("42", "hello").await, "202 queued (id msg_9)");
        assert_eq!(b.reply("42", "late").await, "409 outside_window: m");
        assert_eq!(
            b.reply("", "x").await,
            "not sent: no asid for this person yet"
        );
        server.abort();
    }

    #[tokio::test]
    async fn over_http_a_bad_signature_is_401_a_good_one_204_and_the_page_has_a_strict_csp() {
        let b = Arc::new(backend());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, router(b)).await });
        let http = reqwest::Client::new();
        let body = event("optin.received", serde_json::json!({"asid": "5"}));
        let post = |headers: HeaderMap| {
            http.post(format!("{base}/backend/events"))
                .headers(headers)
                .body(body.clone())
                .send()
        };
        let old = post(signed("evt_1", now() - 600, &body, SECRET))
            .await
            .unwrap();
        assert_eq!(old.status(), 401);
        let good = post(signed("evt_1", now(), &body, SECRET)).await.unwrap();
        assert_eq!(good.status(), 204);
        let page = http.get(format!("{base}/backend")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(csp, *CONTENT_SECURITY_POLICY);
        let html = page.text().await.unwrap();
        assert_eq!(html.matches("<code>optin.received</code>").count(), 1);
        server.abort();
    }
}
