//! Load with faults: N signed opt-in webhooks through the whole local stack (moto, the Messenger
//! sandbox, the local runner) at a set rate while the sandbox fails sends, some webhooks arrive
//! twice, some people say "stop" while their message is being sent, some opt-ins arrive with
//! little time left, and one sender process is killed mid-batch. Then the invariants are checked
//! from the sandbox's record and the table; `SoakReport` prints the figures.
//!
//! Time is compressed so that a run takes seconds: a 60 s opt-in window, a 10 s sender timeout
//! under a 20 s send lease (as 30 s is under 60 s in production), a 20 s queue visibility timeout
//! (the killed process's batch comes back after it), a 3 s Graph timeout.

use crate::lambda_process::{HandedBatch, SqsLambdaProcess};
use crate::shared_moto;
use crate::worlds::stack::{TestStack, start_stack};
use messenger_sandbox::{FaultRule, InboxMessage};
use shared::config::env;
use shared::domain::jobs::SendJob;
use shared::domain::opt_in::{OptIn, OptInKey, State};
use shared::ports::opt_ins::OptInStore;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

/// What a run does.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    pub opt_ins: usize,
    /// Opt-in webhooks offered per second.
    pub rate_per_second: f64,
    /// Fractions of Send API calls answered with a transient error, a timeout (nothing delivered),
    /// and an "unreachable" answer (551).
    pub transient: f64,
    pub timeout: f64,
    pub unreachable: f64,
    /// Fraction of opt-in webhooks Facebook delivers twice.
    pub duplicate_webhooks: f64,
    /// Fraction of people who write "stop" right after opting in (racing the sender).
    pub opt_outs: f64,
    /// Fraction of webhooks arriving late: only `late_seconds_left` before the deadline.
    pub late: f64,
    pub late_seconds_left: i64,
    /// Kill one sender process (SIGKILL) while it holds claims of a batch.
    pub kill_a_sender: bool,
    /// The sender binary run as that process.
    pub sender_binary: PathBuf,
    pub window_seconds: i64,
    /// Added Send API latency: real Graph takes ~100–300 ms, and it keeps the kill before the
    /// killed batch's answers (a kill after Graph accepted is the documented duplicate window).
    pub send_latency_ms: u64,
}

impl SoakPlan {
    /// The mix: 20 % transient, 5 % timeouts, 2 % unreachable, 10 % duplicate webhooks.
    pub fn new(opt_ins: usize, rate_per_second: f64, sender_binary: PathBuf) -> Self {
        Self {
            opt_ins,
            rate_per_second,
            transient: 0.20,
            timeout: 0.05,
            unreachable: 0.02,
            duplicate_webhooks: 0.10,
            opt_outs: 0.05,
            late: 0.03,
            late_seconds_left: 8,
            kill_a_sender: true,
            sender_binary,
            window_seconds: 60,
            send_latency_ms: 250,
        }
    }
}

/// The sender's invocation timeout, below the lease as in production (30 s < 60 s): a live
/// sender never outlives its claim.
const SENDER_TIMEOUT_SECONDS: u64 = 10;
/// Concurrent sender instances (Lambda scales out to the event source's MaximumConcurrency), plus
/// the one run as its own process until it is killed.
const SENDER_POLLERS: usize = 10;
/// Graph timeout of the run (the sandbox's timeouts last longer: nothing is delivered).
const GRAPH_TIMEOUT_MS: u64 = 3_000;
/// Lease and queue visibility of the run: the killed batch comes back after this.
const LEASE_SECONDS: i32 = 20;
const VISIBILITY_SECONDS: i32 = 20;
/// A send claimed just before an opt-out may still be in flight when the opt-out is recorded. The
/// sender renders the text and paces *before* it claims, and checks its margins right after, so
/// the only time an opt-out can meet a SENDING opt-in is from the claim to Graph's answer: at
/// most one Graph timeout. Nothing may land later than this after the opt-out, and whatever lands
/// is recorded on the opt-in (`sent_after_opt_out` and its `message_id`).
pub const IN_FLIGHT_ALLOWANCE_MS: i64 = GRAPH_TIMEOUT_MS as i64;

/// One opt-in the driver created.
#[derive(Debug, Clone)]
struct Driven {
    login_id: String,
    late: bool,
    opt_out: bool,
}

#[derive(Debug, Clone, Default)]
pub struct KillReport {
    pub after: Duration,
    pub batch_size: usize,
    /// Records of the batch claimed (SENDING, leased to the process) when it was killed.
    pub claimed: usize,
    pub keys: Vec<OptInKey>,
}

/// Figures and findings of a run.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub opt_ins: usize,
    pub offered_rate: f64,
    pub load_seconds: f64,
    pub settle_seconds: f64,
    pub webhook_deliveries: usize,
    pub duplicates: usize,
    pub opt_outs_sent: usize,
    pub late: usize,
    pub states: BTreeMap<String, usize>,
    pub messages: usize,
    /// Opt-in → inbox, ms, for the opt-ins that arrived on time.
    pub latencies_ms: Vec<i64>,
    /// First message delivered → last.
    pub delivery_seconds: f64,
    pub send_requests: u64,
    pub faults_injected: u64,
    pub dlq_messages: usize,
    pub kill: Option<KillReport>,
    pub killed_batch_states: BTreeMap<String, usize>,
    /// The latest a message landed after its opt-out was recorded (in-flight sends), ms.
    pub max_landing_after_opt_out_ms: Option<i64>,
    /// Messages that landed for an opt-in opted out while they were in flight (each recorded on
    /// its opt-in).
    pub sent_after_opt_out: usize,
    /// The smallest gap between a message and its deadline, ms.
    pub min_margin_to_deadline_ms: Option<i64>,
    pub violations: Vec<String>,
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl SoakReport {
    pub fn latency_percentiles(&self) -> (i64, i64, i64) {
        let mut v = self.latencies_ms.clone();
        v.sort_unstable();
        (
            percentile(&v, 50.0),
            percentile(&v, 95.0),
            percentile(&v, 99.0),
        )
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p50, p95, p99) = self.latency_percentiles();
        writeln!(
            f,
            "soak: {} opt-ins offered at {:.0}/s",
            self.opt_ins, self.offered_rate
        )?;
        writeln!(
            f,
            "  load {:.1} s ({:.1} opt-ins/s achieved), settled after {:.1} s; {} webhook deliveries ({} duplicates), {} racing opt-outs, {} late",
            self.load_seconds,
            self.opt_ins as f64 / self.load_seconds.max(1e-9),
            self.settle_seconds,
            self.webhook_deliveries,
            self.duplicates,
            self.opt_outs_sent,
            self.late
        )?;
        writeln!(
            f,
            "  Send API calls {} ({} faults injected); messages delivered {} in {:.1} s ({:.1} messages/s)",
            self.send_requests,
            self.faults_injected,
            self.messages,
            self.delivery_seconds,
            self.messages as f64 / self.delivery_seconds.max(1e-9)
        )?;
        writeln!(f, "  terminal states: {:?}", self.states)?;
        writeln!(
            f,
            "  opt-in → inbox (on-time opt-ins, {} messages): p50 {p50} ms, p95 {p95} ms, p99 {p99} ms",
            self.latencies_ms.len()
        )?;
        if let Some(k) = &self.kill {
            writeln!(
                f,
                "  sender process killed {:.1} s in, holding {} claims of a {}-record batch; that batch ended {:?}",
                k.after.as_secs_f64(),
                k.claimed,
                k.batch_size,
                self.killed_batch_states
            )?;
        }
        writeln!(
            f,
            "  in-flight sends at an opt-out: {} (each must be recorded on its opt-in), the latest landing {} after it (allowance {IN_FLIGHT_ALLOWANCE_MS} ms); closest message to its deadline: {}; DLQ: {}",
            self.sent_after_opt_out,
            self.max_landing_after_opt_out_ms
                .map_or("none".into(), |m| format!("{m} ms")),
            self.min_margin_to_deadline_ms
                .map_or("none".into(), |m| format!("{m} ms before")),
            self.dlq_messages
        )?;
        if self.violations.is_empty() {
            write!(f, "  invariants: all held")
        } else {
            write!(
                f,
                "  invariants: {} VIOLATIONS:\n    {}",
                self.violations.len(),
                self.violations.join("\n    ")
            )
        }
    }
}

/// Deterministic choice of roughly `fraction` of the indexes (spread evenly, per category salt).
fn chosen(i: usize, fraction: f64, salt: u64) -> bool {
    let x = (i as u64)
        .wrapping_add(salt)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((x >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

/// Run the plan on a fresh stack and check the invariants.
pub async fn run(plan: SoakPlan) -> SoakReport {
    let s = start_stack(|settings| {
        let mut settings = settings
            .with(env::OPTIN_WINDOW_SECONDS, plan.window_seconds.to_string())
            .with(env::ALERT_LEAD_SECONDS, "15")
            .with(env::SEND_LEASE_SECONDS, LEASE_SECONDS.to_string())
            .with(env::GRAPH_TIMEOUT_MS, GRAPH_TIMEOUT_MS.to_string())
            .with(env::RETRY_BASE_SECONDS, "1")
            .with(env::RETRY_MAX_SECONDS, "8");
        settings.sweep_every = Some(Duration::from_secs(5));
        settings.scheduler_tick = Duration::from_secs(1);
        settings.sender_pollers = SENDER_POLLERS;
        settings.sender_timeout = Some(Duration::from_secs(SENDER_TIMEOUT_SECONDS));
        settings
    })
    .await;
    let sqs = aws_sdk_sqs::Client::new(&s.sdk);
    let queue_url = s.local.provisioned.send_queue_url.clone();
    if let Err(e) = sqs
        .set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            VISIBILITY_SECONDS.to_string(),
        )
        .send()
        .await
    {
        panic!("cannot shorten the visibility timeout: {e}");
    }
    configure_sandbox(&s, &plan);

    let mut report = SoakReport {
        opt_ins: plan.opt_ins,
        offered_rate: plan.rate_per_second,
        ..SoakReport::default()
    };
    let started = Instant::now();
    let killer = if plan.kill_a_sender {
        Some(spawn_killer(&s, &plan, sqs.clone(), started).await)
    } else {
        None
    };

    let driven = drive(&s, &plan, killer.as_ref(), &mut report).await;
    report.load_seconds = started.elapsed().as_secs_f64();

    if let Some(killer) = killer {
        match tokio::time::timeout(Duration::from_secs(30), killer.task).await {
            Ok(Ok(Some(kill))) => report.kill = Some(kill),
            Ok(Ok(None)) => report
                .violations
                .push("the sender process was never killed mid-batch".into()),
            _ => report
                .violations
                .push("the sender process killer did not finish".into()),
        }
    }

    let items = settle(&s, &plan, &driven).await;
    report.settle_seconds = started.elapsed().as_secs_f64();
    // Quiet period: anything still queued would show up as an extra message now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    check(&s, &driven, &items, &mut report).await;
    report.dlq_messages = check_dlq(&s, &items, &mut report.violations).await;
    let stats = s.sandbox.stats();
    report.send_requests = stats.send_requests;
    report.faults_injected = stats.faults_injected;
    s.stop().await;
    report
}

fn configure_sandbox(s: &TestStack, plan: &SoakPlan) {
    s.sandbox.set_limits(messenger_sandbox::Limits {
        rate_limit_per_second: None,
        latency_ms: Some(plan.send_latency_ms),
    });
    add_fault_rules(s, plan);
}

fn add_fault_rules(s: &TestStack, plan: &SoakPlan) {
    // Rules are tried in order and the first that applies answers: each fraction is conditional
    // on the rules before it not applying, so the marginals are the plan's.
    let mut left = 1.0;
    let mut add = |fraction: f64, rule: FaultRule| {
        if fraction <= 0.0 {
            return;
        }
        let conditional = (fraction / left).min(1.0);
        left -= fraction;
        if let Err(e) = s.sandbox.add_fault(FaultRule {
            count: None,
            fraction: Some(conditional),
            ..rule
        }) {
            panic!("fault rule refused: {e}");
        }
    };
    // Transient: half "temporary send failure" (1200), half Graph's 500 "unexpected error" (2).
    add(
        plan.transient / 2.0,
        FaultRule::error(1200, Some(2_018_024)),
    );
    add(plan.transient / 2.0, FaultRule::error(2, None));
    add(
        plan.timeout,
        FaultRule {
            kind: messenger_sandbox::FaultKind::Timeout,
            delay_ms: Some(GRAPH_TIMEOUT_MS + 1_000),
            deliver: Some(false),
            ..FaultRule::default()
        },
    );
    add(plan.unreachable, FaultRule::error(551, None));
}

/// Offer the opt-ins at the plan's rate; each is its own task (the sandbox posts the signed
/// webhook, once or twice, and answers when the app did).
async fn drive(
    s: &TestStack,
    plan: &SoakPlan,
    killer: Option<&Killer>,
    report: &mut SoakReport,
) -> Vec<Driven> {
    let base = s.sandbox.base_url.clone();
    let http = s.http.clone();
    let gate = Arc::new(Semaphore::new(64));
    let interval = Duration::from_secs_f64(1.0 / plan.rate_per_second.max(0.1));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(plan.opt_ins);
    let mut kill_phase = KillPhase::Waiting;
    for i in 0..plan.opt_ins {
        tokio::time::sleep_until(started + interval.mul_f64(i as f64)).await;
        if let Some(killer) = killer {
            kill_phase = kill_phase.step(s, plan, killer, i);
        }
        let late = chosen(i, plan.late, 1);
        let duplicate = chosen(i, plan.duplicate_webhooks, 2);
        let opt_out = !late && chosen(i, plan.opt_outs, 3);
        let permit = gate.clone().acquire_owned().await;
        let (http, base) = (http.clone(), base.clone());
        let window_ms = plan.window_seconds * 1000;
        let late_left_ms = plan.late_seconds_left * 1000;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let mut request = serde_json::json!({"deliveries": if duplicate { 2 } else { 1 }});
            if late {
                request["timestamp_ms"] = serde_json::json!(
                    chrono::Utc::now().timestamp_millis() - window_ms + late_left_ms
                );
            }
            let answer = post(&http, &format!("{base}/_sandbox/optin"), request).await?;
            let statuses = answer["webhook_statuses"].clone();
            let expected = if duplicate {
                serde_json::json!([200, 200])
            } else {
                serde_json::json!([200])
            };
            if statuses != expected {
                return Err(format!("opt-in webhook answered {statuses}"));
            }
            let login_id = answer["login_id"].as_str().unwrap_or_default().to_owned();
            if opt_out {
                // Race the sender: a short, varying delay after the opt-in was recorded.
                tokio::time::sleep(Duration::from_millis((i as u64 * 37) % 400)).await;
                let answer = post(
                    &http,
                    &format!("{base}/_sandbox/message"),
                    serde_json::json!({"login_id": login_id, "text": "STOP"}),
                )
                .await?;
                if answer["webhook_status"] != serde_json::json!(200) {
                    return Err(format!(
                        "stop message webhook answered {}",
                        answer["webhook_status"]
                    ));
                }
            }
            Ok::<_, String>((
                Driven {
                    login_id,
                    late,
                    opt_out,
                },
                if duplicate { 2 } else { 1 },
            ))
        }));
    }
    if let Some(killer) = killer {
        // Too few opt-ins left to reach the kill: finish it now (the killer gives up after 10 s).
        while kill_phase != KillPhase::Over {
            tokio::time::sleep(Duration::from_millis(100)).await;
            kill_phase = kill_phase.step(s, plan, killer, plan.opt_ins);
        }
    }
    let mut driven = Vec::with_capacity(plan.opt_ins);
    for task in tasks {
        match task.await {
            Ok(Ok((d, deliveries))) => {
                report.webhook_deliveries += deliveries;
                report.duplicates += deliveries - 1;
                report.opt_outs_sent += usize::from(d.opt_out);
                report.late += usize::from(d.late);
                driven.push(d);
            }
            Ok(Err(e)) => report.violations.push(format!("driver: {e}")),
            Err(e) => report.violations.push(format!("driver task: {e}")),
        }
    }
    driven
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let response = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let json: serde_json::Value = response.json().await.map_err(|e| format!("{url}: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("{url}: {status} {json}"));
    }
    Ok(json)
}

/// The sender run as its own process, and the task that kills it.
struct Killer {
    task: tokio::task::JoinHandle<Option<KillReport>>,
    armed: watch::Sender<Option<Instant>>,
    finished: watch::Receiver<bool>,
}

/// The kill, driven from the load loop: a quarter into the run the in-process senders pause and
/// the sandbox holds every send (answering a timeout, delivering nothing), so the process gets
/// a batch to itself and is killed holding its claims before any of its sends could be accepted
/// (a kill after Graph accepted is the one documented duplicate window, docs/sender.md). Then
/// the faults and the senders resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPhase {
    Waiting,
    Armed(Instant),
    Over,
}

impl KillPhase {
    fn step(self, s: &TestStack, plan: &SoakPlan, killer: &Killer, i: usize) -> Self {
        match self {
            KillPhase::Waiting if i >= plan.opt_ins / 4 => {
                s.local.pause_sender(true);
                s.sandbox.clear_faults();
                if let Err(e) = s.sandbox.add_fault(FaultRule {
                    kind: messenger_sandbox::FaultKind::Timeout,
                    delay_ms: Some(GRAPH_TIMEOUT_MS + 1_000),
                    deliver: Some(false),
                    count: None,
                    fraction: Some(1.0),
                    ..FaultRule::default()
                }) {
                    panic!("hold rule refused: {e}");
                }
                let _ = killer.armed.send(Some(Instant::now()));
                KillPhase::Armed(Instant::now())
            }
            KillPhase::Armed(since)
                if *killer.finished.borrow() || since.elapsed() > Duration::from_secs(15) =>
            {
                s.sandbox.clear_faults();
                add_fault_rules(s, plan);
                s.local.pause_sender(false);
                KillPhase::Over
            }
            phase => phase,
        }
    }
}

/// Start the sender as its own process; once armed, kill it as soon as it holds claims of a
/// batch of at least two records.
async fn spawn_killer(
    s: &TestStack,
    plan: &SoakPlan,
    sqs: aws_sdk_sqs::Client,
    started: Instant,
) -> Killer {
    let moto = shared_moto();
    let mut env: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL".into(), moto.endpoint.clone()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
    ];
    env.extend(s.local.function_env.iter().cloned());
    let (process, mut batches) = match SqsLambdaProcess::spawn(
        &plan.sender_binary,
        &env,
        sqs,
        &s.local.provisioned.send_queue_url,
        &s.local.provisioned.send_queue_arn,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => panic!("cannot start the sender process: {e}"),
    };
    let (armed, armed_rx) = watch::channel(None::<Instant>);
    let (finished_tx, finished) = watch::channel(false);
    let store = s.store.clone();
    let is_armed = armed_rx.clone();
    let task = tokio::spawn(async move {
        let mut process = process;
        let give_up = async {
            let mut armed_rx = armed_rx;
            let _ = armed_rx.wait_for(Option::is_some).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        };
        tokio::pin!(give_up);
        let report = loop {
            let batch = tokio::select! {
                b = batches.recv() => b,
                _ = &mut give_up => None,
            };
            let Some(batch) = batch else { break None };
            // Before the arming the process is one more sender; a batch handed to it after the
            // arming (its sends held by the sandbox) is the one killed.
            let armed_at = *is_armed.borrow();
            if armed_at.is_none_or(|at| batch.handed_at < at) || batch.bodies.len() < 2 {
                continue;
            }
            if let Some(claimed) = wait_for_claims(&store, &batch).await {
                process.kill();
                break Some(KillReport {
                    after: started.elapsed(),
                    batch_size: batch.bodies.len(),
                    claimed,
                    keys: keys_of(&batch),
                });
            }
        };
        let _ = finished_tx.send(true);
        report
    });
    Killer {
        task,
        armed,
        finished,
    }
}

fn keys_of(batch: &HandedBatch) -> Vec<OptInKey> {
    batch
        .bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<SendJob>(b).ok())
        .map(|j| OptInKey::new(&j.page_id, &j.login_id))
        .collect()
}

/// Poll the batch's opt-ins until some are leased to this batch's records; how many.
async fn wait_for_claims(
    store: &shared::adapters::dynamodb::opt_ins::DynamoOptInStore,
    batch: &HandedBatch,
) -> Option<usize> {
    let keys = keys_of(batch);
    let owners: Vec<&str> = batch.message_ids.iter().map(String::as_str).collect();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let items = futures::future::join_all(keys.iter().map(|k| store.get_opt_in(k))).await;
        let claimed = items
            .into_iter()
            .flatten()
            .flatten()
            .filter(|o| {
                o.state == State::Sending
                    && o.lease_owner
                        .as_deref()
                        .and_then(|l| l.split(':').next())
                        .is_some_and(|m| owners.contains(&m))
            })
            .count();
        if claimed > 0 {
            return Some(claimed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Wait until every opt-in is terminal (or the last deadline plus two sweeps has passed).
async fn settle(s: &TestStack, plan: &SoakPlan, driven: &[Driven]) -> HashMap<String, OptIn> {
    let give_up = Instant::now() + Duration::from_secs(plan.window_seconds as u64 + 15);
    let mut items: HashMap<String, OptIn> = HashMap::new();
    let mut open: Vec<&Driven> = driven.iter().collect();
    loop {
        let fetched = futures::future::join_all(open.iter().map(|d| async {
            let key = OptInKey::new(messenger_sandbox::DEFAULT_PAGE_ID, &d.login_id);
            (d.login_id.clone(), s.store.get_opt_in(&key).await)
        }))
        .await;
        for (login_id, item) in fetched {
            if let Ok(Some(item)) = item {
                items.insert(login_id, item);
            }
        }
        open.retain(|d| {
            items
                .get(&d.login_id)
                .is_none_or(|o| !o.state.is_terminal())
        });
        if open.is_empty() || Instant::now() > give_up {
            return items;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn check(
    s: &TestStack,
    driven: &[Driven],
    items: &HashMap<String, OptIn>,
    report: &mut SoakReport,
) {
    check_records(driven, items, &s.sandbox.inbox(), report);
}

/// The invariants, from the sandbox's record (`inbox`) and the table (`items`).
fn check_records(
    driven: &[Driven],
    items: &HashMap<String, OptIn>,
    inbox: &[InboxMessage],
    report: &mut SoakReport,
) {
    report.messages = inbox.len();
    let mut by_login: HashMap<&str, Vec<&InboxMessage>> = HashMap::new();
    for m in inbox {
        by_login.entry(m.login_id.as_str()).or_default().push(m);
    }
    let ours: HashSet<&str> = driven.iter().map(|d| d.login_id.as_str()).collect();
    let v = &mut report.violations;
    for login in by_login.keys() {
        if !ours.contains(login) {
            v.push(format!(
                "a message for an opt-in the run never made ({login})"
            ));
        }
    }
    if let (Some(first), Some(last)) = (
        inbox.iter().map(|m| m.received_at_ms).min(),
        inbox.iter().map(|m| m.received_at_ms).max(),
    ) {
        report.delivery_seconds = (last - first) as f64 / 1000.0;
    }
    for d in driven {
        let messages = by_login
            .get(d.login_id.as_str())
            .cloned()
            .unwrap_or_default();
        let Some(item) = items.get(&d.login_id) else {
            v.push(format!("opt-in {} was never recorded", short(&d.login_id)));
            continue;
        };
        *report.states.entry(item.state.to_string()).or_default() += 1;
        let who = short(&d.login_id);
        if !item.state.is_terminal() {
            v.push(format!(
                "opt-in {who} ended in {} (not terminal)",
                item.state
            ));
        }
        for m in &messages {
            let margin = item.deadline_at - m.received_at_ms;
            report.min_margin_to_deadline_ms = Some(
                report
                    .min_margin_to_deadline_ms
                    .map_or(margin, |x| x.min(margin)),
            );
            if margin <= 0 {
                v.push(format!(
                    "opt-in {who}: a message {} ms after its deadline",
                    -margin
                ));
            }
        }
        match item.state {
            State::Sent => {
                if messages.len() != 1 {
                    let at: Vec<i64> = messages
                        .iter()
                        .map(|m| m.received_at_ms - item.opted_in_at)
                        .collect();
                    v.push(format!(
                        "opt-in {who} is SENT with {} messages (at {at:?} ms after the opt-in; \
                         attempts {}, last error {:?})",
                        messages.len(),
                        item.attempts,
                        item.last_error
                            .as_ref()
                            .map(|e| (e.code, e.subcode, e.message.clone()))
                    ));
                } else if item.message_id.as_deref() != Some(messages[0].message_id.as_str()) {
                    v.push(format!("opt-in {who}: SENT records another message id"));
                }
                if !d.late && messages.len() == 1 {
                    report
                        .latencies_ms
                        .push(messages[0].received_at_ms - messages[0].opted_in_at_ms);
                }
            }
            State::OptedOut => {
                if messages.len() > 1 {
                    v.push(format!(
                        "opt-in {who} is OPTED_OUT with {} messages",
                        messages.len()
                    ));
                }
                if let Some(m) = messages.first() {
                    // Claimed before the opt-out, delivered while it was recorded: the opt-in
                    // must say so, with the message's id.
                    report.sent_after_opt_out += 1;
                    if !item.sent_after_opt_out
                        || item.message_id.as_deref() != Some(m.message_id.as_str())
                    {
                        v.push(format!(
                            "opt-in {who}: a message landed around its opt-out but the opt-in does not record it (sent_after_opt_out {}, message id recorded: {})",
                            item.sent_after_opt_out,
                            item.message_id.is_some()
                        ));
                    }
                } else if item.sent_after_opt_out || item.message_id.is_some() {
                    v.push(format!(
                        "opt-in {who}: records a message sent after its opt-out that never landed"
                    ));
                }
                if let (Some(m), Some(out_at)) = (messages.first(), item.opted_out_at) {
                    // Allowed only while in flight.
                    let after = m.received_at_ms - out_at;
                    report.max_landing_after_opt_out_ms = Some(
                        report
                            .max_landing_after_opt_out_ms
                            .map_or(after, |x| x.max(after)),
                    );
                    if after > IN_FLIGHT_ALLOWANCE_MS {
                        v.push(format!(
                            "opt-in {who}: a message {after} ms after the opt-out was recorded"
                        ));
                    }
                }
                if !d.opt_out {
                    v.push(format!("opt-in {who} OPTED_OUT but nobody opted out"));
                }
            }
            State::Unreachable | State::Expired if !messages.is_empty() => {
                v.push(format!(
                    "opt-in {who} is {} with {} messages",
                    item.state,
                    messages.len()
                ));
            }
            _ => {}
        }
    }
    if let Some(kill) = &report.kill {
        for key in &kill.keys {
            if let Some(item) = items.get(&key.login_id) {
                *report
                    .killed_batch_states
                    .entry(item.state.to_string())
                    .or_default() += 1;
            }
        }
    }
}

/// Everything in the send DLQ must concern an opt-in that is finished: nothing sendable stranded.
async fn check_dlq(
    s: &TestStack,
    items: &HashMap<String, OptIn>,
    violations: &mut Vec<String>,
) -> usize {
    let sqs = aws_sdk_sqs::Client::new(&s.sdk);
    let dlq_url = s.local.provisioned.send_dlq_url.clone();
    let mut seen = 0;
    loop {
        let out = match sqs
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                violations.push(format!("cannot read the DLQ: {e}"));
                return seen;
            }
        };
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return seen;
        }
        for m in messages {
            seen += 1;
            let job = m
                .body()
                .and_then(|b| serde_json::from_str::<SendJob>(b).ok());
            match job.and_then(|j| items.get(&j.login_id)) {
                Some(item) if item.state.is_terminal() => {}
                Some(item) => violations.push(format!(
                    "the DLQ holds a sendable opt-in ({}, {})",
                    short(&item.login_id),
                    item.state
                )),
                None => violations.push("the DLQ holds a job for no known opt-in".into()),
            }
        }
    }
}

fn short(login_id: &str) -> String {
    login_id.chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = messenger_sandbox::DEFAULT_PAGE_ID;

    fn item(login: &str, state: State) -> OptIn {
        let mut o = OptIn::new(OptInKey::new(PAGE, login), None, 1_000, 45_000, 15_000);
        o.state = state;
        o
    }

    fn message(login: &str, at: i64, id: &str) -> InboxMessage {
        InboxMessage {
            message_id: id.into(),
            page_id: PAGE.into(),
            login_id: login.into(),
            text: "hi".into(),
            messaging_type: "UPDATE".into(),
            received_at_ms: at,
            opted_in_at_ms: 1_000,
        }
    }

    fn driven(login: &str, opt_out: bool) -> Driven {
        Driven {
            login_id: login.into(),
            late: false,
            opt_out,
        }
    }

    /// Runs the checks on one opt-in; the violations.
    fn violations(d: Driven, o: Option<OptIn>, inbox: &[InboxMessage]) -> Vec<String> {
        let items: HashMap<String, OptIn> =
            o.into_iter().map(|o| (o.login_id.clone(), o)).collect();
        let mut report = SoakReport::default();
        check_records(&[d], &items, inbox, &mut report);
        report.violations
    }

    #[test]
    fn a_sent_opt_in_with_its_one_message_passes() {
        let mut o = item("a", State::Sent);
        o.message_id = Some("m1".into());
        assert_eq!(
            violations(driven("a", false), Some(o), &[message("a", 1_500, "m1")]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_broken_invariant_is_reported() {
        let mut sent = item("a", State::Sent);
        sent.message_id = Some("m1".into());
        let twice = [message("a", 1_500, "m1"), message("a", 1_600, "m2")];
        let cases: Vec<(&str, Driven, Option<OptIn>, Vec<InboxMessage>)> = vec![
            (
                "SENT with 2 messages",
                driven("a", false),
                Some(sent.clone()),
                twice.to_vec(),
            ),
            (
                "SENT records another",
                driven("a", false),
                Some(sent),
                vec![message("a", 1_500, "m9")],
            ),
            (
                "EXPIRED with 1",
                driven("a", false),
                Some(item("a", State::Expired)),
                vec![message("a", 1_500, "m1")],
            ),
            (
                "UNREACHABLE with 1",
                driven("a", false),
                Some(item("a", State::Unreachable)),
                vec![message("a", 1_500, "m1")],
            ),
            (
                "not terminal",
                driven("a", false),
                Some(item("a", State::Retrying)),
                vec![],
            ),
            ("never recorded", driven("a", false), None, vec![]),
            (
                "after its deadline",
                driven("a", false),
                Some(item("a", State::Expired)),
                vec![message("a", 46_000, "m1")],
            ),
            (
                "never made",
                driven("a", false),
                Some(item("a", State::Expired)),
                vec![message("zz", 1_500, "m1")],
            ),
            (
                "OPTED_OUT but nobody",
                driven("a", false),
                Some(item("a", State::OptedOut)),
                vec![],
            ),
            (
                "after the opt-out",
                driven("a", true),
                Some(in_flight_at_opt_out("m1")),
                vec![message("a", 2_000 + IN_FLIGHT_ALLOWANCE_MS + 1, "m1")],
            ),
            (
                "in flight, not recorded",
                driven("a", true),
                Some(OptIn {
                    opted_out_at: Some(2_000),
                    ..item("a", State::OptedOut)
                }),
                vec![message("a", 2_300, "m1")],
            ),
            (
                "in flight, another message id recorded",
                driven("a", true),
                Some(in_flight_at_opt_out("m9")),
                vec![message("a", 2_300, "m1")],
            ),
            (
                "recorded but never landed",
                driven("a", true),
                Some(in_flight_at_opt_out("m1")),
                vec![],
            ),
        ];
        for (what, d, o, inbox) in cases {
            let v = violations(d, o, &inbox);
            assert!(!v.is_empty(), "{what}: not reported");
        }
    }

    /// An opt-in opted out at 2 000 ms while its message `id` was in flight, as the sender
    /// records it.
    fn in_flight_at_opt_out(id: &str) -> OptIn {
        OptIn {
            opted_out_at: Some(2_000),
            message_id: Some(id.into()),
            sent_at: Some(2_300),
            sent_after_opt_out: true,
            ..item("a", State::OptedOut)
        }
    }

    #[test]
    fn an_opt_out_racing_an_in_flight_send_is_allowed_one_recorded_message() {
        let o = in_flight_at_opt_out("m1");
        assert!(violations(driven("a", true), Some(o), &[message("a", 2_300, "m1")]).is_empty());
        // Up to one Graph timeout after the opt-out.
        let o = in_flight_at_opt_out("m1");
        let at = 2_000 + IN_FLIGHT_ALLOWANCE_MS;
        assert!(violations(driven("a", true), Some(o), &[message("a", at, "m1")]).is_empty());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(
            (
                percentile(&v, 50.0),
                percentile(&v, 95.0),
                percentile(&v, 99.0)
            ),
            (50, 95, 99)
        );
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
    }
}
