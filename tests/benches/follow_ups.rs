//! `make bench` figures for the follow-up API (issue 12), printed as plain text: the accept
//! latency of `POST /v1/users/{asid}/messages` (API key check, the person read, the policy guard,
//! the conditional FOLLOWUP + idempotency write, the job on the send queue), measured at the
//! client through the local stack (axum in front of the http-api handler, moto for DynamoDB and
//! SQS), one request at a time; and accept → `sent` as the API reports it (the sender's SQS poll,
//! the guard again, the Send API in the sandbox).

use integration_tests::worlds::stack::start_stack;
use shared::domain::opt_in::State;
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn summary(label: &str, mut figures: Vec<Duration>) {
    figures.sort();
    println!(
        "  {label:<28} n={:<4} p50 {:>9}  p99 {:>9}  max {:>9}",
        figures.len(),
        ms(percentile(&figures, 0.50)),
        ms(percentile(&figures, 0.99)),
        ms(figures.last().copied().unwrap_or_default()),
    );
}

async fn run() {
    let stack = start_stack(|s| s).await;
    let http = reqwest::Client::new();
    let api = stack.local.api_base_url.clone();
    let key = local_runner::DEFAULT_LOCAL_API_KEY;

    // One person who logged in, got the initial message and wrote to the Page.
    let token = stack
        .sandbox_post(
            "/_sandbox/user_token",
            serde_json::json!({"webhook": "before"}),
        )
        .await;
    let asid = token["asid"].as_str().unwrap_or_default().to_owned();
    let login = http
        .post(format!("{api}/v1/logins"))
        .bearer_auth(key)
        .json(&serde_json::json!({"user_access_token": token["access_token"]}))
        .send()
        .await;
    if !login.as_ref().is_ok_and(|r| r.status() == 201) {
        eprintln!("the login was not recorded: {login:?}");
        std::process::exit(1);
    }
    let login_id = shared::facebook::crypto::derive_login_id(
        messenger_sandbox::DEFAULT_CLIENT_TOKEN,
        &asid,
        messenger_sandbox::DEFAULT_APP_ID,
        messenger_sandbox::DEFAULT_PAGE_ID,
    );
    stack.wait_for_state(&login_id, State::Sent).await;
    stack
        .sandbox_post(
            "/_sandbox/message",
            serde_json::json!({"login_id": login_id, "text": "Hello"}),
        )
        .await;

    println!();
    println!(
        "follow-ups — POST /v1/users/{{asid}}/messages through the local stack (moto): [1] accept, back to back; [2] accept → sent, one at a time"
    );
    let post = |i: usize| {
        http.post(format!("{api}/v1/users/{asid}/messages"))
            .bearer_auth(key)
            .header("Idempotency-Key", format!("bench-{i}"))
            .json(&serde_json::json!({"text": format!("Follow-up {i}")}))
            .send()
    };
    // [1] Accept latency, back to back.
    let n = 200;
    let mut accepted = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        match post(i).await {
            Ok(r) if r.status() == 202 => accepted.push(started.elapsed()),
            other => {
                eprintln!("follow-up {i} not accepted: {other:?}");
                std::process::exit(1);
            }
        }
    }
    summary("accept (202)", accepted);
    // Let the sender drain what [1] queued before timing sends.
    tokio::time::sleep(Duration::from_secs(20)).await;

    // [2] Accept → `sent`, one follow-up at a time, as GET …/messages/{id} reports it (polled
    // every 10 ms).
    let mut sent = Vec::with_capacity(30);
    for i in n..n + 30 {
        let started = Instant::now();
        let id = match post(i).await {
            Ok(r) if r.status() == 202 => {
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                v["id"].as_str().unwrap_or_default().to_owned()
            }
            other => {
                eprintln!("follow-up {i} not accepted: {other:?}");
                std::process::exit(1);
            }
        };
        loop {
            let v: serde_json::Value = match http
                .get(format!("{api}/v1/users/{asid}/messages/{id}"))
                .bearer_auth(key)
                .send()
                .await
            {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            if v["state"] == "sent" {
                sent.push(started.elapsed());
                break;
            }
            if started.elapsed() > Duration::from_secs(60) || v["state"] == "failed" {
                eprintln!("follow-up {id} not sent: {v}");
                std::process::exit(1);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    summary("accept → sent", sent);
    stack.stop().await;
}
