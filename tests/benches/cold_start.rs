//! `make bench` figures for cold start (issue 7): each release binary is spawned against a minimal
//! Lambda Runtime API served here on 127.0.0.1, with its AWS services (and its secret) in moto.
//!
//! Per function, over RUNS spawns: spawn → first `GET …/invocation/next` (init: config, SDK
//! clients, the secret read from Secrets Manager), spawn → first response (init plus one valid
//! event), and the peak RSS (`VmHWM` in `/proc/<pid>/status`, read just before the process is
//! killed). Goals: init < 30 ms, RSS < 32 MB. Beside the wall-clock init, the CPU time the process
//! spent until its first `next` (its threads' `/proc/<pid>/task/*/schedstat`): on a machine shared
//! with other work it moves far less than the wall clock, so it compares two builds better.
//!
//! Issue 13 §5: `hello-lambda` (infra/hello-lambda: the smallest `lambda_runtime` function, same
//! release profile) is spawned in the same run, and each function's init (wall clock and CPU) is
//! printed as a ratio to it: absolute times drift on a shared machine, the ratio holds. Goal ≤ 1.5×.
//!
//! The binaries are `target/release/{hello-lambda,http-api,sender,deadline-alerts,event-sender}` (or those in
//! `COLD_START_BIN_DIR`); `make bench` builds them first (`make package` does too). Measured on the machine running the bench (x86_64 locally),
//! with moto on loopback, so the secret read is a loopback round trip, not a VPC-less AWS call.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use local_runner::moto::{MotoServer, workspace_root};
use shared::domain::jobs::SendJob;
use shared::domain::opt_in::OptInKey;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(15);
const INIT_GOAL_MS: f64 = 30.0;
const RSS_GOAL_MB: f64 = 32.0;
/// Each function's init against `hello-lambda`'s, measured in the same run.
const RATIO_GOAL: f64 = 1.5;
/// The yardstick: no config, no SDK, no secret.
const HELLO: &str = "hello-lambda";

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

/// `target/release`, from this bench's own path (`target/release/deps/cold_start-…`), or
/// `COLD_START_BIN_DIR` when set: a directory holding the three binaries, e.g. a build kept aside to
/// compare two release profiles on the same machine under the same load.
fn release_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("COLD_START_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

async fn run() {
    println!();
    println!("cold start — release binaries against a local Lambda Runtime API, AWS in moto");
    let Some(dir) = release_dir() else {
        eprintln!("cannot locate the target directory");
        return;
    };
    let functions = [
        HELLO,
        "http-api",
        "sender",
        "deadline-alerts",
        "event-sender",
    ];
    let missing: Vec<_> = functions.iter().filter(|f| !dir.join(f).exists()).collect();
    if !missing.is_empty() {
        println!(
            "  skipped: {missing:?} not built in {}; run `make bench` (it builds them) or \
             `cargo build --release --bin hello-lambda --bin http-api --bin sender --bin deadline-alerts --bin event-sender`",
            dir.display()
        );
        return;
    }
    let moto = match MotoServer::start() {
        Ok(m) => m,
        Err(e) => {
            println!("  skipped: {e}");
            return;
        }
    };
    let sdk = moto.sdk_config().await;
    let secrets = local_runner::LocalSecrets::default();
    let provisioned = match local_runner::provision::provision(
        &workspace_root().join("template.yaml"),
        &sdk,
        "coldstart",
        &secrets.to_json(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            println!("  skipped: provisioning failed: {e}");
            return;
        }
    };
    let env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/coldstart".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
        ("TABLE_NAME", provisioned.table_name.clone()),
        ("SEND_QUEUE_URL", provisioned.send_queue_url.clone()),
        ("SCHEDULE_GROUP", provisioned.schedule_group.clone()),
        (
            "SCHEDULER_ROLE_ARN",
            "arn:aws:iam::123456789012:role/coldstart-scheduler".into(),
        ),
        (
            "DEADLINE_FUNCTION_ARN",
            "arn:aws:lambda:us-east-1:123456789012:function:coldstart-deadline-alerts".into(),
        ),
        ("SCHEDULER_DLQ_ARN", provisioned.scheduler_dlq_arn.clone()),
        ("ALERT_TOPIC_ARN", provisioned.alert_topic_arn.clone()),
        ("SECRET_ID", provisioned.secret_id.clone()),
        ("FB_APP_ID", messenger_sandbox::DEFAULT_APP_ID.into()),
        ("FB_PAGE_ID", messenger_sandbox::DEFAULT_PAGE_ID.into()),
        ("PUBLIC_BASE_URL", "https://api.example.com".into()),
        ("ALLOWED_RETURN_ORIGINS", "https://www.example.com".into()),
        ("RUST_LOG", "warn".into()),
    ];
    // The event sender's (the others only publish to the queue when EVENTS_URL is set).
    let mut env = env;
    if let Some(events) = &provisioned.events {
        env.extend([
            ("EVENTS_URL", "http://127.0.0.1:9/events".to_owned()),
            ("EVENTS_QUEUE_URL", events.queue_url.clone()),
            ("EVENTS_DLQ_URL", events.dlq_url.clone()),
            ("EVENTS_SIGNING_SECRET_ID", events.signing_secret_id.clone()),
        ]);
    }
    println!(
        "  {RUNS} spawns per function; moto at {}; AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
        moto.endpoint
    );
    println!("  binaries: {}", dir.display());
    println!();
    println!(
        "  {:<16} {:>22} {:>24} {:>20} {:>21}",
        "function",
        "init ms (median/max)",
        "response ms (median/max)",
        "peak RSS MB (med/max)",
        "init CPU ms (med/max)"
    );
    // (function, median init ms, median init CPU ms), for the ratios.
    let mut medians: Vec<(&str, f64, Option<f64>)> = Vec::new();
    for function in functions {
        let event = event_for(function);
        let mut samples = Vec::new();
        let mut failures = Vec::new();
        for _ in 0..RUNS {
            match cold_start(&dir.join(function), function, &env, event.clone()).await {
                Ok(s) => samples.push(s),
                Err(e) => failures.push(e),
            }
        }
        if samples.is_empty() {
            println!("  {function:<16} failed: {}", failures.join("; "));
            continue;
        }
        let init: Vec<f64> = samples.iter().map(|s| s.init_ms).collect();
        let resp: Vec<f64> = samples.iter().map(|s| s.response_ms).collect();
        let rss: Vec<f64> = samples.iter().map(|s| s.rss_mb).collect();
        let cpu: Vec<f64> = samples.iter().filter_map(|s| s.init_cpu_ms).collect();
        medians.push((
            function,
            median(&init),
            (!cpu.is_empty()).then(|| median(&cpu)),
        ));
        let cpu = if cpu.is_empty() {
            format!("{:>21}", "n/a")
        } else {
            format!("{:>11.1} / {:>7.1}", median(&cpu), max(&cpu))
        };
        println!(
            "  {function:<16} {:>10.1} / {:>9.1} {:>12.1} / {:>9.1} {:>10.1} / {:>7.1} {cpu}",
            median(&init),
            max(&init),
            median(&resp),
            max(&resp),
            median(&rss),
            max(&rss),
        );
        if !failures.is_empty() {
            println!(
                "    {} failed runs: {}",
                failures.len(),
                failures.join("; ")
            );
        }
    }
    println!();
    println!(
        "  goals: init < {INIT_GOAL_MS} ms, peak RSS < {RSS_GOAL_MB} MB (median and max above)"
    );
    print_ratios(&medians);
    println!();
}

/// Each function's median init (wall clock and CPU) over `hello-lambda`'s, from the same run.
fn print_ratios(medians: &[(&str, f64, Option<f64>)]) {
    let Some(&(_, hello_init, hello_cpu)) = medians.iter().find(|m| m.0 == HELLO) else {
        println!("  ratios: {HELLO} did not start; no ratio");
        return;
    };
    println!();
    println!("  init as a ratio to {HELLO} (same run; goal ≤ {RATIO_GOAL}×)");
    for &(function, init, cpu) in medians.iter().filter(|m| m.0 != HELLO) {
        let wall = init / hello_init;
        let cpu_ratio = match (cpu, hello_cpu) {
            (Some(c), Some(h)) if h > 0.0 => format!("{:.2}×", c / h),
            _ => "n/a".to_owned(),
        };
        println!(
            "  {function:<16} wall {wall:>5.2}×  CPU {cpu_ratio:>6}  {}",
            if wall <= RATIO_GOAL {
                "ok"
            } else {
                "over the goal"
            }
        );
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

/// One valid event per function, as the real trigger would deliver it.
fn event_for(function: &str) -> serde_json::Value {
    match function {
        "http-api" => serde_json::json!({
            "version": "2.0",
            "routeKey": "GET /healthz",
            "rawPath": "/healthz",
            "rawQueryString": "",
            "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "abc123",
                "http": {"method": "GET", "path": "/healthz", "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.1", "userAgent": "bench"},
                "requestId": "bench",
                "routeKey": "GET /healthz",
                "stage": "$default",
                "time": "24/Nov/2026:16:00:00 +0000",
                "timeEpoch": 1_795_536_000_000_i64
            },
            "isBase64Encoded": false
        }),
        // A job for an opt-in that is not in the table: claimed nowhere, acknowledged.
        "sender" => {
            let key = OptInKey::new(messenger_sandbox::DEFAULT_PAGE_ID, "unknown-login");
            let body = serde_json::to_string(&SendJob::for_key(&key)).unwrap_or_default();
            serde_json::json!({"Records": [{
                "messageId": "m-1",
                "receiptHandle": "receipt-1",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:send",
                "awsRegion": "us-east-1"
            }]})
        }
        // An empty batch: the event sender starts (its own secret read) and answers.
        "event-sender" => serde_json::json!({"Records": []}),
        HELLO => serde_json::json!({}),
        _ => serde_json::json!({"kind": "sweep", "version": 1}),
    }
}

struct Sample {
    init_ms: f64,
    init_cpu_ms: Option<f64>,
    response_ms: f64,
    rss_mb: f64,
}

#[derive(Default)]
struct Record {
    served: bool,
    pid: Option<u32>,
    first_next: Option<Instant>,
    init_cpu_ms: Option<f64>,
    response: Option<Instant>,
    error: Option<String>,
}

#[derive(Clone)]
struct Api {
    event: Arc<serde_json::Value>,
    record: Arc<Mutex<Record>>,
}

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

async fn next(State(api): State<Api>) -> Result<(HeaderMap, String), StatusCode> {
    let first = {
        let mut r = api.record.lock().unwrap_or_else(|p| p.into_inner());
        if r.first_next.is_none() {
            r.first_next = Some(Instant::now());
            r.init_cpu_ms = r.pid.and_then(cpu_ms);
        }
        !std::mem::replace(&mut r.served, true)
    };
    if !first {
        // One event per process: later polls wait until the process is killed.
        std::future::pending::<()>().await;
    }
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", REQUEST_ID.into());
    put("lambda-runtime-deadline-ms", deadline.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:coldstart".into(),
    );
    put(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into(),
    );
    put("content-type", "application/json".into());
    Ok((headers, api.event.to_string()))
}

async fn response(State(api): State<Api>, Path(_id): Path<String>) -> StatusCode {
    let mut r = api.record.lock().unwrap_or_else(|p| p.into_inner());
    r.response.get_or_insert_with(Instant::now);
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(api): State<Api>,
    Path(_id): Path<String>,
    body: String,
) -> StatusCode {
    let mut r = api.record.lock().unwrap_or_else(|p| p.into_inner());
    r.error.get_or_insert(format!("invocation error: {body}"));
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<Api>, body: String) -> StatusCode {
    let mut r = api.record.lock().unwrap_or_else(|p| p.into_inner());
    r.error.get_or_insert(format!("init error: {body}"));
    StatusCode::ACCEPTED
}

/// CPU time `pid` has used so far, in ms: the sum of its live threads' run time (the first field
/// of `/proc/<pid>/task/<tid>/schedstat`, in ns).
fn cpu_ms(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    (ns > 0).then(|| ns as f64 / 1e6)
}

/// Peak resident set size of `pid`, in MB (`VmHWM`, kB in /proc).
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn cold_start(
    binary: &std::path::Path,
    function: &str,
    env: &[(&str, String)],
    event: serde_json::Value,
) -> Result<Sample, String> {
    let api = Api {
        event: Arc::new(event),
        record: Arc::new(Mutex::new(Record::default())),
    };
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("listen: {e}"))?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", format!("coldstart-{function}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let spawned = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("spawn: {e}"))?;
    let pid = child.id();
    api.record.lock().unwrap_or_else(|p| p.into_inner()).pid = Some(pid);

    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let (first_next, response, error) = {
            let r = api.record.lock().unwrap_or_else(|p| p.into_inner());
            (r.first_next, r.response, r.error.clone())
        };
        if let Some(e) = error {
            break Err(e);
        }
        if let (Some(n), Some(r)) = (first_next, response) {
            break Ok((n, r));
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("exited with {status}"));
        }
        if spawned.elapsed() > TIMEOUT {
            break Err("no response within the timeout".into());
        }
    };
    let rss = peak_rss_mb(pid);
    // Child::kill signals exactly this PID.
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    let (first_next, response) = outcome?;
    let init_cpu_ms = api
        .record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .init_cpu_ms;
    Ok(Sample {
        init_ms: first_next.duration_since(spawned).as_secs_f64() * 1e3,
        init_cpu_ms,
        response_ms: response.duration_since(spawned).as_secs_f64() * 1e3,
        rss_mb: rss.ok_or("no /proc status")?,
    })
}
