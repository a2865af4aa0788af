//! `make bench`: what one sweep costs. Seeds moto's DynamoDB with BENCH_UNSENT (default 10,000)
//! unsent opt-ins spread over a day plus BENCH_TERMINAL (default 2,000) terminal ones, as the due
//! index holds them in steady state (the previous sweep 15 minutes ago), then compares the reads of
//!
//! - the sweep's query: `due_shard = DUE#n AND due_at <= now` in each of the 8 shards;
//! - the same index read up to the whole window (what a sweep keyed on the alert time with a
//!   24-hour horizon reads: every unsent opt-in);
//! - a Scan of the table.
//!
//! Items read are DynamoDB's own counts (`ScannedCount`). Moto reports a constant consumed
//! capacity, so read capacity is also estimated from the item sizes: per request,
//! ceil(bytes / 4 KB) × 0.5 RCU (eventually consistent).

use integration_tests::population::{WINDOW_MS, population};
use local_runner::moto::{MotoServer, workspace_root};
use local_runner::provision::provision;
use shared::adapters::dynamodb::opt_ins::{DueQueryCost, DynamoOptInStore, item_size};
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn row(name: &str, cost: &DueQueryCost, returned: usize, took: Duration) {
    println!(
        "  {name:<44} {:>8} {:>11} {:>9} {:>10.1} {:>10.1} {:>9.2?}",
        cost.requests,
        cost.items_read,
        returned,
        cost.bytes_read as f64 / 1024.0,
        cost.estimated_rcu,
        took
    );
}

async fn scan_cost(client: &aws_sdk_dynamodb::Client, table: &str) -> (DueQueryCost, usize) {
    let mut cost = DueQueryCost::default();
    let mut pages = client.scan().table_name(table).into_paginator().send();
    let mut items = 0;
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(p) => p,
            Err(e) => panic!("scan: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)),
        };
        let bytes: u64 = page.items().iter().map(item_size).sum();
        cost.requests += 1;
        cost.items_read += u64::try_from(page.scanned_count).unwrap_or(0);
        cost.bytes_read += bytes;
        cost.estimated_rcu += bytes.div_ceil(4096).max(1) as f64 * 0.5;
        items += page.items().len();
    }
    (cost, items)
}

#[tokio::main]
async fn main() {
    let unsent = env_usize("BENCH_UNSENT", 10_000);
    let terminal = env_usize("BENCH_TERMINAL", 2_000);
    let moto = match MotoServer::start() {
        Ok(m) => m,
        Err(e) => panic!("moto: {e} (run `make venv`)"),
    };
    let sdk = moto.sdk_config().await;
    let p = match provision(
        &workspace_root().join("template.yaml"),
        &sdk,
        "bench",
        r#"{"app_secret":"a","page_access_token":"p","verify_token":"v"}"#,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => panic!("provision: {e}"),
    };
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoOptInStore::new(client.clone(), &p.table_name);
    let now = chrono::Utc::now().timestamp_millis();
    let population = population(unsent, terminal, now);
    let seeding = match population.seed(&client, &p.table_name).await {
        Ok(d) => d,
        Err(e) => panic!("seed: {e}"),
    };
    let due = population.expected_due().len();

    println!();
    println!(
        "sweep cost: {unsent} unsent + {terminal} terminal opt-ins in moto (seeded with BatchWriteItem in {seeding:.1?}); {due} due now"
    );
    println!(
        "  {:<44} {:>8} {:>11} {:>9} {:>10} {:>10} {:>9}",
        "read", "requests", "items read", "returned", "KiB read", "est. RCU", "time"
    );
    let started = Instant::now();
    let (found, cost) = match store.due_for_attention_measured(now, usize::MAX / 2).await {
        Ok(r) => r,
        Err(e) => panic!("query: {e}"),
    };
    row(
        "sweep: due_at <= now, 8 shards",
        &cost,
        found.len(),
        started.elapsed(),
    );
    assert_eq!(
        found.len(),
        due,
        "the sweep must return exactly the due ones"
    );
    let started = Instant::now();
    let (all, whole) = match store
        .due_for_attention_measured(now + WINDOW_MS, usize::MAX / 2)
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("query: {e}"),
    };
    row(
        "same index up to now + 24 h (every unsent)",
        &whole,
        all.len(),
        started.elapsed(),
    );
    let started = Instant::now();
    let (scan, items) = scan_cost(&client, &p.table_name).await;
    row("Scan of the table", &scan, items, started.elapsed());
    println!(
        "  per sweep: {:.1} % of the unsent opt-ins read; at rate(15 minutes), ~{:.0} read units a day",
        100.0 * cost.items_read as f64 / unsent.max(1) as f64,
        cost.estimated_rcu * 96.0
    );
    println!();
}
