//! Issue 12: how an initial message ends is reported to the website backend — `message.sent`
//! (kind `initial`, the opt-in's stable id, never the login_id), `message.failed` with
//! `optin.unreachable` or `optin.expired` — once per opt-in: a redelivered job emits the same ids,
//! and an event that cannot be queued brings the SQS record back (never a second message).

use crate::twins::Twins;
use aws_lambda_events::event::sqs::SqsEvent;
use sender::{Deps, handle_batch};
use shared::adapters::memory::config::test_config;
use shared::config::env;
use shared::domain::events::{EventType, opt_in_id};
use shared::domain::jobs::SendJob;
use shared::domain::metrics::Metric;
use shared::domain::opt_in::{HOUR_MS, OptIn, OptInKey, State};
use shared::facebook::graph_error::{GraphError, GraphErrorBody};
use shared::ports::opt_ins::OptInStore;
use std::sync::atomic::Ordering;

const NOW: i64 = 1_795_536_000_000;
const PAGE: &str = "200000000000002";

fn sender(twins: &Twins) -> Deps {
    Deps::from_ports(
        test_config(&[(env::INITIAL_MESSAGE_TEXT, "Hello")]),
        &twins.ports(),
    )
}

async fn opted_in(twins: &Twins, opted_in_at: i64) -> OptIn {
    let o = OptIn::new(
        OptInKey::new(PAGE, "L1"),
        Some(opted_in_at),
        opted_in_at,
        24 * HOUR_MS,
        2 * HOUR_MS,
    );
    twins.store.create_opt_in(&o).await.unwrap();
    o
}

fn job(message_id: &str, key: &OptInKey) -> SqsEvent {
    let body = serde_json::to_string(&SendJob::for_key(key)).unwrap();
    let fixture = include_str!("../fixtures/sqs_batch.json")
        .replace("__MESSAGE_ID__", message_id)
        .replace("\"__BODY__\"", &serde_json::to_string(&body).unwrap());
    serde_json::from_str(&fixture).unwrap()
}

#[tokio::test]
async fn the_initial_message_emits_message_sent_and_a_redelivered_job_the_same_id() {
    let twins = Twins::at(NOW);
    let deps = sender(&twins);
    let o = opted_in(&twins, NOW - 5_000).await;
    assert!(
        handle_batch(&deps, job("m1", &o.key()))
            .await
            .batch_item_failures
            .is_empty()
    );
    let sent = twins.events.of_type(EventType::MessageSent);
    assert_eq!(sent.len(), 1);
    let data = &sent[0].data;
    assert_eq!(data["kind"], "initial");
    assert_eq!(data["id"], opt_in_id(&o).as_str());
    assert_eq!(data["message_id"], "m_memory_0");
    assert_eq!(data["state"], "SENT");
    assert_eq!(data["sent_at"], "2026-11-24T16:00:00.000Z");
    assert!(!sent[0].body().contains("L1"), "no login_id in clear");
    assert_eq!(twins.events.events().len(), 1, "nothing else");
    // SQS delivers the job again: no second message, the same event id again.
    handle_batch(&deps, job("m1", &o.key())).await;
    let again = twins.events.of_type(EventType::MessageSent);
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].id, sent[0].id);
    assert_eq!(twins.messenger.sent().len(), 1);
}

#[tokio::test]
async fn an_unreachable_person_emits_message_failed_and_optin_unreachable() {
    let twins = Twins::at(NOW);
    let deps = sender(&twins);
    let o = opted_in(&twins, NOW).await;
    twins.messenger.then_fail(GraphError::Api {
        status: 400,
        body: GraphErrorBody {
            code: 551,
            error_subcode: Some(1_545_041),
            message: "x".into(),
            ..Default::default()
        },
    });
    handle_batch(&deps, job("m1", &o.key())).await;
    let failed = twins.events.of_type(EventType::MessageFailed);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data["reason"], "unreachable");
    assert_eq!(failed[0].data["kind"], "initial");
    let unreachable = twins.events.of_type(EventType::OptInUnreachable);
    assert_eq!(unreachable.len(), 1);
    assert_eq!(unreachable[0].data["state"], "UNREACHABLE");
}

#[tokio::test]
async fn a_missed_deadline_emits_optin_expired() {
    let twins = Twins::at(NOW);
    let deps = sender(&twins);
    let o = opted_in(&twins, NOW - 25 * HOUR_MS).await;
    handle_batch(&deps, job("m1", &o.key())).await;
    assert_eq!(
        twins
            .store
            .get_opt_in(&o.key())
            .await
            .unwrap()
            .unwrap()
            .state,
        State::Expired
    );
    let expired = twins.events.of_type(EventType::OptInExpired);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].data["state"], "EXPIRED");
    assert_eq!(
        twins.events.of_type(EventType::MessageFailed)[0].data["reason"],
        "expired"
    );
    assert!(twins.messenger.sent().is_empty());
}

#[tokio::test]
async fn an_event_not_queued_brings_the_record_back_and_its_retry_emits_it() {
    let twins = Twins::at(NOW);
    let deps = sender(&twins);
    let o = opted_in(&twins, NOW - 5_000).await;
    twins.events.fail.store(true, Ordering::SeqCst);
    let r = handle_batch(&deps, job("m1", &o.key())).await;
    assert_eq!(r.batch_item_failures.len(), 1, "SQS must bring it back");
    assert_eq!(
        twins
            .store
            .get_opt_in(&o.key())
            .await
            .unwrap()
            .unwrap()
            .state,
        State::Sent
    );
    assert_eq!(twins.metrics.sum(Metric::EventsNotQueued), 1.0);
    twins.events.fail.store(false, Ordering::SeqCst);
    let r = handle_batch(&deps, job("m1", &o.key())).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(twins.events.of_type(EventType::MessageSent).len(), 1);
    assert_eq!(twins.messenger.sent().len(), 1, "one message");
}
