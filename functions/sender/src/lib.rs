//! The SQS-triggered sender: for each send job, claim the opt-in, send the initial message once,
//! and record the outcome.
//!
//! - **One gate.** The claim is a conditional write with a lease; only the lease owner writes the
//!   outcome, so duplicate jobs, redeliveries and concurrent senders send at most once.
//! - **A short SENDING window.** Everything slow (rendering the text, pacing) happens *before* the
//!   claim, and the deadline and lease margins are checked *after* it, so an opt-out can meet a
//!   send in flight only between the claim and Graph's answer (at most `GRAPH_TIMEOUT_MS`). A
//!   message Graph accepts after the opt-out is recorded on the item (`sent_after_opt_out`), logged
//!   and counted (`SentAfterOptOut`), never hidden.
//! - **Every Graph answer has a class** ([`shared::facebook::classify_graph_error`]): transient
//!   failures back off inside the deadline ([`backoff`]) through `ChangeMessageVisibility`; a job
//!   that can no longer make the deadline ends EXPIRED with an alert; "unreachable" ends the
//!   opt-in; configuration errors and Page restrictions pause the Page ([`pause`]).
//! - **Throughput.** A batch's records are sent concurrently (at most `SENDER_MAX_IN_FLIGHT`), and a
//!   per-Page [`pacer::Pacer`] keeps the instance under its share of the Send API limit.
//!
//! Operator documentation: docs/sender.md.

pub mod backoff;
pub mod pacer;
pub mod pause;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use shared::actions;
use shared::config::Config;
use shared::domain::{
    Alert, AlertKind, LastError, Millis, OptIn, OptInKey, SendJob, State, login_id_prefix,
};
use shared::facebook::{ErrorClass, GraphError};
use shared::login::{LoginStore, needs_first_name, render_initial_message};
use shared::metrics::{self, Metrics};
use shared::page::{PageState, PauseCause};
use shared::ports::send::{MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS, PageStateStore, RetryQueue};
use shared::ports::{
    Alerts, Clock, DeadlineScheduler, Messenger, OptInStore, SendOutcome, SendQueue, SystemClock,
    Transitioned,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{Instrument, error, info, info_span, warn};

pub use pacer::Pacer;

/// Attempts allowed for errors Meta documents as possibly permanent (code 1) before pausing.
pub const MAX_BOUNDED_ATTEMPTS: u32 = 3;
/// Attempts allowed for errors not in the table before pausing and alerting.
pub const MAX_UNKNOWN_ATTEMPTS: u32 = 5;
/// What one sender instance sustains for one Page, in sends per second: a batch of 10 sent at once
/// takes about one Graph round trip plus two DynamoDB writes (≈ 250 ms at Graph's typical
/// latency), so ≈ 40/s; 30 leaves headroom. The template's `SenderMaximumConcurrency` default is
/// ⌈`SendRatePerSecond` / this⌉ so that the fleet can reach the Page limit (a test checks).
pub const INSTANCE_SENDS_PER_SECOND: u32 = 30;
/// The send queue's `maxReceiveCount` (template.yaml `SendQueue.RedrivePolicy`; a test checks).
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// A record retried through `ChangeMessageVisibility` on its first receives; from this receive on
/// the retry is handed to a fresh, delayed message instead, so that transient failures never use
/// up the receives that move a crashing or unparseable record to the dead-letter queue.
pub const HANDOVER_FROM_RECEIVE: u32 = MAX_RECEIVE_COUNT - 2;

pub struct Deps {
    pub config: Config,
    pub store: Arc<dyn OptInStore>,
    /// The Page state item and the pause transitions (the same table as `store`).
    pub pages: Arc<dyn PageStateStore>,
    /// Re-queues paused opt-ins when their Page resumes.
    pub queue: Arc<dyn SendQueue>,
    /// Backs off retried jobs.
    pub retry: Arc<dyn RetryQueue>,
    pub scheduler: Arc<dyn DeadlineScheduler>,
    pub alerts: Arc<dyn Alerts>,
    pub messenger: Arc<dyn Messenger>,
    pub clock: Arc<dyn Clock>,
    /// Shared by every batch this instance handles.
    pub pacer: Arc<Pacer>,
    pub metrics: Arc<dyn Metrics>,
    /// The LOGIN linked to an opt-in gives the first name for `{first_name}`.
    pub logins: Arc<dyn LoginStore>,
}

impl Deps {
    /// The production wiring, shared by the Lambda main and the local runner.
    pub fn from_aws(
        config: Config,
        secrets: impl Into<shared::config::SenderSecrets>,
        sdk: &shared::bootstrap::SdkConfig,
    ) -> Result<Self, shared::adapters::graph::GraphInitError> {
        let ports = shared::bootstrap::AwsPorts::new(&config, sdk);
        let messenger = shared::adapters::graph::GraphClient::for_page(&config, &secrets.into())?;
        let logins =
            shared::adapters::dynamodb_login::DynamoLoginStore::from_sdk(sdk, &config.table_name);
        Ok(Self {
            logins: Arc::new(logins),
            metrics: ports.metrics.clone(),
            pacer: Arc::new(Pacer::for_tuning(&config.send)),
            config,
            store: ports.store.clone(),
            pages: ports.store,
            queue: ports.queue.clone(),
            retry: ports.queue,
            scheduler: ports.scheduler,
            alerts: ports.alerts,
            messenger: Arc::new(messenger),
            clock: Arc::new(SystemClock),
        })
    }

    /// How long before the deadline (and before the lease ends) a send may still start: the longest
    /// a Graph request can take.
    pub fn send_margin_ms(&self) -> Millis {
        Millis::try_from(self.config.graph_timeout_ms).unwrap_or(Millis::MAX)
    }
}

/// The Lambda process: load config, secret and clients once (cold start), then handle SQS
/// batches until the runtime stops. `main.rs` is only this; the soak test runs it as its own
/// process too, so that it can be killed mid-batch.
pub async fn run_lambda() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Only the fields the sender uses: the app secret, and the Page token from its own secret.
    let (config, sdk) = shared::bootstrap::load_settings().await?;
    let secrets = shared::bootstrap::load_sender_secrets(&config, &sdk).await?;
    let deps = Deps::from_aws(config, &secrets, &sdk)?;
    let deps = &deps;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
            Ok::<SqsBatchResponse, lambda_runtime::Error>(handle_batch(deps, event.payload).await)
        },
    ))
    .await
}

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Acknowledge: the job is done (sent, terminal, parked, or nothing to do).
    Done,
    /// Try again in this many seconds (`ChangeMessageVisibility`, or a fresh delayed message).
    RetryIn(u32),
    /// Try again in this many seconds with *this* message (`ChangeMessageVisibility` only): a lease
    /// of this message may still stand, and only this message can take it over.
    RetryKeep(u32),
    /// Not a job this code can read: leave it, untouched, for `maxReceiveCount` and the DLQ.
    Unreadable,
}

/// The Page states a batch needs, read once per batch (one consistent read per Page).
pub struct PageViews(HashMap<String, Option<PageState>>);

impl PageViews {
    pub async fn load(deps: &Deps, page_ids: Vec<String>) -> Self {
        let mut views = HashMap::new();
        for page_id in page_ids {
            if views.contains_key(&page_id) {
                continue;
            }
            let state = match deps.pages.get_page(&page_id).await {
                Ok(state) => state,
                Err(e) => {
                    // Fail open: the claim still guards every invariant; at worst a send meets
                    // the same error that paused the Page.
                    warn!(error = %e, "could not read the Page state; treating the Page as active");
                    None
                }
            };
            views.insert(page_id, state);
        }
        Self(views)
    }

    /// The state of a paused Page, `None` when it is active.
    pub fn paused(&self, page_id: &str) -> Option<&PageState> {
        self.0
            .get(page_id)
            .and_then(Option::as_ref)
            .filter(|p| p.is_paused())
    }
}

fn parse_job(record: &SqsMessage) -> Option<SendJob> {
    match record.body.as_deref().map(serde_json::from_str::<SendJob>) {
        Some(Ok(job)) if job.version == SendJob::VERSION => Some(job),
        Some(Ok(job)) => {
            // Left for the DLQ: a newer producer wrote a version this code does not know.
            error!(version = job.version, "send job of an unknown version");
            None
        }
        _ => {
            error!("send job body is not a send job; left for the dead-letter queue");
            None
        }
    }
}

fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// Handle one SQS batch: records are processed concurrently (at most `SENDER_MAX_IN_FLIGHT` at
/// once), each in its own span; retried records are backed off and reported in
/// `batchItemFailures`.
pub async fn handle_batch(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let jobs: Vec<Option<SendJob>> = event.records.iter().map(parse_job).collect();
    let page_ids: Vec<String> = jobs.iter().flatten().map(|j| j.page_id.clone()).collect();
    let views = PageViews::load(deps, page_ids).await;
    let views = &views;
    let in_flight = deps.config.send.max_in_flight.max(1);
    let work: Vec<_> = event
        .records
        .iter()
        .zip(&jobs)
        .map(|(record, job)| {
            let message_id = record.message_id.as_deref().unwrap_or("");
            let span = info_span!("send_job", message_id);
            async move {
                match job {
                    Some(job) => process_job(deps, views, &job.key(), message_id).await,
                    None => RecordOutcome::Unreadable,
                }
            }
            .instrument(span)
        })
        .collect();
    // In order, at most `in_flight` at once.
    let mut stream = futures::stream::iter(work).buffered(in_flight);
    let mut outcomes = Vec::with_capacity(event.records.len());
    while let Some(outcome) = stream.next().await {
        outcomes.push(outcome);
    }

    let mut response = SqsBatchResponse::default();
    for ((record, job), outcome) in event.records.iter().zip(&jobs).zip(outcomes) {
        let failed = match (outcome, job) {
            (RecordOutcome::Done, _) => false,
            (RecordOutcome::RetryIn(seconds), Some(job)) => {
                back_off(deps, record, Some(job), seconds).await
            }
            (RecordOutcome::RetryKeep(seconds), _) => back_off(deps, record, None, seconds).await,
            _ => true,
        };
        if failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Make the record come back in `seconds`. Returns whether it must be reported as a failure.
///
/// On its first receives the record itself is delayed (`ChangeMessageVisibility`, then reported
/// in `batchItemFailures`). Later, the retry moves to a fresh message (`DelaySeconds`) and this
/// one is acknowledged, so transient failures never push a record towards the DLQ.
async fn back_off(deps: &Deps, record: &SqsMessage, job: Option<&SendJob>, seconds: u32) -> bool {
    if let Some(job) = job
        && receive_count(record) >= HANDOVER_FROM_RECEIVE
    {
        match deps
            .retry
            .enqueue_after(job, seconds.min(MAX_DELAY_SECONDS))
            .await
        {
            Ok(()) => return false,
            Err(e) => warn!(error = %e, "could not hand the retry to a new message"),
        }
    }
    if let Some(handle) = record.receipt_handle.as_deref()
        && let Err(e) = deps
            .retry
            .retry_after(handle, seconds.min(MAX_VISIBILITY_SECONDS))
            .await
    {
        // The record still comes back, after the queue's visibility timeout.
        warn!(error = %e, "could not change the message visibility");
    }
    true
}

/// One send job. Returns what to do with its record.
pub async fn process_job(
    deps: &Deps,
    views: &PageViews,
    key: &OptInKey,
    message_id: &str,
) -> RecordOutcome {
    if let Some(page) = views.paused(&key.page_id) {
        return pause::job_for_paused_page(deps, key, page, message_id).await;
    }
    attempt(deps, key, message_id, false).await
}

async fn actions_publish(deps: &Deps, alert: &Alert) {
    actions::publish(deps.alerts.as_ref(), alert).await;
}

/// Whole seconds from `now` until just after `until`, at most SQS's longest visibility timeout
/// ([`MAX_VISIBILITY_SECONDS`], 12 h): a time too far away (a Page parked until Meta unblocks it,
/// `i64::MAX`) waits the longest the queue allows, never a short loop.
fn seconds_until(until: Millis, now: Millis) -> u32 {
    let seconds = backoff::ceil_seconds(until.saturating_sub(now)).saturating_add(1);
    u32::try_from(seconds)
        .unwrap_or(MAX_VISIBILITY_SECONDS)
        .min(MAX_VISIBILITY_SECONDS)
}

/// A short backoff for store failures, so a DynamoDB hiccup does not wait a whole visibility
/// timeout.
fn store_retry_seconds() -> u32 {
    2 + rand::random_range(0..4)
}

/// Render, pace, claim, check the margins, send, record. The claim is the only gate: whatever the
/// number of jobs or senders, one conditional write lets exactly one through. It comes after
/// everything slow (the LOGIN read for `{first_name}`, the pacer), so the item is SENDING only
/// from the claim to Graph's answer; the margins are checked after it, against the lease and the
/// deadline as they are when the request starts. `probing`: this send is the probe of a paused
/// Page.
pub(crate) async fn attempt(
    deps: &Deps,
    key: &OptInKey,
    message_id: &str,
    probing: bool,
) -> RecordOutcome {
    let login = login_id_prefix(&key.login_id);
    // The lease owner names the message, so a redelivery recognises its own earlier attempt.
    let owner = format!("{message_id}:{}", uuid::Uuid::new_v4().simple());
    let text = initial_message(deps, key).await;
    let waited = deps.pacer.acquire(&key.page_id).await;
    let mut resumed = false;
    let claimed = loop {
        let now = deps.clock.now();
        match deps
            .store
            .claim_for_send(key, &owner, now, now + deps.config.send_lease_ms)
            .await
        {
            Ok(Transitioned::Done(item)) => break item,
            Ok(Transitioned::Refused(None)) => {
                warn!(login_id_prefix = %login, "send job for an unknown opt-in; dropped");
                return RecordOutcome::Done;
            }
            Ok(Transitioned::Refused(Some(item))) => {
                if item.state == State::Paused && !resumed && !item.deadline_passed(now) {
                    // Paused, but its Page is active (or this is the probe): resume and claim.
                    resumed = true;
                    match deps.pages.resume_opt_in(key, now).await {
                        Ok(_) => continue,
                        Err(e) => {
                            error!(login_id_prefix = %login, error = %e, "resume failed");
                            return RecordOutcome::RetryIn(store_retry_seconds());
                        }
                    }
                }
                return not_claimed(deps, &item, now, message_id).await;
            }
            Err(e) => {
                error!(login_id_prefix = %login, error = %e, "claim failed");
                return RecordOutcome::RetryIn(store_retry_seconds());
            }
        }
    };

    // Nothing slow between here and the request: a send that starts now ends (answer or
    // timeout) within `margin`.
    let margin = deps.send_margin_ms();
    let now = deps.clock.now();
    if claimed.deadline_at - now <= margin {
        return out_of_time(deps, &claimed, &owner, None).await;
    }
    if claimed
        .lease_until
        .is_some_and(|until| until - now <= margin)
    {
        // The claim itself was slow: sending now could outlive the lease. Hand the opt-in back.
        warn!(login_id_prefix = %login, waited_ms = waited.as_millis() as u64, "lease too short to send");
        let error = LastError {
            message: "lease too short to send".into(),
            ..LastError::default()
        };
        return match deps
            .store
            .finish_send(key, &owner, &SendOutcome::Retry { error }, now)
            .await
        {
            Ok(Transitioned::Done(_)) => RecordOutcome::RetryIn(1),
            Ok(Transitioned::Refused(_)) => RecordOutcome::Done,
            Err(_) => {
                RecordOutcome::RetryKeep(seconds_until(claimed.lease_until.unwrap_or(now), now))
            }
        };
    }

    let result = deps
        .messenger
        .send_initial_message(&key.page_id, &key.login_id, &text)
        .await;
    let done_at = deps.clock.now();
    match result {
        Ok(sent) => {
            record_sent(deps, &claimed, &owner, sent.message_id, done_at).await;
            if probing {
                pause::probe_succeeded(deps, &key.page_id).await;
            }
            RecordOutcome::Done
        }
        Err(graph_error) => failed(deps, &claimed, &owner, &graph_error, done_at, probing).await,
    }
}

/// Write SENT. Graph has accepted the message: from here until the write is durable is the only
/// window in which a crash can lead to a second message (docs/sender.md measures it), so the
/// write is retried briefly rather than given up.
async fn record_sent(deps: &Deps, claimed: &OptIn, owner: &str, message_id: String, now: Millis) {
    let key = claimed.key();
    let login = login_id_prefix(&key.login_id);
    let outcome = SendOutcome::Sent {
        message_id: message_id.clone(),
    };
    let started = std::time::Instant::now();
    for retry in 0..3u32 {
        if retry > 0 {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(4u32.pow(retry - 1)))).await;
        }
        match deps.store.finish_send(&key, owner, &outcome, now).await {
            Ok(Transitioned::Done(item)) => {
                metrics::record_sent(deps.metrics.as_ref(), &item);
                info!(
                    login_id_prefix = %login,
                    attempts = item.attempts,
                    opt_in_to_sent_ms = now - item.opted_in_at,
                    sent_write_ms = started.elapsed().as_millis() as u64,
                    "initial message sent"
                );
                actions::cancel_schedule(deps.scheduler.as_ref(), &key).await;
                return;
            }
            Ok(Transitioned::Refused(Some(current)))
                if current.state == State::Sent
                    && current.message_id.as_deref() == Some(message_id.as_str()) =>
            {
                // An earlier try of this write succeeded but its answer was lost.
                metrics::record_sent(deps.metrics.as_ref(), &current);
                actions::cancel_schedule(deps.scheduler.as_ref(), &key).await;
                return;
            }
            Ok(Transitioned::Refused(current)) => {
                refused_after_send(deps, claimed, current.map(|c| *c), &message_id, now).await;
                return;
            }
            Err(e) => warn!(login_id_prefix = %login, error = %e, retry, "SENT write failed"),
        }
    }
    error!(
        login_id_prefix = %login,
        "message accepted by Graph but SENT could not be written; the lease protects against a resend until it expires"
    );
}

/// Graph accepted the message but the `SENT` write was refused: the opt-in changed while the
/// request was in flight. An opt-out (OPTED_OUT, or the item erased by a data deletion) is
/// recorded on the item with the message id, logged and counted: the person received a message
/// after opting out, and the operators and the evidence must say so.
async fn refused_after_send(
    deps: &Deps,
    claimed: &OptIn,
    current: Option<OptIn>,
    message_id: &str,
    sent_at: Millis,
) {
    let key = claimed.key();
    let login = login_id_prefix(&key.login_id);
    let state = current.as_ref().map(|c| c.state);
    if !matches!(state, None | Some(State::OptedOut)) {
        // Not an opt-out: the lease ran out and another sender or the sweep moved on.
        warn!(
            login_id_prefix = %login,
            state = %state.map_or("missing".into(), |s| s.to_string()),
            "message accepted by Graph but the opt-in changed meanwhile; left as is"
        );
        return;
    }
    metrics::record_sent_after_opt_out(deps.metrics.as_ref(), &key.page_id);
    if state.is_none() {
        // Erased by a data deletion while in flight: nothing to record it on, and recording it
        // would bring the person's identifiers back.
        warn!(
            login_id_prefix = %login,
            "message accepted by Graph after the opt-in was erased (data deletion while sending)"
        );
        return;
    }
    warn!(
        login_id_prefix = %login,
        "message accepted by Graph after the opt-out was recorded (in flight); recording it on the opt-in"
    );
    for retry in 0..3u32 {
        if retry > 0 {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(4u32.pow(retry - 1)))).await;
        }
        match deps
            .store
            .record_send_after_opt_out(&key, claimed.attempts, message_id, sent_at)
            .await
        {
            Ok(Transitioned::Done(_)) => return,
            // An earlier try succeeded but its answer was lost.
            Ok(Transitioned::Refused(Some(item)))
                if item.sent_after_opt_out && item.message_id.as_deref() == Some(message_id) =>
            {
                return;
            }
            Ok(Transitioned::Refused(item)) => {
                error!(
                    login_id_prefix = %login,
                    state = %item.map_or("missing".into(), |i| i.state.to_string()),
                    "could not record the message sent after the opt-out: the opt-in changed again"
                );
                return;
            }
            Err(e) => {
                warn!(login_id_prefix = %login, error = %e, retry, "recording the send after the opt-out failed")
            }
        }
    }
    error!(
        login_id_prefix = %login,
        "message accepted by Graph after the opt-out, but it could not be recorded on the opt-in"
    );
}

/// The configured text, with `{first_name}` filled from the LOGIN linked to the opt-in (one
/// consistent read, only when the text uses it) or the fallback when none is linked yet.
async fn initial_message(deps: &Deps, key: &OptInKey) -> String {
    let template = &deps.config.initial_message_text;
    if !needs_first_name(template) {
        return template.clone();
    }
    let first_name = match deps.logins.link_for(key).await {
        Ok(link) => link.and_then(|l| l.first_name),
        Err(e) => {
            warn!(login_id_prefix = %login_id_prefix(&key.login_id), error = %e, "could not read the linked login; using the fallback name");
            None
        }
    };
    render_initial_message(
        template,
        first_name.as_deref(),
        &deps.config.login.first_name_fallback,
    )
}

/// The claim was refused: decide from the item's current state.
async fn not_claimed(deps: &Deps, item: &OptIn, now: Millis, message_id: &str) -> RecordOutcome {
    let key = item.key();
    if item.state.is_terminal() {
        return RecordOutcome::Done;
    }
    let live_lease = item.state == State::Sending && !item.lease_expired(now);
    if live_lease {
        let ours = item
            .lease_owner
            .as_deref()
            .is_some_and(|o| !message_id.is_empty() && o.starts_with(&format!("{message_id}:")));
        if ours {
            // An earlier receive of this very message claimed it and then crashed or could not
            // record the outcome: come back when its lease has expired, and take over.
            let until = item.lease_until.unwrap_or(now);
            return RecordOutcome::RetryKeep(seconds_until(until, now));
        }
        // Another job holds the lease; if it crashes, its own message comes back after the
        // visibility timeout (longer than the lease) and takes over. This one is a duplicate.
        return RecordOutcome::Done;
    }
    if item.deadline_passed(now) {
        expire(deps, &key, now).await;
        return RecordOutcome::Done;
    }
    match item.state {
        // Parked by its paused Page: the resume re-queues it.
        State::Paused => RecordOutcome::Done,
        // OPTED_IN / RETRYING refused by a race: look again shortly.
        _ => RecordOutcome::RetryIn(store_retry_seconds()),
    }
}

async fn expire(deps: &Deps, key: &OptInKey, now: Millis) {
    actions::expire_opt_in(
        deps.store.as_ref(),
        deps.scheduler.as_ref(),
        deps.alerts.as_ref(),
        deps.metrics.as_ref(),
        key,
        now,
    )
    .await;
}

/// No attempt can land before the deadline any more: EXPIRED now, with an alert, rather than
/// waiting for the deadline. The alert says what happened: the sender gave up at this moment,
/// this long before the deadline, after this many attempts, with this last Graph error
/// ([`AlertKind::GaveUpBeforeDeadline`]; `deadline_missed` only if the deadline has passed).
/// `error`: the failure of the attempt just made; `None` when no attempt was made (too little
/// time left), and the item keeps the last Graph error of its earlier attempts, if any.
async fn out_of_time(
    deps: &Deps,
    claimed: &OptIn,
    owner: &str,
    error: Option<LastError>,
) -> RecordOutcome {
    let key = claimed.key();
    let now = deps.clock.now();
    let reason = match &error {
        Some(_) => "its last attempt failed and no retry can land before the deadline",
        None => "too little time was left for one more attempt (one may take GRAPH_TIMEOUT_MS)",
    };
    let error = error
        .or_else(|| claimed.last_error.clone())
        .unwrap_or_else(|| LastError {
            message: "too close to the deadline to send".into(),
            ..LastError::default()
        });
    warn!(
        login_id_prefix = %login_id_prefix(&key.login_id),
        ms_left = claimed.deadline_at - now,
        "no attempt can land before the deadline; EXPIRED"
    );
    // SENDING → EXPIRED by the lease owner (the transition Graph's window errors take).
    match deps
        .store
        .finish_send(&key, owner, &SendOutcome::WindowClosed { error }, now)
        .await
    {
        Ok(Transitioned::Done(item)) => {
            metrics::record_deadline_missed(deps.metrics.as_ref(), &key.page_id);
            actions::cancel_schedule(deps.scheduler.as_ref(), &key).await;
            let last = item.last_error.as_ref().map_or(String::new(), |e| {
                let code = match e.subcode {
                    Some(sub) => format!("{}/{sub}", e.code),
                    None => e.code.to_string(),
                };
                format!("; last error {code}: {}", e.message)
            });
            let alert = if item.deadline_passed(now) {
                Alert::about(
                    &item,
                    AlertKind::DeadlineMissed,
                    format!(
                        "the deadline passed during the last attempt ({} attempt(s)){last}",
                        item.attempts
                    ),
                )
            } else {
                let detail = format!(
                    "the sender gave up at {}, {} s before the deadline ({}), after {} attempt(s): {reason}. The opt-in is EXPIRED; nothing will be sent to this person{last}",
                    shared::domain::utc(now),
                    (item.deadline_at - now) / 1000,
                    shared::domain::utc(item.deadline_at),
                    item.attempts
                );
                Alert::gave_up(&item, now, detail)
            };
            actions::publish(deps.alerts.as_ref(), &alert).await;
            RecordOutcome::Done
        }
        Ok(Transitioned::Refused(_)) => RecordOutcome::Done,
        Err(e) => {
            error!(error = %e, "could not record EXPIRED");
            RecordOutcome::RetryKeep(store_retry_seconds())
        }
    }
}

async fn failed(
    deps: &Deps,
    claimed: &OptIn,
    owner: &str,
    graph_error: &GraphError,
    now: Millis,
    probing: bool,
) -> RecordOutcome {
    let key = claimed.key();
    let login = login_id_prefix(&key.login_id);
    let error = graph_error.to_last_error();
    let class = graph_error.class();
    warn!(
        login_id_prefix = %login,
        code = error.code,
        subcode = ?error.subcode,
        fbtrace_id = ?error.fbtrace_id,
        class = ?class,
        attempts = claimed.attempts,
        probing,
        "send failed"
    );
    let exhausted = match class {
        ErrorClass::Retry => false,
        ErrorClass::RetryBounded => claimed.attempts >= MAX_BOUNDED_ATTEMPTS,
        ErrorClass::Unknown => claimed.attempts >= MAX_UNKNOWN_ATTEMPTS,
        _ => true,
    };
    if !exhausted {
        return retry_or_expire(deps, claimed, owner, error, now).await;
    }
    let (outcome, alert) = match class {
        ErrorClass::Unreachable => (SendOutcome::Unreachable { error }, None),
        ErrorClass::Window => (
            SendOutcome::WindowClosed { error },
            Some(AlertKind::WindowRejected),
        ),
        // The Page is paused below; it alerts once for the Page.
        ErrorClass::Configuration | ErrorClass::PageRestricted | ErrorClass::AbuseWarning => {
            (SendOutcome::Paused { error }, None)
        }
        // Retried a bounded number of times: never dropped silently.
        _ => (
            SendOutcome::Paused { error },
            Some(AlertKind::ConfigurationError),
        ),
    };
    let item = match deps.store.finish_send(&key, owner, &outcome, now).await {
        Ok(Transitioned::Done(item)) => item,
        // Opted out or taken over meanwhile: nothing more to do for this job.
        Ok(Transitioned::Refused(_)) => return RecordOutcome::Done,
        Err(e) => {
            error!(login_id_prefix = %login, error = %e, "could not record the send failure");
            return RecordOutcome::RetryKeep(seconds_until(
                claimed.lease_until.unwrap_or(now),
                now,
            ));
        }
    };
    if item.state == State::Expired {
        metrics::record_deadline_missed(deps.metrics.as_ref(), &key.page_id);
    }
    if item.state.is_terminal() {
        actions::cancel_schedule(deps.scheduler.as_ref(), &key).await;
    }
    if let Some(kind) = alert {
        let detail = match class {
            ErrorClass::Window => format!(
                "Graph refused the send as outside the window although our deadline is {} s away: check the clock and the send latency ({graph_error})",
                (item.deadline_at - now) / 1000
            ),
            _ => format!(
                "Graph kept failing after {} attempts ({graph_error}); the opt-in is PAUSED: it is re-queued when its Page resumes, or send its job again",
                item.attempts
            ),
        };
        actions::publish(deps.alerts.as_ref(), &Alert::about(&item, kind, detail)).await;
    }
    if let Some(cause) = PauseCause::for_class(class) {
        pause::page_error(deps, &item, cause, graph_error, probing).await;
    }
    RecordOutcome::Done
}

/// A transient failure: RETRYING with a backoff that still lands before the deadline, or EXPIRED
/// when none can.
async fn retry_or_expire(
    deps: &Deps,
    claimed: &OptIn,
    owner: &str,
    error: LastError,
    now: Millis,
) -> RecordOutcome {
    let key = claimed.key();
    let Some(seconds) = backoff::next_attempt_in(
        claimed.attempts,
        now,
        claimed.deadline_at,
        &deps.config.send,
        deps.send_margin_ms(),
        rand::random::<f64>(),
    ) else {
        return out_of_time(deps, claimed, owner, Some(error)).await;
    };
    match deps
        .store
        .finish_send(&key, owner, &SendOutcome::Retry { error }, now)
        .await
    {
        Ok(Transitioned::Done(_)) => RecordOutcome::RetryIn(seconds),
        Ok(Transitioned::Refused(_)) => RecordOutcome::Done,
        Err(e) => {
            // The lease still stands: the record comes back, sees its own lease, and waits for it.
            error!(error = %e, "could not record RETRYING");
            RecordOutcome::RetryKeep(seconds)
        }
    }
}
