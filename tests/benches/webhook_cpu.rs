//! `make bench` figure (issue 7): CPU per webhook event in the HTTP handler — signature check,
//! parse and the opt-in decisions — with the in-memory ports (no I/O), on one thread.
//!
//! EVENTS signed single-opt-in webhooks (distinct login_ids, so every one takes the full new
//! opt-in path: record, enqueue, schedule) are built first from the API Gateway v2 fixture;
//! only `http_api::handle` is timed. Goal: < 1 ms per event.

use base64::Engine;
use http_api::{Deps, handle};
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::memory::config::{test_config, test_secrets};
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::adapters::memory::queue::MemorySendQueue;
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::facebook::webhook::sign_webhook;
use shared::ports::bundle::Ports;
use std::sync::Arc;
use std::time::Instant;

const NOW: i64 = 1_795_536_000_000;
const PAGE: &str = "200000000000002";
const EVENTS: usize = 20_000;
const GOAL_US: f64 = 1_000.0;

fn deps(store: Arc<MemoryOptInStore>) -> Deps {
    let ports = Ports {
        opt_ins: store.clone(),
        conversations: store.clone(),
        pages: store.clone(),
        erasure: Arc::new(shared::adapters::memory::erasure::MemoryErasure::new(
            store,
            Arc::new(shared::adapters::memory::logins::MemoryLoginStore::new()),
        )),
        logins: Arc::new(shared::adapters::memory::logins::MemoryLoginStore::new()),
        queue: Arc::new(MemorySendQueue::default()),
        retry: Arc::new(shared::adapters::memory::queue::MemoryRetryQueue::default()),
        scheduler: Arc::new(MemoryScheduler::default()),
        events: Arc::new(shared::adapters::memory::events::MemoryEvents::default()),
        follow_ups: Arc::new(shared::adapters::memory::follow_ups::MemoryFollowUps::default()),
        alerts: Arc::new(MemoryAlerts::default()),
        clock: Arc::new(ManualClock::at(NOW)),
        metrics: Arc::new(shared::adapters::memory::metrics::MemoryMetrics::default()),
        facebook: Arc::new(shared::adapters::memory::logins::MemoryFacebookLogin::default()),
        messenger: Arc::new(shared::adapters::memory::messenger::MemoryMessenger::default()),
    };
    Deps::from_ports(test_config(&[]), test_secrets().into(), &ports)
}

fn signed_request(login_id: &str) -> Option<lambda_http::Request> {
    let ts = NOW - 1_000;
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{ts},"messaging":[{{"recipient":{{"id":"{PAGE}"}},"timestamp":{ts},"optin":{{"login_id":"{login_id}"}}}}]}}]}}"#
    );
    let signature = sign_webhook(b"test-app-secret", body.as_bytes());
    let fixture =
        include_str!("../../functions/http-api/tests/fixtures/apigw_v2_post_webhook.json")
            .replace(
                "__BODY__",
                &base64::engine::general_purpose::STANDARD.encode(&body),
            )
            .replace("__BASE64__", "true")
            .replace("__SIGNATURE__", &signature);
    lambda_http::request::from_str(&fixture).ok()
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
    println!("webhook CPU — http_api::handle, in-memory ports, one thread");
    let store = Arc::new(MemoryOptInStore::new());
    let deps = deps(store.clone());
    // Warm-up on separate login_ids (allocator, lazy statics).
    for i in 0..500 {
        if let Some(request) = signed_request(&format!("warm-{i}")) {
            let _ = handle(&deps, request).await;
        }
    }
    let requests: Vec<_> = (0..EVENTS)
        .filter_map(|i| signed_request(&format!("L{i:08}")))
        .collect();
    if requests.len() != EVENTS {
        println!("  failed: could not build the fixture requests");
        return;
    }
    let mut per_event_ns = Vec::with_capacity(EVENTS);
    let mut ok = 0usize;
    let started = Instant::now();
    for request in requests {
        let t = Instant::now();
        let response = handle(&deps, request).await;
        per_event_ns.push(t.elapsed().as_nanos() as u64);
        if response.status() == 200 {
            ok += 1;
        }
    }
    let total = started.elapsed();
    per_event_ns.sort_unstable();
    let pct = |p: f64| per_event_ns[((per_event_ns.len() - 1) as f64 * p) as usize] as f64 / 1e3;
    let mean_us = total.as_secs_f64() * 1e6 / EVENTS as f64;
    println!(
        "  {EVENTS} signed single-opt-in webhooks, {ok} answered 200, {} opt-ins recorded",
        store.all().len() - 500
    );
    println!(
        "  per event: mean {mean_us:.1} µs, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs   (goal < {GOAL_US:.0} µs)",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!();
}
