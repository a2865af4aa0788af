//! SAM's own sample events, fed to the four handlers over in-memory twins. The fixtures in
//! tests/fixtures/sam-events/ are what `make sam-events` writes (`sam local generate-event`,
//! offline, unedited): what the Lambda runtime hands the functions deserializes into their event
//! types and is answered — a poison SQS message ends in `batchItemFailures`, not a panic, and an
//! EventBridge rule's envelope (not what our ScheduleV2 delivers) is refused with a readable error.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use integration_tests::moto::workspace_root;
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::memory::config::test_config;
use shared::adapters::memory::erasure::MemoryErasure;
use shared::adapters::memory::logins::{MemoryFacebookLogin, MemoryLoginStore};
use shared::adapters::memory::messenger::MemoryMessenger;
use shared::adapters::memory::metrics::MemoryMetrics;
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::adapters::memory::queue::{MemoryRetryQueue, MemorySendQueue};
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::config::secrets::{HttpApiSecrets, SecretView};
use shared::domain::opt_in::{HOUR_MS, OptIn, OptInKey, State};
use shared::ports::bundle::Ports;
use shared::ports::opt_ins::OptInStore;
use std::sync::Arc;

const NOW: i64 = 1_795_536_000_000;
/// The page and login_id of the send job in sqs_send_job.json (`make sam-events`).
const PAGE: &str = "200000000000002";
const LOGIN_ID: &str = "sam-event-login";
/// The message id SAM's SQS sample carries.
const SAM_MESSAGE_ID: &str = "19dd0b57-b21e-4ac1-bd88-01bbb068cb78";

fn fixture(name: &str) -> String {
    let path = workspace_root()
        .join("tests/fixtures/sam-events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Twins {
    ports: Ports,
    store: Arc<MemoryOptInStore>,
    messenger: Arc<MemoryMessenger>,
}

fn twins() -> Twins {
    let store = Arc::new(MemoryOptInStore::new());
    let logins = Arc::new(MemoryLoginStore::new());
    let messenger = Arc::new(MemoryMessenger::default());
    let ports = Ports {
        opt_ins: store.clone(),
        conversations: store.clone(),
        pages: store.clone(),
        erasure: Arc::new(MemoryErasure::new(store.clone(), logins.clone())),
        logins,
        queue: Arc::new(MemorySendQueue::default()),
        retry: Arc::new(MemoryRetryQueue::default()),
        scheduler: Arc::new(MemoryScheduler::default()),
        events: Arc::new(shared::adapters::memory::events::MemoryEvents::default()),
        follow_ups: Arc::new(shared::adapters::memory::follow_ups::MemoryFollowUps::default()),
        alerts: Arc::new(MemoryAlerts::default()),
        metrics: Arc::new(MemoryMetrics::default()),
        clock: Arc::new(ManualClock::at(NOW)),
        facebook: Arc::new(MemoryFacebookLogin::default()),
        messenger: messenger.clone(),
    };
    Twins {
        ports,
        store,
        messenger,
    }
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn sams_http_api_events_are_answered_by_the_http_api() {
    let t = twins();
    let secrets = HttpApiSecrets::from_json(
        r#"{"app_secret":"a","verify_token":"v","client_token":"c","api_key_hashes":[]}"#,
    )
    .unwrap();
    let deps = http_api::Deps::from_ports(test_config(&[]), secrets, &t.ports);
    for (name, status, code) in [
        ("http_api_healthz.json", 200, None),
        // No API key in SAM's sample headers.
        ("http_api_record_login.json", 401, Some("unauthorized")),
        // SAM's default path, /path/to/resource, is no route of ours.
        ("http_api_default.json", 404, Some("not_found")),
    ] {
        let request = lambda_http::request::from_str(&fixture(name))
            .unwrap_or_else(|e| panic!("{name} is not an HTTP API request: {e}"));
        let response = http_api::handle(&deps, request).await;
        assert_eq!(response.status(), status, "{name}");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        match code {
            None => assert_eq!(body, serde_json::json!({"ok": true}), "{name}"),
            Some(code) => assert_eq!(body["error"]["code"], code, "{name}: {body}"),
        }
    }
}

#[tokio::test]
async fn sams_sqs_poison_message_ends_in_batch_item_failures() {
    let t = twins();
    let deps = sender::Deps::from_ports(test_config(&[]), &t.ports);
    let event: SqsEvent = serde_json::from_str(&fixture("sqs_poison.json")).unwrap();
    assert_eq!(event.records[0].body.as_deref(), Some("Hello from SQS!"));
    let response = sender::handle_batch(&deps, event).await;
    assert_eq!(failed_ids(&response), [SAM_MESSAGE_ID]);
    assert!(t.messenger.sent().is_empty());
}

#[tokio::test]
async fn sams_sqs_event_with_a_send_job_is_sent() {
    let t = twins();
    let opt_in = OptIn::new(
        OptInKey::new(PAGE, LOGIN_ID),
        Some(NOW),
        NOW,
        24 * HOUR_MS,
        2 * HOUR_MS,
    );
    t.store.create_opt_in(&opt_in).await.unwrap();
    let deps = sender::Deps::from_ports(test_config(&[]), &t.ports);
    let event: SqsEvent = serde_json::from_str(&fixture("sqs_send_job.json")).unwrap();
    let response = sender::handle_batch(&deps, event).await;
    assert!(failed_ids(&response).is_empty(), "{response:?}");
    assert_eq!(t.messenger.sent().len(), 1);
    let item = t.store.get_opt_in(&opt_in.key()).await.unwrap().unwrap();
    assert_eq!(item.state, State::Sent);
}

#[tokio::test]
async fn the_schedule_input_is_handled_and_an_eventbridge_envelope_refused_readably() {
    let t = twins();
    let deps = deadline_alerts::Deps::from_ports(test_config(&[]), &t.ports);
    // What the Sweep schedule delivers: its Input, verbatim (ScheduleV2 sends no envelope).
    let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap(),
    )
    .unwrap();
    let input = template["Resources"]["DeadlineAlertsFunction"]["Properties"]["Events"]["Sweep"]
        ["Properties"]["Input"]
        .as_str()
        .unwrap();
    let summary = deadline_alerts::handle(&deps, serde_json::from_str(input).unwrap())
        .await
        .unwrap();
    assert_eq!(summary.checked, 0);

    // SAM's scheduled event is an EventBridge rule's envelope: not ours, refused, no panic, and the
    // runtime reports it with a readable errorType.
    let envelope: serde_json::Value =
        serde_json::from_str(&fixture("eventbridge_scheduled_event.json")).unwrap();
    assert_eq!(envelope["detail-type"], "Scheduled Event");
    let e = deadline_alerts::handle(&deps, envelope).await.unwrap_err();
    let diagnostic = lambda_runtime::Diagnostic::from(e);
    assert_eq!(diagnostic.error_type, "DeadlineAlerts.BadInput");
    assert!(
        diagnostic.error_message.contains("sweep"),
        "{}",
        diagnostic.error_message
    );
}

/// The event sender over the events queue's twin, delivering to `url`.
fn event_sender_deps(
    url: &str,
    queue: Arc<shared::adapters::memory::events::MemoryEventQueue>,
) -> event_sender::Deps {
    let config = test_config(&[("EVENTS_URL", url), ("EVENTS_QUEUE_URL", "http://q")]);
    let secrets = event_sender::signing::EventsSecrets::from_json(
        r#"{"events_signing_secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#,
    )
    .unwrap();
    event_sender::Deps::new(
        &config,
        &secrets,
        queue,
        Arc::new(ManualClock::at(NOW)),
        std::time::Duration::from_secs(2),
    )
    .unwrap()
}

/// Issue 12: SAM's SQS sample is handled by the event sender: its body is no event, so it goes to
/// the events dead-letter queue at once (acknowledged, not retried); the same record carrying an
/// event is delivered, and retried on SAM's `ApproximateReceiveCount` when the receiver is down.
#[tokio::test]
async fn sams_sqs_events_are_handled_by_the_event_sender() {
    // A port nothing listens on: the receiver is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/backend/events", closed.local_addr().unwrap());
    drop(closed);
    let queue = Arc::new(shared::adapters::memory::events::MemoryEventQueue::default());
    let deps = event_sender_deps(&url, queue.clone());

    let poison: SqsEvent = serde_json::from_str(&fixture("sqs_poison.json")).unwrap();
    let response = event_sender::handle_batch(&deps, poison).await;
    assert!(failed_ids(&response).is_empty(), "{response:?}");
    assert_eq!(queue.dead_letters(), ["Hello from SQS!"]);

    let mut event: SqsEvent = serde_json::from_str(&fixture("sqs_poison.json")).unwrap();
    let outbound = shared::domain::events::OutboundEvent::new(
        shared::domain::events::EventType::OptInExpired,
        "sam",
        NOW,
        serde_json::Map::new(),
    );
    event.records[0].body = Some(serde_json::to_string(&outbound).unwrap());
    let response = event_sender::handle_batch(&deps, event).await;
    assert_eq!(failed_ids(&response), [SAM_MESSAGE_ID]);
    assert_eq!(
        queue.retries(),
        [("MessageReceiptHandle".to_owned(), 30)],
        "receive 1 of SAM's sample: the first retry delay"
    );
}
