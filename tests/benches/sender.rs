//! `make bench` figures for the sender (issue 4), printed as plain text:
//!
//! 1. messages per second sustained against the Messenger sandbox with 50 ms added latency and the
//!    Send API limit (300 calls/s per Page, rolling one-second window, 613 beyond it), in the
//!    production fleet shape (10 instances, each paced at 300/10) and as one instance;
//! 2. the wall time of one batch of 10 (goal: about one Graph round trip, not ten);
//! 3. the crash-after-accept window: from Graph's answer to SENT being durable, with the store in
//!    moto's DynamoDB.
//!
//! The opt-in store and the queue are in memory for (1) and (2): moto's DynamoDB emulation cannot
//! take two writes per message at 300 messages per second, so with it the figure measures moto
//! (printed too, for reference, in (4)). Graph is always the sandbox over real HTTP.

use aws_lambda_events::event::sqs::SqsEvent;
use integration_tests::worlds::sender::{SenderWorld, batch_event, sandbox_secrets};
use messenger_sandbox::Limits;
use sender::Deps;
use shared::adapters::clock::SystemClock;
use shared::adapters::graph::GraphClient;
use shared::domain::opt_in::OptInKey;
use shared::domain::opt_in::SendOutcome;
use shared::ports::bundle::Ports;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LATENCY_MS: u64 = 50;
const PAGE_LIMIT: u32 = 300;

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(run());
}

async fn run() {
    println!();
    println!("sender — against the Messenger sandbox over HTTP on 127.0.0.1");
    println!(
        "  sandbox: {LATENCY_MS} ms added to every Send API call, {PAGE_LIMIT} calls/s per Page (rolling 1 s window, 613 beyond it)"
    );
    println!("  store and queue: in memory (see [4] for moto)");
    println!();
    throughput_fleet(10, 6_000).await;
    throughput_one_instance(4, 6_000).await;
    batch_wall_time().await;
    crash_window_and_moto().await;
    println!();
}

/// A sender instance like the first one but with its own Graph client (connection pool) and pacer.
fn another_instance(first: &Deps) -> Deps {
    Deps::from_ports(
        first.config.clone(),
        &Ports {
            messenger: Arc::new(
                GraphClient::new(&first.config, &sandbox_secrets()).expect("graph client"),
            ),
            clock: Arc::new(SystemClock),
            ..first.ports.clone()
        },
    )
}

async fn world(settings: &[(&str, &str)]) -> SenderWorld {
    let mut w = SenderWorld::in_memory(settings).await;
    w.deps.ports.clock = Arc::new(SystemClock);
    w.sandbox.set_limits(Limits {
        rate_limit_per_second: Some(PAGE_LIMIT),
        latency_ms: Some(LATENCY_MS),
    });
    w
}

async fn opt_ins(w: &SenderWorld, n: usize) -> Vec<OptInKey> {
    let mut keys = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let chunk = left.min(50);
        keys.extend(futures::future::join_all((0..chunk).map(|_| w.opt_in())).await);
        left -= chunk;
    }
    keys
}

struct Run {
    /// (when a batch finished, messages sent by then)
    done: Vec<(Instant, usize)>,
    started: Instant,
}

/// `instances` sender instances, each polling batches of 10 from one queue (as the SQS event
/// source does), until it is empty.
async fn drive(instances: Vec<Arc<Deps>>, pollers_per_instance: usize, jobs: Vec<OptInKey>) -> Run {
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<_>>()));
    let sent = Arc::new(Mutex::new(Vec::<(Instant, usize)>::new()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0usize;
    for deps in instances {
        for _ in 0..pollers_per_instance {
            let (deps, queue, sent) = (deps.clone(), queue.clone(), sent.clone());
            n += 1;
            let poller = n;
            tasks.spawn(async move {
                let mut batch_no = 0;
                loop {
                    let batch: Vec<OptInKey> = {
                        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                        let take = q.len().min(10);
                        q.drain(..take).collect()
                    };
                    if batch.is_empty() {
                        return;
                    }
                    batch_no += 1;
                    let ids: Vec<String> = (0..batch.len())
                        .map(|i| format!("p{poller}-b{batch_no}-{i}"))
                        .collect();
                    let records: Vec<(&str, &OptInKey)> =
                        ids.iter().map(String::as_str).zip(batch.iter()).collect();
                    let event: SqsEvent = batch_event(&records, 1);
                    let response = sender::handle_batch(&deps, event).await;
                    let ok = batch.len() - response.batch_item_failures.len();
                    let mut s = sent.lock().unwrap_or_else(|p| p.into_inner());
                    let total = s.last().map_or(0, |l| l.1) + ok;
                    s.push((Instant::now(), total));
                    if !response.batch_item_failures.is_empty() {
                        // Failed sends go back to the queue (none expected).
                        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                        for f in &response.batch_item_failures {
                            if let Some(i) = ids.iter().position(|id| *id == f.item_identifier) {
                                q.push_back(batch[i].clone());
                            }
                        }
                    }
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    let done = sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Run { done, started }
}

fn report(label: &str, run: &Run, w: &SenderWorld, n: usize) {
    let stats = w.sandbox.stats();
    let Some(&(end, total)) = run.done.last() else {
        println!("{label}: nothing sent");
        return;
    };
    let elapsed = end.duration_since(run.started).as_secs_f64();
    // Sustained: the least-squares slope of messages sent against time, the first second (the
    // initial burst of every instance) left out. The pacer releases calls in window-sized steps,
    // so a plain count over an interval would depend on where the interval cuts the steps.
    let points: Vec<(f64, f64)> = run
        .done
        .iter()
        .map(|(t, k)| (t.duration_since(run.started).as_secs_f64(), *k as f64))
        .filter(|(t, _)| *t >= 1.0)
        .collect();
    let sustained = (points.len() >= 2).then(|| {
        let n = points.len() as f64;
        let (mt, mk) = points
            .iter()
            .fold((0.0, 0.0), |(a, b), (t, k)| (a + t / n, b + k / n));
        let cov: f64 = points.iter().map(|(t, k)| (t - mt) * (k - mk)).sum();
        let var: f64 = points.iter().map(|(t, _)| (t - mt) * (t - mt)).sum();
        cov / var
    });
    println!("{label}");
    println!(
        "    {total} of {n} messages in {elapsed:.2} s ({:.1}/s overall); sustained: {}",
        total as f64 / elapsed,
        sustained.map_or("n/a".to_owned(), |s| format!("{s:.1} messages/s"))
    );
    println!(
        "    613 answers: {}   most calls in one 1-s window: {}   Send API calls: {}   delivered: {}",
        stats.rate_limited,
        stats.max_in_window,
        stats.send_requests,
        w.sandbox.inbox().len()
    );
}

async fn throughput_fleet(instances: usize, n: usize) {
    let concurrency = instances.to_string();
    let w = world(&[("SENDER_MAX_CONCURRENCY", concurrency.as_str())]).await;
    let keys = opt_ins(&w, n).await;
    let first = Arc::new(another_instance(&w.deps));
    let mut all = vec![first.clone()];
    for _ in 1..instances {
        all.push(Arc::new(another_instance(&first)));
    }
    let run = drive(all, 1, keys).await;
    report(
        &format!(
            "[1] throughput, production shape: {instances} instances (MaximumConcurrency), each paced at {}/{instances} per window, batches of 10",
            w.deps.config.send.rate_per_second
        ),
        &run,
        &w,
        n,
    );
    w.stop().await;
}

async fn throughput_one_instance(pollers: usize, n: usize) {
    let w = world(&[]).await;
    let keys = opt_ins(&w, n).await;
    let deps = Arc::new(another_instance(&w.deps));
    let run = drive(vec![deps], pollers, keys).await;
    report(
        &format!(
            "[2] throughput, one instance (the local runner's shape): {pollers} pollers sharing one pacer of {} per window",
            w.deps.config.send.rate_per_second
        ),
        &run,
        &w,
        n,
    );
    w.stop().await;
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn batch_wall_time() {
    let rounds = 20;
    let mut figures = Vec::new();
    for (label, in_flight, size) in [
        ("one batch of 10", "10", 10usize),
        ("one send alone (a batch of 1)", "10", 1),
        (
            "one batch of 10 sent one at a time (SENDER_MAX_IN_FLIGHT=1)",
            "1",
            10,
        ),
    ] {
        let w = world(&[("SENDER_MAX_IN_FLIGHT", in_flight)]).await;
        let keys = opt_ins(&w, rounds * size).await;
        let deps = another_instance(&w.deps);
        let mut times = Vec::new();
        for (round, chunk) in keys.chunks(size).enumerate() {
            let ids: Vec<String> = (0..chunk.len()).map(|i| format!("r{round}-{i}")).collect();
            let records: Vec<(&str, &OptInKey)> =
                ids.iter().map(String::as_str).zip(chunk.iter()).collect();
            let started = Instant::now();
            let r = sender::handle_batch(&deps, batch_event(&records, 1)).await;
            times.push(started.elapsed());
            assert!(r.batch_item_failures.is_empty());
        }
        figures.push((label, median(times)));
        w.stop().await;
    }
    println!(
        "[3] wall time of handle_batch ({rounds} rounds each; Graph round trip = {LATENCY_MS} ms + HTTP)"
    );
    for (label, (min, med, max)) in figures {
        println!(
            "    {label}: median {}  (min {}, max {})",
            ms(med),
            ms(min),
            ms(max)
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn crash_window_and_moto() {
    let w = SenderWorld::with_moto(&[]).await;
    w.sandbox.set_limits(Limits {
        rate_limit_per_second: Some(PAGE_LIMIT),
        latency_ms: Some(LATENCY_MS),
    });
    // The window itself: SENT written by the lease owner right after Graph's answer.
    let n = 200;
    let keys = opt_ins(&w, n).await;
    let mut windows = Vec::with_capacity(n);
    for (i, key) in keys.iter().enumerate() {
        let owner = format!("bench:{i}");
        let now = w.now();
        let claimed = w.store.claim_for_send(key, &owner, now, now + 60_000).await;
        assert!(claimed.is_ok_and(|c| c.is_done()));
        let sent = w
            .deps
            .ports
            .messenger
            .send_initial_message(&key.page_id, &key.login_id, "hi")
            .await
            .expect("sent");
        let answered = Instant::now();
        let outcome = SendOutcome::Sent {
            message_id: sent.message_id,
        };
        let written = w.store.finish_send(key, &owner, &outcome, w.now()).await;
        assert!(written.is_ok_and(|t| t.is_done()));
        windows.push(answered.elapsed());
    }
    windows.sort();
    println!(
        "[4] crash-after-accept window, Graph's answer → SENT durable (DynamoDB UpdateItem in moto, {n} sends)"
    );
    println!(
        "    p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&windows, 0.5)),
        ms(percentile(&windows, 0.9)),
        ms(percentile(&windows, 0.99)),
        ms(windows[windows.len() - 1])
    );

    // The whole sender with the store in moto, for reference (moto-bound).
    let m = 500;
    let keys = opt_ins(&w, m).await;
    let mut deps = another_instance(&w.deps);
    deps.ports.clock = Arc::new(SystemClock);
    let run = drive(vec![Arc::new(deps)], 4, keys).await;
    let (end, total) = run.done.last().copied().unwrap_or((run.started, 0));
    let secs = end.duration_since(run.started).as_secs_f64();
    println!(
        "    the whole sender with the store in moto (4 pollers, one instance): {total} messages in {secs:.2} s = {:.1} messages/s (moto-bound)",
        total as f64 / secs
    );
    w.stop().await;
}
