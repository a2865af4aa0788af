//! `make bench` figures for events to the website backend (issue 12), printed as plain text:
//! delivery latency, from `publish` (the emitting function's SendMessage onto the events queue) to
//! the request arriving at a receiver on 127.0.0.1, through the whole local path: moto's SQS, the
//! local event source mapping (long polling, as Lambda's) and the event sender (signing, one
//! HTTP POST). [1] one event at a time, paced, so each figure is one event's own latency;
//! [2] a burst, for the throughput of one poller.

use integration_tests::event_receiver::EventReceiver;
use integration_tests::worlds::stack::start_stack;
use shared::config::env;
use shared::domain::events::{EventType, OutboundEvent};
use std::time::{Duration, Instant};

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

fn event(i: usize) -> OutboundEvent {
    let mut data = serde_json::Map::new();
    data.insert("asid".into(), format!("bench-{i}").into());
    data.insert("state".into(), "SENT".into());
    OutboundEvent::new(
        EventType::MessageSent,
        &format!("bench-{}-{i}", uuid::Uuid::new_v4()),
        1_764_000_000_000,
        data,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn run() {
    let receiver = EventReceiver::start().await;
    let url = receiver.url.clone();
    let stack = start_stack(move |s| s.with(env::EVENTS_URL, url)).await;
    let publisher = shared::bootstrap::events_publisher(
        &stack.local.config,
        &aws_sdk_sqs::Client::new(&stack.sdk).into(),
    );
    println!();
    println!(
        "events — publish → received at a receiver on 127.0.0.1, through moto's SQS, the local SQS event source and the event sender"
    );

    // [1] One at a time, 10 per second.
    let n = 100;
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let e = event(i);
        let started = Instant::now();
        if let Err(err) = publisher.publish(&e).await {
            println!("  publish failed: {err}");
            return;
        }
        let until = started + Duration::from_secs(10);
        let arrived = loop {
            if let Some(d) = receiver.delivered().iter().find(|d| d.webhook_id() == e.id) {
                break Some(d.at);
            }
            if Instant::now() >= until {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        match arrived {
            Some(at) => latencies.push(at.duration_since(started)),
            None => println!("  event {i} not received within 10 s"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    latencies.sort();
    if latencies.is_empty() {
        println!("  nothing delivered");
        return;
    }
    println!(
        "[1] one at a time ({} events, 10/s): p50 {}  p90 {}  p99 {}  max {}",
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1])
    );

    // [2] A burst: 200 published at once, one poller delivering.
    let before = receiver.delivered().len();
    let burst = 200;
    let started = Instant::now();
    for i in 0..burst {
        let _ = publisher.publish(&event(n + i)).await;
    }
    let published = started.elapsed();
    let all = receiver
        .wait_for_delivered(before + burst, Duration::from_secs(60))
        .await;
    let took = started.elapsed();
    println!(
        "[2] a burst of {burst} (published in {}): {} delivered in {:.2} s = {:.0} events/s (one poller, batches of 10)",
        ms(published),
        all.len() - before,
        took.as_secs_f64(),
        (all.len() - before) as f64 / took.as_secs_f64()
    );
    println!();
    stack.stop().await;
}
