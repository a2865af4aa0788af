//! Events through the local stack (issue 12): the local runner provisions the events queue and the
//! signing key's secret from template.yaml, takes `EVENTS_URL` and `EVENTS_SIGNING_SECRET` from its
//! settings (the environment, for `make run`), and its SQS poller drives the event sender, whose
//! deliveries the Standard Webhooks reference package verifies. Without `EVENTS_URL` the events go
//! to the example site's receiver (`/backend/events`).

use integration_tests::event_receiver::{EventReceiver, verify_with_reference_package};
use integration_tests::worlds::stack::start_stack;
use shared::config::env;
use shared::domain::events::{EventType, OutboundEvent};
use std::time::Duration;

/// A rotation in progress: the new key, then the old one (docs/events.md).
const NEW_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_KEY: &str = "whsec_C2FVsBQIhrscChlQIMV9b5sSYspob7oD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_delivers_events_signed_with_the_configured_secret() {
    let receiver = EventReceiver::start().await;
    let url = receiver.url.clone();
    let stack = start_stack(move |mut s| {
        s.secrets.events_signing_secret = format!("{NEW_KEY} {OLD_KEY}");
        s.with(env::EVENTS_URL, url)
    })
    .await;
    assert_eq!(
        stack.local.config.events.url.as_deref(),
        Some(receiver.url.as_str())
    );
    let publisher = shared::bootstrap::events_publisher(
        &stack.local.config,
        &aws_sdk_sqs::Client::new(&stack.sdk).into(),
    );
    let mut data = serde_json::Map::new();
    data.insert("asid".into(), "42".into());
    let event = OutboundEvent::new(
        EventType::OptInExpired,
        "local-stack",
        1_764_000_000_000,
        data,
    );
    publisher.publish(&event).await.unwrap();
    let delivered = receiver
        .wait_for_delivered(1, Duration::from_secs(20))
        .await;
    assert_eq!(delivered.len(), 1, "the event sender's poller delivered it");
    assert_eq!(delivered[0].webhook_id(), event.id);
    // Both a receiver still on the old key and one on the new key accept it.
    verify_with_reference_package(NEW_KEY, &delivered[0]).unwrap();
    verify_with_reference_package(OLD_KEY, &delivered[0]).unwrap();
    assert!(
        verify_with_reference_package(
            local_runner::DEFAULT_LOCAL_EVENTS_SIGNING_SECRET,
            &delivered[0]
        )
        .is_err()
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_events_url_events_go_to_the_example_sites_receiver() {
    let stack = start_stack(|s| s).await;
    assert_eq!(
        stack.local.config.events.url,
        Some(format!("{}/backend/events", stack.local.site_base_url))
    );
    assert!(stack.local.config.events.queue_url.is_some());
    stack.stop().await;
}

/// Issue 12: the events endpoint down for a while → every message still goes out on time, and
/// every event is delivered later, none lost, each verified by the reference package.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_events_endpoint_never_blocks_a_message_and_loses_no_event() {
    let receiver = EventReceiver::start().await;
    let url = receiver.url.clone();
    let stack = start_stack(move |s| {
        s.with(env::EVENTS_URL, url)
            // Retries after 1, 2, 4 … s instead of 30 s, 60 s … (tests only).
            .with(env::EVENTS_RETRY_BASE_SECONDS, "1")
    })
    .await;
    receiver.set_down(true);
    let mut people = Vec::new();
    for _ in 0..3 {
        people.push(stack.opt_in().await);
    }
    for login_id in &people {
        stack
            .wait_for_state(login_id, shared::domain::opt_in::State::Sent)
            .await;
        assert_eq!(stack.inbox_for(login_id).len(), 1);
    }
    // The endpoint was tried and refused; nothing is delivered yet.
    let tried = std::time::Instant::now();
    while receiver.deliveries().is_empty() && tried.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!receiver.deliveries().is_empty(), "the event sender tried");
    assert!(receiver.delivered().is_empty());

    receiver.set_down(false);
    // optin.received and message.sent for each person.
    let expected = 2 * people.len();
    let delivered = receiver
        .wait_for_delivered(expected, Duration::from_secs(60))
        .await;
    let ids: std::collections::BTreeSet<&str> = delivered.iter().map(|d| d.webhook_id()).collect();
    assert_eq!(
        ids.len(),
        expected,
        "every event delivered once the endpoint is back"
    );
    for delivery in &delivered {
        verify_with_reference_package(local_runner::DEFAULT_LOCAL_EVENTS_SIGNING_SECRET, delivery)
            .unwrap();
    }
    let types: Vec<String> = delivered
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(&d.body).ok())
        .filter_map(|b| b["type"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "message.sent").count(),
        people.len()
    );
    assert_eq!(
        types.iter().filter(|t| *t == "optin.received").count(),
        people.len()
    );
    stack.stop().await;
}
