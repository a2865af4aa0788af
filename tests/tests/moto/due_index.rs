//! The due index holds only the opt-ins nothing else watches (issue 13 §5), on the real adapters
//! against moto: a sent opt-in never enters it (no index write on the happy path); an opt-in whose
//! send job or deadline schedule could not be made enters it at its first attention time and the
//! sweep re-enqueues or alerts it; a fired deadline schedule hands the opt-in to it and the sweep
//! expires it at the deadline; a failed index write answers the webhook 503 and Meta's redelivery
//! repeats the follow-up.

use async_trait::async_trait;
use integration_tests::worlds::moto::{World, world};
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::adapters::dynamodb::table;
use shared::adapters::memory::queue::MemorySendQueue;
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::domain::alert::AlertKind;
use shared::domain::attention::{STUCK_AFTER_MS, first_attention};
use shared::domain::opt_in::{Millis, OptIn, OptInKey, SendOutcome, State};
use shared::ports::error::{PortError, PortResult};
use shared::ports::opt_ins::{ConsentGuard, Created, OptInStore, Recorded, Transitioned};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn t0() -> Millis {
    chrono::Utc::now().timestamp_millis() / 1000 * 1000
}

/// The opt-in's stored attributes, as DynamoDB holds them.
async fn raw(
    w: &World,
    login_id: &str,
) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    let key = w.key(login_id);
    aws_sdk_dynamodb::Client::new(&w.sdk)
        .get_item()
        .table_name(&w.p.table_name)
        .key(
            table::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(table::opt_in_pk(&key)),
        )
        .key(
            table::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(table::OPTIN_SK.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_else(|| panic!("{login_id} is not stored"))
}

/// How many items the due index holds (a scan of the index itself).
async fn indexed(w: &World) -> i32 {
    aws_sdk_dynamodb::Client::new(&w.sdk)
        .scan()
        .table_name(&w.p.table_name)
        .index_name(table::DUE_INDEX)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .unwrap()
        .count
}

async fn due_at(w: &World, login_id: &str) -> Option<Millis> {
    let item = raw(w, login_id).await;
    item.get(table::DUE_SHARD)?;
    match item.get(table::DUE_AT) {
        Some(aws_sdk_dynamodb::types::AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

async fn kinds(w: &World) -> Vec<AlertKind> {
    w.published_alerts()
        .await
        .into_iter()
        .map(|a| a.alert.expect("one of our alerts").kind)
        .collect()
}

fn failing_queue() -> Arc<MemorySendQueue> {
    let queue = MemorySendQueue::default();
    queue.fail.store(true, Ordering::SeqCst);
    Arc::new(queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_opt_in_never_enters_the_due_index() {
    let t0 = t0();
    let w = world(t0, &[]).await;
    assert_eq!(w.webhook("due-sent", t0 - 1_000).await, 200);
    let recorded = raw(&w, "due-sent").await;
    assert!(
        !recorded.contains_key(table::DUE_SHARD) && !recorded.contains_key(table::DUE_AT),
        "recorded without the due attributes"
    );
    assert_eq!(indexed(&w).await, 0, "the index holds nothing");
    assert!(
        w.schedule("due-sent").await.is_some(),
        "its schedule watches it"
    );
    assert_eq!(w.deliver_send_jobs().await, 1);
    assert_eq!(w.item("due-sent").await.state, State::Sent);
    assert!(!raw(&w, "due-sent").await.contains_key(table::DUE_SHARD));
    assert_eq!(indexed(&w).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_in_whose_send_job_was_not_queued_is_indexed_and_the_sweep_re_enqueues_it() {
    let t0 = t0();
    let mut w = world(t0, &[]).await;
    let queue = w.http.ports.queue.clone();
    w.http.ports.queue = failing_queue();
    assert_eq!(w.webhook("due-lost-job", t0 - 1_000).await, 200);
    w.http.ports.queue = queue;
    let o = w.item("due-lost-job").await;
    assert_eq!(due_at(&w, "due-lost-job").await, Some(first_attention(&o)));
    assert_eq!(first_attention(&o), o.created_at + STUCK_AFTER_MS);
    assert_eq!(w.deliver_send_jobs().await, 0, "no job was queued");
    w.clock.set(o.created_at + STUCK_AFTER_MS);
    let s = w.sweep().await;
    assert_eq!((s.checked, s.requeued), (1, 1));
    assert_eq!(w.deliver_send_jobs().await, 1);
    assert_eq!(w.item("due-lost-job").await.state, State::Sent);
    assert_eq!(indexed(&w).await, 0, "SENT left the index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_in_whose_schedule_was_not_created_is_indexed_and_the_sweep_alerts() {
    let t0 = t0();
    let mut w = world(t0, &[]).await;
    let scheduler = MemoryScheduler::default();
    scheduler.fail.store(true, Ordering::SeqCst);
    w.http.ports.scheduler = Arc::new(scheduler);
    assert_eq!(w.webhook("due-no-schedule", t0 - 1_000).await, 200);
    assert!(w.schedule("due-no-schedule").await.is_none());
    let o = w.item("due-no-schedule").await;
    assert_eq!(
        due_at(&w, "due-no-schedule").await,
        Some(first_attention(&o))
    );
    // The sender tried and will retry later (RETRYING): nothing for the sweep until the alert time.
    let k = o.key();
    w.store.claim_for_send(&k, "a", t0, t0 + 1).await.unwrap();
    let retry = SendOutcome::Retry {
        error: Default::default(),
    };
    w.store.finish_send(&k, "a", &retry, t0 + 1).await.unwrap();
    w.clock.set(o.alert_at);
    let s = w.sweep().await;
    assert_eq!(s.alerted, 1);
    assert_eq!(kinds(&w).await, [AlertKind::DeadlineAtRisk]);
    assert_eq!(due_at(&w, "due-no-schedule").await, Some(o.deadline_at));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fired_schedule_hands_the_opt_in_to_the_index_and_the_sweep_expires_it() {
    let t0 = t0();
    let w = world(t0, &[]).await;
    assert_eq!(w.webhook("due-fired", t0 - 1_000).await, 200);
    let o = w.item("due-fired").await;
    let k = o.key();
    // The sender keeps failing until the alert time (RETRYING, its job backing off).
    w.store.claim_for_send(&k, "a", t0, t0 + 1).await.unwrap();
    let retry = SendOutcome::Retry {
        error: Default::default(),
    };
    w.store.finish_send(&k, "a", &retry, t0 + 1).await.unwrap();
    assert_eq!(due_at(&w, "due-fired").await, None);
    w.clock.set(o.alert_at);
    assert_eq!(w.fire_schedules().await, 1);
    assert_eq!(kinds(&w).await, [AlertKind::DeadlineAtRisk]);
    assert_eq!(due_at(&w, "due-fired").await, Some(o.deadline_at));
    w.clock.set(o.deadline_at);
    let s = w.sweep().await;
    assert_eq!(s.expired, 1);
    assert_eq!(w.item("due-fired").await.state, State::Expired);
    assert_eq!(kinds(&w).await, [AlertKind::DeadlineMissed]);
    assert_eq!(indexed(&w).await, 0, "EXPIRED left the index");
}

/// The DynamoDB store whose due-index write fails while `fail` is set (DynamoDB unavailable
/// for that one write); everything else goes to DynamoDB.
struct FailingWatch {
    store: DynamoOptInStore,
    fail: AtomicBool,
}

#[async_trait]
impl OptInStore for FailingWatch {
    async fn create_opt_in(&self, opt_in: &OptIn) -> PortResult<Created> {
        self.store.create_opt_in(opt_in).await
    }
    async fn record_opt_in(&self, opt_in: &OptIn, guard: &ConsentGuard) -> PortResult<Recorded> {
        self.store.record_opt_in(opt_in, guard).await
    }
    async fn get_opt_in(&self, key: &OptInKey) -> PortResult<Option<OptIn>> {
        self.store.get_opt_in(key).await
    }
    async fn claim_for_send(
        &self,
        key: &OptInKey,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<Transitioned> {
        self.store
            .claim_for_send(key, owner, now, lease_until)
            .await
    }
    async fn claim_incarnation_for_send(
        &self,
        key: &OptInKey,
        created_at: Millis,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<Transitioned> {
        self.store
            .claim_incarnation_for_send(key, created_at, owner, now, lease_until)
            .await
    }
    async fn finish_send(
        &self,
        key: &OptInKey,
        owner: &str,
        outcome: &SendOutcome,
        now: Millis,
    ) -> PortResult<Transitioned> {
        self.store.finish_send(key, owner, outcome, now).await
    }
    async fn record_send_after_opt_out(
        &self,
        key: &OptInKey,
        attempt: u32,
        message_id: &str,
        sent_at: Millis,
    ) -> PortResult<Transitioned> {
        self.store
            .record_send_after_opt_out(key, attempt, message_id, sent_at)
            .await
    }
    async fn expire(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned> {
        self.store.expire(key, now).await
    }
    async fn opt_out(&self, key: &OptInKey, source: &str, now: Millis) -> PortResult<Transitioned> {
        self.store.opt_out(key, source, now).await
    }
    async fn opt_out_late(&self, key: &OptInKey, by: &str, at: Millis) -> PortResult<Transitioned> {
        self.store.opt_out_late(key, by, at).await
    }
    async fn mark_alerted(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned> {
        self.store.mark_alerted(key, now).await
    }
    async fn due_for_attention(&self, due_by: Millis, limit: usize) -> PortResult<Vec<OptIn>> {
        self.store.due_for_attention(due_by, limit).await
    }
    async fn watch_from(&self, key: &OptInKey, at: Millis) -> PortResult<Transitioned> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::new(
                "dynamodb",
                "injected: UpdateItem unavailable",
            ));
        }
        self.store.watch_from(key, at).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_index_write_answers_503_and_the_redelivery_repeats_the_follow_up() {
    let t0 = t0();
    let mut w = world(t0, &[]).await;
    let store = Arc::new(FailingWatch {
        store: w.store.clone(),
        fail: AtomicBool::new(true),
    });
    let (opt_ins, queue) = (w.http.ports.opt_ins.clone(), w.http.ports.queue.clone());
    w.http.ports.opt_ins = store.clone();
    w.http.ports.queue = failing_queue();
    assert_eq!(
        w.webhook("due-503", t0 - 1_000).await,
        503,
        "Meta redelivers"
    );
    assert_eq!(w.item("due-503").await.state, State::OptedIn, "recorded");
    assert_eq!(due_at(&w, "due-503").await, None, "not watched yet");
    // Meta's redelivery, with SQS and DynamoDB working again: the follow-up runs again.
    (w.http.ports.opt_ins, w.http.ports.queue) = (opt_ins, queue);
    store.fail.store(false, Ordering::SeqCst);
    assert_eq!(w.webhook("due-503", t0 - 1_000).await, 200);
    assert_eq!(w.deliver_send_jobs().await, 1, "queued by the redelivery");
    assert_eq!(w.item("due-503").await.state, State::Sent);
}
