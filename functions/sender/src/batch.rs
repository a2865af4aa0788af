//! SQS in and out: one batch of send jobs becomes one `SqsBatchResponse`.
//!
//! The runtime example's partial-batch pattern (`advanced-sqs-partial-batch-failures`): each record
//! is parsed and handed to [`crate::attempt::process_job`] in its own span, at most
//! `SENDER_MAX_IN_FLIGHT` at once; a record to retry is backed off and reported in
//! `batchItemFailures`, and from [`HANDOVER_FROM_RECEIVE`] on handed to a fresh delayed message, so
//! that transient failures never use up the receives that move a bad record to the DLQ.

use crate::attempt::process_job;
use crate::backoff::RecordOutcome;
use crate::deps::Deps;
use crate::follow_up::process_follow_up;
use crate::pause::PageViews;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use shared::domain::jobs::Job;
use shared::ports::queue::{MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS};
use tracing::{Instrument, error, info_span, warn};

/// The send queue's `maxReceiveCount` (template.yaml `SendQueue.RedrivePolicy`; a test checks).
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// A record retried through `ChangeMessageVisibility` on its first receives; from this receive on
/// the retry is handed to a fresh, delayed message instead, so that transient failures never use
/// up the receives that move a crashing or unparseable record to the dead-letter queue.
pub const HANDOVER_FROM_RECEIVE: u32 = MAX_RECEIVE_COUNT - 2;

/// The record's job; `None` (logged with the SQS message id, so the operator can find the record
/// in the dead-letter queue) when it is not one this code can read.
fn parse_job(record: &SqsMessage) -> Option<Job> {
    let message_id = record.message_id.as_deref().unwrap_or("");
    let body = record.body.as_deref().unwrap_or("");
    if let Some(job) = Job::parse(body) {
        return Some(job);
    }
    let version = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
    match version {
        // Left for the DLQ: a newer producer wrote a version (or a kind) this code does not know.
        Some(version) => error!(
            message_id,
            version, "send job of an unknown version; left for the dead-letter queue"
        ),
        None => error!(
            message_id,
            "send job body is not a send job; left for the dead-letter queue"
        ),
    }
    None
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
    let jobs: Vec<Option<Job>> = event.records.iter().map(parse_job).collect();
    let page_ids: Vec<String> = jobs
        .iter()
        .flatten()
        .filter_map(|j| match j {
            Job::Initial(job) => Some(job.page_id.clone()),
            _ => None,
        })
        .collect();
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
                    Some(Job::Initial(job)) => process_job(deps, views, job, message_id).await,
                    Some(Job::FollowUp(job)) => process_follow_up(deps, job, message_id).await,
                    Some(Job::DriftCheck(job)) => crate::drift::check(deps, job).await,
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
            response.batch_item_failures.push(failure(record));
        }
    }
    response
}

/// The `batchItemFailures` entry that makes SQS deliver `record` again.
pub(crate) fn failure(record: &SqsMessage) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = record.message_id.clone().unwrap_or_default();
    failure
}

/// Make the record come back in `seconds`. Returns whether it must be reported as a failure.
///
/// On its first receives the record itself is delayed (`ChangeMessageVisibility`, then reported
/// in `batchItemFailures`). Later, the retry moves to a fresh message (`DelaySeconds`) and this
/// one is acknowledged, so transient failures never push a record towards the DLQ.
async fn back_off(deps: &Deps, record: &SqsMessage, job: Option<&Job>, seconds: u32) -> bool {
    if let Some(job) = job
        && receive_count(record) >= HANDOVER_FROM_RECEIVE
    {
        match deps
            .ports
            .retry
            .enqueue_job_after(job, seconds.min(MAX_DELAY_SECONDS))
            .await
        {
            Ok(()) => return false,
            Err(e) => warn!(error = %e, "could not hand the retry to a new message"),
        }
    }
    if let Some(handle) = record.receipt_handle.as_deref()
        && let Err(e) = deps
            .ports
            .retry
            .retry_after(handle, seconds.min(MAX_VISIBILITY_SECONDS))
            .await
    {
        // The record still comes back, after the queue's visibility timeout.
        warn!(error = %e, "could not change the message visibility");
    }
    true
}
