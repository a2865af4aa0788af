//! Issue 10's promises through the local stack (moto, the Messenger sandbox, the local runner):
//! the model-based test's key scenarios (tests/tests/contract/promises_model.rs) with the
//! production adapters, the real SQS event source mapping and real time. Each is named after the
//! defect it shows on today's main.

use integration_tests::worlds::stack::{TestStack, start_stack};
use messenger_sandbox::{DEFAULT_APP_ID, DEFAULT_CLIENT_TOKEN, DEFAULT_PAGE_ID, FaultRule};
use shared::config::env;
use shared::domain::opt_in::{OptIn, State};
use shared::facebook::crypto::derive_login_id;
use std::time::{Duration, Instant};

const SITE_KEY: &str = "promises-site-key";

fn login_id_of(asid: &str) -> String {
    derive_login_id(DEFAULT_CLIENT_TOKEN, asid, DEFAULT_APP_ID, DEFAULT_PAGE_ID)
}

/// Whether the opt-in records a message that reached the person (its id, or the flag the fix
/// adds for a send that was in flight when the opt-out was recorded).
fn records_the_message(item: &OptIn) -> bool {
    item.message_id.is_some()
        || serde_json::to_value(item).is_ok_and(|v| v["sent_after_opt_out"] == true)
}

async fn wait_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_send_latency(s: &TestStack, latency_ms: u64) {
    let r = s
        .http
        .put(format!("{}/_sandbox/limits", s.sandbox.base_url))
        .json(&serde_json::json!({ "latency_ms": latency_ms }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("limits: {e}"));
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_before_the_opt_in_is_not_lost_through_the_stack() {
    let s = start_stack(|settings| settings).await;
    let login_id = login_id_of("14142135623");
    // Facebook delivers the person's STOP (linked to their login_id) before the opt-in.
    let stop = s
        .sandbox_post(
            "/_sandbox/message",
            serde_json::json!({"login_id": login_id, "text": "STOP"}),
        )
        .await;
    assert_eq!(stop["webhook_status"], 200, "the STOP was acknowledged");
    let optin = s
        .sandbox_post("/_sandbox/optin", serde_json::json!({"login_id": login_id}))
        .await;
    assert_eq!(optin["webhook_statuses"], serde_json::json!([200]));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        s.inbox_for(&login_id).is_empty(),
        "a message reached a person whose STOP was acknowledged before their opt-in"
    );
    assert_eq!(
        s.item(&login_id).await.map(|i| i.state),
        Some(State::OptedOut)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opt_out_during_an_in_flight_send_is_recorded_through_the_stack() {
    let s = start_stack(|mut settings| {
        settings.secrets.api_keys = vec![SITE_KEY.into()];
        settings
    })
    .await;
    // Every send takes 3 s at Graph (well inside the 10 s Graph timeout).
    set_send_latency(&s, 3_000).await;
    let asid = "17320508075";
    let login_id = login_id_of(asid);
    // The person logs in with the JavaScript SDK (the sandbox sends the opt-in webhook).
    let token = s
        .sandbox_post(
            "/_sandbox/user_token",
            serde_json::json!({"asid": asid, "first_name": "Dana"}),
        )
        .await;
    let recorded = s
        .http
        .post(format!("{}/v1/logins", s.local.api_base_url))
        .bearer_auth(SITE_KEY)
        .json(&serde_json::json!({"user_access_token": token["access_token"]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("logins: {e}"));
    assert_eq!(recorded.status(), 201);
    s.wait_for_state(&login_id, State::Sending).await;
    // While the send is in flight, the website opts the person out.
    let opt_out = s
        .http
        .post(format!("{}/v1/users/{asid}/opt-out", s.local.api_base_url))
        .bearer_auth(SITE_KEY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("opt-out: {e}"));
    assert_eq!(opt_out.status(), 200);
    wait_until(
        "the in-flight message lands",
        Duration::from_secs(15),
        async || !s.inbox_for(&login_id).is_empty(),
    )
    .await;
    // Give the sender time to record its outcome.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let item = s
        .item(&login_id)
        .await
        .unwrap_or_else(|| panic!("no opt-in"));
    assert_eq!(item.state, State::OptedOut);
    assert!(
        records_the_message(&item),
        "the message reached the person but the opt-in does not record it (no message_id, no sent_after_opt_out)"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_on_a_paused_page_keeps_it_silent_through_the_stack() {
    let s = start_stack(|settings| settings.with(env::PAUSE_PROBE_SECONDS, "1")).await;
    // Our token is wrong: the first send answers 190 and the Page pauses (configuration).
    let invalid_token = FaultRule {
        fraction: Some(1.0),
        ..FaultRule::error(190, None)
    };
    s.sandbox
        .add_fault(invalid_token)
        .unwrap_or_else(|e| panic!("{e}"));
    let first = s.opt_in().await;
    s.wait_for_state(&first, State::Paused).await;
    // Meta blocks the Page while it is paused, and the operator fixes the token.
    let block = s
        .sandbox_post("/_sandbox/policy", serde_json::json!({"action": "block"}))
        .await;
    assert_eq!(block["webhook_status"], 200);
    s.sandbox.clear_faults();
    let second = s.opt_in().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent: usize = [&first, &second].iter().map(|l| s.inbox_for(l).len()).sum();
    assert_eq!(
        sent, 0,
        "a message (a probe) was sent while Meta's block of the Page stood"
    );
    s.stop().await;
}
