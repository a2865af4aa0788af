//! The deadline rules of issue 5 against moto: the per-opt-in schedule, the alert, the sweep and the
//! metrics, with the three functions on the real AWS adapters and a clock the test moves.

use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode};
use integration_tests::worlds::moto::{PAGE, World, world};
use shared::adapters::scheduler::EventBridgeDeadlineScheduler;
use shared::adapters::sqs::SqsSendQueue;
use shared::domain::alert::AlertKind;
use shared::domain::attention::STUCK_AFTER_MS;
use shared::domain::metrics::Metric;
use shared::domain::opt_in::{HOUR_MS, Millis, State};
use shared::facebook::graph_error::GraphError;
use std::sync::Arc;

/// Now, to the second (schedules are created in the future, as in production).
fn t0() -> Millis {
    chrono::Utc::now().timestamp_millis() / 1000 * 1000
}

fn at_expression(at: Millis) -> String {
    let rounded_up = chrono::DateTime::from_timestamp_millis(at + 999).unwrap();
    format!("at({})", rounded_up.format("%Y-%m-%dT%H:%M:%S"))
}

async fn kinds(w: &World) -> Vec<AlertKind> {
    w.published_alerts()
        .await
        .into_iter()
        .map(|a| a.alert.expect("one of our alerts").kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_schedule_is_created_as_specified_and_deleted_once_sent() {
    let t0 = t0();
    let w = world(t0, &[]).await;
    assert_eq!(w.webhook("sched-login-0001", t0 - 2_000).await, 200);
    let item = w.item("sched-login-0001").await;
    assert_eq!(item.state, State::OptedIn);
    assert_eq!(item.deadline_at, t0 - 2_000 + 24 * HOUR_MS);
    assert_eq!(item.alert_at, item.deadline_at - 2 * HOUR_MS);

    let s = w
        .schedule("sched-login-0001")
        .await
        .expect("schedule created");
    assert_eq!(
        s.schedule_expression(),
        Some(at_expression(item.alert_at).as_str())
    );
    assert_eq!(s.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(s.group_name(), Some(w.p.schedule_group.as_str()));
    assert_eq!(
        s.flexible_time_window().map(|f| f.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    assert_eq!(
        s.action_after_completion(),
        Some(&ActionAfterCompletion::Delete)
    );
    let target = s.target().expect("target");
    assert_eq!(target.arn(), w.config.deadline_function_arn);
    assert_eq!(target.role_arn(), w.config.scheduler_role_arn);
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some(w.p.scheduler_dlq_arn.as_str())
    );
    let retry = target.retry_policy().expect("retry policy");
    assert_eq!(
        (
            retry.maximum_retry_attempts(),
            retry.maximum_event_age_in_seconds()
        ),
        (Some(3), Some(3600))
    );
    let input: serde_json::Value = serde_json::from_str(target.input().unwrap()).unwrap();
    assert_eq!(
        input,
        serde_json::json!({
            "kind": "deadline_check",
            "version": 1,
            "page_id": PAGE,
            "login_id": "sched-login-0001",
            "deadline_at": item.deadline_at,
        })
    );

    w.clock.advance(1_000);
    assert_eq!(w.deliver_send_jobs().await, 1);
    let sent = w.item("sched-login-0001").await;
    assert_eq!((sent.state, sent.sent_at), (State::Sent, Some(t0 + 1_000)));
    assert!(
        w.schedule("sched-login-0001").await.is_none(),
        "deleted after SENT"
    );
    assert_eq!(w.metrics.sum(Metric::InitialMessagesSent), 1.0);
    assert_eq!(w.metrics.values(Metric::OptInToSendSeconds), [3.0]);
    assert!(w.published_alerts().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_keeps_failing_alerts_once_before_the_deadline_and_ends_expired() {
    let t0 = t0();
    let w = world(t0, &[]).await;
    for _ in 0..20 {
        w.messenger.then_fail(GraphError::Timeout);
    }
    let login = "failing-login-0001";
    let key = w.key(login);
    assert_eq!(w.webhook(login, t0).await, 200);
    assert_eq!(w.deliver_send_jobs().await, 1);
    let item = w.item(login).await;
    assert_eq!(item.state, State::Retrying);
    assert_eq!(item.last_error.as_ref().unwrap().message, "timeout");

    // Before the alert time: nothing fires, the sweep alerts nobody.
    w.clock.set(item.alert_at - 1);
    assert_eq!(w.fire_schedules().await, 0);
    assert_eq!(w.sweep().await.alerted, 0);
    // SQS redelivers; the send fails again.
    assert!(matches!(
        run_job(&w, &key).await,
        sender::RecordOutcome::RetryIn(_)
    ));

    // At the alert time the opt-in's schedule fires: one alert.
    w.clock.set(item.alert_at);
    assert_eq!(w.fire_schedules().await, 1);
    assert_eq!(w.item(login).await.alerted_at, Some(item.alert_at));
    assert!(
        w.schedule(login).await.is_none(),
        "one-time: deleted after firing"
    );
    let at_risk = w.published_alerts().await;
    assert_eq!(at_risk.len(), 1);
    let alert = at_risk[0].alert.clone().unwrap();
    assert_eq!(alert.kind, AlertKind::DeadlineAtRisk);
    assert_eq!(alert.page_id, PAGE);
    assert_eq!(alert.login_id_prefix.as_deref(), Some("failing-"));
    assert_eq!(alert.state, Some(State::Retrying));
    assert_eq!(alert.deadline_at, Some(item.deadline_at));
    assert_eq!(
        alert.deadline_utc,
        Some(shared::domain::opt_in::utc(item.deadline_at))
    );
    assert_eq!(alert.last_error.unwrap().message, "timeout");
    assert!(at_risk[0].subject.contains(PAGE));
    assert!(!at_risk[0].message.contains(login), "login_id prefix only");

    // The sweeps and the schedule's retry that follow do not alert again.
    w.clock.set(item.alert_at + 15 * 60_000);
    assert_eq!(w.sweep().await.alerted, 0);
    assert_eq!(
        deadline_alerts::handle(
            &w.alerts,
            serde_json::to_value(shared::domain::jobs::AlertInput::DeadlineCheck(
                shared::domain::jobs::DeadlineCheck::for_opt_in(&item)
            ))
            .unwrap()
        )
        .await
        .unwrap()
        .alerted,
        0
    );
    // Too close to the deadline for another attempt to land: the sender gives up at once
    // (EXPIRED, a "gave up before the deadline" alert — the deadline has not passed yet, issue 10 —
    // and the missed-deadline metric) rather than waiting for the deadline.
    w.clock.set(item.deadline_at - 1);
    assert_eq!(run_job(&w, &key).await, sender::RecordOutcome::Done);
    let expired = w.item(login).await;
    assert_eq!(
        (expired.state, expired.terminal_at),
        (State::Expired, Some(item.deadline_at - 1))
    );
    assert_eq!(kinds(&w).await, [AlertKind::GaveUpBeforeDeadline]);
    assert_eq!(w.metrics.sum(Metric::DeadlinesMissed), 1.0);
    assert_eq!(w.metrics.sum(Metric::OptInsAtRisk), 1.0);
    assert_eq!(w.metrics.sum(Metric::InitialMessagesSent), 0.0);

    // Past the deadline: the sweep finds nothing left to do, and nothing is counted twice.
    w.clock.set(item.deadline_at + 60_000);
    assert_eq!(w.sweep().await, deadline_alerts::Summary::default());
    assert_eq!(run_job(&w, &key).await, sender::RecordOutcome::Done);
    assert!(w.messenger.sent().is_empty());
    assert_eq!(w.metrics.sum(Metric::DeadlinesMissed), 1.0);
}

/// One send job for `key`, as the sender handles it inside a batch.
async fn run_job(
    w: &integration_tests::worlds::moto::World,
    key: &shared::domain::opt_in::OptInKey,
) -> sender::RecordOutcome {
    let views = sender::PageViews::load(&w.sender, vec![key.page_id.clone()]).await;
    sender::process_job(
        &w.sender,
        &views,
        &shared::domain::jobs::SendJob::for_key(key),
        "deadline-test-job",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_webhook_alerts_at_once_instead_of_scheduling_in_the_past() {
    let t0 = t0();
    let w = world(t0, &[]).await;
    let login = "late-login-00000001";
    // Opted in 23 h ago: the alert time (deadline − 2 h) passed an hour ago.
    assert_eq!(w.webhook(login, t0 - 23 * HOUR_MS).await, 200);
    let item = w.item(login).await;
    assert_eq!(item.alerted_at, Some(t0));
    assert!(w.schedule(login).await.is_none(), "no schedule in the past");
    let alerts = w.published_alerts().await;
    assert_eq!(alerts.len(), 1);
    let alert = alerts[0].alert.clone().unwrap();
    assert_eq!(
        (alert.kind, alert.state),
        (AlertKind::DeadlineAtRisk, Some(State::OptedIn))
    );
    assert_eq!(w.metrics.sum(Metric::OptInsAtRisk), 1.0);
    // Neither the sweep nor a redelivered webhook alerts again; the message still goes out.
    assert_eq!(w.sweep().await.alerted, 0);
    assert_eq!(w.webhook(login, t0 - 23 * HOUR_MS).await, 200);
    assert!(w.deliver_send_jobs().await >= 1);
    while w.deliver_send_jobs().await > 0 {}
    assert_eq!(w.item(login).await.state, State::Sent);
    assert!(w.published_alerts().await.is_empty());
    assert_eq!(w.metrics.sum(Metric::OptInsAtRisk), 1.0);
    assert_eq!(w.metrics.sum(Metric::InitialMessagesSent), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_in_whose_schedule_could_not_be_created_is_alerted_by_the_sweep() {
    let t0 = t0();
    let mut w = world(t0, &[]).await;
    w.http.ports.scheduler = Arc::new(EventBridgeDeadlineScheduler::new(
        aws_sdk_scheduler::Client::new(&w.sdk),
        "no-such-group",
        w.config.deadline_function_arn.clone(),
        w.config.scheduler_role_arn.clone(),
        None,
    ));
    for _ in 0..5 {
        w.messenger.then_fail(GraphError::Timeout);
    }
    let login = "nosched-login-00001";
    assert_eq!(
        w.webhook(login, t0).await,
        200,
        "the opt-in is still recorded"
    );
    assert!(w.schedule(login).await.is_none());
    assert_eq!(w.deliver_send_jobs().await, 1);
    let item = w.item(login).await;
    assert_eq!(item.state, State::Retrying);

    w.clock.set(item.alert_at);
    assert_eq!(w.fire_schedules().await, 0, "there is no schedule to fire");
    let s = w.sweep().await;
    assert_eq!(s.alerted, 1);
    assert_eq!(kinds(&w).await, [AlertKind::DeadlineAtRisk]);
    assert_eq!(w.sweep().await.alerted, 0);
    assert_eq!(w.metrics.sum(Metric::OptInsAtRisk), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_in_whose_send_job_was_lost_is_re_enqueued_by_the_sweep_and_sent() {
    let t0 = t0();
    let mut w = world(t0, &[]).await;
    w.http.ports.queue = Arc::new(SqsSendQueue::new(
        aws_sdk_sqs::Client::new(&w.sdk),
        format!("{}-lost", w.p.send_queue_url),
    ));
    let login = "lost-login-00000001";
    assert_eq!(w.webhook(login, t0).await, 200);
    assert_eq!(w.item(login).await.state, State::OptedIn);
    assert!(w.schedule(login).await.is_some());
    assert_eq!(w.deliver_send_jobs().await, 0, "the job never reached SQS");

    w.clock.set(t0 + STUCK_AFTER_MS - 1);
    assert_eq!(w.sweep().await.requeued, 0, "not stuck yet");
    w.clock.set(t0 + STUCK_AFTER_MS);
    assert_eq!(w.sweep().await.requeued, 1);
    assert_eq!(w.deliver_send_jobs().await, 1);
    let sent = w.item(login).await;
    assert_eq!(
        (sent.state, sent.sent_at),
        (State::Sent, Some(t0 + STUCK_AFTER_MS))
    );
    assert!(w.schedule(login).await.is_none(), "deleted after SENT");
    assert_eq!(w.messenger.sent().len(), 1);
    assert_eq!(w.metrics.values(Metric::OptInToSendSeconds), [180.0]);
    assert!(w.published_alerts().await.is_empty());
    assert_eq!(w.sweep().await, deadline_alerts::Summary::default());
}
