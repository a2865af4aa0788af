//! `make bench` figures for issue 13 §5: what one opt-in costs, measured rather than counted.
//!
//! A moto server with the meter on (`MOTO_METER_FILE`, infra/python/moto_meter.py: one JSON line
//! per AWS request, DynamoDB capacity by DynamoDB's published rules), the Messenger sandbox and
//! the local stack; N opt-ins arrive as Meta sends them (signed `messaging_optins` webhooks, from
//! the sandbox, a few at a time); the bench waits until every one is SENT and its message is in
//! the sandbox's inbox exactly once, then reads the meter and prints per opt-in: WRU (table, per
//! index, per request kind), RRU, SQS requests by action, Scheduler calls, SNS publishes,
//! invocations per function and the batch sizes seen, log bytes per function in the production
//! format, and the $ per million opt-ins line by line with docs/cost.md's prices, at the observed
//! batch size and at full batches of 10.
//!
//! Logs: the functions run in-process, each invocation inside the span Lambda's runtime opens
//! (local_runner::invocation); a JSON subscriber per function (the functions' own format,
//! `shared::logging` with `AWS_LAMBDA_LOG_FORMAT=JSON`, INFO) counts the bytes of the lines
//! inside that function's invocations. EMF metric lines go to
//! stdout, not through tracing: the measurement runs in a child process of this binary and the
//! parent counts the EMF lines of its stdout.
//!
//! The bench fails (exit 1) when the meter recorded nothing, when an opt-in was not SENT or its
//! message not delivered exactly once: no silent zeros.
//!
//! `cargo bench -p integration-tests --bench cost_per_opt_in` (release, 200 opt-ins) or
//! `cargo test -p integration-tests --bench cost_per_opt_in` (debug build, 40 opt-ins).
//! `COST_OPT_INS=N` sets the count; `COST_EVENTS=1` measures with events on (issue 12).

use futures::StreamExt;
use lambda_runtime::tracing::subscriber as ts;
use lambda_runtime::tracing::{Level, Subscriber, span};
use local_runner::invocation::Function;
use local_runner::moto::MotoServer;
use local_runner::{LocalSettings, LocalStack};
use serde::{Deserialize, Serialize};
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::config::env;
use shared::domain::opt_in::{OptInKey, State};
use shared::ports::opt_ins::OptInStore;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ts::layer::SubscriberExt;
use ts::util::SubscriberInitExt;
use ts::{Layer, filter};

/// Set in the child process: where it writes what it measured.
const CHILD_RESULTS: &str = "COST_BENCH_RESULTS";
/// The access key id of the bench's own reads (left out of the figures).
const OBSERVER: &str = "cost-bench-observer";
/// Webhooks in flight at once (Meta delivers opt-ins as people click, concurrently).
const CONCURRENCY: usize = 8;
/// The span Lambda's runtime opens per invocation (local_runner::invocation).
const INVOKE_SPAN: &str = "Lambda runtime invoke";

// docs/cost.md's prices (us-east-1, on demand) and assumed durations.
const API_PER_M: f64 = 1.00;
const LAMBDA_REQUEST_PER_M: f64 = 0.20;
const LAMBDA_GB_S: f64 = 0.000_013_333_4;
const MEMORY_GB: f64 = 0.25;
const HTTP_API_SECONDS: f64 = 0.030;
const SENDER_SECONDS_PER_BATCH: f64 = 0.300;
const WRU_PER_M: f64 = 0.625;
const RRU_PER_M: f64 = 0.125;
const SQS_PER_M: f64 = 0.40;
const SCHEDULER_PER_M: f64 = 1.00;
const SNS_PER_M: f64 = 0.50;
const SECRETS_PER_CALL: f64 = 0.05 / 10_000.0;
const LOGS_PER_GB: f64 = 0.50;
/// CloudWatch Logs counts 26 bytes per event on top of its message (PutLogEvents' batch size
/// rule, the API reference); billed ingestion is assumed to count the same.
const LOG_EVENT_OVERHEAD: f64 = 26.0;

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct LogBytes {
    bytes: u64,
    lines: u64,
}

/// What the child process measured (the meter and EMF lines are read by the parent).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Measured {
    opt_ins: usize,
    events: bool,
    seconds: f64,
    meter_file: PathBuf,
    meter_from: u64,
    logs: BTreeMap<String, LogBytes>,
    /// The first lines of each function (distinct messages), as written.
    samples: BTreeMap<String, Vec<String>>,
    invocations: BTreeMap<String, u64>,
    delivered: usize,
    facebook_path_segment: String,
    /// The send queue's name (the sender's batches are its receives).
    send_queue: String,
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("cost bench FAILED: {message}");
    std::process::exit(1)
}

fn main() {
    match std::env::var_os(CHILD_RESULTS) {
        Some(path) => child(PathBuf::from(path)),
        None => parent(),
    }
}

// ---- the child: the run itself ----

/// How many lines of each function the report shows (the first ones of distinct messages).
const SAMPLE_LINES: usize = 3;

/// A writer that counts what the subscriber writes (one write per formatted line) and keeps the
/// first lines of distinct messages as samples.
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<(LogBytes, Vec<String>)>>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        c.0.lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        c.0.bytes += buf.iter().filter(|b| **b != b'\n').count() as u64;
        let line = String::from_utf8_lossy(buf).trim_end().to_owned();
        let message = |l: &str| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["fields"]["message"].clone())
                .unwrap_or_default()
        };
        if c.1.len() < SAMPLE_LINES && !c.1.iter().any(|l| message(l) == message(&line)) {
            c.1.push(line);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> ts::fmt::MakeWriter<'a> for Counter {
    type Writer = Counter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Counts the invocation spans per function (the span's target names the function).
#[derive(Clone, Default)]
struct Invocations(Arc<Mutex<BTreeMap<String, u64>>>);

impl<S: Subscriber> Layer<S> for Invocations {
    fn on_new_span(
        &self,
        attrs: &span::Attributes<'_>,
        _id: &span::Id,
        _ctx: ts::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == INVOKE_SPAN {
            let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
            *counts
                .entry(attrs.metadata().target().to_owned())
                .or_default() += 1;
        }
    }
}

/// One JSON subscriber per function, in the production format, each counting the INFO (and
/// above) lines inside that function's invocations.
fn capture_logs() -> (BTreeMap<String, Counter>, Invocations) {
    let mut counters = BTreeMap::new();
    let mut layers = Vec::new();
    for function in Function::ALL {
        let name = function.name();
        let counter = Counter::default();
        counters.insert(name.to_owned(), counter.clone());
        let layer = shared::logging::layer(true, counter)
            .with_filter(filter::dynamic_filter_fn(move |meta, cx| {
                if *meta.level() > Level::INFO {
                    return false;
                }
                meta.is_span()
                    || cx
                        .lookup_current()
                        .is_some_and(|s| s.scope().any(|s| s.metadata().target() == name))
            }))
            .boxed();
        layers.push(layer);
    }
    let invocations = Invocations::default();
    if let Err(e) = ts::registry()
        .with(layers)
        .with(invocations.clone())
        .try_init()
    {
        fail(format!("a subscriber is already set: {e}"));
    }
    (counters, invocations)
}

fn child(results: PathBuf) {
    let (counters, invocations) = capture_logs();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("cannot start the runtime: {e}")));
    let mut measured = runtime.block_on(measure());
    for (function, counter) in &counters {
        let c = counter.0.lock().unwrap_or_else(|p| p.into_inner());
        measured.logs.insert(function.clone(), c.0);
        measured.samples.insert(function.clone(), c.1.clone());
    }
    measured.invocations = invocations
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let json = serde_json::to_vec(&measured).unwrap_or_default();
    if let Err(e) = std::fs::write(&results, json) {
        fail(format!("{}: {e}", results.display()));
    }
}

fn opt_in_count() -> usize {
    match std::env::var("COST_OPT_INS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) if n > 0 => n,
        _ if cfg!(debug_assertions) => 40,
        _ => 200,
    }
}

async fn measure() -> Measured {
    let opt_ins = opt_in_count();
    let events = std::env::var("COST_EVENTS").is_ok_and(|v| v == "1");
    let meter_file = std::env::temp_dir().join(format!(
        "cost-meter-{}.jsonl",
        uuid::Uuid::new_v4().simple()
    ));
    let meter = meter_file.to_string_lossy().into_owned();
    // Created empty here: a moto that does not meter leaves it empty, and the report fails.
    if let Err(e) = std::fs::File::create(&meter_file) {
        fail(format!("{meter}: {e}"));
    }
    let moto = MotoServer::start_with_env(&[("MOTO_METER_FILE", &meter)])
        .unwrap_or_else(|e| fail(format!("cannot start moto: {e}")));
    let sdk = moto.sdk_config().await;
    let observer = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            OBSERVER, "x", None, None, "bench",
        ))
        .endpoint_url(&moto.endpoint)
        .load()
        .await;
    let sandbox = messenger_sandbox::start(
        messenger_sandbox::SandboxConfig::default(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap_or_else(|e| fail(format!("sandbox does not start: {e}")));
    let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let stack_name = format!("cost-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut settings = LocalSettings::new(template, stack_name, ([127, 0, 0, 1], 0).into())
        .with(env::GRAPH_API_BASE_URL, sandbox.base_url.clone())
        .with(env::FACEBOOK_WEB_BASE_URL, sandbox.base_url.clone());
    if !events {
        // The template's default: EventsUrl empty, events off.
        settings = settings.with(env::EVENTS_URL, "");
    }
    let local = LocalStack::start(settings, &sdk)
        .await
        .unwrap_or_else(|e| fail(format!("local stack does not start: {e}")));
    sandbox.set_webhook_url(&format!("{}/webhooks/messenger", local.facebook_base_url()));
    let store = DynamoOptInStore::new(
        aws_sdk_dynamodb::Client::new(&observer),
        local.provisioned.table_name.clone(),
    );
    // Start-up requests (provisioning, secret reads) are not per opt-in: count from here.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let meter_from = std::fs::metadata(&meter_file).map(|m| m.len()).unwrap_or(0);

    eprintln!(
        "cost bench: {opt_ins} opt-ins, {CONCURRENCY} webhooks in flight, events {}",
        if events { "on" } else { "off" }
    );
    let started = Instant::now();
    let http = reqwest::Client::new();
    let optin_url = format!("{}/_sandbox/optin", sandbox.base_url);
    let login_ids: Vec<String> = futures::stream::iter(0..opt_ins)
        .map(|i| {
            let (http, url) = (http.clone(), optin_url.clone());
            async move {
                let answer: serde_json::Value =
                    match http.post(&url).json(&serde_json::json!({})).send().await {
                        Ok(r) => r.json().await.unwrap_or_default(),
                        Err(e) => fail(format!("opt-in {i}: {e}")),
                    };
                if answer["webhook_statuses"] != serde_json::json!([200]) {
                    fail(format!(
                        "opt-in {i}: the webhook answered {}",
                        answer["webhook_statuses"]
                    ));
                }
                answer["login_id"].as_str().unwrap_or_default().to_owned()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    if login_ids.iter().any(String::is_empty) {
        fail("an opt-in has no login_id");
    }

    // Every opt-in SENT (read by the observer, whose requests the figures leave out).
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut waiting: Vec<&String> = login_ids.iter().collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for login_id in waiting {
            let key = OptInKey::new(messenger_sandbox::DEFAULT_PAGE_ID, login_id.as_str());
            match store.get_opt_in(&key).await {
                Ok(Some(item)) if item.state == State::Sent => {}
                _ => still.push(login_id),
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            if Instant::now() > deadline {
                fail(format!(
                    "{} of {opt_ins} opt-ins were not SENT within 180 s",
                    waiting.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // The event source deletes a batch after the invocation returns: let the last ones settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let inbox = sandbox.inbox();
    for login_id in &login_ids {
        let messages = inbox.iter().filter(|m| &m.login_id == login_id).count();
        if messages != 1 {
            fail(format!("an opt-in got {messages} messages, not 1"));
        }
    }
    let send_queue = local
        .provisioned
        .send_queue_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let facebook_path_segment = local
        .config
        .facebook_path_segment
        .clone()
        .unwrap_or_default();
    local.shutdown().await;
    sandbox.shutdown().await;
    drop(moto);
    Measured {
        opt_ins,
        events,
        seconds,
        meter_file,
        meter_from,
        delivered: login_ids.len(),
        facebook_path_segment,
        send_queue,
        ..Measured::default()
    }
}

// ---- the parent: runs the child, counts its EMF lines, reads the meter, prints ----

/// Per (service, action, item kinds): requests and capacity.
#[derive(Debug, Default, Clone)]
struct Tally {
    requests: f64,
    billed: f64,
    wru: f64,
    rru: f64,
    index_wru: BTreeMap<String, f64>,
    messages: f64,
    failed: f64,
}

#[derive(Debug, Default)]
struct Meter {
    lines: usize,
    by: BTreeMap<(String, String, String), Tally>,
    /// Non-empty receives' message counts per queue (the batches the functions got).
    batches: BTreeMap<String, Vec<u64>>,
    empty_receives: u64,
}

fn read_meter(path: &Path, from: u64) -> Meter {
    let text = std::fs::read(path).unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
    let text = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
    let mut meter = Meter::default();
    for line in text.lines() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["caller"] == OBSERVER {
            continue;
        }
        meter.lines += 1;
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        let (service, action) = (s("service"), s("action"));
        if service == "sqs" && action == "ReceiveMessage" {
            match v["messages"].as_u64() {
                Some(0) | None => meter.empty_receives += 1,
                Some(n) => meter.batches.entry(s("queue")).or_default().push(n),
            }
        }
        let t = meter.by.entry((service, action, s("kinds"))).or_default();
        t.requests += 1.0;
        t.billed += v["requests"].as_f64().unwrap_or(1.0);
        t.wru += f("wru");
        t.rru += f("rru");
        t.messages += f("messages");
        if v["status"].as_u64().is_some_and(|s| s >= 400) {
            t.failed += 1.0;
        }
        if let Some(map) = v["index_wru"].as_object() {
            for (index, units) in map {
                *t.index_wru.entry(index.clone()).or_default() += units.as_f64().unwrap_or(0.0);
            }
        }
    }
    let _ = std::fs::remove_file(path);
    meter
}

/// Requests the local runner makes in place of AWS's own machinery (the SQS event source
/// mapping; Scheduler's firing): reported apart, and modelled as AWS does them.
fn emulation(service: &str, action: &str) -> bool {
    matches!(
        (service, action),
        (
            "sqs",
            "ReceiveMessage" | "DeleteMessage" | "DeleteMessageBatch" | "ChangeMessageVisibility"
        ) | ("scheduler", "ListSchedules" | "GetSchedule")
    )
}

/// The EMF lines of the child's stdout, by metric names; other lines are passed on.
fn count_emf(stdout: impl std::io::Read) -> BTreeMap<String, LogBytes> {
    let mut emf: BTreeMap<String, LogBytes> = BTreeMap::new();
    for line in std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
    {
        let parsed: Option<serde_json::Value> =
            if line.starts_with('{') && line.contains("\"_aws\"") {
                serde_json::from_str(&line).ok()
            } else {
                None
            };
        match parsed {
            Some(v) => {
                let names: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .map(|m| m.iter().filter_map(|d| d["Name"].as_str()).collect())
                    .unwrap_or_default();
                let e = emf.entry(names.join("+")).or_default();
                e.bytes += line.len() as u64;
                e.lines += 1;
            }
            None => println!("{line}"),
        }
    }
    emf
}

/// The HTTP API access log line of one webhook, in template.yaml's `AccessLogSettings` format.
fn access_log_line(facebook_path_segment: &str) -> String {
    let template =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .unwrap_or_else(|e| fail(format!("template.yaml: {e}")));
    let after = template
        .split("AccessLogSettings:")
        .nth(1)
        .unwrap_or_else(|| fail("template.yaml has no AccessLogSettings"));
    let format = after
        .lines()
        .find_map(|l| l.trim().strip_prefix("Format: '"))
        .and_then(|l| l.strip_suffix('\''))
        .unwrap_or_else(|| fail("AccessLogSettings has no Format"));
    // A deployed stack's segment is 22–128 characters (`openssl rand -hex 16`: 32).
    let segment = if facebook_path_segment.len() >= 22 {
        facebook_path_segment.to_owned()
    } else {
        "0123456789abcdef0123456789abcdef".to_owned()
    };
    format
        .replace("$context.requestId", "Jd9bmhKdoAMEbKA=")
        .replace("$context.requestTime", "30/Nov/2026:20:31:06 +0000")
        .replace(
            "$context.routeKey",
            &format!("POST /{segment}/webhooks/messenger"),
        )
        .replace("$context.status", "200")
        .replace("$context.responseLength", "11")
        .replace("$context.integrationLatency", "35")
        .replace("$context.error.message", "-")
}

/// Lambda's platform records per invocation in the JSON log format, at system log level INFO
/// (template.yaml sets WARN, which sends none of them: docs "Log-level filtering", system logs).
fn platform_records() -> [String; 2] {
    let request_id = "8f5a3c1e-2b7d-4e9f-a6c0-1d2e3f4a5b6c";
    [
        format!(
            r#"{{"time":"2026-11-30T20:31:06.123Z","type":"platform.start","record":{{"requestId":"{request_id}","version":"$LATEST"}}}}"#
        ),
        format!(
            r#"{{"time":"2026-11-30T20:31:06.160Z","type":"platform.report","record":{{"requestId":"{request_id}","metrics":{{"durationMs":36.512,"billedDurationMs":37,"memorySizeMB":256,"maxMemoryUsedMB":21}},"status":"success"}}}}"#
        ),
    ]
}

fn parent() {
    let results =
        std::env::temp_dir().join(format!("cost-bench-{}.json", uuid::Uuid::new_v4().simple()));
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(format!("this binary: {e}")));
    let mut child = std::process::Command::new(exe)
        .env(CHILD_RESULTS, &results)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(format!("the measuring process: {e}")));
    let emf = match child.stdout.take() {
        Some(out) => count_emf(out),
        None => fail("no stdout from the measuring process"),
    };
    match child.wait() {
        Ok(status) if status.success() => {}
        other => fail(format!("the measuring process ended with {other:?}")),
    }
    let measured: Measured = std::fs::read(&results)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| fail("the measuring process wrote no results"));
    let _ = std::fs::remove_file(&results);
    let meter = read_meter(&measured.meter_file, measured.meter_from);
    report(&measured, &meter, &emf);
}

// ---- the report ----

struct Line {
    label: String,
    observed: f64,
    full: f64,
}

fn report(m: &Measured, meter: &Meter, emf: &BTreeMap<String, LogBytes>) {
    let n = m.opt_ins as f64;
    if meter.lines == 0 {
        fail(
            "the meter recorded no request: is MOTO_METER_FILE honoured (infra/python/moto_meter.py)?",
        );
    }
    let dynamo_requests: f64 = meter
        .by
        .iter()
        .filter(|((s, _, _), _)| s == "dynamodb")
        .map(|(_, t)| t.requests)
        .sum();
    if dynamo_requests == 0.0 {
        fail("the meter recorded no DynamoDB request");
    }
    let invocations = |f: Function| *m.invocations.get(f.name()).unwrap_or(&0) as f64;
    let webhooks = invocations(Function::HttpApi);
    let sender_batches = invocations(Function::Sender);
    if webhooks < n || sender_batches == 0.0 {
        fail(format!(
            "invocations seen: {:?} for {} opt-ins",
            m.invocations, m.opt_ins
        ));
    }
    let no_batches = Vec::new();
    let send_batches = meter.batches.get(&m.send_queue).unwrap_or(&no_batches);
    let batch_messages: u64 = send_batches.iter().sum();
    let mean_batch = batch_messages as f64 / send_batches.len().max(1) as f64;
    // Other queues' batches (the events queue's, with events on): (receives, messages).
    let other_batches = meter
        .batches
        .iter()
        .filter(|(queue, _)| **queue != m.send_queue)
        .fold((0.0, 0.0), |(r, msgs), (_, b)| {
            (r + b.len() as f64, msgs + b.iter().sum::<u64>() as f64)
        });

    println!();
    println!(
        "cost per opt-in — measured: {} opt-ins through the local stack (signed webhooks from the sandbox, {} in flight), all SENT and delivered once in {:.1} s; events {}",
        m.opt_ins,
        CONCURRENCY,
        m.seconds,
        if m.events {
            "on"
        } else {
            "off (template default)"
        }
    );
    println!(
        "  meter: {} AWS requests after start-up (the bench's own reads left out)",
        meter.lines
    );

    println!();
    println!("  invocations per opt-in");
    for f in Function::ALL {
        println!(
            "    {:<16} {:>7.3}  ({} in all)",
            f.name(),
            invocations(f) / n,
            invocations(f)
        );
    }
    let mut histogram: BTreeMap<u64, u64> = BTreeMap::new();
    for b in send_batches {
        *histogram.entry(*b).or_default() += 1;
    }
    println!(
        "    sender batch sizes seen (messages per receive → receives): {}; mean {:.2}; {} empty receives (idle polling, not per opt-in)",
        histogram
            .iter()
            .map(|(k, v)| format!("{k}→{v}"))
            .collect::<Vec<_>>()
            .join(" "),
        mean_batch,
        meter.empty_receives
    );

    println!();
    println!(
        "  AWS requests per opt-in (product code; * = the local runner standing in for AWS's event source / Scheduler)"
    );
    println!(
        "    {:<11} {:<20} {:<22} {:>9} {:>8} {:>8} {:>8}  index WRU",
        "service", "action", "items", "requests", "WRU", "RRU", "failed"
    );
    let mut wru_table = 0.0;
    let mut index_total: BTreeMap<String, f64> = BTreeMap::new();
    let mut rru_total = 0.0;
    let mut rru_page = 0.0;
    for ((service, action, kinds), t) in &meter.by {
        let star = if emulation(service, action) { "*" } else { " " };
        let index = t
            .index_wru
            .iter()
            .map(|(k, v)| format!("{k} {:.3}", v / n))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "   {star}{:<11} {:<20} {:<22} {:>9.3} {:>8.3} {:>8.3} {:>8.3}  {index}",
            service,
            action,
            kinds,
            t.requests / n,
            t.wru / n,
            t.rru / n,
            t.failed / n
        );
        wru_table += t.wru;
        rru_total += t.rru;
        if action == "GetItem" && kinds == "PAGE" {
            rru_page += t.rru;
        }
        for (k, v) in &t.index_wru {
            *index_total.entry(k.clone()).or_default() += v;
        }
    }
    // `+ 0.0`: an empty f64 sum is -0.0, printed "-0.000".
    let wru_index: f64 = index_total.values().sum::<f64>() + 0.0;
    println!(
        "    DynamoDB per opt-in: WRU {:.3} table + {:.3} index ({}) = {:.3}; RRU {:.3} (of which the per-batch Page read {:.3})",
        wru_table / n,
        wru_index / n,
        if index_total.is_empty() {
            "no index writes".to_owned()
        } else {
            index_total
                .iter()
                .map(|(k, v)| format!("{k} {:.3}", v / n))
                .collect::<Vec<_>>()
                .join(", ")
        },
        (wru_table + wru_index) / n,
        rru_total / n,
        rru_page / n
    );

    // Logs.
    println!();
    println!(
        "  log bytes per opt-in (JSON, INFO; a line's bytes without its newline; +{LOG_EVENT_OVERHEAD} B per event counted below)"
    );
    let mut log_bytes = 0.0;
    let mut log_events = 0.0;
    for (function, l) in &m.logs {
        if l.lines == 0 {
            continue;
        }
        println!(
            "    {:<16} {:>8.1} B in {:.2} lines (own lines, inside its invocations)",
            function,
            l.bytes as f64 / n,
            l.lines as f64 / n
        );
        for sample in m.samples.get(function).into_iter().flatten() {
            println!("      {} B: {sample}", sample.len());
        }
        log_bytes += l.bytes as f64;
        log_events += l.lines as f64;
    }
    for (names, l) in emf {
        println!(
            "    EMF {:<12} {:>8.1} B in {:.2} lines ({})",
            "",
            l.bytes as f64 / n,
            l.lines as f64 / n,
            names
        );
        log_bytes += l.bytes as f64;
        log_events += l.lines as f64;
    }
    let access = access_log_line(&m.facebook_path_segment);
    println!(
        "    API access log   {:>8.1} B per webhook ({} B line, template.yaml's format: {access})",
        access.len() as f64 * webhooks / n,
        access.len()
    );
    log_bytes += access.len() as f64 * webhooks;
    log_events += webhooks;
    let [start, platform_report] = platform_records();
    println!(
        "    Lambda platform records: 0 B (SystemLogLevel WARN); at INFO each invocation adds platform.start {} B + platform.report {} B ({:.1} B per opt-in here)",
        start.len(),
        platform_report.len(),
        (start.len() + platform_report.len()) as f64 * (webhooks + sender_batches) / n
    );
    let logs_per_opt_in = (log_bytes + LOG_EVENT_OVERHEAD * log_events) / n;
    println!(
        "    total {:.1} B per opt-in ({:.2} events)",
        logs_per_opt_in,
        log_events / n
    );

    // Dollars.
    let sqs_product: f64 = meter
        .by
        .iter()
        .filter(|((s, a, _), _)| s == "sqs" && !emulation(s, a))
        .map(|(_, t)| t.billed)
        .sum();
    let count = |service: &str, action: &str| -> f64 {
        meter
            .by
            .iter()
            .filter(|((s, a, _), _)| s == service && a == action)
            .map(|(_, t)| t.requests)
            .sum::<f64>()
            + 0.0 // an empty sum is -0.0
    };
    let full_batches = n / 10.0;
    let per_m = |x: f64| x / n * 1_000_000.0;
    let deadline_runs = invocations(Function::DeadlineAlerts);
    let event_sender_runs = invocations(Function::EventSender);
    let lines = [
        Line {
            label: format!("API Gateway HTTP API ({:.2} requests)", webhooks / n),
            observed: per_m(webhooks) * API_PER_M / 1e6,
            full: per_m(webhooks) * API_PER_M / 1e6,
        },
        Line {
            label: "Lambda requests, http-api".into(),
            observed: per_m(webhooks) * LAMBDA_REQUEST_PER_M / 1e6,
            full: per_m(webhooks) * LAMBDA_REQUEST_PER_M / 1e6,
        },
        Line {
            label: format!(
                "Lambda GB-s, http-api ({MEMORY_GB} GB × {HTTP_API_SECONDS} s, assumed)"
            ),
            observed: per_m(webhooks) * MEMORY_GB * HTTP_API_SECONDS * LAMBDA_GB_S,
            full: per_m(webhooks) * MEMORY_GB * HTTP_API_SECONDS * LAMBDA_GB_S,
        },
        Line {
            label: format!("Lambda requests, sender (batches of {mean_batch:.2} | 10)"),
            observed: per_m(sender_batches) * LAMBDA_REQUEST_PER_M / 1e6,
            full: per_m(full_batches) * LAMBDA_REQUEST_PER_M / 1e6,
        },
        Line {
            label: format!(
                "Lambda GB-s, sender ({MEMORY_GB} GB × {SENDER_SECONDS_PER_BATCH} s per batch, assumed)"
            ),
            observed: per_m(sender_batches) * MEMORY_GB * SENDER_SECONDS_PER_BATCH * LAMBDA_GB_S,
            full: per_m(full_batches) * MEMORY_GB * SENDER_SECONDS_PER_BATCH * LAMBDA_GB_S,
        },
        Line {
            label: "Lambda, deadline-alerts + event-sender (requests)".into(),
            observed: per_m(deadline_runs + event_sender_runs) * LAMBDA_REQUEST_PER_M / 1e6,
            full: per_m(deadline_runs + event_sender_runs) * LAMBDA_REQUEST_PER_M / 1e6,
        },
        Line {
            label: format!(
                "DynamoDB writes ({:.2} WRU: {:.2} table + {:.2} index)",
                (wru_table + wru_index) / n,
                wru_table / n,
                wru_index / n
            ),
            observed: per_m(wru_table + wru_index) * WRU_PER_M / 1e6,
            full: per_m(wru_table + wru_index) * WRU_PER_M / 1e6,
        },
        Line {
            label: format!(
                "DynamoDB reads ({:.3} RRU; the Page read once per batch)",
                rru_total / n
            ),
            observed: per_m(rru_total) * RRU_PER_M / 1e6,
            full: per_m(rru_total - rru_page + rru_page / sender_batches * full_batches)
                * RRU_PER_M
                / 1e6,
        },
        Line {
            label: format!(
                "SQS, product ({:.2} requests: SendMessage …)",
                sqs_product / n
            ),
            observed: per_m(sqs_product) * SQS_PER_M / 1e6,
            full: per_m(sqs_product) * SQS_PER_M / 1e6,
        },
        Line {
            label: "SQS, event sources (1 receive + 1 DeleteMessageBatch per batch)".into(),
            observed: per_m(2.0 * (sender_batches + other_batches.0)) * SQS_PER_M / 1e6,
            full: per_m(2.0 * (full_batches + other_batches.1 / 10.0)) * SQS_PER_M / 1e6,
        },
        Line {
            label: format!(
                "Scheduler ({:.0} creates, {:.0} deletes free; {:.0} runs)",
                count("scheduler", "CreateSchedule"),
                count("scheduler", "DeleteSchedule"),
                deadline_runs
            ),
            observed: per_m(deadline_runs) * SCHEDULER_PER_M / 1e6,
            full: per_m(deadline_runs) * SCHEDULER_PER_M / 1e6,
        },
        Line {
            label: format!("SNS ({:.0} publishes)", count("sns", "Publish")),
            observed: per_m(count("sns", "Publish")) * SNS_PER_M / 1e6,
            full: per_m(count("sns", "Publish")) * SNS_PER_M / 1e6,
        },
        Line {
            label: format!(
                "Secrets Manager ({:.0} GetSecretValue)",
                count("secretsmanager", "GetSecretValue")
            ),
            observed: per_m(count("secretsmanager", "GetSecretValue")) * SECRETS_PER_CALL,
            full: per_m(count("secretsmanager", "GetSecretValue")) * SECRETS_PER_CALL,
        },
        Line {
            label: format!("CloudWatch Logs ({logs_per_opt_in:.0} B per opt-in)"),
            observed: logs_per_opt_in * 1e6 / 1e9 * LOGS_PER_GB,
            full: logs_per_opt_in * 1e6 / 1e9 * LOGS_PER_GB,
        },
    ];
    println!();
    println!(
        "  $ per million opt-ins (docs/cost.md prices)          observed batches   full batches of 10"
    );
    let (mut total_observed, mut total_full) = (0.0, 0.0);
    for l in &lines {
        println!(
            "    {:<62} {:>8.3}          {:>8.3}",
            l.label, l.observed, l.full
        );
        total_observed += l.observed;
        total_full += l.full;
    }
    println!(
        "    {:<62} {:>8.2}          {:>8.2}   (goal ≤ 5.00 at full batches)",
        "total", total_observed, total_full
    );
    println!(
        "    notes: durations are docs/cost.md's assumptions, not measured here; the full-batch column keeps logs and writes as measured, and scales only per-batch items (sender requests and GB-s, the event source's SQS requests, the Page read)"
    );
}
