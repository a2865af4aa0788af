//! Events to the website backend through moto (issue 12): published with the `SqsEvents` adapter
//! onto the events queue provisioned from template.yaml, delivered by the event sender (its
//! production wiring: the signing key read back from its own secret), and the deliveries verified
//! with the Standard Webhooks reference package (Python), not only with our code. The receiver is
//! down for a while: every event is delivered later, none lost; after the last attempt an event
//! is in the events dead-letter queue (moto applies the template's redrive policy), and an
//! unreadable record gets there at once. `EVENTS_RETRY_BASE_SECONDS=0`: retries are due at once,
//! so the test walks the receive counts without waiting.

use aws_sdk_sqs::types::MessageSystemAttributeName;
use integration_tests::event_receiver::{EventReceiver, verify_with_reference_package};
use integration_tests::shared_moto;
use local_runner::moto::workspace_root;
use local_runner::provision::{Provisioned, ProvisionedEvents, provision};
use shared::config::env;
use shared::config::settings::Config;
use shared::domain::events::{EventType, OutboundEvent};
use shared::ports::events::EventPublisher;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What CloudFormation's GenerateSecretString makes (32 alphanumeric characters); the website
/// verifies with `whsec_` + it.
const SIGNING_SECRET: &str = "C2FVsBQIhrscChlQIMV9b5sSYspob7oD";

struct EventsWorld {
    /// Held: the shared moto stops with its last user.
    _moto: Arc<local_runner::moto::MotoServer>,
    sdk: aws_config::SdkConfig,
    events: ProvisionedEvents,
    publisher: Arc<dyn EventPublisher>,
    sender: event_sender::Deps,
    receiver: EventReceiver,
}

async fn world() -> EventsWorld {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let stack = format!("ev{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let secret_json = serde_json::json!({ "events_signing_secret": SIGNING_SECRET }).to_string();
    let p: Provisioned = provision(
        &workspace_root().join("template.yaml"),
        &sdk,
        &stack,
        &secret_json,
    )
    .await
    .unwrap_or_else(|e| panic!("provisioning failed: {e}"));
    let events = p
        .events
        .clone()
        .expect("template.yaml declares the events queue");
    let receiver = EventReceiver::start().await;
    let vars: Vec<(&str, String)> = vec![
        (env::TABLE_NAME, p.table_name.clone()),
        (env::SEND_QUEUE_URL, p.send_queue_url.clone()),
        (env::SCHEDULE_GROUP, p.schedule_group.clone()),
        (
            env::SCHEDULER_ROLE_ARN,
            "arn:aws:iam::123456789012:role/r".into(),
        ),
        (
            env::DEADLINE_FUNCTION_ARN,
            "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        ),
        (env::ALERT_TOPIC_ARN, p.alert_topic_arn.clone()),
        (env::SECRET_ID, p.secret_id.clone()),
        (env::FB_APP_ID, "100000000000001".into()),
        (env::FB_PAGE_ID, "200000000000002".into()),
        (env::EVENTS_URL, receiver.url.clone()),
        (env::EVENTS_QUEUE_URL, events.queue_url.clone()),
        (env::EVENTS_DLQ_URL, events.dlq_url.clone()),
        (
            env::EVENTS_SIGNING_SECRET_ID,
            events.signing_secret_id.clone(),
        ),
        (env::EVENTS_RETRY_BASE_SECONDS, "0".into()),
    ];
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let publisher =
        shared::bootstrap::events_publisher(&config, &aws_sdk_sqs::Client::new(&sdk).into());
    let secrets = event_sender::deps::load_secrets(&config, &sdk)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sender = event_sender::Deps::from_aws(&config, &secrets, &sdk).unwrap();
    EventsWorld {
        _moto: moto,
        sdk,
        events,
        publisher,
        sender,
        receiver,
    }
}

impl EventsWorld {
    fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// One invocation of the event source mapping: receive a batch, hand it to the event sender,
    /// delete what it does not report as failed. Returns the records received.
    async fn drive_once(&self) -> usize {
        let sqs = self.sqs();
        let out = sqs
            .receive_message()
            .queue_url(&self.events.queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return 0;
        }
        let event =
            local_runner::event_sources::sqs_event(&messages, &self.events.queue_arn).unwrap();
        let response = event_sender::handle_batch(&self.sender, event).await;
        local_runner::event_sources::settle_batch(
            &sqs,
            &self.events.queue_url,
            &messages,
            &response,
        )
        .await;
        messages.len()
    }

    /// Drive until `done` holds (at most 30 s).
    async fn drive_until(&self, done: impl Fn(&Self) -> bool) {
        let until = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(Instant::now() < until, "not done after 30 s of driving");
            if self.drive_once().await == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    async fn bodies_in(&self, queue_url: &str) -> Vec<String> {
        let out = self
            .sqs()
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.body)
            .collect()
    }

    async fn publish(&self, n: usize) -> Vec<OutboundEvent> {
        let mut published = Vec::new();
        for i in 0..n {
            let mut data = serde_json::Map::new();
            data.insert("asid".into(), format!("asid-{i}").into());
            data.insert("text".into(), "a reply, é ✓".into());
            let event = OutboundEvent::new(
                EventType::PersonReplied,
                &format!("{}#{i}", uuid::Uuid::new_v4()),
                1_764_000_000_000 + i as i64,
                data,
            );
            self.publisher.publish(&event).await.unwrap();
            published.push(event);
        }
        published
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_through_the_queue_verify_with_the_standard_webhooks_reference_package() {
    let w = world().await;
    let published = w.publish(3).await;
    w.drive_until(|w| w.receiver.delivered().len() >= 3).await;
    let delivered = w.receiver.delivered();
    assert_eq!(delivered.len(), 3);
    let secret = format!("whsec_{SIGNING_SECRET}");
    for d in &delivered {
        let event = published
            .iter()
            .find(|e| e.id == d.webhook_id())
            .expect("webhook-id is the published event's id");
        assert_eq!(
            d.body,
            event.body(),
            "the body is the event's, byte for byte"
        );
        assert_eq!(d.headers["content-type"], "application/json");
        verify_with_reference_package(&secret, d)
            .unwrap_or_else(|e| panic!("the reference package refused a delivery: {e}"));
        // And it refuses what was not signed so: a changed body, another key.
        let mut tampered = d.clone();
        tampered.body = d.body.replace("asid-", "asid-9");
        assert!(verify_with_reference_package(&secret, &tampered).is_err());
        assert!(
            verify_with_reference_package("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", d).is_err()
        );
    }
    assert!(w.bodies_in(&w.events.dlq_url).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_every_event_later_and_none_is_lost() {
    let w = world().await;
    w.receiver.set_down(true);
    let published = w.publish(5).await;
    // Three failed attempts of each event (503), each backed off and received again.
    w.drive_until(|w| w.receiver.deliveries().len() >= 15).await;
    assert!(w.receiver.delivered().is_empty());
    w.receiver.set_down(false);
    let ids = |events: &[OutboundEvent]| -> BTreeSet<String> {
        events.iter().map(|e| e.id.clone()).collect()
    };
    let want = ids(&published);
    w.drive_until(|w| {
        let got: BTreeSet<String> = w
            .receiver
            .delivered()
            .iter()
            .map(|d| d.webhook_id().to_owned())
            .collect();
        got == want
    })
    .await;
    // Every attempt of an event carried its one webhook-id; the queues are empty.
    let attempts: BTreeSet<String> = w
        .receiver
        .deliveries()
        .iter()
        .map(|d| d.webhook_id().to_owned())
        .collect();
    assert_eq!(attempts, want);
    assert_eq!(w.drive_once().await, 0, "nothing left in the events queue");
    assert!(w.bodies_in(&w.events.dlq_url).await.is_empty());
    let secret = format!("whsec_{SIGNING_SECRET}");
    for d in w.receiver.delivered() {
        verify_with_reference_package(&secret, &d).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_last_attempt_the_event_is_in_the_dead_letter_queue() {
    let w = world().await;
    w.receiver.set_down(true);
    let published = w.publish(1).await;
    let max = event_sender::MAX_RECEIVE_COUNT as usize;
    w.drive_until(|w| w.receiver.deliveries().len() >= max)
        .await;
    // The next receive moves it (the template's maxReceiveCount, applied by moto).
    for _ in 0..3 {
        w.drive_once().await;
    }
    assert_eq!(w.receiver.deliveries().len(), max, "13 attempts, no more");
    let dead = w.bodies_in(&w.events.dlq_url).await;
    assert_eq!(dead.len(), 1);
    let event: OutboundEvent = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(event, published[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_record_is_dead_lettered_at_once() {
    let w = world().await;
    w.sqs()
        .send_message()
        .queue_url(&w.events.queue_url)
        .message_body("not an event")
        .send()
        .await
        .unwrap();
    assert_eq!(w.drive_once().await, 1);
    assert_eq!(w.drive_once().await, 0, "acknowledged, not retried");
    assert_eq!(w.bodies_in(&w.events.dlq_url).await, ["not an event"]);
    assert!(w.receiver.deliveries().is_empty());
}
