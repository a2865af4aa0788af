//! The sender's own adapters against moto — the Page state item and the pause transitions on
//! DynamoDB, backoff on SQS — and the concurrency guarantee through the real queue: the same
//! opt-in enqueued ten times, two sender instances polling at once, one message.

use integration_tests::worlds::sender::{SenderWorld, sandbox_secrets};
use shared::adapters::clock::SystemClock;
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::adapters::dynamodb::table;
use shared::adapters::graph::GraphClient;
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::adapters::sqs::SqsSendQueue;
use shared::domain::jobs::SendJob;
use shared::domain::opt_in::{LastError, OptIn, OptInKey, State};
use shared::domain::page::{PageStatus, PauseCause};
use shared::ports::bundle::Ports;
use shared::ports::opt_ins::{OptInStore, Transitioned};
use shared::ports::pages::PageStateStore;
use shared::ports::queue::RetryQueue;
use shared::ports::queue::SendQueue;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn dynamo(w: &SenderWorld) -> DynamoOptInStore {
    DynamoOptInStore::new(
        aws_sdk_dynamodb::Client::new(w.sdk.as_ref().unwrap()),
        w.provisioned.as_ref().unwrap().table_name.clone(),
    )
}

fn sqs(w: &SenderWorld) -> SqsSendQueue {
    SqsSendQueue::new(
        aws_sdk_sqs::Client::new(w.sdk.as_ref().unwrap()),
        w.provisioned.as_ref().unwrap().send_queue_url.clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_state_item_pauses_once_probes_once_per_slot_and_resumes_once() {
    let w = SenderWorld::with_moto(&[]).await;
    let s = dynamo(&w);
    let reason = LastError {
        code: 190,
        subcode: Some(463),
        fbtrace_id: Some("T".into()),
        message: "expired".into(),
    };
    assert!(s.get_page("42").await.unwrap().is_none());
    assert!(
        !s.take_probe("42", 0, 10).await.unwrap(),
        "an active Page has no probe"
    );
    assert!(!s.resume_page("42", 0).await.unwrap());
    assert!(
        s.pause_page("42", PauseCause::Configuration, &reason, 5, 100)
            .await
            .unwrap()
    );
    assert!(
        !s.pause_page("42", PauseCause::PageRestricted, &reason, 6, 100)
            .await
            .unwrap(),
        "already paused: the second sender does not alert"
    );
    let page = s.get_page("42").await.unwrap().unwrap();
    assert_eq!(page.status, PageStatus::Paused);
    assert_eq!(page.cause, Some(PauseCause::Configuration));
    assert_eq!(page.reason.as_ref(), Some(&reason));
    assert_eq!(
        (page.paused_at, page.probe_at, page.probes),
        (Some(5), Some(100), 0)
    );
    assert!(!s.take_probe("42", 99, 200).await.unwrap(), "not due");
    assert!(s.take_probe("42", 100, 200).await.unwrap());
    assert!(
        !s.take_probe("42", 100, 200).await.unwrap(),
        "one prober per slot"
    );
    let page = s.get_page("42").await.unwrap().unwrap();
    assert_eq!((page.probe_at, page.probes), (Some(200), 1));
    assert!(s.resume_page("42", 300).await.unwrap());
    assert!(!s.resume_page("42", 301).await.unwrap(), "one resumer");
    let page = s.get_page("42").await.unwrap().unwrap();
    assert_eq!(
        (page.status, page.resumed_at, page.probe_at),
        (PageStatus::Active, Some(300), None)
    );
    assert!(
        s.pause_page("42", PauseCause::PageRestricted, &reason, 400, 500)
            .await
            .unwrap()
    );
    // The item is where table.rs says, and not in the due index.
    let raw = aws_sdk_dynamodb::Client::new(w.sdk.as_ref().unwrap())
        .get_item()
        .table_name(&w.provisioned.as_ref().unwrap().table_name)
        .key(
            table::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(table::page_pk("42")),
        )
        .key(
            table::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(table::PAGE_STATE_SK.into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!raw.contains_key(table::DUE_SHARD));
    assert_eq!(raw["status"].as_s().unwrap(), "PAUSED");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_ins_park_resume_and_are_listed_per_page_from_the_due_index() {
    let w = SenderWorld::with_moto(&[]).await;
    let s = dynamo(&w);
    let mk = |page: &str, login: &str, deadline: i64| {
        OptIn::new(OptInKey::new(page, login), Some(0), 0, deadline, 0)
    };
    for o in [
        mk("1", "b", 2_000),
        mk("1", "a", 3_000),
        mk("1", "c", 1_000),
        mk("2", "x", 1_000),
    ] {
        s.create_opt_in(&o).await.unwrap();
        let Transitioned::Done(parked) = s.park_opt_in(&o.key(), 10).await.unwrap() else {
            panic!("OPTED_IN parks");
        };
        assert_eq!(parked.state, State::Paused);
    }
    let sending = mk("1", "s", 5_000);
    s.create_opt_in(&sending).await.unwrap();
    assert!(
        s.claim_for_send(&sending.key(), "me", 10, 100)
            .await
            .unwrap()
            .is_done()
    );
    assert!(
        !s.park_opt_in(&sending.key(), 11).await.unwrap().is_done(),
        "SENDING is not parked"
    );
    assert!(
        !s.park_opt_in(&OptInKey::new("1", "missing"), 11)
            .await
            .unwrap()
            .is_done()
    );

    let listed: Vec<String> = s
        .paused_opt_ins("1", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.login_id)
        .collect();
    assert_eq!(
        listed,
        ["c", "b", "a"],
        "page 1 only, earliest deadline first"
    );
    assert_eq!(s.paused_opt_ins("1", 2).await.unwrap().len(), 2);

    let key = OptInKey::new("1", "c");
    assert!(
        !s.resume_opt_in(&key, 1_000).await.unwrap().is_done(),
        "at the deadline"
    );
    let Transitioned::Done(resumed) = s.resume_opt_in(&key, 999).await.unwrap() else {
        panic!("resumes before the deadline");
    };
    assert_eq!(resumed.state, State::Retrying);
    assert!(
        !s.resume_opt_in(&key, 999).await.unwrap().is_done(),
        "only from PAUSED"
    );
    assert_eq!(s.paused_opt_ins("1", 10).await.unwrap().len(), 2);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_backoff_delays_the_received_message_and_delayed_jobs() {
    let w = SenderWorld::with_moto(&[]).await;
    let q = sqs(&w);
    let client = aws_sdk_sqs::Client::new(w.sdk.as_ref().unwrap());
    let url = w.provisioned.as_ref().unwrap().send_queue_url.clone();
    let job = SendJob::for_key(&OptInKey::new("1", "l"));
    let receive = || async {
        client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    };
    q.enqueue(&job).await.unwrap();
    let first = receive().await;
    assert_eq!(first.len(), 1);
    q.retry_after(first[0].receipt_handle().unwrap(), 2)
        .await
        .unwrap();
    assert!(receive().await.is_empty(), "invisible for 2 s");
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let again = receive().await;
    assert_eq!(again.len(), 1, "visible again after the backoff");
    let count = again[0]
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .cloned();
    assert_eq!(count.as_deref(), Some("2"));
    client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(again[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();

    q.enqueue_after(&job, 2).await.unwrap();
    assert!(receive().await.is_empty(), "delayed");
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let delayed = receive().await;
    assert_eq!(delayed.len(), 1);
    let body: SendJob = serde_json::from_str(delayed[0].body().unwrap()).unwrap();
    assert_eq!(body, job);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_opt_in_enqueued_ten_times_and_two_senders_polling_at_once_send_one_message() {
    let w = SenderWorld::with_moto(&[]).await;
    let key = w.opt_in().await;
    let queue = sqs(&w);
    for _ in 0..10 {
        queue.enqueue(&SendJob::for_key(&key)).await.unwrap();
    }
    let p = w.provisioned.clone().unwrap();
    let sdk = w.sdk.clone().unwrap();
    // Two sender instances: their own Graph client, pacer and clock, the same table and queue.
    let instance = || {
        let store = Arc::new(dynamo(&w));
        let queue = Arc::new(sqs(&w));
        sender::Deps::from_ports(
            w.deps.config.clone(),
            &Ports {
                opt_ins: store.clone(),
                pages: store,
                queue: queue.clone(),
                retry: queue,
                scheduler: Arc::new(MemoryScheduler::default()),
                events: Arc::new(shared::adapters::memory::events::MemoryEvents::default()),
                follow_ups: Arc::new(
                    shared::adapters::memory::follow_ups::MemoryFollowUps::default(),
                ),
                alerts: Arc::new(MemoryAlerts::default()),
                messenger: Arc::new(GraphClient::new(&w.deps.config, &sandbox_secrets()).unwrap()),
                clock: Arc::new(SystemClock),
                metrics: Arc::new(shared::adapters::memory::metrics::MemoryMetrics::default()),
                logins: Arc::new(shared::adapters::memory::logins::MemoryLoginStore::new()),
                ..w.deps.ports.clone()
            },
        )
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (_paused, paused_rx) = tokio::sync::watch::channel(false);
    let mut pollers = Vec::new();
    for _ in 0..2 {
        pollers.push(tokio::spawn(local_runner::event_sources::run_sqs_poller(
            aws_sdk_sqs::Client::new(&sdk),
            p.send_queue_url.clone(),
            p.send_queue_arn.clone(),
            Duration::from_secs(p.sender_timeout_s),
            Arc::new(instance()),
            paused_rx.clone(),
            stop_rx.clone(),
        )));
    }
    let sqs_client = aws_sdk_sqs::Client::new(&sdk);
    let started = Instant::now();
    loop {
        let attrs = sqs_client
            .get_queue_attributes()
            .queue_url(&p.send_queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let count = |name: aws_sdk_sqs::types::QueueAttributeName| {
            attrs
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let left = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        if left == 0 && w.item(&key).await.state == State::Sent {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{left} jobs left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    for poller in pollers {
        let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
    }
    assert_eq!(
        w.inbox_for(&key).len(),
        1,
        "ten jobs, two senders, one message"
    );
    let item = w.item(&key).await;
    assert_eq!((item.state, item.attempts), (State::Sent, 1));
    w.stop().await;
}
