//! The sender handler, driven with SQS event fixtures and in-memory ports.

use crate::twins::Twins;

use aws_lambda_events::event::sqs::SqsEvent;
use sender::{Deps, handle_batch};
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::memory::config::test_config;
use shared::adapters::memory::messenger::MemoryMessenger;
use shared::adapters::memory::metrics::MemoryMetrics;
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::adapters::memory::queue::MemoryRetryQueue;
use shared::adapters::memory::queue::MemorySendQueue;
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::domain::alert::AlertKind;
use shared::domain::jobs::{DeadlineCheck, SendJob};
use shared::domain::metrics::Metric;
use shared::domain::opt_in::{HOUR_MS, OptIn, OptInKey, State};
use shared::facebook::graph_error::{GraphError, GraphErrorBody};
use shared::logging::Captured;
use shared::ports::opt_ins::OptInStore;
use shared::ports::pages::PageStateStore;
use shared::ports::scheduler::DeadlineScheduler;
use std::sync::Arc;

const NOW: i64 = 1_795_536_000_000;
const PAGE: &str = "200000000000002";

struct World {
    deps: Deps,
    store: Arc<MemoryOptInStore>,
    queue: Arc<MemorySendQueue>,
    retry: Arc<MemoryRetryQueue>,
    scheduler: Arc<MemoryScheduler>,
    alerts: Arc<MemoryAlerts>,
    messenger: Arc<MemoryMessenger>,
    clock: Arc<ManualClock>,
    metrics: Arc<MemoryMetrics>,
}

fn world() -> World {
    world_with(&[])
}

fn world_with(overrides: &[(&str, &str)]) -> World {
    let twins = Twins::at(NOW);
    // The first setting of a name wins: overrides first.
    let mut settings = overrides.to_vec();
    settings.push((env::INITIAL_MESSAGE_TEXT, "Hello from the Page"));
    let deps = Deps::from_ports(test_config(&settings), &twins.ports());
    World {
        deps,
        store: twins.store,
        queue: twins.queue,
        retry: twins.retry,
        scheduler: twins.scheduler,
        alerts: twins.alerts,
        messenger: twins.messenger,
        clock: twins.clock,
        metrics: twins.metrics,
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
    let fixture = include_str!("../fixtures/sqs_batch.json")
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
async fn a_live_lease_of_another_job_is_respected_and_the_duplicate_acknowledged() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    w.store
        .claim_for_send(&key, "other-message:abc", NOW, NOW + 60_000)
        .await
        .unwrap();
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(
        r.batch_item_failures.is_empty(),
        "the lease owner's own message takes over if it crashes"
    );
    assert!(w.messenger.sent().is_empty());
    // The owner's message comes back after the lease and takes over.
    w.clock.advance(60_000);
    let r = handle_batch(&w.deps, job_event("other-message", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.messenger.sent().len(), 1);
    assert_eq!(w.state(&key).await.attempts, 2);
}

#[tokio::test]
async fn a_redelivery_waits_for_the_lease_of_its_own_crashed_attempt() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    // The first receive of m1 claimed, then crashed.
    w.store
        .claim_for_send(&key, "m1:crashed", NOW, NOW + 60_000)
        .await
        .unwrap();
    w.clock.advance(20_000);
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert_eq!(r.batch_item_failures.len(), 1);
    assert_eq!(
        w.retry.visibility(),
        vec![("MessageReceiptHandle".to_owned(), 41)],
        "back just after the lease"
    );
    assert!(w.messenger.sent().is_empty());
    w.clock.advance(41_000);
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

/// The log lines written on this thread while the guard lives (a `#[tokio::test]` runs the
/// handler on its own thread), in the text format.
fn capture(logs: &Captured) -> tracing::subscriber::DefaultGuard {
    let subscriber = shared::logging::subscriber(
        shared::logging::LogSettings::from_lookup(|_| None),
        logs.clone(),
    );
    tracing::subscriber::set_default(subscriber)
}

#[tokio::test]
async fn a_poison_records_error_line_names_its_sqs_message_id() {
    let w = world();
    let logs = Captured::default();
    let guard = capture(&logs);
    let mut batch = event("poison-7f3a", "not a job");
    let mut v2 = event("v2-9c1e", r#"{"version":2,"page_id":"p","login_id":"l"}"#);
    batch.records.append(&mut v2.records);
    let r = handle_batch(&w.deps, batch).await;
    drop(guard);
    assert_eq!(r.batch_item_failures.len(), 2);
    let poison = logs.lines_with("is not a send job");
    assert_eq!(poison.len(), 1, "{poison:?}");
    assert!(
        poison[0].contains("message_id=\"poison-7f3a\""),
        "{}",
        poison[0]
    );
    let unknown = logs.lines_with("unknown version");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].contains("message_id=\"v2-9c1e\""),
        "{}",
        unknown[0]
    );
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

fn event_with_receives(message_id: &str, key: &OptInKey, receives: u32) -> SqsEvent {
    let mut e = job_event(message_id, key);
    e.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), receives.to_string());
    e
}

#[tokio::test]
async fn transient_failures_back_off_through_visibility_then_hand_over_to_a_new_message() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    for _ in 0..3 {
        w.messenger.then_fail(api_error(500, 1200, Some(2_018_024)));
    }
    // Receive 1 and 2: the record itself is delayed and reported as failed.
    for (receive, (low, high)) in [(1u32, (3u32, 5u32)), (2, (5, 10))] {
        let r = handle_batch(&w.deps, event_with_receives("m1", &key, receive)).await;
        assert_eq!(r.batch_item_failures.len(), 1, "receive {receive}");
        let (handle, seconds) = w.retry.visibility().last().cloned().unwrap();
        assert_eq!(handle, "MessageReceiptHandle");
        assert!(
            (low..=high).contains(&seconds),
            "receive {receive}: {seconds} s"
        );
        w.clock.advance(i64::from(seconds) * 1000);
    }
    // Receive 3: the retry moves to a fresh delayed message; this one is acknowledged, so a
    // transient failure never uses up the receives that lead to the DLQ.
    let r = handle_batch(&w.deps, event_with_receives("m1", &key, 3)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.retry.visibility().len(), 2);
    let delayed = w.retry.take_delayed();
    assert_eq!(delayed.len(), 1);
    assert_eq!(delayed[0].0, SendJob::for_key(&key));
    assert!((10..=20).contains(&delayed[0].1), "{}", delayed[0].1);
    let item = w.state(&key).await;
    assert_eq!((item.state, item.attempts), (State::Retrying, 3));
    assert_eq!(item.last_error.as_ref().map(|e| e.code), Some(1200));
    // The new message (receive 1) sends.
    w.clock.advance(i64::from(delayed[0].1) * 1000);
    let r = handle_batch(&w.deps, event_with_receives("m2", &key, 1)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.state(&key).await.state, State::Sent);
    assert_eq!(w.messenger.sent().len(), 1);
}

#[tokio::test]
async fn unreadable_records_are_not_delayed() {
    let w = world();
    let r = handle_batch(&w.deps, event("bad", "{}")).await;
    assert_eq!(r.batch_item_failures.len(), 1);
    assert!(w.retry.visibility().is_empty(), "left for maxReceiveCount");
    assert!(w.retry.delayed().is_empty());
}

#[tokio::test]
async fn a_job_that_cannot_make_the_deadline_expires_with_an_alert_instead_of_waiting() {
    let w = world();
    // 24 h window, 30 s left; the Graph timeout (send margin) is 10 s.
    let key = w.opt_in("L1", NOW - 24 * HOUR_MS + 30_000).await;
    for _ in 0..10 {
        w.messenger.then_fail(GraphError::Timeout);
    }
    let mut attempts_at = Vec::new();
    loop {
        attempts_at.push(shared::ports::clock::Clock::now(w.clock.as_ref()));
        let r = handle_batch(&w.deps, job_event("m1", &key)).await;
        if r.batch_item_failures.is_empty() {
            break;
        }
        let (_, seconds) = w.retry.visibility().last().cloned().unwrap();
        w.clock.advance(i64::from(seconds) * 1000);
        assert!(attempts_at.len() < 10);
    }
    let item = w.state(&key).await;
    assert_eq!(item.state, State::Expired);
    assert!(
        item.terminal_at.unwrap() < item.deadline_at,
        "expired before the deadline"
    );
    assert_eq!(item.attempts as usize, attempts_at.len());
    assert!(attempts_at.iter().all(|t| *t + 10_000 < item.deadline_at));
    assert!(w.messenger.sent().is_empty());
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1);
    // Issue 10: the deadline has not passed yet, so the alert says the sender gave up.
    assert_eq!(alerts[0].kind, AlertKind::GaveUpBeforeDeadline);
    assert!(w.scheduler.get(&key).is_none());
}

#[tokio::test]
async fn a_claim_too_close_to_the_deadline_never_sends() {
    let w = world();
    let key = w.opt_in("L1", NOW - 24 * HOUR_MS + 9_000).await;
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(w.messenger.sent().is_empty());
    assert_eq!(w.state(&key).await.state, State::Expired);
    assert_eq!(
        w.alerts.published()[0].kind,
        AlertKind::GaveUpBeforeDeadline
    );
}

#[tokio::test]
async fn a_configuration_error_pauses_the_page_alerts_once_and_a_probe_resumes_it() {
    let w = world_with(&[(env::PAUSE_PROBE_SECONDS, "60")]);
    let k1 = w.opt_in("L1", NOW).await;
    let k2 = w.opt_in("L2", NOW).await;
    let k3 = w.opt_in("L3", NOW).await;
    w.messenger.then_fail(api_error(400, 190, Some(463)));
    let r = handle_batch(&w.deps, job_event("m1", &k1)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.state(&k1).await.state, State::Paused);
    let page = w.store.get_page(PAGE).await.unwrap().unwrap();
    assert!(page.is_paused());
    assert_eq!(
        page.reason.as_ref().map(|e| (e.code, e.subcode)),
        Some((190, Some(463)))
    );
    assert_eq!(page.probe_at, Some(NOW + 60_000));
    assert_eq!(w.alerts.published().len(), 1);
    assert_eq!(w.alerts.published()[0].kind, AlertKind::ConfigurationError);
    // The first probe is already on its way (a delayed job).
    let chain = w.retry.take_delayed();
    assert_eq!(chain, vec![(SendJob::for_key(&k1), 60)]);

    // While paused, jobs park their opt-ins without calling Graph, and nobody alerts again.
    for (id, key) in [("m2", &k2), ("m3", &k3)] {
        let r = handle_batch(&w.deps, job_event(id, key)).await;
        assert!(r.batch_item_failures.is_empty());
        assert_eq!(w.state(key).await.state, State::Paused);
    }
    assert!(w.messenger.sent().is_empty());
    assert_eq!(w.alerts.published().len(), 1);

    // The probe, still failing: the Page stays paused, no new alert, the next probe is queued.
    w.clock.advance(60_000);
    w.messenger.then_fail(api_error(400, 190, Some(463)));
    let r = handle_batch(&w.deps, job_event("probe-1", &k1)).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(w.store.get_page(PAGE).await.unwrap().unwrap().is_paused());
    assert_eq!(w.alerts.published().len(), 1);
    assert_eq!(w.retry.take_delayed(), vec![(SendJob::for_key(&k1), 60)]);
    assert_eq!(w.state(&k1).await.attempts, 2);

    // The operator fixed the token: the next probe is accepted, the Page resumes and the other
    // paused opt-ins are queued again and sent.
    w.clock.advance(60_000);
    let r = handle_batch(&w.deps, job_event("probe-2", &k1)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.state(&k1).await.state, State::Sent);
    let page = w.store.get_page(PAGE).await.unwrap().unwrap();
    assert!(!page.is_paused());
    assert_eq!(page.resumed_at, Some(NOW + 120_000));
    let mut requeued: Vec<String> = w.queue.jobs().into_iter().map(|j| j.login_id).collect();
    requeued.sort();
    requeued.dedup();
    assert_eq!(requeued, ["L2", "L3"]);
    for (i, job) in w.queue.jobs().iter().enumerate() {
        handle_batch(&w.deps, job_event(&format!("r{i}"), &job.key())).await;
    }
    for key in [&k1, &k2, &k3] {
        assert_eq!(w.state(key).await.state, State::Sent);
    }
    assert_eq!(w.messenger.sent().len(), 3);
    assert_eq!(w.alerts.published().len(), 1);
}

#[tokio::test]
async fn a_restricted_page_is_paused_and_jobs_before_the_probe_time_do_not_call_graph() {
    let w = world();
    let k1 = w.opt_in("L1", NOW).await;
    let k2 = w.opt_in("L2", NOW).await;
    w.messenger.then_fail(api_error(400, 10, Some(1_893_063)));
    handle_batch(&w.deps, job_event("m1", &k1)).await;
    let page = w.store.get_page(PAGE).await.unwrap().unwrap();
    assert_eq!(
        page.cause,
        Some(shared::domain::page::PauseCause::PageRestricted)
    );
    w.clock.advance(299_000);
    handle_batch(&w.deps, job_event("m2", &k2)).await;
    assert_eq!(w.state(&k2).await.state, State::Paused);
    // At the probe time, a new job is the probe itself.
    w.clock.advance(1_000);
    handle_batch(&w.deps, job_event("m2-again", &k2)).await;
    assert_eq!(w.state(&k2).await.state, State::Sent);
    assert!(!w.store.get_page(PAGE).await.unwrap().unwrap().is_paused());
    assert_eq!(w.queue.jobs().len(), 1, "k1 re-queued");
}

#[tokio::test]
async fn the_same_opt_in_ten_times_in_two_concurrent_instances_is_sent_once() {
    let a = world();
    let key = a.opt_in("L1", NOW).await;
    // A second instance over the same store.
    let b = Deps::from_ports(a.deps.config.clone(), &a.deps.ports);
    let batch = |prefix: &str| {
        let mut e = job_event(&format!("{prefix}0"), &key);
        for i in 1..5 {
            e.records
                .extend(job_event(&format!("{prefix}{i}"), &key).records);
        }
        e
    };
    let (ra, rb) = tokio::join!(
        handle_batch(&a.deps, batch("a")),
        handle_batch(&b, batch("b"))
    );
    assert!(ra.batch_item_failures.is_empty() && rb.batch_item_failures.is_empty());
    assert_eq!(a.messenger.sent().len(), 1);
    assert_eq!(a.state(&key).await.attempts, 1);
}

#[test]
fn the_queue_and_the_concurrency_match_the_template() {
    let template: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../../../template.yaml")).unwrap();
    let res = &template["Resources"];
    let redrive = &res["SendQueue"]["Properties"]["RedrivePolicy"];
    assert_eq!(
        redrive["maxReceiveCount"].as_u64(),
        Some(u64::from(sender::MAX_RECEIVE_COUNT))
    );
    let params = &template["Parameters"];
    let rate = params["SendRatePerSecond"]["Default"].as_u64().unwrap();
    let concurrency = params["SenderMaximumConcurrency"]["Default"]
        .as_u64()
        .unwrap();
    assert_eq!(rate, 300);
    // MaximumConcurrency = ⌈rate / what one instance sustains⌉ (docs/sender.md).
    assert_eq!(
        concurrency,
        rate.div_ceil(u64::from(sender::INSTANCE_SENDS_PER_SECOND))
    );
    let function = &res["SenderFunction"]["Properties"];
    let env = &function["Environment"]["Variables"];
    let is_ref = |v: &serde_yaml_ng::Value, name: &str| {
        serde_yaml_ng::to_string(v).unwrap().trim() == format!("!Ref {name}")
    };
    assert!(is_ref(&env[env::SEND_RATE_PER_SECOND], "SendRatePerSecond"));
    assert!(is_ref(
        &env[env::SENDER_MAX_CONCURRENCY],
        "SenderMaximumConcurrency"
    ));
    let scaling = &function["Events"]["SendQueueMessages"]["Properties"]["ScalingConfig"];
    assert!(is_ref(
        &scaling["MaximumConcurrency"],
        "SenderMaximumConcurrency"
    ));
    let batch = function["Events"]["SendQueueMessages"]["Properties"]["BatchSize"]
        .as_u64()
        .unwrap();
    let config = test_config(&[(env::SENDER_MAX_CONCURRENCY, "10")]);
    assert_eq!(config.send.per_instance_rate(), 30);
    assert!(
        batch <= config.send.max_in_flight as u64,
        "a batch goes out at once"
    );
}

#[tokio::test]
async fn a_probe_job_delivered_early_comes_back_when_the_probe_is_due() {
    let w = world_with(&[(env::PAUSE_PROBE_SECONDS, "60")]);
    let key = w.opt_in("L1", NOW).await;
    w.messenger.then_fail(api_error(400, 230, None));
    handle_batch(&w.deps, job_event("m1", &key)).await;
    assert_eq!(w.state(&key).await.state, State::Paused);
    // The probe job arrives 2 s early (clocks differ): it waits for the probe time, not dropped.
    w.clock.advance(58_000);
    let r = handle_batch(&w.deps, job_event("probe", &key)).await;
    assert_eq!(r.batch_item_failures.len(), 1);
    assert_eq!(w.retry.visibility().last().map(|v| v.1), Some(3));
    assert!(w.messenger.sent().is_empty());
    w.clock.advance(3_000);
    let r = handle_batch(&w.deps, job_event("probe", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.state(&key).await.state, State::Sent);
    assert!(!w.store.get_page(PAGE).await.unwrap().unwrap().is_paused());
}

/// `n` jobs of one opt-in in one batch, with message ids `{prefix}0`, `{prefix}1`, …
fn batch_of(prefix: &str, key: &OptInKey, n: usize) -> SqsEvent {
    let mut e = job_event(&format!("{prefix}0"), key);
    for i in 1..n {
        e.records
            .extend(job_event(&format!("{prefix}{i}"), key).records);
    }
    e
}

/// Promise 5 (the model's seed 4ef262b2…): an opt-in webhook delivered six times queues six jobs
/// (by design); Graph answers 190 and the Page pauses. Every duplicate job of the parked opt-in
/// used to come back at each probe time: N deliveries per probe interval, until the deadline.
/// Now only the probe chain's one job comes back.
#[tokio::test]
async fn duplicate_jobs_of_a_parked_opt_in_die_out() {
    let w = world_with(&[(env::PAUSE_PROBE_SECONDS, "60")]);
    let key = w.opt_in("L1", NOW).await;
    w.messenger.then_fail(api_error(400, 190, None));
    let r = handle_batch(&w.deps, job_event("m0", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(w.store.get_page(PAGE).await.unwrap().unwrap().is_paused());
    assert_eq!(w.state(&key).await.state, State::Paused);
    assert_eq!(w.retry.take_delayed().len(), 1, "the probe chain's job");
    // Five duplicates arrive while the Page is paused, its probe a minute off.
    w.clock.advance(1_000);
    let r = handle_batch(&w.deps, batch_of("dup", &key, 5)).await;
    let back = r.batch_item_failures.len() + w.retry.take_delayed().len();
    assert_eq!(back, 0, "the duplicates are acknowledged");
    // Probe after probe (Graph still refusing), one job comes back, the chain's.
    let mut pending = 1;
    for round in 1..=3 {
        w.clock.advance(60_000);
        w.messenger.then_fail(api_error(400, 190, None));
        let r = handle_batch(&w.deps, batch_of(&format!("r{round}-"), &key, pending)).await;
        pending = r.batch_item_failures.len() + w.retry.take_delayed().len();
        assert_eq!(
            pending, 1,
            "round {round}: one job per Page keeps coming back"
        );
        assert_eq!(
            w.state(&key).await.attempts,
            1 + round,
            "one probe per interval"
        );
    }
    // Even a batch of duplicates at the probe time: one probes, the rest are acknowledged.
    w.clock.advance(60_000);
    w.messenger.then_fail(api_error(400, 190, None));
    let r = handle_batch(&w.deps, batch_of("late", &key, 4)).await;
    let back = r.batch_item_failures.len() + w.retry.take_delayed().len();
    assert_eq!(back, 1);
    assert_eq!(w.state(&key).await.attempts, 5);
    assert!(w.messenger.sent().is_empty());
    assert_eq!(w.alerts.published().len(), 1, "one alert for the pause");
}

// ------------------------------------------------------------------------------------------------
// The SENDING window, the margins, in-flight sends at an opt-out (issue 10)
// ------------------------------------------------------------------------------------------------

use shared::adapters::memory::logins::MemoryLoginStore;
use shared::config::env;
use shared::domain::login::{LoginLink, LoginRecorded, LoginState, StateConsumed};
use shared::ports::clock::Clock;
use shared::ports::error::PortResult;
use shared::ports::logins::LoginStore;
use shared::ports::messenger::{Messenger, SentMessage};
use std::sync::Mutex;

/// What the Send API saw at the moment of a send.
#[derive(Debug, Clone)]
struct AtSend {
    now: i64,
    item: OptIn,
}

/// A Messenger that looks at the opt-in when the request starts, and can record an opt-out just
/// before Graph accepts (the person opts out while the message is in flight).
struct Spy {
    inner: Arc<MemoryMessenger>,
    store: Arc<MemoryOptInStore>,
    clock: Arc<dyn Clock>,
    opt_out_while_sending: bool,
    erase_while_sending: bool,
    seen: Mutex<Vec<AtSend>>,
}

impl Spy {
    fn new(w: &World) -> Self {
        Self {
            inner: w.messenger.clone(),
            store: w.store.clone(),
            clock: w.deps.ports.clock.clone(),
            opt_out_while_sending: false,
            erase_while_sending: false,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn seen(&self) -> Vec<AtSend> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Messenger for Spy {
    async fn send_initial_message(
        &self,
        page_id: &str,
        login_id: &str,
        text: &str,
    ) -> Result<SentMessage, GraphError> {
        let key = OptInKey::new(page_id, login_id);
        let item = self.store.get_opt_in(&key).await.unwrap().unwrap();
        self.seen.lock().unwrap().push(AtSend {
            now: self.clock.now(),
            item,
        });
        if self.opt_out_while_sending {
            let out = self.store.opt_out(&key, "api", self.clock.now()).await;
            assert!(out.unwrap().is_done(), "the opt-out meets a SENDING item");
        }
        if self.erase_while_sending {
            self.store.remove(&key);
        }
        self.inner
            .send_initial_message(page_id, login_id, text)
            .await
    }
}

/// A LOGIN store whose read for `{first_name}` is slow (it moves the clock), and which records
/// the opt-in's state at the read.
struct SlowLogins {
    inner: MemoryLoginStore,
    store: Arc<MemoryOptInStore>,
    clock: Arc<ManualClock>,
    read_takes_ms: i64,
    states_at_read: Mutex<Vec<State>>,
}

impl SlowLogins {
    fn new(w: &World, read_takes_ms: i64) -> Self {
        Self {
            inner: MemoryLoginStore::new(),
            store: w.store.clone(),
            clock: w.clock.clone(),
            read_takes_ms,
            states_at_read: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait::async_trait]
impl LoginStore for SlowLogins {
    async fn record_login(
        &self,
        login: &shared::domain::login::Login,
    ) -> PortResult<LoginRecorded> {
        self.inner.record_login(login).await
    }

    async fn get_login(
        &self,
        page_id: &str,
        asid: &str,
    ) -> PortResult<Option<shared::domain::login::Login>> {
        self.inner.get_login(page_id, asid).await
    }

    async fn link_for(&self, key: &OptInKey) -> PortResult<Option<LoginLink>> {
        let state = self.store.get_opt_in(key).await?.map(|o| o.state);
        self.states_at_read.lock().unwrap().extend(state);
        self.clock.advance(self.read_takes_ms);
        Ok(Some(LoginLink {
            asid: "asid".into(),
            first_name: Some("Ana".into()),
            last_login_at: NOW,
        }))
    }

    async fn put_state(&self, state: &LoginState) -> PortResult<()> {
        self.inner.put_state(state).await
    }

    async fn consume_state(&self, state_hash: &str, now: i64) -> PortResult<StateConsumed> {
        self.inner.consume_state(state_hash, now).await
    }

    async fn waiting_for_opt_in(
        &self,
        granted_by: i64,
        limit: usize,
    ) -> PortResult<Vec<shared::domain::login::Login>> {
        self.inner.waiting_for_opt_in(granted_by, limit).await
    }

    async fn stop_waiting_for_opt_in(
        &self,
        page_id: &str,
        asid: &str,
        alerted_at: Option<i64>,
    ) -> PortResult<bool> {
        self.inner
            .stop_waiting_for_opt_in(page_id, asid, alerted_at)
            .await
    }
}

const FIRST_NAME_TEXT: (&str, &str) = (env::INITIAL_MESSAGE_TEXT, "Hello {first_name}");

#[tokio::test]
async fn an_opt_out_during_an_in_flight_send_is_recorded_with_its_message_id() {
    let mut w = world();
    let key = w.opt_in("L1", NOW - 5_000).await;
    let mut spy = Spy::new(&w);
    spy.opt_out_while_sending = true;
    w.deps.ports.messenger = Arc::new(spy);
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.messenger.sent().len(), 1, "Graph accepted the message");
    let item = w.state(&key).await;
    assert_eq!(item.state, State::OptedOut, "the opt-out stands");
    assert_eq!(
        (
            item.message_id.as_deref(),
            item.sent_at,
            item.sent_after_opt_out
        ),
        (Some("m_memory_0"), Some(NOW), true),
        "the message that landed is recorded, not hidden"
    );
    assert_eq!(item.opted_out_at, Some(NOW));
    assert_eq!(w.metrics.sum(Metric::SentAfterOptOut), 1.0);
    assert_eq!(w.metrics.sum(Metric::InitialMessagesSent), 0.0);
    // A redelivery of the job sends nothing more.
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.messenger.sent().len(), 1);
}

#[tokio::test]
async fn an_erasure_during_an_in_flight_send_is_counted_and_nothing_is_recreated() {
    let mut w = world();
    let key = w.opt_in("L1", NOW).await;
    let mut spy = Spy::new(&w);
    spy.erase_while_sending = true;
    w.deps.ports.messenger = Arc::new(spy);
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.messenger.sent().len(), 1);
    assert!(w.store.get_opt_in(&key).await.unwrap().is_none());
    assert_eq!(w.metrics.sum(Metric::SentAfterOptOut), 1.0);
}

#[tokio::test]
async fn the_opt_in_is_claimed_only_after_the_text_is_rendered() {
    let mut w = world_with(&[FIRST_NAME_TEXT]);
    let key = w.opt_in("L1", NOW).await;
    let logins = Arc::new(SlowLogins::new(&w, 0));
    w.deps.ports.logins = logins.clone();
    handle_batch(&w.deps, job_event("m1", &key)).await;
    // The render's read comes before the claim; the event's (issue 12) after SENT.
    let states = logins.states_at_read.lock().unwrap().clone();
    assert_eq!(
        states.first(),
        Some(&State::OptedIn),
        "rendered before the claim"
    );
    assert!(
        !states.contains(&State::Sending),
        "not SENDING during a LOGIN read: {states:?}"
    );
    assert_eq!(w.messenger.sent()[0].2, "Hello Ana");
    assert_eq!(w.state(&key).await.state, State::Sent);
}

#[tokio::test]
async fn a_slow_first_name_read_never_eats_the_lease_margin() {
    // The lease is 60 s, the margin one Graph timeout (10 s); the LOGIN read takes 55 s.
    let mut w = world_with(&[FIRST_NAME_TEXT]);
    let key = w.opt_in("L1", NOW).await;
    w.deps.ports.logins = Arc::new(SlowLogins::new(&w, 55_000));
    let spy = Arc::new(Spy::new(&w));
    w.deps.ports.messenger = spy.clone();
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    let margin = w.deps.send_margin_ms();
    for at in spy.seen() {
        let lease_left = at.item.lease_until.unwrap() - at.now;
        assert!(
            lease_left > margin,
            "a send started with {lease_left} ms of lease left (margin {margin} ms)"
        );
    }
    assert_eq!(spy.seen().len(), 1);
    assert_eq!(w.state(&key).await.state, State::Sent);
}

#[tokio::test]
async fn a_slow_first_name_read_never_sends_inside_the_deadline_margin() {
    // 30 s before the deadline; the LOGIN read takes 25 s: only 5 s would be left, less than one
    // Graph timeout (10 s).
    let mut w = world_with(&[FIRST_NAME_TEXT]);
    let key = w.opt_in("L1", NOW - 24 * HOUR_MS + 30_000).await;
    w.deps.ports.logins = Arc::new(SlowLogins::new(&w, 25_000));
    let spy = Arc::new(Spy::new(&w));
    w.deps.ports.messenger = spy.clone();
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    let margin = w.deps.send_margin_ms();
    for at in spy.seen() {
        let left = at.item.deadline_at - at.now;
        assert!(
            left > margin,
            "a send started {left} ms before the deadline (margin {margin} ms)"
        );
    }
    assert!(w.messenger.sent().is_empty());
    assert_eq!(w.state(&key).await.state, State::Expired);
    assert_eq!(
        w.alerts.published()[0].kind,
        AlertKind::GaveUpBeforeDeadline
    );
}

/// Epoch milliseconds that follow tokio's (paused) clock, so that pacing moves it.
struct TokioClock {
    base: i64,
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> i64 {
        self.base + self.start.elapsed().as_millis() as i64
    }
}

#[tokio::test(start_paused = true)]
async fn the_claim_is_taken_after_pacing_so_the_whole_lease_is_left_at_the_send() {
    // One send per second for the Page: a job right after another call waits about a second.
    let mut w = world_with(&[(env::SEND_RATE_PER_SECOND, "1")]);
    let clock: Arc<dyn Clock> = Arc::new(TokioClock {
        base: NOW,
        start: tokio::time::Instant::now(),
    });
    w.deps.ports.clock = clock.clone();
    let key = w.opt_in("L1", NOW).await;
    let spy = Arc::new(Spy::new(&w));
    w.deps.ports.messenger = spy.clone();
    w.deps.pacer.acquire(PAGE).await;
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    let seen = spy.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].now - NOW >= 1_000, "the job was paced");
    assert_eq!(
        seen[0].item.lease_until.unwrap() - seen[0].now,
        w.deps.config.send_lease_ms,
        "claimed after pacing: no lease spent waiting"
    );
    assert_eq!(w.state(&key).await.state, State::Sent);
}

#[tokio::test]
async fn a_parked_job_whose_probe_time_is_i64_max_is_acknowledged_never_retried_every_second() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    let reason = shared::domain::opt_in::LastError {
        code: 190,
        ..Default::default()
    };
    w.store
        .pause_page(
            PAGE,
            shared::domain::page::PauseCause::Configuration,
            &reason,
            NOW,
            i64::MAX,
        )
        .await
        .unwrap();
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty(), "parked");
    assert_eq!(w.state(&key).await.state, State::Paused);
    // A duplicate job for the parked opt-in: the probe is far off, so it is acknowledged (the
    // resume re-queues the opt-in), never retried every second. (It used to come back at SQS's
    // longest delay; duplicates no longer come back at all.)
    let r = handle_batch(&w.deps, job_event("m2", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(w.retry.visibility().is_empty());
    assert!(w.retry.delayed().is_empty());
    assert!(w.messenger.sent().is_empty());
}

#[tokio::test]
async fn a_redelivery_of_a_lease_that_never_ends_waits_the_longest_visibility_never_one_second() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    // An earlier receive of m1 holds a lease that ends at i64::MAX.
    w.store
        .claim_for_send(&key, "m1:crashed", NOW, i64::MAX)
        .await
        .unwrap();
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert_eq!(r.batch_item_failures.len(), 1);
    assert_eq!(
        w.retry.visibility(),
        vec![(
            "MessageReceiptHandle".to_owned(),
            shared::ports::queue::MAX_VISIBILITY_SECONDS
        )]
    );
}

#[tokio::test]
async fn the_alert_of_a_sender_giving_up_says_it_gave_up_before_the_deadline() {
    let w = world();
    // 20 s left, the Graph timeout (margin) is 10 s: one attempt, then no retry can land.
    let key = w.opt_in("L1", NOW - 24 * HOUR_MS + 20_000).await;
    for _ in 0..10 {
        w.messenger.then_fail(api_error(500, 1200, Some(2_018_024)));
    }
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 5);
        let r = handle_batch(&w.deps, job_event("m1", &key)).await;
        if r.batch_item_failures.is_empty() {
            break;
        }
        let (_, seconds) = w.retry.visibility().last().cloned().unwrap();
        w.clock.advance(i64::from(seconds) * 1000);
    }
    let item = w.state(&key).await;
    assert_eq!(item.state, State::Expired);
    let gave_up_at = item.terminal_at.unwrap();
    assert!(gave_up_at < item.deadline_at, "the deadline has not passed");
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.kind, AlertKind::GaveUpBeforeDeadline, "not 'missed'");
    assert_eq!(a.gave_up_at, Some(gave_up_at));
    assert_eq!(a.gave_up_utc, shared::domain::opt_in::utc(gave_up_at));
    assert_eq!(a.deadline_at, Some(item.deadline_at));
    assert_eq!(
        a.last_error.as_ref().map(|e| (e.code, e.subcode)),
        Some((1200, Some(2_018_024)))
    );
    assert!(a.detail.contains(&a.gave_up_utc), "{}", a.detail);
    assert!(
        a.detail
            .contains(&shared::domain::opt_in::utc(item.deadline_at)),
        "{}",
        a.detail
    );
    assert_eq!(
        a.deadline_utc,
        Some(shared::domain::opt_in::utc(item.deadline_at))
    );
    assert!(a.detail.contains("1200/2018024"), "{}", a.detail);
    assert!(!a.detail.contains("L1") && !a.subject().contains("missed"));
    let json = serde_json::to_value(a).unwrap();
    assert_eq!(json["kind"], "gave_up_before_deadline");
    // Counted as a missed deadline (it will be missed: the opt-in is EXPIRED).
    assert_eq!(w.metrics.sum(Metric::DeadlinesMissed), 1.0);
}
/// Meta's `block`, as the policy webhook records it (the shared use case it calls).
async fn meta_blocks(w: &World) {
    page_ports(w).block(PAGE, "spam").await.unwrap();
}

/// Meta's `unblock`, as the policy webhook handles it.
async fn meta_unblocks(w: &World) {
    page_ports(w).unblock(PAGE).await.unwrap();
}

fn page_ports(w: &World) -> shared::use_cases::page::PagePorts<'_> {
    shared::use_cases::page::PagePorts {
        pages: w.deps.ports.pages.as_ref(),
        queue: w.deps.ports.queue.as_ref(),
        alerts: w.deps.ports.alerts.as_ref(),
        clock: w.deps.ports.clock.as_ref(),
        margin_ms: shared::use_cases::page::requeue_margin_ms(&w.deps.config),
    }
}

#[tokio::test]
async fn meta_block_on_a_page_paused_for_configuration_stops_the_probe_until_unblock() {
    let w = world_with(&[(env::PAUSE_PROBE_SECONDS, "60")]);
    let k1 = w.opt_in("L1", NOW).await;
    let k2 = w.opt_in("L2", NOW).await;
    w.messenger.then_fail(api_error(400, 190, Some(463)));
    handle_batch(&w.deps, job_event("m1", &k1)).await;
    let page = w.store.get_page(PAGE).await.unwrap().unwrap();
    assert_eq!(
        page.cause,
        Some(shared::domain::page::PauseCause::Configuration)
    );
    assert_eq!(w.retry.take_delayed(), vec![(SendJob::for_key(&k1), 60)]);

    // Meta blocks the Page during the configuration pause.
    meta_blocks(&w).await;
    // The probe time passes: the probe job and a new job arrive. Nothing is sent, both are
    // acknowledged, and no further probe is scheduled.
    w.clock.advance(120_000);
    for (id, key) in [("probe", &k1), ("m2", &k2), ("m2-duplicate", &k2)] {
        let r = handle_batch(&w.deps, job_event(id, key)).await;
        assert!(r.batch_item_failures.is_empty(), "{id} acknowledged");
    }
    assert!(
        w.messenger.sent().is_empty(),
        "no message to a blocked Page"
    );
    assert!(w.retry.visibility().is_empty());
    assert!(w.retry.take_delayed().is_empty(), "no probe while blocked");
    let page = w.store.get_page(PAGE).await.unwrap().unwrap();
    assert!(page.is_blocked(), "still blocked: {page:?}");
    for key in [&k1, &k2] {
        assert_eq!(w.state(key).await.state, State::Paused);
    }

    // Meta unblocks: the paused opt-ins are queued again and sent.
    meta_unblocks(&w).await;
    let mut queued: Vec<String> = w.queue.jobs().into_iter().map(|j| j.login_id).collect();
    queued.sort();
    assert_eq!(queued, ["L1", "L2"]);
    for (i, job) in w.queue.jobs().iter().enumerate() {
        let r = handle_batch(&w.deps, job_event(&format!("r{i}"), &job.key())).await;
        assert!(r.batch_item_failures.is_empty());
    }
    for key in [&k1, &k2] {
        assert_eq!(w.state(key).await.state, State::Sent);
    }
    assert_eq!(w.messenger.sent().len(), 2);
}

#[tokio::test]
async fn a_job_for_a_blocked_page_is_acknowledged_not_received_every_second() {
    let w = world();
    let key = w.opt_in("L1", NOW).await;
    meta_blocks(&w).await;
    let r = handle_batch(&w.deps, job_event("m1", &key)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.state(&key).await.state, State::Paused);
    // A duplicate job for the parked opt-in, on its first receives and after the hand-over.
    for receives in [1, sender::HANDOVER_FROM_RECEIVE] {
        let r = handle_batch(&w.deps, event_with_receives("dup", &key, receives)).await;
        assert!(r.batch_item_failures.is_empty(), "receive {receives}");
    }
    assert!(
        w.retry.visibility().is_empty(),
        "{:?}",
        w.retry.visibility()
    );
    assert!(w.retry.delayed().is_empty(), "{:?}", w.retry.delayed());
    assert!(w.messenger.sent().is_empty());
}
