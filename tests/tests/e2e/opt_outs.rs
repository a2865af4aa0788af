//! Opt-outs end to end: whatever the source, once recorded, no message is sent.

use integration_tests::worlds::stack::start_stack;
use shared::config::env;
use shared::domain::opt_in::State;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_message_before_the_send_means_no_message() {
    let s = start_stack(|settings| settings).await;
    s.local.pause_sender(true);
    let login_id = s.opt_in().await;
    let answer = s
        .sandbox_post(
            "/_sandbox/message",
            serde_json::json!({"login_id": login_id, "text": "Stop"}),
        )
        .await;
    assert_eq!(answer["webhook_status"], 200);
    let item = s.wait_for_state(&login_id, State::OptedOut).await;
    assert_eq!(item.opt_out_source.as_deref(), Some("stop_keyword"));
    assert_eq!(item.psid.as_deref(), answer["psid"].as_str());
    s.local.pause_sender(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(s.inbox_for(&login_id).is_empty());
    assert_eq!(
        s.item(&login_id).await.map(|i| i.state),
        Some(State::OptedOut)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_before_the_opt_in_is_not_lost() {
    let s = start_stack(|settings| settings).await;
    // Facebook holds the opt-in webhook back; the person's STOP (linked to it) arrives first.
    let held = s
        .sandbox_post("/_sandbox/optin", serde_json::json!({"deliver": false}))
        .await;
    let login_id = held["login_id"].as_str().unwrap().to_owned();
    let stop = s
        .sandbox_post(
            "/_sandbox/message",
            serde_json::json!({"login_id": login_id, "text": "STOP"}),
        )
        .await;
    assert_eq!(stop["webhook_status"], 200);
    let status = s
        .post_webhook(held["body"].as_str().unwrap(), held["signature"].as_str())
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(s.inbox_for(&login_id).is_empty(), "nothing sent");
    let item = s.item(&login_id).await.unwrap();
    assert_eq!(item.state, State::OptedOut);
    assert_eq!(
        item.opt_out_source.as_deref(),
        Some("stop_keyword_before_opt_in")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_after_the_initial_message_links_the_psid() {
    let s = start_stack(|settings| settings).await;
    let login_id = s.opt_in().await;
    s.wait_for_state(&login_id, State::Sent).await;
    let answer = s
        .sandbox_post(
            "/_sandbox/message",
            serde_json::json!({"login_id": login_id, "text": "Thanks!"}),
        )
        .await;
    assert_eq!(answer["webhook_status"], 200);
    let item = s.item(&login_id).await.unwrap();
    assert_eq!(item.psid.as_deref(), answer["psid"].as_str());
    assert!(item.last_user_message_at.is_some());
    assert_eq!(item.state, State::Sent);
    assert_eq!(s.inbox_for(&login_id).len(), 1);
    s.stop().await;
}

/// Issue 12: a "Stop" after the initial message is recorded on the SENT opt-in (its evidence
/// kept), through the local stack's production wiring and DynamoDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_after_the_initial_message_is_recorded_end_to_end() {
    let s = start_stack(|settings| settings).await;
    let login_id = s.opt_in().await;
    let sent = s.wait_for_state(&login_id, State::Sent).await;
    let answer = s
        .sandbox_post(
            "/_sandbox/message",
            serde_json::json!({"login_id": login_id, "text": "Stop"}),
        )
        .await;
    assert_eq!(answer["webhook_status"], 200);
    let item = s.item(&login_id).await.unwrap();
    assert!(item.has_opted_out(), "the stop counts after SENT");
    assert_eq!(item.state, State::Sent);
    assert_eq!(
        (item.message_id, item.sent_at),
        (sent.message_id, sent.sent_at)
    );
    assert_eq!(item.opt_out_source.as_deref(), Some("stop_keyword"));
    assert_eq!(s.inbox_for(&login_id).len(), 1);
    s.stop().await;
}

/// Every attribute value of every item, as text.
async fn all_values(s: &integration_tests::worlds::stack::TestStack) -> Vec<String> {
    let out = aws_sdk_dynamodb::Client::new(&s.sdk)
        .scan()
        .table_name(&s.local.provisioned.table_name)
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .flat_map(|item| item.iter().map(|(k, v)| format!("{k}={v:?}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_deletion_leaves_no_identifying_item_and_the_status_url_answers() {
    let s = start_stack(|mut settings| {
        settings.secrets.api_keys = vec!["e2e-site-key".into()];
        settings
    })
    .await;
    let asid = "31415926535";
    let name = "Zoltan";
    let login_id = shared::facebook::crypto::derive_login_id(
        messenger_sandbox::DEFAULT_CLIENT_TOKEN,
        asid,
        messenger_sandbox::DEFAULT_APP_ID,
        messenger_sandbox::DEFAULT_PAGE_ID,
    );
    let before_deletion = chrono::Utc::now().timestamp_millis();
    // The person logs in with the JavaScript SDK (the sandbox sends the opt-in webhook), the site
    // records the login, the message is sent, the person replies (PSID).
    let token = s
        .sandbox_post(
            "/_sandbox/user_token",
            serde_json::json!({"asid": asid, "first_name": name}),
        )
        .await;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let recorded = s
        .http
        .post(format!("{}/v1/logins", s.local.api_base_url))
        .bearer_auth("e2e-site-key")
        .json(&serde_json::json!({"user_access_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(recorded.status(), 201);
    s.wait_for_state(&login_id, State::Sent).await;
    let reply = s
        .sandbox_post(
            "/_sandbox/message",
            serde_json::json!({"login_id": login_id, "text": "hi"}),
        )
        .await;
    let psid = reply["psid"].as_str().unwrap().to_owned();
    assert_eq!(
        s.item(&login_id).await.unwrap().psid.as_deref(),
        Some(psid.as_str())
    );
    let values = all_values(&s).await;
    assert!(
        values.iter().any(|v| v.contains(name)),
        "the LOGIN holds the first name before"
    );

    let deletion = s
        .sandbox_post("/_sandbox/data-deletion", serde_json::json!({"asid": asid}))
        .await;
    assert_eq!(deletion["status"], 200);
    let code = deletion["answer"]["confirmation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = deletion["answer"]["url"].as_str().unwrap().to_owned();
    assert!(url.ends_with(&format!("/facebook/data-deletion/status?code={code}")));

    let values = all_values(&s).await;
    for identifying in [asid, login_id.as_str(), psid.as_str(), name] {
        assert!(
            !values.iter().any(|v| v.contains(identifying)),
            "{identifying} still stored: {values:?}"
        );
    }
    // The status page answers.
    let page = s.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(&code));
    // A second identical request is harmless.
    let again = s
        .sandbox_post("/_sandbox/data-deletion", serde_json::json!({"asid": asid}))
        .await;
    assert_eq!(again["status"], 200);
    // An opt-in webhook from before the deletion, redelivered: nothing comes back.
    let old = s
        .sandbox_post(
            "/_sandbox/optin",
            serde_json::json!({"login_id": login_id, "timestamp_ms": before_deletion, "deliver": false}),
        )
        .await;
    let r = s
        .http
        .post(format!("{}/webhooks/messenger", s.local.api_base_url))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", old["signature"].as_str().unwrap())
        .body(old["body"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(s.item(&login_id).await.is_none());
    assert_eq!(s.inbox_for(&login_id).len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deauthorize_before_the_send_means_no_message() {
    let s = start_stack(|settings| settings).await;
    s.local.pause_sender(true);
    let asid = "27182818284";
    let login_id = shared::facebook::crypto::derive_login_id(
        messenger_sandbox::DEFAULT_CLIENT_TOKEN,
        asid,
        messenger_sandbox::DEFAULT_APP_ID,
        messenger_sandbox::DEFAULT_PAGE_ID,
    );
    s.sandbox_post("/_sandbox/optin", serde_json::json!({"login_id": login_id}))
        .await;
    let answer = s
        .sandbox_post("/_sandbox/deauthorize", serde_json::json!({"asid": asid}))
        .await;
    assert_eq!(answer["status"], 200);
    let forged = s
        .sandbox_post(
            "/_sandbox/deauthorize",
            serde_json::json!({"asid": "1", "forge": true}),
        )
        .await;
    assert_eq!(forged["status"], 400);
    s.wait_for_state(&login_id, State::OptedOut).await;
    s.local.pause_sender(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(s.inbox_for(&login_id).is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_block_stops_sends_until_the_unblock() {
    let s = start_stack(|settings| settings).await;
    let blocked = s
        .sandbox_post("/_sandbox/policy", serde_json::json!({"action": "block"}))
        .await;
    assert_eq!(blocked["webhook_status"], 200);
    let login_id = s.opt_in().await;
    let parked = s.wait_for_state(&login_id, State::Paused).await;
    assert!(parked.sent_at.is_none());
    assert!(s.inbox_for(&login_id).is_empty());
    let unblocked = s
        .sandbox_post("/_sandbox/policy", serde_json::json!({"action": "unblock"}))
        .await;
    assert_eq!(unblocked["webhook_status"], 200);
    s.wait_for_state(&login_id, State::Sent).await;
    assert_eq!(s.inbox_for(&login_id).len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletion_claims_full_erasure_when_it_erased_only_the_login() {
    // Derivation off: the asid in Meta's deletion request cannot be linked to the opt-in.
    let s = start_stack(|settings| settings.with(env::DERIVE_LOGIN_ID, "false")).await;
    let asid = "16180339887";
    let login_id = shared::facebook::crypto::derive_login_id(
        messenger_sandbox::DEFAULT_CLIENT_TOKEN,
        asid,
        messenger_sandbox::DEFAULT_APP_ID,
        messenger_sandbox::DEFAULT_PAGE_ID,
    );
    s.sandbox_post("/_sandbox/optin", serde_json::json!({"login_id": login_id}))
        .await;
    s.wait_for_state(&login_id, State::Sent).await;
    let deletion = s
        .sandbox_post("/_sandbox/data-deletion", serde_json::json!({"asid": asid}))
        .await;
    assert_eq!(deletion["status"], 200);
    let url = deletion["answer"]["url"].as_str().unwrap().to_owned();
    let status: serde_json::Value = s
        .http
        .get(&url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "partial", "{status}");
    assert!(
        status["partial_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("DERIVE_LOGIN_ID=false")
    );
    let page = s.http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Every record"), "{page}");
    s.stop().await;
}
