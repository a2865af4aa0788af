//! SQS in and out: one batch of events becomes one `SqsBatchResponse`. Each record is delivered in
//! its own span (at most [`MAX_IN_FLIGHT`] at once); a failed delivery is backed off through
//! `ChangeMessageVisibility` ([`crate::schedule`]) and reported in `batchItemFailures`, so SQS's
//! receive count is the attempt number and `maxReceiveCount` moves it to the dead-letter queue.
//! An unreadable record can never be delivered: it goes to the dead-letter queue at once.

use crate::deliver::{Attempt, post};
use crate::deps::{Deps, MAX_IN_FLIGHT};
use crate::schedule::{is_last_attempt, retry_delay_seconds};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use shared::domain::events::OutboundEvent;
use tracing::{Instrument, error, info, info_span, warn};

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (2xx), or an unreadable record moved to the dead-letter queue: acknowledge it.
    Done,
    /// Comes back for another attempt (or, after the last, for the dead-letter queue).
    Retry,
}

/// The record's attempt number: SQS's `ApproximateReceiveCount` (1 on the first receive).
pub fn receive_count(record: &SqsMessage) -> u32 {
    let count = record.attributes.get("ApproximateReceiveCount");
    count.and_then(|c| c.parse().ok()).unwrap_or(1)
}

/// Handle one SQS batch of events.
pub async fn handle_batch(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let work: Vec<_> = event
        .records
        .iter()
        .map(|record| {
            let message_id = record.message_id.as_deref().unwrap_or("");
            handle_record(deps, record).instrument(info_span!("event_record", message_id))
        })
        .collect();
    // In order (the outcomes line up with the records), at most MAX_IN_FLIGHT at once.
    let outcomes: Vec<Outcome> = futures::stream::iter(work)
        .buffered(MAX_IN_FLIGHT)
        .collect()
        .await;
    let retried = event.records.iter().zip(outcomes);
    retry_all(
        retried
            .filter(|(_, o)| *o == Outcome::Retry)
            .map(|(r, _)| r),
    )
}

/// The response that makes SQS deliver each of `records` again (`batchItemFailures`).
pub fn retry_all<'a>(records: impl Iterator<Item = &'a SqsMessage>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in records {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = record.message_id.clone().unwrap_or_default();
        response.batch_item_failures.push(failure);
    }
    response
}

/// Deliver one record, or back it off, or dead-letter it when it cannot be read.
pub async fn handle_record(deps: &Deps, record: &SqsMessage) -> Outcome {
    let body = record.body.as_deref().unwrap_or("");
    let Ok(event) = serde_json::from_str::<OutboundEvent>(body) else {
        return dead_letter(deps, body).await;
    };
    let attempt = receive_count(record);
    let (event_type, event_id) = (event.event_type.as_str(), event.id.as_str());
    let timestamp = deps.clock.now().div_euclid(1000);
    match post(&deps.http, &deps.url, &deps.signer, &event, timestamp).await {
        Attempt::Delivered { status } => {
            info!(event_type, event_id, status, attempt, "event delivered");
            Outcome::Done
        }
        Attempt::Failed { status, reason } => {
            if is_last_attempt(attempt) {
                error!(
                    event_type, event_id, status, attempt, reason = %reason,
                    "event delivery failed on its last attempt: it moves to the events dead-letter queue"
                );
                back_off(deps, record, 0).await;
                return Outcome::Retry;
            }
            let delay = retry_delay_seconds(attempt, deps.retry_base_seconds);
            warn!(
                event_type, event_id, status, attempt, reason = %reason, retry_in_s = delay,
                "event delivery failed; retrying"
            );
            back_off(deps, record, delay).await;
            Outcome::Retry
        }
    }
}

/// Make the record visible again in `seconds` (on failure it still comes back, after the queue's
/// visibility timeout).
async fn back_off(deps: &Deps, record: &SqsMessage, seconds: u32) {
    if let Some(handle) = record.receipt_handle.as_deref()
        && let Err(e) = deps.queue.retry_after(handle, seconds).await
    {
        warn!(error = %e, "could not change the record's visibility");
    }
}

/// An unreadable record (not an event of this code's format): no retry can deliver it, so it
/// goes to the dead-letter queue now. Logged with the SQS message id only (the span's), never the
/// body.
async fn dead_letter(deps: &Deps, body: &str) -> Outcome {
    match deps.queue.dead_letter(body).await {
        Ok(()) => {
            error!("the record is not an event: moved to the events dead-letter queue");
            Outcome::Done
        }
        Err(e) => {
            error!(error = %e, "the record is not an event and could not be dead-lettered; left for a retry");
            Outcome::Retry
        }
    }
}
