//! End-to-end tests of the sandbox over HTTP on 127.0.0.1 random ports.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use messenger_sandbox::{
    DEFAULT_APP_SECRET, DEFAULT_PAGE_ACCESS_TOKEN, DEFAULT_PAGE_ID, InboxMessage, RunningSandbox,
    SandboxConfig,
};
use serde_json::{Value, json};

const OUTSIDE_WINDOW: &str = "(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview";
const HOUR_MS: i64 = 3_600_000;

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn sandbox() -> RunningSandbox {
    messenger_sandbox::start(SandboxConfig::default(), local())
        .await
        .expect("sandbox starts")
}

fn proof() -> String {
    shared::facebook::crypto::appsecret_proof(DEFAULT_APP_SECRET, DEFAULT_PAGE_ACCESS_TOKEN)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn messages_url(sb: &RunningSandbox) -> String {
    format!("{}/v25.0/{DEFAULT_PAGE_ID}/messages", sb.base_url)
}

/// POST `body` (raw) to `url` with the query parameters; (status, JSON answer).
async fn post_raw(url: &str, query: &[(&str, &str)], body: &str) -> (u16, Value) {
    let url = reqwest::Url::parse_with_params(url, query).unwrap();
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, value)
}

/// Send with valid credentials in the query string.
async fn send(sb: &RunningSandbox, body: &Value) -> (u16, Value) {
    let proof = proof();
    post_raw(
        &messages_url(sb),
        &[
            ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
            ("appsecret_proof", &proof),
        ],
        &body.to_string(),
    )
    .await
}

fn text_to(login_id: &str, text: &str) -> Value {
    json!({
        "recipient": {"login_id": login_id},
        "messaging_type": "UPDATE",
        "message": {"text": text},
    })
}

/// Record an opt-in without delivering a webhook; returns the login_id.
async fn optin_quiet(sb: &RunningSandbox, timestamp_ms: Option<i64>) -> String {
    let mut body = json!({"deliver": false});
    if let Some(ts) = timestamp_ms {
        body["timestamp_ms"] = json!(ts);
    }
    let (status, answer) = post_raw(
        &format!("{}/_sandbox/optin", sb.base_url),
        &[],
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["webhook_statuses"], json!([]));
    answer["login_id"].as_str().unwrap().to_owned()
}

/// Assert a Graph error envelope; returns the `error` object.
fn assert_graph_error(
    status: u16,
    answer: &Value,
    code: i64,
    subcode: Option<i64>,
    kind: &str,
) -> Value {
    assert_eq!(status, 400, "{answer}");
    let error = &answer["error"];
    assert_eq!(error["code"], json!(code), "{answer}");
    assert_eq!(error["type"], json!(kind), "{answer}");
    match subcode {
        Some(s) => assert_eq!(error["error_subcode"], json!(s), "{answer}"),
        None => assert!(error.get("error_subcode").is_none(), "{answer}"),
    }
    let trace = error["fbtrace_id"].as_str().unwrap_or_default();
    assert!(!trace.is_empty(), "{answer}");
    assert!(error["message"].is_string(), "{answer}");
    error.clone()
}

#[tokio::test]
async fn send_success_is_recorded_and_listed_as_json_and_escaped_html() {
    let sb = sandbox().await;
    let login_id = optin_quiet(&sb, None).await;
    assert_eq!(login_id.len(), 64);
    assert!(login_id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));

    let evil = "<script>alert('x')</script> & \"quoted\"";
    let (status, answer) = send(&sb, &text_to(&login_id, evil)).await;
    assert_eq!(status, 200, "{answer}");
    let first_id = answer["message_id"].as_str().unwrap().to_owned();
    assert!(first_id.starts_with("m_"), "{answer}");
    assert!(answer.get("recipient_id").is_none(), "{answer}");

    // The `me` alias, credentials in the body, messaging_type RESPONSE.
    let mut body = text_to(&login_id, "second");
    body["messaging_type"] = json!("RESPONSE");
    body["access_token"] = json!(DEFAULT_PAGE_ACCESS_TOKEN);
    body["appsecret_proof"] = json!(proof());
    let (status, answer) = post_raw(
        &format!("{}/v25.0/me/messages", sb.base_url),
        &[],
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let second_id = answer["message_id"].as_str().unwrap().to_owned();
    assert_ne!(first_id, second_id);

    // A message to someone else, to check the filter.
    let other = optin_quiet(&sb, None).await;
    let (status, _) = send(&sb, &text_to(&other, "third")).await;
    assert_eq!(status, 200);

    let client = reqwest::Client::new();
    let inbox: Value = client
        .get(format!("{}/_sandbox/inbox", sb.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages: Vec<InboxMessage> = serde_json::from_value(inbox["messages"].clone()).unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].message_id, first_id);
    assert_eq!(messages[0].text, evil);
    assert_eq!(messages[0].login_id, login_id);
    assert_eq!(messages[0].page_id, DEFAULT_PAGE_ID);
    assert_eq!(messages[0].messaging_type, "UPDATE");
    assert!(messages[0].received_at_ms >= messages[0].opted_in_at_ms);
    assert_eq!(messages[1].message_id, second_id);
    assert_eq!(messages[1].messaging_type, "RESPONSE");
    assert_eq!(messages[2].text, "third");
    assert_eq!(sb.inbox(), messages);

    let filtered: Value = client
        .get(format!(
            "{}/_sandbox/inbox?login_id={login_id}",
            sb.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = filtered["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, [evil, "second"]);

    for request in [
        client
            .get(format!("{}/_sandbox/inbox", sb.base_url))
            .header("accept", "text/html,application/xhtml+xml"),
        client.get(format!("{}/_sandbox/inbox?format=html", sb.base_url)),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let html = response.text().await.unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains(
                "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"
            ),
            "{html}"
        );
        assert!(html.contains(&login_id[..12]), "{html}");
        assert!(html.contains("third"), "{html}");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn missing_or_wrong_token_is_190() {
    let sb = sandbox().await;
    let login_id = optin_quiet(&sb, None).await;
    let body = text_to(&login_id, "hi").to_string();
    let proof = proof();
    for query in [
        vec![("appsecret_proof", proof.as_str())],
        vec![
            ("access_token", "not-the-token"),
            ("appsecret_proof", proof.as_str()),
        ],
    ] {
        let (status, answer) = post_raw(&messages_url(&sb), &query, &body).await;
        let error = assert_graph_error(status, &answer, 190, None, "OAuthException");
        assert_eq!(error["message"], "Invalid OAuth access token.");
    }
    assert!(sb.inbox().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn missing_proof_has_graphs_exact_message() {
    let sb = sandbox().await;
    let login_id = optin_quiet(&sb, None).await;
    let (status, answer) = post_raw(
        &messages_url(&sb),
        &[("access_token", DEFAULT_PAGE_ACCESS_TOKEN)],
        &text_to(&login_id, "hi").to_string(),
    )
    .await;
    let error = assert_graph_error(status, &answer, 100, None, "GraphMethodException");
    assert_eq!(
        error["message"],
        "API calls from the server require an appsecret_proof argument"
    );
    assert!(sb.inbox().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn wrong_proof_is_refused() {
    let sb = sandbox().await;
    let login_id = optin_quiet(&sb, None).await;
    let wrong =
        shared::facebook::crypto::appsecret_proof("another-secret", DEFAULT_PAGE_ACCESS_TOKEN);
    let (status, answer) = post_raw(
        &messages_url(&sb),
        &[
            ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
            ("appsecret_proof", &wrong),
        ],
        &text_to(&login_id, "hi").to_string(),
    )
    .await;
    let error = assert_graph_error(status, &answer, 100, None, "GraphMethodException");
    assert_eq!(
        error["message"],
        "Invalid appsecret_proof provided in the API argument"
    );
    assert!(sb.inbox().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn wrong_page_and_bad_bodies_are_invalid_parameters() {
    let sb = sandbox().await;
    let login_id = optin_quiet(&sb, None).await;
    let proof = proof();
    let creds = [
        ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
        ("appsecret_proof", proof.as_str()),
    ];

    let (status, answer) = post_raw(
        &format!("{}/v25.0/999/messages", sb.base_url),
        &creds,
        &text_to(&login_id, "hi").to_string(),
    )
    .await;
    let error = assert_graph_error(status, &answer, 100, None, "OAuthException");
    assert_eq!(error["message"], "(#100) Invalid parameter");

    let good = text_to(&login_id, "hi");
    let mut no_type = good.clone();
    no_type.as_object_mut().unwrap().remove("messaging_type");
    let mut bad_type = good.clone();
    bad_type["messaging_type"] = json!("PROMOTION");
    let mut no_recipient = good.clone();
    no_recipient.as_object_mut().unwrap().remove("recipient");
    let mut no_message = good.clone();
    no_message.as_object_mut().unwrap().remove("message");
    let bodies = [
        "not json".to_owned(),
        "[1,2]".to_owned(),
        no_type.to_string(),
        bad_type.to_string(),
        no_recipient.to_string(),
        no_message.to_string(),
        text_to(&login_id, "").to_string(),
        text_to(&login_id, &"x".repeat(2001)).to_string(),
    ];
    for body in &bodies {
        let (status, answer) = post_raw(&messages_url(&sb), &creds, body).await;
        let error = assert_graph_error(status, &answer, 100, None, "OAuthException");
        assert!(
            error["message"].as_str().unwrap().starts_with("(#100) "),
            "{answer}"
        );
    }
    assert!(sb.inbox().is_empty());

    // Exactly 2000 characters (multi-byte ones count once) is fine.
    let (status, answer) = send(&sb, &text_to(&login_id, &"é".repeat(2000))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(sb.inbox().len(), 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn tags_cannot_be_used_for_a_login_id() {
    let sb = sandbox().await;
    let login_id = optin_quiet(&sb, None).await;
    let mut message_tag = text_to(&login_id, "hi");
    message_tag["messaging_type"] = json!("MESSAGE_TAG");
    message_tag["tag"] = json!("HUMAN_AGENT");
    let mut update_with_tag = text_to(&login_id, "hi");
    update_with_tag["tag"] = json!("ACCOUNT_UPDATE");
    let mut message_tag_without_tag = text_to(&login_id, "hi");
    message_tag_without_tag["messaging_type"] = json!("MESSAGE_TAG");
    for body in [message_tag, update_with_tag, message_tag_without_tag] {
        let (status, answer) = send(&sb, &body).await;
        let error = assert_graph_error(status, &answer, 100, None, "OAuthException");
        let message = error["message"].as_str().unwrap();
        assert!(message.starts_with("(#100) Invalid parameter"), "{message}");
        assert!(message.contains("tags cannot be used"), "{message}");
        assert!(message.contains("login_id"), "{message}");
    }
    assert!(sb.inbox().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn unknown_recipients_are_2018001() {
    let sb = sandbox().await;
    let unknown = "ab".repeat(32);
    let psid = json!({
        "recipient": {"id": "1254477777772919"},
        "messaging_type": "RESPONSE",
        "message": {"text": "hi"},
    });
    for body in [text_to(&unknown, "hi"), psid] {
        let (status, answer) = send(&sb, &body).await;
        let error = assert_graph_error(status, &answer, 100, Some(2_018_001), "OAuthException");
        assert_eq!(error["message"], "(#100) No matching user found");
    }
    assert!(sb.inbox().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn the_window_closes_after_24_hours() {
    let sb = sandbox().await;
    let stale = optin_quiet(&sb, Some(now_ms() - 25 * HOUR_MS)).await;
    let (status, answer) = send(&sb, &text_to(&stale, "too late")).await;
    let error = assert_graph_error(status, &answer, 10, Some(2_018_278), "OAuthException");
    assert_eq!(error["message"], OUTSIDE_WINDOW);
    assert!(sb.inbox().is_empty());

    let recent_ts = now_ms() - 23 * HOUR_MS;
    let recent = optin_quiet(&sb, Some(recent_ts)).await;
    let (status, answer) = send(&sb, &text_to(&recent, "just in time")).await;
    assert_eq!(status, 200, "{answer}");
    let inbox = sb.inbox();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].opted_in_at_ms, recent_ts);
    assert!(inbox[0].received_at_ms - recent_ts >= 23 * HOUR_MS);
    sb.shutdown().await;

    // A configured window is honoured too.
    let config = SandboxConfig {
        optin_window_ms: 1_000,
        ..SandboxConfig::default()
    };
    let sb = messenger_sandbox::start(config, local()).await.unwrap();
    let login_id = optin_quiet(&sb, Some(now_ms() - 2_000)).await;
    let (status, answer) = send(&sb, &text_to(&login_id, "late")).await;
    assert_graph_error(status, &answer, 10, Some(2_018_278), "OAuthException");
    sb.shutdown().await;
}

/// Every body the receiver got, with whether its signature was valid.
type Received = Arc<Mutex<Vec<(String, bool)>>>;

/// A stand-in for the app's webhook endpoint: checks signatures, keeps every body.
struct Receiver {
    url: String,
    bodies: Received,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn receiver() -> Receiver {
    async fn webhook(
        State(bodies): State<Received>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let signature = headers
            .get(shared::facebook::webhook::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        let valid = shared::facebook::webhook::verify_webhook_signature(
            DEFAULT_APP_SECRET.as_bytes(),
            &body,
            signature,
        )
        .is_ok()
            && headers.get("content-type").and_then(|v| v.to_str().ok())
                == Some("application/json");
        let text = String::from_utf8_lossy(&body).into_owned();
        bodies.lock().unwrap().push((text, valid));
        if valid {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        }
    }
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/webhook", post(webhook))
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind(local()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Receiver {
        url: format!("http://{addr}/webhook"),
        bodies,
        shutdown,
    }
}

#[tokio::test]
async fn optin_delivers_signed_identical_webhooks() {
    let receiver = receiver().await;
    let sb = sandbox().await;
    sb.set_webhook_url(&receiver.url);
    assert_eq!(sb.webhook_url().as_deref(), Some(receiver.url.as_str()));

    let (status, answer) = post_raw(
        &format!("{}/_sandbox/optin", sb.base_url),
        &[],
        &json!({"deliveries": 3}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["webhook_statuses"], json!([200, 200, 200]));
    assert_eq!(answer["page_id"], DEFAULT_PAGE_ID);
    let login_id = answer["login_id"].as_str().unwrap();
    assert_eq!(login_id.len(), 64);
    let ts = answer["opted_in_at_ms"].as_i64().unwrap();
    assert!((now_ms() - ts).abs() < 60_000);
    let body = answer["body"].as_str().unwrap();
    assert_eq!(
        body,
        format!(
            r#"{{"object":"page","entry":[{{"id":"{DEFAULT_PAGE_ID}","time":{ts},"messaging":[{{"recipient":{{"id":"{DEFAULT_PAGE_ID}"}},"timestamp":{ts},"optin":{{"login_id":"{login_id}"}}}}]}}]}}"#
        )
    );
    assert_eq!(
        answer["signature"].as_str().unwrap(),
        shared::facebook::webhook::sign_webhook(DEFAULT_APP_SECRET.as_bytes(), body.as_bytes())
    );

    let received = receiver.bodies.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    for (text, valid) in &received {
        assert!(valid, "bad signature on {text}");
        assert_eq!(text, body);
    }

    // The app can now message that login_id.
    let (status, answer) = send(&sb, &text_to(login_id, "welcome")).await;
    assert_eq!(status, 200, "{answer}");

    // A chosen login_id and timestamp; deliveries default to one.
    let (status, answer) = post_raw(
        &format!("{}/_sandbox/optin", sb.base_url),
        &[],
        &json!({"login_id": "chosen", "timestamp_ms": 1_700_000_000_000i64}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["login_id"], "chosen");
    assert_eq!(answer["opted_in_at_ms"], 1_700_000_000_000i64);
    assert_eq!(answer["webhook_statuses"], json!([200]));
    assert_eq!(receiver.bodies.lock().unwrap().len(), 4);

    sb.shutdown().await;
    let _ = receiver.shutdown.send(());
}

#[tokio::test]
async fn optin_without_webhook_url_is_409_unless_not_delivering() {
    let sb = sandbox().await;
    let url = format!("{}/_sandbox/optin", sb.base_url);
    for body in ["", "{}", r#"{"deliver":true,"login_id":"x"}"#] {
        let (status, answer) = post_raw(&url, &[], body).await;
        assert_eq!(status, 409, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("webhook"),
            "{answer}"
        );
    }
    // Nothing was recorded by the refused request.
    let (status, answer) = send(&sb, &text_to("x", "hi")).await;
    assert_graph_error(status, &answer, 100, Some(2_018_001), "OAuthException");

    let (status, answer) = post_raw(&url, &[], r#"{"deliver":false,"deliveries":5}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["webhook_statuses"], json!([]));

    let (status, answer) = post_raw(&url, &[], r#"{"deliverr":false}"#).await;
    assert_eq!(status, 400, "{answer}");
    sb.shutdown().await;
}

#[tokio::test]
async fn failed_deliveries_are_reported_as_status_0() {
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind(local()).unwrap();
        listener.local_addr().unwrap()
    };
    let config = SandboxConfig {
        webhook_url: Some(format!("http://{closed}/webhook")),
        ..SandboxConfig::default()
    };
    let sb = messenger_sandbox::start(config, local()).await.unwrap();
    let (status, answer) = post_raw(
        &format!("{}/_sandbox/optin", sb.base_url),
        &[],
        &json!({"deliveries": 2}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["webhook_statuses"], json!([0, 0]));
    // The opt-in is recorded regardless.
    let login_id = answer["login_id"].as_str().unwrap();
    let (status, _) = send(&sb, &text_to(login_id, "hi")).await;
    assert_eq!(status, 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn control_endpoints_and_unknown_routes() {
    let sb = sandbox().await;
    let client = reqwest::Client::new();

    let health: Value = client
        .get(format!("{}/_sandbox/healthz", sb.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"ok": true}));

    let login_id = optin_quiet(&sb, None).await;
    let (status, _) = send(&sb, &text_to(&login_id, "hi")).await;
    assert_eq!(status, 200);
    assert_eq!(sb.inbox().len(), 1);
    let response = client
        .post(format!("{}/_sandbox/reset", sb.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(sb.inbox().is_empty());
    let (status, answer) = send(&sb, &text_to(&login_id, "hi")).await;
    assert_graph_error(status, &answer, 100, Some(2_018_001), "OAuthException");

    // The webhook URL over HTTP.
    let response = client
        .put(format!("{}/_sandbox/webhook_url", sb.base_url))
        .json(&json!({"url": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sb.webhook_url().as_deref(), Some("http://127.0.0.1:9/hook"));
    let response = client
        .put(format!("{}/_sandbox/webhook_url", sb.base_url))
        .json(&json!({"url": "ftp://nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    sb.set_webhook_url("");
    assert_eq!(sb.webhook_url(), None);

    for path in ["/nope", "/v25.0/me/feed", "/25.0/me/messages"] {
        let response = client
            .post(format!("{}{path}", sb.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], 803, "{answer}");
        assert!(answer["error"]["fbtrace_id"].is_string(), "{answer}");
    }
    let response = client.get(messages_url(&sb)).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], 100, "{answer}");

    let addr = sb.addr;
    sb.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening after shutdown"
    );
}

#[tokio::test]
async fn concurrent_sends_are_all_recorded() {
    let sb = sandbox().await;
    let login_id = optin_quiet(&sb, None).await;
    let sb = Arc::new(sb);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let sb = sb.clone();
        let login_id = login_id.clone();
        tasks.push(tokio::spawn(async move {
            send(&sb, &text_to(&login_id, &format!("message {i}")))
                .await
                .0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let mut texts: Vec<String> = sb.inbox().into_iter().map(|m| m.text).collect();
    texts.sort();
    let mut expected: Vec<String> = (0..24).map(|i| format!("message {i}")).collect();
    expected.sort();
    assert_eq!(texts, expected);
    let ids: std::collections::HashSet<String> =
        sb.inbox().into_iter().map(|m| m.message_id).collect();
    assert_eq!(ids.len(), 24);
}

/// Issue 14, item 6: a send lands in ~150 ms, too fast to try STOP by hand; a hold keeps it
/// unanswered (and out of the inbox) until released.
#[tokio::test]
async fn a_held_send_does_not_land_until_released() {
    let sb = sandbox().await;
    let client = reqwest::Client::new();
    let held = optin_quiet(&sb, None).await;
    let other = optin_quiet(&sb, None).await;
    let status_of = |answer: Value| (answer["all"].clone(), answer["waiting"].clone());

    let answer: Value = client
        .post(format!("{}/_sandbox/hold", sb.base_url))
        .json(&json!({"login_id": held}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["login_ids"], json!([held]), "{answer}");

    let in_flight = tokio::spawn({
        let (url, body) = (messages_url(&sb), text_to(&held, "held"));
        async move {
            let proof = proof();
            post_raw(
                &url,
                &[
                    ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
                    ("appsecret_proof", &proof),
                ],
                &body.to_string(),
            )
            .await
        }
    });
    // Someone else is not held.
    let (status, _) = send(&sb, &text_to(&other, "not held")).await;
    assert_eq!(status, 200);
    // The held call is waiting and nothing landed for that person.
    let list = |client: reqwest::Client, url: String| async move {
        client
            .get(url)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let hold_url = format!("{}/_sandbox/hold", sb.base_url);
    let mut waiting = json!(0);
    for _ in 0..100 {
        waiting = status_of(list(client.clone(), hold_url.clone()).await).1;
        if waiting == json!(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(waiting, json!(1));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!in_flight.is_finished(), "the held send was answered");
    assert!(sb.inbox().iter().all(|m| m.login_id != held));

    let response = client
        .post(format!("{}/_sandbox/release", sb.base_url))
        .json(&json!({"login_id": held}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, answer) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(sb.inbox().iter().any(|m| m.login_id == held));
    assert_eq!(
        status_of(list(client.clone(), hold_url.clone()).await),
        (json!(false), json!(0))
    );

    // A hold on every send, ended by a reset.
    client.post(&hold_url).send().await.unwrap();
    let in_flight = tokio::spawn({
        let (url, body) = (messages_url(&sb), text_to(&other, "all held"));
        async move {
            let proof = proof();
            post_raw(
                &url,
                &[
                    ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
                    ("appsecret_proof", &proof),
                ],
                &body.to_string(),
            )
            .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !in_flight.is_finished(),
        "a send went through a hold on every send"
    );
    client
        .post(format!("{}/_sandbox/reset", sb.base_url))
        .send()
        .await
        .unwrap();
    // Released by the reset (the opt-in is forgotten too, so Graph's answer is "no such user").
    let (status, _) = in_flight.await.unwrap();
    assert_eq!(status, 400);
    sb.shutdown().await;
}

/// GET `path` with `accept`; (status, content type, body).
async fn get_as(sb: &RunningSandbox, path: &str, accept: &str) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", sb.base_url))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn the_root_is_a_start_page_and_browsers_get_pages_not_json() {
    let sb = sandbox().await;
    sb.set_links(&[("OpenAPI document", "http://127.0.0.1:3000/openapi.json")]);
    let (status, content_type, html) = get_as(&sb, "/", "application/json").await;
    assert_eq!(status, 200, "{html}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    for needle in [
        "href=\"/_sandbox/style.css\"",
        "id=\"back\"",
        "href=\"/_sandbox/inbox?format=html\"",
        "id=\"dialog-link\"",
        "href=\"http://127.0.0.1:3000/openapi.json\"",
        "POST /_sandbox/hold",
    ] {
        assert!(html.contains(needle), "{needle}: {html}");
    }
    let (status, content_type, css) = get_as(&sb, "/_sandbox/style.css", "text/css").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/css"), "{content_type}");
    assert!(css.contains("body {"), "{css}");

    // A browser on a path that does not exist: a page with the way back.
    let (status, content_type, html) = get_as(&sb, "/nope", "text/html,*/*").await;
    assert_eq!(status, 404);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains("href=\"/\""), "{html}");
    // Graph's paths answer Graph's JSON to browsers too.
    let (status, _, body) = get_as(&sb, "/v25.0/me/feed", "text/html").await;
    assert_eq!(status, 404);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["error"]["code"], 803, "{answer}");
    sb.shutdown().await;
}
