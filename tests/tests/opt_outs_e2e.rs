//! Opt-outs end to end: whatever the source, once recorded, no message is sent.

use integration_tests::stack::start_stack;
use shared::domain::State;
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
