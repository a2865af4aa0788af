//! End to end through the local runner, moto and the Messenger sandbox: a signed opt-in webhook
//! becomes exactly one delivered message, under duplicates, bad signatures, malformed bodies and
//! late opt-ins.

use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode};
use integration_tests::worlds::stack::{TestStack, start_stack};
use shared::config::env;
use shared::domain::opt_in::{HOUR_MS, State};
use std::time::{Duration, Instant};

async fn stack() -> TestStack {
    start_stack(|settings| settings).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_opt_in_becomes_one_delivered_message() {
    let s = stack().await;
    // Hold the sender so the opt-in and its schedule can be seen before the send.
    s.local.pause_sender(true);
    let started = Instant::now();
    let optin = s
        .sandbox_post("/_sandbox/optin", serde_json::json!({}))
        .await;
    assert_eq!(optin["webhook_statuses"], serde_json::json!([200]));
    let login_id = optin["login_id"].as_str().unwrap().to_owned();
    let opted_in_at = optin["opted_in_at_ms"].as_i64().unwrap();

    let item = s.item(&login_id).await.expect("opt-in recorded");
    assert_eq!(item.state, State::OptedIn);
    assert_eq!(item.deadline_at, opted_in_at + 24 * HOUR_MS);
    let schedule = s
        .schedule(&login_id)
        .await
        .expect("deadline schedule created");
    let expected_at = chrono::DateTime::from_timestamp_millis(item.alert_at + 999).unwrap();
    assert_eq!(
        schedule.schedule_expression(),
        Some(format!("at({})", expected_at.format("%Y-%m-%dT%H:%M:%S")).as_str())
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        schedule.action_after_completion(),
        Some(&ActionAfterCompletion::Delete)
    );
    assert_eq!(
        schedule.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    let input: serde_json::Value =
        serde_json::from_str(schedule.target().unwrap().input().unwrap()).unwrap();
    assert_eq!(input["kind"], "deadline_check");
    assert_eq!(input["version"], 1);
    assert!(
        s.inbox_for(&login_id).is_empty(),
        "nothing sent while the sender is held"
    );

    s.local.pause_sender(false);
    let sent = s.wait_for_state(&login_id, State::Sent).await;
    let inbox = s.inbox_for(&login_id);
    assert_eq!(inbox.len(), 1);
    assert_eq!(
        sent.message_id.as_deref(),
        Some(inbox[0].message_id.as_str())
    );
    assert_eq!(inbox[0].messaging_type, "UPDATE");
    assert!(sent.sent_at.unwrap() < sent.deadline_at);
    assert!(
        s.schedule(&login_id).await.is_none(),
        "schedule deleted after SENT"
    );
    eprintln!(
        "opt-in → SENT (sender held at first): {:?}",
        started.elapsed()
    );

    // Unheld: the time a person waits.
    let started = Instant::now();
    let optin = s
        .sandbox_post("/_sandbox/optin", serde_json::json!({}))
        .await;
    let login_id = optin["login_id"].as_str().unwrap().to_owned();
    s.wait_for_state(&login_id, State::Sent).await;
    eprintln!("opt-in → inbox: {:?}", started.elapsed());
    assert_eq!(s.inbox_for(&login_id).len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_webhook_three_times_sends_one_message() {
    let s = stack().await;
    let optin = s
        .sandbox_post("/_sandbox/optin", serde_json::json!({"deliveries": 3}))
        .await;
    assert_eq!(
        optin["webhook_statuses"],
        serde_json::json!([200, 200, 200])
    );
    let login_id = optin["login_id"].as_str().unwrap().to_owned();
    // And once more, replayed by hand, after the send.
    s.wait_for_state(&login_id, State::Sent).await;
    let body = optin["body"].as_str().unwrap();
    let signature = optin["signature"].as_str().unwrap();
    assert_eq!(s.post_webhook(body, Some(signature)).await, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.inbox_for(&login_id).len(), 1);
    assert_eq!(s.item_count().await, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_signatures_and_malformed_bodies_write_nothing() {
    let s = stack().await;
    let optin = s
        .sandbox_post("/_sandbox/optin", serde_json::json!({"deliver": false}))
        .await;
    let body = optin["body"].as_str().unwrap();
    let signature = optin["signature"].as_str().unwrap();
    assert_eq!(s.post_webhook(body, None).await, 401);
    assert_eq!(s.post_webhook(body, Some("sha256=deadbeef")).await, 401);
    let wrong = shared::facebook::webhook::sign_webhook(b"not-the-app-secret", body.as_bytes());
    assert_eq!(s.post_webhook(body, Some(&wrong)).await, 401);
    // A signature over a re-serialised body does not match the raw bytes.
    let reserialised =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(body).unwrap())
            .unwrap();
    assert_eq!(s.post_webhook(&reserialised, Some(signature)).await, 401);
    let malformed = r#"{"object":"page","entry":"nope"}"#;
    let sig = shared::facebook::webhook::sign_webhook(
        messenger_sandbox::DEFAULT_APP_SECRET.as_bytes(),
        malformed.as_bytes(),
    );
    assert_eq!(s.post_webhook(malformed, Some(&sig)).await, 400);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.item_count().await, 0);
    assert!(s.sandbox.inbox().is_empty());
    // The original, correctly signed, still works afterwards.
    assert_eq!(s.post_webhook(body, Some(signature)).await, 200);
    let login_id = optin["login_id"].as_str().unwrap();
    s.wait_for_state(login_id, State::Sent).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_opt_in_past_its_deadline_expires_and_nothing_is_sent() {
    let s = stack().await;
    let old = chrono::Utc::now().timestamp_millis() - 25 * HOUR_MS;
    let optin = s
        .sandbox_post("/_sandbox/optin", serde_json::json!({"timestamp_ms": old}))
        .await;
    let login_id = optin["login_id"].as_str().unwrap().to_owned();
    let item = s.wait_for_state(&login_id, State::Expired).await;
    assert_eq!(item.message_id, None);
    assert!(item.terminal_at.is_some());
    assert!(s.inbox_for(&login_id).is_empty());
    assert!(s.schedule(&login_id).await.is_none());
    s.stop().await;
}

/// Issue 10, "Throttling is a shared bucket anyone can empty": with FACEBOOK_PATH_SEGMENT set, the
/// Facebook routes work through the local API Gateway under the segment only; the bare paths are 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn facebook_routes_work_under_the_path_segment_and_not_without_it() {
    const SEGMENT: &str = "3f0c9a7d1e2b4c5d6e7f8091a2b3c4d5";
    let s = start_stack(|settings| settings.with(env::FACEBOOK_PATH_SEGMENT, SEGMENT)).await;
    assert_eq!(
        s.local.facebook_base_url(),
        format!("{}/{SEGMENT}", s.local.api_base_url)
    );
    // As in AWS, the sender reads the Page token from its own secret (provisioned from the template).
    assert!(s.local.config.page_token_secret_id.is_some());
    // Meta (the sandbox) delivers to the segment URL: the opt-in is recorded and sent.
    let login_id = s.opt_in().await;
    s.wait_for_state(&login_id, State::Sent).await;
    assert_eq!(s.inbox_for(&login_id).len(), 1);
    // A stranger on the bare path reaches nothing.
    assert_eq!(s.post_webhook("{}", None).await, 404);
    for path in ["/facebook/deauthorize", "/facebook/data-deletion"] {
        let status = s
            .http
            .post(format!("{}{path}", s.local.api_base_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("signed_request=x.y")
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path}");
    }
    // The sandbox's deauthorize callback follows the webhook URL's prefix and is answered.
    let answer = s
        .sandbox_post(
            "/_sandbox/deauthorize",
            serde_json::json!({"asid": "1234567890"}),
        )
        .await;
    assert_eq!(answer["status"], 200, "{answer}");
    s.stop().await;
}

/// Issue 14, "No API key in the local stack" and "Ports": a stack started with the defaults (as
/// `make run` is) accepts the seeded local key on `/v1`, and its `/openapi.json` names the address
/// it really listens on (a free port here, never the document's `127.0.0.1:3000`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_default_stack_accepts_the_local_api_key_and_serves_its_own_address() {
    let s = stack().await;
    let url = format!("{}/v1/users/1234567890", s.local.api_base_url);
    let with_key = s
        .http
        .get(&url)
        .bearer_auth(local_runner::DEFAULT_LOCAL_API_KEY)
        .send()
        .await
        .unwrap();
    // Past the key check: nobody has that asid yet.
    assert_eq!(with_key.status(), 404);
    let body: serde_json::Value = with_key.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_person", "{body}");
    let without_key = s.http.get(&url).send().await.unwrap();
    assert_eq!(without_key.status(), 401);
    let wrong_key = s.http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong_key.status(), 401);

    let openapi: serde_json::Value = s
        .http
        .get(format!("{}/openapi.json", s.local.api_base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openapi["servers"][0]["url"], s.local.api_base_url.as_str());
    assert_eq!(openapi["servers"].as_array().map(Vec::len), Some(1));
    s.stop().await;
}
