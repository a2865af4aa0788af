//! The sender handler, driven with SQS event fixtures and in-memory ports.

use aws_lambda_events::event::sqs::SqsEvent;
use sender::{Deps, handle_batch};
use shared::adapters::memory::{
    ManualClock, MemoryAlerts, MemoryMessenger, MemoryOptInStore, MemoryScheduler, test_config,
};
use shared::domain::{AlertKind, DeadlineCheck, HOUR_MS, OptIn, OptInKey, SendJob, State};
use shared::facebook::{GraphError, GraphErrorBody};
use shared::metrics::{MemoryMetrics, Metric};
use shared::ports::{DeadlineScheduler, OptInStore};
use std::sync::Arc;

const NOW: i64 = 1_795_536_000_000;
const PAGE: &str = "200000000000002";

struct World {
    deps: Deps,
    store: Arc<MemoryOptInStore>,
    scheduler: Arc<MemoryScheduler>,
    alerts: Arc<MemoryAlerts>,
    messenger: Arc<MemoryMessenger>,
    clock: Arc<ManualClock>,
    metrics: Arc<MemoryMetrics>,
}

fn world() -> World {
    let store = Arc::new(MemoryOptInStore::new());
    let scheduler = Arc::new(MemoryScheduler::default());
    let alerts = Arc::new(MemoryAlerts::default());
    let messenger = Arc::new(MemoryMessenger::default());
    let clock = Arc::new(ManualClock::at(NOW));
    let metrics = Arc::new(MemoryMetrics::default());
    let deps = Deps {
        config: test_config(&[("INITIAL_MESSAGE_TEXT", "Hello from the Page")]),
        store: store.clone(),
        scheduler: scheduler.clone(),
        alerts: alerts.clone(),
        messenger: messenger.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        logins: Arc::new(shared::adapters::memory_login::MemoryLoginStore::new()),
    };
    World {
        deps,
        store,
        scheduler,
        alerts,
        messenger,
        clock,
        metrics,
    }
}

impl World {
    async fn opt_in(&self, login_id: &str, opted_in_at: i64) -> OptInKey {
        let o = OptIn::new(
            OptInKey::new(PAGE, login_id),
            Some(opted_in_at),
            opted_in_at,
            24 * HOUR_MS,
            2 * HOUR_MS,
        );
        self.store.create_opt_in(&o).await.unwrap();
        self.scheduler
            .schedule_deadline_check(&DeadlineCheck::for_opt_in(&o), o.alert_at)
            .await
            .unwrap();
        o.key()
    }

    async fn state(&self, key: &OptInKey) -> OptIn {
        self.store.get_opt_in(key).await.unwrap().unwrap()
    }
}

fn event(message_id: &str, body: &str) -> SqsEvent {
    let escaped = serde_json::to_string(body).unwrap();
    let fixture = include_str!("fixtures/sqs_batch.json")
        .replace("__MESSAGE_ID__", message_id)
        .replace("\"__BODY__\"", &escaped);
    serde_json::from_str(&fixture).unwrap()
}

fn job_event(message_id: &str, key: &OptInKey) -> SqsEvent {
    event(
        message_id,
        &serde_json::to_string(&SendJob::for_key(key)).unwrap(),
    )
}

fn api_error(status: u16, code: i64, subcode: Option<i64>) -> GraphError {
    GraphError::Api {
        status,
        body: GraphErrorBody {
            code,
            error_subcode: subcode,
            message: "x".into(),
            fbtrace_id: Some("TRACE".into()),
            ..Default::default()
        },
    }
}

#[tokio::test]
async fn sends_once_records_sent_and_deletes_the_schedule() {
    let w = world();
    let key = w.opt_in("L1", NOW - 5_000).await;
    let response = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        w.messenger.sent(),
        vec![(PAGE.into(), "L1".into(), "Hello from the Page".into())]
    );
    let item = w.state(&key).await;
    assert_eq!(item.state, State::Sent);
    assert_eq!(item.message_id.as_deref(), Some("m_memory_0"));
    assert_eq!(item.sent_at, Some(NOW));
    assert_eq!(item.attempts, 1);
    assert!(w.scheduler.get(&key).is_none());
    assert_eq!(w.metrics.sum(Metric::InitialMessagesSent), 1.0);
    assert_eq!(w.metrics.values(Metric::OptInToSendSeconds), [5.0]);
    assert_eq!(w.metrics.sum(Metric::DeadlinesMissed), 0.0);
}

#[tokio::test]
async fn duplicate_jobs_send_one_message() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    for i in 0..3 {
        let r = handle_batch(&w.deps, job_event(&format!("m{i}"), &key)).await;
        assert!(r.batch_item_failures.is_empty());
    }
    assert_eq!(w.messenger.sent().len(), 1);
}

#[tokio::test]
async fn past_deadline_expires_without_sending_and_alerts() {
    let w = world();
    let key = w.opt_in("L1", NOW - 25 * HOUR_MS).await;
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(w.messenger.sent().is_empty());
    let item = w.state(&key).await;
    assert_eq!(item.state, State::Expired);
    assert!(w.scheduler.get(&key).is_none());
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::DeadlineMissed);
    assert_eq!(w.metrics.sum(Metric::DeadlinesMissed), 1.0);
    assert_eq!(w.metrics.sum(Metric::InitialMessagesSent), 0.0);
}

#[tokio::test]
async fn exactly_at_the_deadline_nothing_is_sent() {
    let w = world();
    let key = w.opt_in("L1", NOW - 24 * HOUR_MS).await;
    handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(w.messenger.sent().is_empty());
    assert_eq!(w.state(&key).await.state, State::Expired);
}

#[tokio::test]
async fn opted_out_is_never_sent() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    w.store.opt_out(&key, "api", NOW).await.unwrap();
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(w.messenger.sent().is_empty());
    assert_eq!(w.state(&key).await.state, State::OptedOut);
}

#[tokio::test]
async fn transient_failure_is_returned_for_retry_then_sent() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    w.messenger.then_fail(GraphError::Timeout);
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert_eq!(r.batch_item_failures.len(), 1);
    assert_eq!(r.batch_item_failures[0].item_identifier, "m1");
    let item = w.state(&key).await;
    assert_eq!(item.state, State::Retrying);
    assert_eq!(item.last_error.as_ref().unwrap().message, "timeout");
    w.clock.advance(1_000);
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    let item = w.state(&key).await;
    assert_eq!((item.state, item.attempts), (State::Sent, 2));
    assert_eq!(w.messenger.sent().len(), 1);
}

#[tokio::test]
async fn permanent_failures_reach_their_terminal_state_and_are_acknowledged() {
    let cases = [
        (
            api_error(400, 551, Some(1_545_041)),
            State::Unreachable,
            None,
        ),
        (
            api_error(400, 10, Some(2_018_278)),
            State::Expired,
            Some(AlertKind::WindowRejected),
        ),
        (
            api_error(400, 190, None),
            State::Paused,
            Some(AlertKind::ConfigurationError),
        ),
        (
            api_error(400, 10, Some(1_893_063)),
            State::Paused,
            Some(AlertKind::ConfigurationError),
        ),
    ];
    for (error, state, alert) in cases {
        let w = world();
        let key = w.opt_in("L1", NOW).await;
        w.messenger.then_fail(error.clone());
        let r = handle_batch(&w.deps, job_event("m1", &key)).await;
        assert!(r.batch_item_failures.is_empty(), "{error:?}");
        let item = w.state(&key).await;
        assert_eq!(item.state, state, "{error:?}");
        let last = item.last_error.unwrap();
        assert_eq!(last.fbtrace_id.as_deref(), Some("TRACE"));
        assert_eq!(
            w.alerts.published().first().map(|a| a.kind),
            alert,
            "{error:?}"
        );
        assert_eq!(w.scheduler.get(&key).is_none(), state.is_terminal());
        assert!(w.messenger.sent().is_empty());
        let missed = if state == State::Expired { 1.0 } else { 0.0 };
        assert_eq!(w.metrics.sum(Metric::DeadlinesMissed), missed, "{error:?}");
    }
}

#[tokio::test]
async fn a_live_lease_of_another_sender_is_respected() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    w.store
        .claim_for_send(&key, "other", NOW, NOW + 60_000)
        .await
        .unwrap();
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert_eq!(
        r.batch_item_failures.len(),
        1,
        "retried later in case the other crashes"
    );
    assert!(w.messenger.sent().is_empty());
    // After the lease expires, the job takes over.
    w.clock.advance(60_000);
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.messenger.sent().len(), 1);
}

#[tokio::test]
async fn unparseable_records_are_left_for_the_dlq_and_others_proceed() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    let mut batch = event("bad", "not a job");
    let good = job_event("good", &key);
    batch.records.extend(good.records);
    let mut v2 = event("v2", r#"{"version":2,"page_id":"p","login_id":"l"}"#);
    batch.records.append(&mut v2.records);
    let r = handle_batch(&w.deps, batch).await;
    let failed: Vec<&str> = r
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["bad", "v2"]);
    assert_eq!(w.messenger.sent().len(), 1);
}

#[tokio::test]
async fn unknown_opt_in_is_dropped() {
    let w = world();
    let r = handle_batch(&w.deps, job_event("m1", &OptInKey::new(PAGE, "nobody"))).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(w.messenger.sent().is_empty());
}

#[tokio::test]
async fn bounded_and_unknown_errors_pause_after_their_limit() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    for _ in 0..sender::MAX_BOUNDED_ATTEMPTS {
        w.messenger.then_fail(api_error(500, 1, Some(99)));
    }
    for i in 1..=sender::MAX_BOUNDED_ATTEMPTS {
        let r = handle_batch(&w.deps, job_event("m1", &key)).await;
        let expect_retry = i < sender::MAX_BOUNDED_ATTEMPTS;
        assert_eq!(
            r.batch_item_failures.len(),
            usize::from(expect_retry),
            "attempt {i}"
        );
    }
    assert_eq!(w.state(&key).await.state, State::Paused);
    assert_eq!(w.alerts.published().len(), 1);
    assert!(w.messenger.sent().is_empty());
}
