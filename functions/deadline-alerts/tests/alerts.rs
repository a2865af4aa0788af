//! deadline-alerts with the schedule Inputs it receives, over in-memory ports.

use deadline_alerts::{Deps, STUCK_AFTER_MS, Summary, handle};
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::memory::config::test_config;
use shared::adapters::memory::erasure::MemoryErasure;
use shared::adapters::memory::logins::{MemoryFacebookLogin, MemoryLoginStore};
use shared::adapters::memory::messenger::MemoryMessenger;
use shared::adapters::memory::metrics::MemoryMetrics;
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::adapters::memory::queue::MemoryRetryQueue;
use shared::adapters::memory::queue::MemorySendQueue;
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::domain::alert::AlertKind;
use shared::domain::attention::first_attention;
use shared::domain::jobs::DeadlineCheck;
use shared::domain::metrics::Metric;
use shared::domain::opt_in::{HOUR_MS, OptIn, OptInKey, State};
use shared::ports::bundle::Ports;
use shared::ports::opt_ins::OptInStore;
use shared::ports::scheduler::DeadlineScheduler;
use shared::use_cases::opt_in::{OptInRecorded, Origin};
use std::sync::Arc;

const T0: i64 = 1_795_536_000_000;
const PAGE: &str = "200000000000002";

struct World {
    deps: Deps,
    store: Arc<MemoryOptInStore>,
    queue: Arc<MemorySendQueue>,
    scheduler: Arc<MemoryScheduler>,
    alerts: Arc<MemoryAlerts>,
    clock: Arc<ManualClock>,
    metrics: Arc<MemoryMetrics>,
    logins: Arc<MemoryLoginStore>,
}

fn world() -> World {
    let store = Arc::new(MemoryOptInStore::new());
    let queue = Arc::new(MemorySendQueue::default());
    let scheduler = Arc::new(MemoryScheduler::default());
    let alerts = Arc::new(MemoryAlerts::default());
    let clock = Arc::new(ManualClock::at(T0));
    let metrics = Arc::new(MemoryMetrics::default());
    let logins = Arc::new(MemoryLoginStore::new());
    let ports = Ports {
        opt_ins: store.clone(),
        conversations: store.clone(),
        pages: store.clone(),
        erasure: Arc::new(MemoryErasure::new(store.clone(), logins.clone())),
        logins: logins.clone(),
        queue: queue.clone(),
        retry: Arc::new(MemoryRetryQueue::default()),
        scheduler: scheduler.clone(),
        events: Arc::new(shared::adapters::memory::events::MemoryEvents::default()),
        follow_ups: Arc::new(shared::adapters::memory::follow_ups::MemoryFollowUps::default()),
        alerts: alerts.clone(),
        metrics: metrics.clone(),
        clock: clock.clone(),
        facebook: Arc::new(MemoryFacebookLogin::default()),
        messenger: Arc::new(MemoryMessenger::default()),
    };
    let deps = Deps::from_ports(test_config(&[]), &ports);
    World {
        deps,
        store,
        queue,
        scheduler,
        alerts,
        clock,
        metrics,
        logins,
    }
}

impl World {
    async fn opt_in(&self, login_id: &str) -> OptIn {
        let o = OptIn::new(
            OptInKey::new(PAGE, login_id),
            Some(T0),
            T0,
            24 * HOUR_MS,
            2 * HOUR_MS,
        );
        self.store.create_opt_in(&o).await.unwrap();
        self.scheduler
            .schedule_deadline_check(&DeadlineCheck::for_opt_in(&o), o.alert_at)
            .await
            .unwrap();
        o
    }

    /// An opt-in nothing but the due index watches (its send job or schedule could not be made):
    /// created, then watched from its first attention time, as the follow-up does.
    async fn watched_opt_in(&self, login_id: &str) -> OptIn {
        let o = self.opt_in(login_id).await;
        assert!(
            self.store
                .watch_from(&o.key(), first_attention(&o))
                .await
                .unwrap()
                .is_done()
        );
        o
    }

    /// Record an opt-in through the webhook's one path (`OptInRecording`), at `T0`.
    async fn recorded(&self, login_id: &str) -> OptIn {
        let recorded = self
            .deps
            .ports
            .opt_in_recording(&self.deps.config)
            .record(
                OptInKey::new(PAGE, login_id),
                Origin::Webhook {
                    timestamp: Some(T0),
                },
                "secret",
                T0,
            )
            .await
            .unwrap();
        let OptInRecorded::New(o) = recorded else {
            panic!("a new opt-in: {recorded:?}")
        };
        *o
    }

    fn check_input(o: &OptIn) -> serde_json::Value {
        serde_json::to_value(shared::domain::jobs::AlertInput::DeadlineCheck(
            DeadlineCheck::for_opt_in(o),
        ))
        .unwrap()
    }
}

fn sweep() -> serde_json::Value {
    serde_json::json!({"kind": "sweep", "version": 1})
}

#[tokio::test]
async fn deadline_check_alerts_once_for_an_unsent_opt_in() {
    let w = world();
    let o = w.opt_in("L1").await;
    w.clock.set(o.alert_at);
    let first = handle(&w.deps, World::check_input(&o)).await.unwrap();
    assert_eq!(
        first,
        Summary {
            checked: 1,
            alerted: 1,
            watched: 1,
            ..Summary::default()
        }
    );
    // The schedule's retry and the sweep do not alert again.
    handle(&w.deps, World::check_input(&o)).await.unwrap();
    handle(&w.deps, sweep()).await.unwrap();
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::DeadlineAtRisk);
    assert_eq!(alerts[0].page_id, PAGE);
    assert_eq!(alerts[0].deadline_at, Some(o.deadline_at));
    assert_eq!(alerts[0].login_id_prefix.as_deref(), Some("L1"));
    assert_eq!(alerts[0].state, Some(State::OptedIn));
    assert_eq!(w.metrics.sum(Metric::OptInsAtRisk), 1.0);
}

#[tokio::test]
async fn sent_opt_ins_are_left_alone() {
    let w = world();
    let o = w.opt_in("L1").await;
    let k = o.key();
    w.store
        .claim_for_send(&k, "a", T0, T0 + 1000)
        .await
        .unwrap();
    w.store
        .finish_send(
            &k,
            "a",
            &shared::domain::opt_in::SendOutcome::Sent {
                message_id: "m".into(),
            },
            T0 + 10,
        )
        .await
        .unwrap();
    w.clock.set(o.deadline_at + 1);
    let s = handle(&w.deps, World::check_input(&o)).await.unwrap();
    assert_eq!((s.alerted, s.expired), (0, 0));
    assert_eq!(
        w.store.get_opt_in(&k).await.unwrap().unwrap().state,
        State::Sent
    );
    assert!(w.alerts.published().is_empty());
}

#[tokio::test]
async fn sweep_expires_what_passed_its_deadline_and_alerts_missed() {
    let w = world();
    let o = w.watched_opt_in("L1").await;
    w.clock.set(o.deadline_at);
    let s = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(s.expired, 1);
    assert_eq!(
        w.store.get_opt_in(&o.key()).await.unwrap().unwrap().state,
        State::Expired
    );
    assert!(w.scheduler.get(&o.key()).is_none(), "schedule deleted");
    let kinds: Vec<AlertKind> = w.alerts.published().iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AlertKind::DeadlineMissed]);
    assert_eq!(w.metrics.sum(Metric::DeadlinesMissed), 1.0);
    // Idempotent.
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().expired, 0);
    assert_eq!(w.alerts.published().len(), 1);
    assert_eq!(w.metrics.sum(Metric::DeadlinesMissed), 1.0);
}

#[tokio::test]
async fn sweep_re_enqueues_opt_ins_stuck_in_opted_in() {
    let w = world();
    let o = w.watched_opt_in("L1").await;
    w.clock.set(T0 + STUCK_AFTER_MS - 1);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().requeued, 0);
    w.clock.set(T0 + STUCK_AFTER_MS);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().requeued, 1);
    assert_eq!(w.queue.jobs()[0].login_id, o.login_id);
}

#[tokio::test]
async fn bad_input_is_an_error() {
    let w = world();
    for input in [
        serde_json::json!({}),
        serde_json::json!({"kind": "nope"}),
        serde_json::json!("x"),
    ] {
        assert!(handle(&w.deps, input).await.is_err());
    }
}

#[tokio::test]
async fn the_sweep_reads_an_opt_in_only_when_something_is_due() {
    let w = world();
    let o = w.watched_opt_in("L1").await;
    let k = o.key();
    // Claimed (RETRYING): the sweep looks once at 3 minutes, then not until the alert time.
    w.store.claim_for_send(&k, "a", T0, T0 + 1).await.unwrap();
    w.store
        .finish_send(
            &k,
            "a",
            &shared::domain::opt_in::SendOutcome::Retry {
                error: Default::default(),
            },
            T0 + 1,
        )
        .await
        .unwrap();
    w.clock.set(T0 + STUCK_AFTER_MS - 1);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().checked, 0);
    w.clock.set(T0 + STUCK_AFTER_MS);
    let first = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(
        (first.checked, first.requeued, first.deferred),
        (1, 0, 1),
        "RETRYING is not stuck"
    );
    assert_eq!(w.store.due_at(&k), Some(o.alert_at));
    w.clock.set(o.alert_at - 1);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().checked, 0);
    // At the alert time: alerted once, then nothing until the deadline.
    w.clock.set(o.alert_at);
    let at_risk = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!((at_risk.alerted, at_risk.deferred), (1, 1));
    assert_eq!(w.store.due_at(&k), Some(o.deadline_at));
    w.clock.set(o.deadline_at - 1);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().checked, 0);
    w.clock.set(o.deadline_at);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().expired, 1);
    assert_eq!(w.store.due_at(&k), None, "terminal: out of the index");
    let kinds: Vec<AlertKind> = w.alerts.published().iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [AlertKind::DeadlineAtRisk, AlertKind::DeadlineMissed]
    );
    assert_eq!(w.metrics.sum(Metric::OptInsAtRisk), 1.0);
    assert_eq!(w.metrics.sum(Metric::DeadlinesMissed), 1.0);
}

#[tokio::test]
async fn a_stuck_opt_in_is_re_enqueued_again_while_it_stays_stuck() {
    let w = world();
    let o = w.watched_opt_in("L1").await;
    w.clock.set(T0 + STUCK_AFTER_MS);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().requeued, 1);
    // The same sweep time again (a retried invocation): not due any more.
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().checked, 0);
    w.clock.set(T0 + 2 * STUCK_AFTER_MS);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().requeued, 1);
    assert_eq!(w.queue.jobs().len(), 2);
    assert!(w.queue.jobs().iter().all(|j| j.login_id == o.login_id));
}

#[tokio::test]
async fn a_failed_re_enqueue_stays_due() {
    let w = world();
    let o = w.watched_opt_in("L1").await;
    w.queue
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    w.clock.set(T0 + STUCK_AFTER_MS);
    let s = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!((s.requeued, s.deferred), (0, 0));
    assert_eq!(w.store.due_at(&o.key()), Some(T0 + STUCK_AFTER_MS));
    w.queue
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().requeued, 1);
}

/// 10,000 unsent opt-ins spread over 24 hours, in every non-terminal state, some already alerted:
/// one sweep attends to exactly the due ones (alerts those past their alert time, expires those
/// past their deadline, re-enqueues those stuck), and a second sweep at the same time reads nothing.
#[tokio::test]
async fn ten_thousand_unsent_opt_ins_the_sweep_attends_to_exactly_the_due_ones() {
    let w = world();
    let now = T0 + 30 * HOUR_MS;
    let mut expected_alerts = 0;
    let mut expected_expired = 0;
    let mut expected_requeued = 0;
    for i in 0..10_000i64 {
        // Opted in between now − 30 h and now, one every 10.8 s.
        let at = now - 30 * HOUR_MS + i * 10_800;
        let mut o = OptIn::new(
            OptInKey::new(PAGE, format!("login-{i:05}")),
            Some(at),
            at,
            24 * HOUR_MS,
            2 * HOUR_MS,
        );
        o.state = match i % 4 {
            0 => State::OptedIn,
            1 => State::Retrying,
            2 => State::Paused,
            _ => State::Sending,
        };
        o.lease_until = (o.state == State::Sending).then_some(at + 60_000);
        if i % 3 == 0 && o.alert_at <= now {
            o.alerted_at = Some(o.alert_at);
        }
        if o.deadline_passed(now) {
            expected_expired += 1;
        } else {
            if o.alert_at <= now && o.alerted_at.is_none() {
                expected_alerts += 1;
            }
            if o.state == State::OptedIn && now - o.created_at >= STUCK_AFTER_MS {
                expected_requeued += 1;
            }
        }
        w.store.insert(o);
    }
    w.clock.set(now);
    let s = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(s.expired, expected_expired);
    assert_eq!(s.alerted, expected_alerts);
    assert_eq!(s.requeued, expected_requeued);
    assert!(expected_expired > 0 && expected_alerts > 0 && expected_requeued > 0);
    assert_eq!(
        w.alerts.published().len(),
        expected_expired + expected_alerts
    );
    assert_eq!(
        w.metrics.sum(Metric::DeadlinesMissed) as usize,
        expected_expired
    );
    assert_eq!(
        w.metrics.sum(Metric::OptInsAtRisk) as usize,
        expected_alerts
    );
    // Everything due was handled and moved on: the same sweep again reads nothing.
    assert_eq!(handle(&w.deps, sweep()).await.unwrap(), Summary::default());
}

fn granted_login(
    asid: &str,
    expected_login_id: Option<&str>,
    at: i64,
) -> shared::domain::login::Login {
    serde_json::from_value(serde_json::json!({
        "page_id": PAGE,
        "asid": asid,
        "first_name": "Ana",
        "permission": "granted",
        "expected_login_id": expected_login_id,
        "login_at": at,
        "last_login_at": at,
        "source": "callback",
    }))
    .unwrap()
}

#[tokio::test]
async fn a_granted_login_whose_opt_in_never_arrives_is_alerted_once() {
    use shared::ports::logins::LoginStore;
    let w = world();
    let after = w.deps.config.orphan_login_alert_after_ms;
    assert_eq!(after, 60 * 60_000, "default: 60 minutes");
    // Its opt-in never comes (the login_id derivation does not match the app).
    w.logins
        .record_login(&granted_login("111", Some("wrong-login-id-111"), T0))
        .await
        .unwrap();
    // Its opt-in arrived: nothing to say.
    w.logins
        .record_login(&granted_login("222", Some("L2"), T0))
        .await
        .unwrap();
    w.opt_in("L2").await;
    // No expected login_id (derivation off): nothing can be matched, nothing is alerted.
    w.logins
        .record_login(&granted_login("333", None, T0))
        .await
        .unwrap();

    w.clock.set(T0 + after - 1);
    assert_eq!(
        handle(&w.deps, sweep())
            .await
            .unwrap()
            .logins_without_opt_in,
        0
    );
    assert!(w.alerts.published().is_empty(), "not yet");

    w.clock.set(T0 + after);
    let summary = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(summary.logins_without_opt_in, 1);
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::LoginWithoutOptIn);
    assert_eq!(alerts[0].login_id_prefix.as_deref(), Some("wrong-lo"));
    let json = serde_json::to_string(&alerts[0]).unwrap();
    assert!(
        !json.contains("111") && !json.contains("Ana"),
        "no asid, no name: {json}"
    );
    assert_eq!(w.metrics.sum(Metric::LoginsWithoutOptIn), 1.0);

    // Once per LOGIN: later sweeps, and a later login of the same person, stay silent.
    handle(&w.deps, sweep()).await.unwrap();
    w.logins
        .record_login(&granted_login(
            "111",
            Some("wrong-login-id-111"),
            T0 + after + 1,
        ))
        .await
        .unwrap();
    w.clock.set(T0 + 3 * after);
    handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(w.alerts.published().len(), 1);
    assert!(
        w.logins
            .waiting_for_opt_in(T0 + 10 * after, 10)
            .await
            .unwrap()
            .is_empty(),
        "every LOGIN settled"
    );
}

#[tokio::test]
async fn an_earlier_generations_deadline_check_does_not_act_on_the_new_one() {
    let w = world();
    let first = w.opt_in("L1").await;
    let old_check = World::check_input(&first);
    w.store.opt_out(&first.key(), "api", T0 + 1).await.unwrap();
    // The person consents again two days later: a new generation with its own deadline.
    let again = T0 + 48 * HOUR_MS;
    let renewed = OptIn::new(first.key(), Some(again), again, 24 * HOUR_MS, 2 * HOUR_MS);
    let guard = shared::ports::opt_ins::ConsentGuard {
        erasure_marker: "m".into(),
        event_at: Some(again),
    };
    let recorded = w.store.record_opt_in(&renewed, &guard).await.unwrap();
    assert!(matches!(
        recorded,
        shared::ports::opt_ins::Recorded::Renewed(_)
    ));
    // The old schedule is delivered late (a retry), at the new generation's alert time.
    w.clock.set(renewed.alert_at);
    assert_eq!(
        handle(&w.deps, old_check).await.unwrap(),
        Summary::default()
    );
    assert!(w.alerts.published().is_empty());
    // The new generation's own check alerts about it.
    let current = w.store.get_opt_in(&first.key()).await.unwrap().unwrap();
    let summary = handle(&w.deps, World::check_input(&current)).await.unwrap();
    assert_eq!(summary.alerted, 1);
}

#[tokio::test]
async fn the_sweep_requeues_paused_opt_ins_whose_page_is_active_again() {
    use shared::ports::pages::PageStateStore;
    let w = world();
    let left = w.opt_in("L1").await;
    let later = w.opt_in("L2").await;
    let error = shared::domain::opt_in::LastError {
        code: 190,
        ..Default::default()
    };
    w.store
        .pause_page(
            PAGE,
            shared::domain::page::PauseCause::Configuration,
            &error,
            T0,
            T0 + 60_000,
        )
        .await
        .unwrap();
    assert!(
        w.store
            .park_opt_in(&left.key(), T0 + 1)
            .await
            .unwrap()
            .is_done()
    );
    // A probe resumed the Page, and its re-queue was lost (the process stopped after the write).
    assert!(w.store.resume_page(PAGE, T0 + 2).await.unwrap());
    // Paused after the resume: bounded retries exhausted; it waits for the next resume.
    assert!(
        w.store
            .park_opt_in(&later.key(), T0 + 3)
            .await
            .unwrap()
            .is_done()
    );

    w.clock.set(T0 + 10_000);
    let s = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(s.requeued_paused, 1);
    let jobs: Vec<String> = w.queue.jobs().into_iter().map(|j| j.login_id).collect();
    assert_eq!(jobs, ["L1"]);
    // At most once per sweep: the next sweep queues it again only if it is still PAUSED.
    w.clock.set(T0 + 20_000);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().requeued_paused, 1);
    assert_eq!(w.queue.jobs().len(), 2);
    // One opt-in window after the resume, nothing parked before it can still be sent.
    w.clock.set(T0 + 2 + w.deps.config.optin_window_ms);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().requeued_paused, 0);
}

/// The sender acknowledges duplicate jobs of parked opt-ins (they no longer come back at every
/// probe time), so a prober that took the probe slot and crashed before queueing the next probe
/// leaves the paused Page with no probe coming: the sweep queues one once the probe is overdue by
/// more than a probe interval (plus slack), and nothing while the chain is alive or the Page blocked.
#[tokio::test]
async fn a_crashed_prober_is_replaced_by_the_sweep() {
    use shared::domain::page::{PROBE_CHAIN_SLACK_MS, PauseCause};
    use shared::ports::clock::Clock;
    use shared::ports::pages::PageStateStore;
    let w = world();
    let interval = w.deps.config.send.probe_interval_ms;
    let near = OptIn::new(OptInKey::new(PAGE, "L0"), Some(T0), T0, 60_000, 0);
    w.store.create_opt_in(&near).await.unwrap();
    let o = w.opt_in("L1").await;
    let later = w.opt_in("L2").await;
    let error = shared::domain::opt_in::LastError {
        code: 190,
        ..Default::default()
    };
    let first_probe = T0 + interval;
    assert!(
        w.store
            .pause_page(PAGE, PauseCause::Configuration, &error, T0, first_probe)
            .await
            .unwrap()
    );
    for key in [near.key(), o.key(), later.key()] {
        assert!(w.store.park_opt_in(&key, T0 + 1).await.unwrap().is_done());
    }
    // The prober takes the slot, then crashes: no next probe job.
    let next_probe = first_probe + interval;
    assert!(
        w.store
            .take_probe(PAGE, first_probe, next_probe)
            .await
            .unwrap()
    );
    // Within an interval and the slack of the probe time, the chain may just be late.
    w.clock.set(next_probe + interval + PROBE_CHAIN_SLACK_MS);
    let s = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!((s.probes_restarted, s.requeued), (0, 0));
    assert!(w.queue.jobs().is_empty());
    // Overdue: one job, for the paused opt-in with the earliest deadline a send can still reach
    // (not L0, whose deadline has passed).
    w.clock
        .set(next_probe + interval + PROBE_CHAIN_SLACK_MS + 1);
    let s = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(s.probes_restarted, 1);
    let jobs: Vec<String> = w.queue.jobs().into_iter().map(|j| j.login_id).collect();
    assert_eq!(jobs, ["L1"]);
    // The job is delivered and takes the slot: the chain is alive again, no more jobs.
    let now = w.clock.now();
    assert!(w.store.take_probe(PAGE, now, now + interval).await.unwrap());
    w.clock.set(now + interval);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().probes_restarted, 0);
    // Meta blocks the Page: no probe, whatever the time.
    assert!(w.store.block_page(PAGE, &error, now).await.unwrap());
    w.clock.set(now + 10 * interval);
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().probes_restarted, 0);
    assert_eq!(w.queue.jobs().len(), 1);
}

#[tokio::test]
async fn the_sweep_leaves_a_blocked_page_alone() {
    use shared::ports::pages::PageStateStore;
    let w = world();
    let o = w.opt_in("L1").await;
    let block = shared::domain::opt_in::LastError::default();
    assert!(w.store.block_page(PAGE, &block, T0).await.unwrap());
    assert!(
        w.store
            .park_opt_in(&o.key(), T0 + 1)
            .await
            .unwrap()
            .is_done()
    );
    w.clock.set(T0 + STUCK_AFTER_MS + 1);
    let s = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!((s.requeued, s.requeued_paused), (0, 0));
    assert!(w.queue.jobs().is_empty());
}

#[tokio::test]
async fn a_failed_invocation_reports_a_readable_error_type_not_a_rust_type() {
    let w = world();
    let e = handle(&w.deps, serde_json::json!({"kind": "nonsense"}))
        .await
        .unwrap_err();
    let diagnostic = lambda_runtime::Diagnostic::from(e);
    // The runtime's default for a boxed error is a type path ("alloc::boxed::Box<dyn …>").
    assert_eq!(diagnostic.error_type, "DeadlineAlerts.BadInput");
    assert!(!diagnostic.error_type.contains("::"));
    assert!(
        diagnostic
            .error_message
            .contains(r#"{"kind":"sweep","version":1}"#),
        "{}",
        diagnostic.error_message
    );
}

/// The drift checks the sweeps queued so far.
fn drift_jobs(w: &World) -> Vec<shared::domain::jobs::Job> {
    w.queue
        .other_jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

#[tokio::test]
async fn the_sweep_queues_one_drift_check_per_day_however_often_it_runs() {
    let w = world();
    for _ in 0..3 {
        handle(&w.deps, sweep()).await.unwrap();
    }
    let expected = shared::domain::jobs::Job::DriftCheck(shared::domain::jobs::DriftCheckJob {
        version: 1,
        page_id: PAGE.into(),
    });
    assert_eq!(drift_jobs(&w), std::slice::from_ref(&expected));
    // The same day, later: nothing more. The next day: one more.
    w.clock.advance(7 * HOUR_MS);
    handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(drift_jobs(&w).len(), 1);
    w.clock.advance(HOUR_MS);
    handle(&w.deps, sweep()).await.unwrap();
    handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(drift_jobs(&w), [expected.clone(), expected]);
    // Not the send jobs: the initial-message queue is untouched.
    assert!(w.queue.jobs().is_empty());
}

#[tokio::test]
async fn a_failed_drift_claim_leaves_the_day_to_the_next_sweep() {
    let w = world();
    w.store
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // The sweep itself fails on the store; the drift claim is not reached or fails: no job.
    let _ = handle(&w.deps, sweep()).await;
    assert!(drift_jobs(&w).is_empty());
    w.store
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(drift_jobs(&w).len(), 1);
}

// The due index holds only the opt-ins nothing else watches (docs/decisions.md, "The due index
// holds only what nothing else watches"): each way an opt-in enters it, then the sweep acting on it.

fn fail(flag: &std::sync::atomic::AtomicBool, on: bool) {
    flag.store(on, std::sync::atomic::Ordering::SeqCst);
}

#[tokio::test]
async fn an_opt_in_whose_send_job_was_not_queued_is_indexed_and_the_sweep_re_enqueues_it() {
    let w = world();
    fail(&w.queue.fail, true);
    let o = w.recorded("L1").await;
    fail(&w.queue.fail, false);
    assert!(w.queue.jobs().is_empty());
    assert_eq!(w.store.due_at(&o.key()), Some(T0 + STUCK_AFTER_MS));
    w.clock.set(T0 + STUCK_AFTER_MS);
    let s = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!((s.checked, s.requeued, s.deferred), (1, 1, 1));
    assert_eq!(w.queue.jobs().len(), 1);
}

#[tokio::test]
async fn an_opt_in_whose_schedule_was_not_created_is_indexed_and_the_sweep_alerts() {
    let w = world();
    fail(&w.scheduler.fail, true);
    let o = w.recorded("L1").await;
    fail(&w.scheduler.fail, false);
    assert!(w.scheduler.get(&o.key()).is_none());
    // The sender tried and will retry (RETRYING): not stuck, so nothing for the sweep until the
    // alert time.
    let k = o.key();
    w.store.claim_for_send(&k, "a", T0, T0 + 1).await.unwrap();
    let retry = shared::domain::opt_in::SendOutcome::Retry {
        error: Default::default(),
    };
    w.store.finish_send(&k, "a", &retry, T0 + 1).await.unwrap();
    w.clock.set(T0 + STUCK_AFTER_MS);
    handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(w.store.due_at(&k), Some(o.alert_at));
    w.clock.set(o.alert_at);
    let s = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(s.alerted, 1);
    let kinds: Vec<AlertKind> = w.alerts.published().iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AlertKind::DeadlineAtRisk]);
    assert_eq!(w.store.due_at(&k), Some(o.deadline_at));
}

#[tokio::test]
async fn a_fired_schedule_hands_the_opt_in_to_the_index_and_the_sweep_expires_it() {
    let w = world();
    let o = w.recorded("L1").await;
    let k = o.key();
    assert_eq!(w.store.due_at(&k), None, "job and schedule watch it");
    // The sender keeps failing (RETRYING) until the alert time.
    w.store.claim_for_send(&k, "a", T0, T0 + 1).await.unwrap();
    let retry = shared::domain::opt_in::SendOutcome::Retry {
        error: Default::default(),
    };
    w.store.finish_send(&k, "a", &retry, T0 + 1).await.unwrap();
    w.clock.set(o.deadline_at - 1);
    assert_eq!(
        handle(&w.deps, sweep()).await.unwrap().checked,
        0,
        "not indexed: the sweep never reads it before its schedule fires"
    );
    w.clock.set(o.alert_at);
    let fired = handle(&w.deps, World::check_input(&o)).await.unwrap();
    assert_eq!((fired.alerted, fired.watched), (1, 1));
    assert_eq!(w.store.due_at(&k), Some(o.deadline_at));
    w.clock.set(o.deadline_at);
    let s = handle(&w.deps, sweep()).await.unwrap();
    assert_eq!(s.expired, 1);
    let kinds: Vec<AlertKind> = w.alerts.published().iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [AlertKind::DeadlineAtRisk, AlertKind::DeadlineMissed]
    );
    assert_eq!(w.store.due_at(&k), None, "terminal: out of the index");
}

#[tokio::test]
async fn a_fired_schedule_whose_index_write_fails_is_retried_and_alerts_once() {
    let w = world();
    let o = w.recorded("L1").await;
    w.clock.set(o.alert_at);
    fail(&w.store.fail_watch, true);
    let failed = handle(&w.deps, World::check_input(&o)).await;
    assert!(
        matches!(failed, Err(deadline_alerts::AlertsError::Port(_))),
        "the scheduler retries the invocation: {failed:?}"
    );
    fail(&w.store.fail_watch, false);
    let retried = handle(&w.deps, World::check_input(&o)).await.unwrap();
    assert_eq!((retried.alerted, retried.watched), (1, 1));
    assert_eq!(w.alerts.published().len(), 1, "alerted once");
    assert!(w.store.due_at(&o.key()).is_some());
}

/// Review finding: the fired schedule is spent; when its invocation fails after reading nothing
/// (here the read of the opt-in), Lambda's retries end in the scheduler DLQ and the opt-in must
/// still be watched: the check hands it to the sweep first, which alerts at its next run.
#[tokio::test]
async fn a_fired_schedule_whose_invocation_fails_leaves_the_opt_in_to_the_sweep() {
    let w = world();
    let o = w.recorded("L1").await;
    w.clock.set(o.alert_at);
    fail(&w.store.fail_get, true);
    let failed = handle(&w.deps, World::check_input(&o)).await;
    assert!(
        matches!(failed, Err(deadline_alerts::AlertsError::Port(_))),
        "{failed:?}"
    );
    assert_eq!(
        w.store.due_at(&o.key()),
        Some(o.alert_at),
        "watched by the index"
    );
    fail(&w.store.fail_get, false);
    w.clock.set(o.alert_at + 60_000);
    let swept = handle(&w.deps, serde_json::json!({"kind": "sweep", "version": 1}))
        .await
        .unwrap();
    assert_eq!(swept.alerted, 1);
    assert_eq!(w.alerts.published().len(), 1, "alerted once, by the sweep");
}
