//! The sweep's query over the sparse, sharded due index, at scale, against moto: 10,000 unsent
//! opt-ins spread over a day (and 2,000 terminal ones) — one sweep reads exactly the due ones and
//! attends to them, and the next sweep reads nothing.

use integration_tests::harness::world;
use integration_tests::population::population;
use shared::metrics::Metric;
use shared::table;
use std::collections::BTreeSet;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_unsent_opt_ins_one_sweep_reads_exactly_the_due_ones() {
    let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    let w = world(now, &[]).await;
    let p = population(10_000, 2_000, now);
    let expected = p.expected_due();
    let seeding = p
        .seed(&aws_sdk_dynamodb::Client::new(&w.sdk), &w.p.table_name)
        .await
        .unwrap();
    eprintln!(
        "seeded {} items into moto with BatchWriteItem in {seeding:.2?}",
        p.items.len()
    );

    // The query: exactly the due ones, and nothing else read.
    let started = Instant::now();
    let (due, cost) = w
        .store
        .due_for_attention_measured(now, 100_000)
        .await
        .unwrap();
    eprintln!(
        "due-index query: {} due of {} unsent in {:.2?}; {cost:?}",
        due.len(),
        p.unsent(),
        started.elapsed()
    );
    let got: BTreeSet<String> = due.iter().map(|o| o.login_id.clone()).collect();
    assert_eq!(got.len(), due.len(), "no duplicates");
    assert_eq!(got, expected);
    assert_eq!(
        cost.items_read,
        expected.len() as u64,
        "no item read in vain"
    );
    assert_eq!(cost.requests, table::DUE_SHARDS, "one query per shard");

    // The sweep attends to them: expires what passed its deadline, alerts once what passed its
    // alert time, re-enqueues what is stuck in OPTED_IN.
    let expired = p
        .items
        .iter()
        .filter(|s| !s.opt_in.state.is_terminal() && s.opt_in.deadline_at <= now)
        .count();
    let alerts = p
        .items
        .iter()
        .map(|s| &s.opt_in)
        .filter(|o| {
            !o.state.is_terminal()
                && o.deadline_at > now
                && o.alerted_at.is_none()
                && o.alert_at <= now
        })
        .count();
    let stuck = p
        .items
        .iter()
        .map(|s| &s.opt_in)
        .filter(|o| {
            o.state == shared::domain::State::OptedIn
                && o.deadline_at > now
                && o.created_at + shared::attention::STUCK_AFTER_MS <= now
        })
        .count();
    let started = Instant::now();
    let s = w.sweep().await;
    eprintln!("sweep over moto: {s:?} in {:.2?}", started.elapsed());
    assert_eq!(s.checked, expected.len());
    assert_eq!((s.expired, s.alerted, s.requeued), (expired, alerts, stuck));
    assert_eq!(w.metrics.sum(Metric::DeadlinesMissed) as usize, expired);
    assert_eq!(w.metrics.sum(Metric::OptInsAtRisk) as usize, alerts);
    let published = w.published_alerts().await;
    assert_eq!(published.len(), expired + alerts);

    // Everything due was handled and moved on: the next sweep at the same time reads nothing.
    let (again, cost) = w
        .store
        .due_for_attention_measured(now, 100_000)
        .await
        .unwrap();
    assert!(again.is_empty(), "{} still due", again.len());
    assert_eq!(cost.items_read, 0);
}
