//! The event sender's batch handling over the events queue's twin and a real HTTP receiver on
//! 127.0.0.1 (a random port): 2xx delivered and verifiable with the Standard Webhooks reference
//! crate, 500 and a timeout retried on the growing schedule, a receiver that is down, the last
//! attempt handed to the dead-letter queue, an unreadable record dead-lettered at once, and the
//! function not configured yet.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use axum::http::{HeaderMap, StatusCode};
use event_sender::signing::EventsSecrets;
use event_sender::{Deps, EventSender};
use shared::adapters::clock::SystemClock;
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::config::test_config;
use shared::adapters::memory::events::MemoryEventQueue;
use shared::bootstrap::{Unconfigured, UntilConfigured, build_deps};
use shared::config::secrets::SecretView;
use shared::domain::events::{EventType, OutboundEvent};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver got: headers and body of each request.
#[derive(Default)]
struct Received {
    requests: Mutex<Vec<(HeaderMap, String)>>,
    /// The status it answers with.
    status: AtomicU16,
    /// How long it waits before answering (ms).
    delay_ms: AtomicU64,
}

async fn receiver() -> (String, Arc<Received>) {
    let state = Arc::new(Received::default());
    state.status.store(204, Ordering::SeqCst);
    let seen = state.clone();
    let app = axum::Router::new().route(
        "/backend/events",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let delay = seen.delay_ms.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                seen.requests.lock().unwrap().push((headers, body));
                StatusCode::from_u16(seen.status.load(Ordering::SeqCst)).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (
        format!("http://{addr}/backend/events?token=receiver-secret"),
        state,
    )
}

fn deps(url: &str, queue: Arc<MemoryEventQueue>, timeout: Duration) -> Deps {
    let config = test_config(&[("EVENTS_URL", url), ("EVENTS_QUEUE_URL", "http://q")]);
    let secrets =
        EventsSecrets::from_json(&format!(r#"{{"events_signing_secret":"{SECRET}"}}"#)).unwrap();
    Deps::new(&config, &secrets, queue, Arc::new(SystemClock), timeout).unwrap()
}

fn event(n: u32) -> OutboundEvent {
    let mut data = serde_json::Map::new();
    data.insert("asid".into(), format!("asid-{n}").into());
    data.insert("text".into(), "hello, a reply".into());
    OutboundEvent::new(
        EventType::PersonReplied,
        &format!("occurrence-{n}"),
        1_764_000_000_000,
        data,
    )
}

/// An SQS batch of `(message id, body, receive count)`.
fn batch(records: &[(&str, String, u32)]) -> SqsEvent {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, body, count)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": count.to_string()},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

fn failed(response: &SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_2xx_is_delivered_once_signed_as_standard_webhooks_says() {
    let (url, received) = receiver().await;
    let queue = Arc::new(MemoryEventQueue::default());
    let deps = deps(&url, queue.clone(), Duration::from_secs(10));
    let events = [event(1), event(2)];
    let response = event_sender::handle_batch(
        &deps,
        batch(&[
            ("m1", serde_json::to_string(&events[0]).unwrap(), 1),
            ("m2", serde_json::to_string(&events[1]).unwrap(), 1),
        ]),
    )
    .await;
    assert!(failed(&response).is_empty());
    assert!(queue.retries().is_empty() && queue.dead_letters().is_empty());
    let requests = received.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    for (headers, body) in &requests {
        let sent = events
            .iter()
            .find(|e| headers["webhook-id"] == e.id.as_str())
            .expect("webhook-id is the event's id");
        assert_eq!(body, &sent.body());
        assert_eq!(headers["content-type"], "application/json");
        assert!(
            headers["webhook-signature"]
                .to_str()
                .unwrap()
                .starts_with("v1,")
        );
        verifier
            .verify(body.as_bytes(), headers)
            .expect("the signature verifies");
        let tampered = body.replace("hello", "HELLO");
        assert!(verifier.verify(tampered.as_bytes(), headers).is_err());
    }
}

#[tokio::test]
async fn a_500_is_retried_later_and_later() {
    let (url, received) = receiver().await;
    received.status.store(500, Ordering::SeqCst);
    let queue = Arc::new(MemoryEventQueue::default());
    let deps = deps(&url, queue.clone(), Duration::from_secs(10));
    let body = serde_json::to_string(&event(1)).unwrap();
    let response = event_sender::handle_batch(
        &deps,
        batch(&[
            ("m1", body.clone(), 1),
            ("m3", body.clone(), 3),
            ("m12", body, 12),
        ]),
    )
    .await;
    assert_eq!(failed(&response), ["m1", "m12", "m3"]);
    let mut retries = queue.retries();
    retries.sort();
    assert_eq!(
        retries,
        [
            ("handle-m1".to_owned(), 30),
            ("handle-m12".to_owned(), 42_900),
            ("handle-m3".to_owned(), 120)
        ]
    );
    assert_eq!(received.requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_retried() {
    let (url, received) = receiver().await;
    received.delay_ms.store(2_000, Ordering::SeqCst);
    let queue = Arc::new(MemoryEventQueue::default());
    let deps = deps(&url, queue.clone(), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let response = event_sender::handle_batch(
        &deps,
        batch(&[("m1", serde_json::to_string(&event(1)).unwrap(), 2)]),
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert_eq!(failed(&response), ["m1"]);
    assert_eq!(queue.retries(), [("handle-m1".to_owned(), 60)]);
}

#[tokio::test]
async fn a_receiver_that_is_down_is_retried() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/backend/events", listener.local_addr().unwrap());
    drop(listener);
    let queue = Arc::new(MemoryEventQueue::default());
    let deps = deps(&url, queue.clone(), Duration::from_secs(2));
    let response = event_sender::handle_batch(
        &deps,
        batch(&[("m1", serde_json::to_string(&event(1)).unwrap(), 1)]),
    )
    .await;
    assert_eq!(failed(&response), ["m1"]);
    assert_eq!(queue.retries(), [("handle-m1".to_owned(), 30)]);
}

#[tokio::test]
async fn the_last_attempt_hands_the_record_to_the_dead_letter_queue_now() {
    let (url, received) = receiver().await;
    received.status.store(503, Ordering::SeqCst);
    let queue = Arc::new(MemoryEventQueue::default());
    let deps = deps(&url, queue.clone(), Duration::from_secs(10));
    let body = serde_json::to_string(&event(1)).unwrap();
    let last = event_sender::MAX_RECEIVE_COUNT;
    let response = event_sender::handle_batch(&deps, batch(&[("m1", body, last)])).await;
    // Visible again at once: its next receive exceeds maxReceiveCount and SQS moves it.
    assert_eq!(failed(&response), ["m1"]);
    assert_eq!(queue.retries(), [("handle-m1".to_owned(), 0)]);
}

#[tokio::test]
async fn an_unreadable_record_goes_to_the_dead_letter_queue_without_retries() {
    let (url, received) = receiver().await;
    let queue = Arc::new(MemoryEventQueue::default());
    let deps = deps(&url, queue.clone(), Duration::from_secs(10));
    let good = serde_json::to_string(&event(1)).unwrap();
    let response = event_sender::handle_batch(
        &deps,
        batch(&[("poison", "not an event".into(), 1), ("good", good, 1)]),
    )
    .await;
    assert!(failed(&response).is_empty());
    assert_eq!(queue.dead_letters(), ["not an event"]);
    assert!(queue.retries().is_empty());
    assert_eq!(received.requests.lock().unwrap().len(), 1);

    // The dead-letter queue unreachable: the record is left for a retry, never dropped.
    queue.fail.store(true, Ordering::SeqCst);
    let response = event_sender::handle_batch(&deps, batch(&[("poison", "{}".into(), 1)])).await;
    assert_eq!(failed(&response), ["poison"]);
}

#[tokio::test]
async fn not_configured_hands_every_record_back_untouched_and_alerts_once() {
    let (_url, received) = receiver().await;
    let alerts = MemoryAlerts::default();
    let build = build_deps(move || async move {
        // What a fresh stack has: EVENTS_URL set, the secret still unusable.
        EventsSecrets::from_json(r#"{"events_signing_secret":""}"#).map_err(|e| e.to_string())?;
        Err::<Deps, String>("unreachable".into())
    });
    let sender = EventSender::new(
        UntilConfigured::start(
            build,
            Duration::from_secs(3600),
            Unconfigured {
                function: "event-sender",
                meanwhile: event_sender::WHILE_NOT_CONFIGURED,
                page_id: "200000000000002",
                alerts: &alerts,
            },
        )
        .await,
    );
    let body = serde_json::to_string(&event(1)).unwrap();
    let response = sender
        .handle(batch(&[("m1", body.clone(), 1), ("m2", body, 1)]))
        .await;
    assert_eq!(failed(&response), ["m1", "m2"]);
    assert!(received.requests.lock().unwrap().is_empty());
    let published = alerts.published();
    assert_eq!(published.len(), 1);
    let text = format!("{:?}", published[0]);
    assert!(text.contains("events_signing_secret is empty"), "{text}");
}

/// What is kept of a failed attempt (and logged) never carries the URL: its query may hold the
/// receiver's token (reqwest's errors name the URL unless stripped).
#[tokio::test]
async fn a_failure_reason_never_carries_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/backend/events?token=receiver-secret",
        listener.local_addr().unwrap()
    );
    drop(listener);
    let secrets =
        EventsSecrets::from_json(&format!(r#"{{"events_signing_secret":"{SECRET}"}}"#)).unwrap();
    let signer = event_sender::signing::Signer::new(&secrets.events_signing_secret).unwrap();
    let http = event_sender::deliver::client(Duration::from_secs(2)).unwrap();
    let attempt = event_sender::deliver::post(&http, &url, &signer, &event(1), 1).await;
    let event_sender::deliver::Attempt::Failed { status, reason } = attempt else {
        panic!("delivered to a closed port: {attempt:?}");
    };
    assert_eq!(status, None);
    assert!(
        !reason.contains("receiver-secret") && !reason.contains("127.0.0.1"),
        "{reason}"
    );
}
