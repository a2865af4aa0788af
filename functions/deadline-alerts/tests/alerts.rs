//! deadline-alerts with the schedule Inputs it receives, over in-memory ports.

use deadline_alerts::{Deps, STUCK_AFTER_MS, Summary, handle};
use shared::adapters::memory::{
    ManualClock, MemoryAlerts, MemoryOptInStore, MemoryScheduler, MemorySendQueue, test_config,
};
use shared::domain::{AlertKind, DeadlineCheck, HOUR_MS, OptIn, OptInKey, State};
use shared::ports::{DeadlineScheduler, OptInStore};
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
}

fn world() -> World {
    let store = Arc::new(MemoryOptInStore::new());
    let queue = Arc::new(MemorySendQueue::default());
    let scheduler = Arc::new(MemoryScheduler::default());
    let alerts = Arc::new(MemoryAlerts::default());
    let clock = Arc::new(ManualClock::at(T0));
    let deps = Deps {
        config: test_config(&[]),
        store: store.clone(),
        queue: queue.clone(),
        scheduler: scheduler.clone(),
        alerts: alerts.clone(),
        clock: clock.clone(),
    };
    World {
        deps,
        store,
        queue,
        scheduler,
        alerts,
        clock,
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

    fn check_input(o: &OptIn) -> serde_json::Value {
        serde_json::to_value(shared::domain::AlertInput::DeadlineCheck(
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
    assert_eq!(alerts[0].deadline_at, o.deadline_at);
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
            &shared::ports::SendOutcome::Sent {
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
    let o = w.opt_in("L1").await;
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
    // Idempotent.
    assert_eq!(handle(&w.deps, sweep()).await.unwrap().expired, 0);
    assert_eq!(w.alerts.published().len(), 1);
}

#[tokio::test]
async fn sweep_re_enqueues_opt_ins_stuck_in_opted_in() {
    let w = world();
    let o = w.opt_in("L1").await;
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
