//! `START_AT_LOGIN=true` end to end through the local stack (issue 12, section 3): a person clicks
//! "Allow" in the sandbox's dialog, the callback creates the opt-in and the initial message lands in
//! the sandbox inbox before Meta's opt-in webhook is even posted; the webhook, when it comes, is a
//! duplicate and the person still has exactly one message.

use integration_tests::browser::{Browser, attribute_of};
use integration_tests::worlds::stack::start_stack;
use messenger_sandbox as sb;
use shared::config::env;
use shared::domain::opt_in::State;
use std::time::Duration;

/// How long after "Allow" the sandbox posts the opt-in webhook in this test.
const WEBHOOK_DELAY_MS: i64 = 6_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_start_at_login_the_message_is_sent_before_the_webhook_and_only_once() {
    let s = start_stack(|settings| settings.with(env::START_AT_LOGIN, "true")).await;
    let asid = format!(
        "1{:015}",
        chrono::Utc::now().timestamp_micros() % 1_000_000_000_000_000
    );
    let login_id = shared::facebook::crypto::derive_login_id(
        sb::DEFAULT_CLIENT_TOKEN,
        &asid,
        sb::DEFAULT_APP_ID,
        sb::DEFAULT_PAGE_ID,
    );
    let browser = Browser::new();
    let site = browser.get(&format!("{}/", s.local.site_base_url)).await;
    let link = attribute_of(&site.body, "id=\"continue-with-facebook\"", "href")
        .expect("the example page has the login link");
    let dialog = browser.get(&link).await;
    assert_eq!(dialog.status, 200, "{}", dialog.body);
    let allowed_at = chrono::Utc::now().timestamp_millis();
    let back = browser
        .get(&format!(
            "{}&sandbox_choice=allow&sandbox_asid={asid}&sandbox_webhook=async&sandbox_webhook_delay_ms={WEBHOOK_DELAY_MS}",
            dialog.url
        ))
        .await;
    assert_eq!(
        back.query("messenger").as_deref(),
        Some("granted"),
        "{}",
        back.url
    );

    // Sent, from the login alone: before the webhook was posted.
    let item = s.wait_for_state(&login_id, State::Sent).await;
    assert!(item.started_at_login);
    let sent_at = item.sent_at.unwrap_or(i64::MAX);
    assert!(
        sent_at < allowed_at + WEBHOOK_DELAY_MS,
        "sent {} ms after Allow: not before the webhook",
        sent_at - allowed_at
    );
    assert_eq!(s.inbox_for(&login_id).len(), 1);

    // The webhook comes (the sandbox's own, and a redelivery of it): a duplicate, nothing more.
    tokio::time::sleep(Duration::from_millis(WEBHOOK_DELAY_MS as u64 + 1_000)).await;
    let body = sb::optin_webhook_body(sb::DEFAULT_PAGE_ID, &login_id, allowed_at);
    let signature =
        shared::facebook::webhook::sign_webhook(sb::DEFAULT_APP_SECRET.as_bytes(), body.as_bytes());
    assert_eq!(s.post_webhook(&body, Some(&signature)).await, 200);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let after = s.item(&login_id).await.expect("the opt-in");
    assert_eq!((after.state, after.sent_at), (State::Sent, item.sent_at));
    assert_eq!(
        s.inbox_for(&login_id).len(),
        1,
        "exactly one initial message"
    );
    s.stop().await;
}
