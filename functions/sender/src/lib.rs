//! The SQS-triggered sender: for each send job, claim the opt-in, send the initial message once,
//! and record the outcome. Failures that deserve another try are returned in `batchItemFailures`;
//! everything else is acknowledged with its terminal state written.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use shared::actions;
use shared::config::Config;
use shared::domain::{Alert, AlertKind, OptIn, OptInKey, SendJob, State, login_id_prefix};
use shared::facebook::{ErrorClass, GraphError};
use shared::login::{LoginStore, needs_first_name, render_initial_message};
use shared::metrics::{self, Metrics};
use shared::ports::{
    Alerts, Clock, DeadlineScheduler, Messenger, OptInStore, SendOutcome, SystemClock, Transitioned,
};
use std::sync::Arc;
use tracing::{Instrument, error, info, info_span, warn};

/// Attempts allowed for errors Meta documents as possibly permanent (code 1) before pausing.
pub const MAX_BOUNDED_ATTEMPTS: u32 = 3;
/// Attempts allowed for errors not in the table before pausing and alerting.
pub const MAX_UNKNOWN_ATTEMPTS: u32 = 5;

pub struct Deps {
    pub config: Config,
    pub store: Arc<dyn OptInStore>,
    pub scheduler: Arc<dyn DeadlineScheduler>,
    pub alerts: Arc<dyn Alerts>,
    pub messenger: Arc<dyn Messenger>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn Metrics>,
    /// The LOGIN linked to an opt-in gives the first name for `{first_name}`.
    pub logins: Arc<dyn LoginStore>,
}

impl Deps {
    /// The production wiring, shared by the Lambda main and the local runner.
    pub fn from_aws(
        config: Config,
        secrets: &shared::config::Secrets,
        sdk: &shared::bootstrap::SdkConfig,
    ) -> Result<Self, shared::adapters::graph::GraphInitError> {
        let ports = shared::bootstrap::AwsPorts::new(&config, sdk);
        let messenger = shared::adapters::graph::GraphClient::new(&config, secrets)?;
        let logins =
            shared::adapters::dynamodb_login::DynamoLoginStore::from_sdk(sdk, &config.table_name);
        Ok(Self {
            logins: Arc::new(logins),
            config,
            store: ports.store,
            scheduler: ports.scheduler,
            alerts: ports.alerts,
            messenger: Arc::new(messenger),
            clock: Arc::new(SystemClock),
            metrics: ports.metrics,
        })
    }
}

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Acknowledge: the job is done (sent, terminal, or nothing to do).
    Done,
    /// Leave on the queue: it comes back after the visibility timeout.
    Retry,
}

/// Handle one SQS batch. Records are processed concurrently, each in its own span.
pub async fn handle_batch(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let outcomes = futures::future::join_all(event.records.iter().map(|record| {
        let span = info_span!(
            "send_job",
            message_id = record.message_id.as_deref().unwrap_or("")
        );
        process_record(deps, record).instrument(span)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for (record, outcome) in event.records.iter().zip(outcomes) {
        if outcome == RecordOutcome::Retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

pub async fn process_record(deps: &Deps, record: &SqsMessage) -> RecordOutcome {
    let job: SendJob = match record.body.as_deref().map(serde_json::from_str::<SendJob>) {
        Some(Ok(job)) if job.version == SendJob::VERSION => job,
        Some(Ok(job)) => {
            // Left for the DLQ: a newer producer wrote a version this code does not know.
            error!(version = job.version, "send job of an unknown version");
            return RecordOutcome::Retry;
        }
        _ => {
            error!("send job body is not a send job; left for the dead-letter queue");
            return RecordOutcome::Retry;
        }
    };
    process_job(deps, &job.key()).await
}

/// Claim, send, record. The claim is the only gate: whatever the number of jobs or senders, one
/// conditional write lets exactly one through.
pub async fn process_job(deps: &Deps, key: &OptInKey) -> RecordOutcome {
    let login = login_id_prefix(&key.login_id);
    let now = deps.clock.now();
    let owner = uuid::Uuid::new_v4().to_string();
    let claimed = match deps
        .store
        .claim_for_send(key, &owner, now, now + deps.config.send_lease_ms)
        .await
    {
        Ok(Transitioned::Done(item)) => item,
        Ok(Transitioned::Refused(None)) => {
            warn!(login_id_prefix = %login, "send job for an unknown opt-in; dropped");
            return RecordOutcome::Done;
        }
        Ok(Transitioned::Refused(Some(item))) => return not_claimed(deps, &item, now).await,
        Err(e) => {
            error!(login_id_prefix = %login, error = %e, "claim failed");
            return RecordOutcome::Retry;
        }
    };

    let text = initial_message(deps, key).await;
    let result = deps
        .messenger
        .send_initial_message(&key.page_id, &key.login_id, &text)
        .await;
    let done_at = deps.clock.now();
    match result {
        Ok(sent) => {
            let outcome = SendOutcome::Sent {
                message_id: sent.message_id,
            };
            match deps.store.finish_send(key, &owner, &outcome, done_at).await {
                Ok(Transitioned::Done(item)) => {
                    metrics::record_sent(deps.metrics.as_ref(), &item);
                    info!(
                        login_id_prefix = %login,
                        attempts = item.attempts,
                        opt_in_to_sent_ms = done_at - item.opted_in_at,
                        "initial message sent"
                    );
                    cancel_schedule(deps, key).await;
                }
                Ok(Transitioned::Refused(current)) => warn!(
                    login_id_prefix = %login,
                    state = %current.map_or("missing".into(), |c| c.state.to_string()),
                    "message accepted by Graph but the opt-in changed meanwhile (opt-out while sending); left as is"
                ),
                Err(e) => error!(
                    login_id_prefix = %login,
                    error = %e,
                    "message accepted by Graph but SENT could not be written; the lease protects against a resend until it expires"
                ),
            }
            RecordOutcome::Done
        }
        Err(graph_error) => failed(deps, &claimed, &owner, &graph_error, done_at).await,
    }
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
async fn not_claimed(deps: &Deps, item: &OptIn, now: i64) -> RecordOutcome {
    let key = item.key();
    if item.state.is_terminal() {
        return RecordOutcome::Done;
    }
    if item.deadline_passed(now) {
        if item.state == State::Sending && !item.lease_expired(now) {
            // The lease owner decides; look again after the visibility timeout.
            return RecordOutcome::Retry;
        }
        expire(deps, &key, now).await;
        return RecordOutcome::Done;
    }
    match item.state {
        // Another sender holds the lease: if it crashes, this job takes over after the lease.
        State::Sending => RecordOutcome::Retry,
        // Resumed by the operator's fix, which re-enqueues.
        State::Paused => RecordOutcome::Done,
        _ => RecordOutcome::Retry,
    }
}

async fn expire(deps: &Deps, key: &OptInKey, now: i64) {
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

async fn failed(
    deps: &Deps,
    claimed: &OptIn,
    owner: &str,
    graph_error: &GraphError,
    now: i64,
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
        "send failed"
    );
    let (outcome, alert_kind, retry) = match class {
        ErrorClass::Retry => (SendOutcome::Retry { error }, None, true),
        ErrorClass::RetryBounded if claimed.attempts < MAX_BOUNDED_ATTEMPTS => {
            (SendOutcome::Retry { error }, None, true)
        }
        ErrorClass::Unknown if claimed.attempts < MAX_UNKNOWN_ATTEMPTS => {
            (SendOutcome::Retry { error }, None, true)
        }
        ErrorClass::RetryBounded | ErrorClass::Unknown => (
            SendOutcome::Paused { error },
            Some(AlertKind::ConfigurationError),
            false,
        ),
        ErrorClass::Unreachable => (SendOutcome::Unreachable { error }, None, false),
        ErrorClass::Window => (
            SendOutcome::WindowClosed { error },
            Some(AlertKind::WindowRejected),
            false,
        ),
        ErrorClass::Configuration | ErrorClass::PageRestricted => (
            SendOutcome::Paused { error },
            Some(AlertKind::ConfigurationError),
            false,
        ),
    };
    match deps.store.finish_send(&key, owner, &outcome, now).await {
        Ok(Transitioned::Done(item)) => {
            if item.state == State::Expired {
                metrics::record_deadline_missed(deps.metrics.as_ref(), &key.page_id);
            }
            if item.state.is_terminal() {
                cancel_schedule(deps, &key).await;
            }
            if let Some(kind) = alert_kind {
                let detail = format!("Graph refused the send: {}", graph_error);
                publish(deps, &Alert::about(&item, kind, detail)).await;
            }
        }
        Ok(Transitioned::Refused(_)) => {
            // Opted out or taken over meanwhile: nothing more to do for this job.
            return RecordOutcome::Done;
        }
        Err(e) => {
            error!(login_id_prefix = %login, error = %e, "could not record the send failure");
            return RecordOutcome::Retry;
        }
    }
    if retry {
        RecordOutcome::Retry
    } else {
        RecordOutcome::Done
    }
}

async fn cancel_schedule(deps: &Deps, key: &OptInKey) {
    actions::cancel_schedule(deps.scheduler.as_ref(), key).await;
}

async fn publish(deps: &Deps, alert: &Alert) {
    actions::publish(deps.alerts.as_ref(), alert).await;
}
