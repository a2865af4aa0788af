//! Events to the website backend: handing an [`OutboundEvent`] over for delivery. The adapter puts
//! it on the events queue (its own SQS queue, so a slow or dead endpoint never delays an opt-in, a
//! message or an opt-out); the event sender delivers it, signed, with retries.

use crate::domain::events::OutboundEvent;
use crate::ports::error::PortResult;
use async_trait::async_trait;

#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Queue `event` for delivery. Events off (no `EVENTS_URL`): accepted and dropped.
    async fn publish(&self, event: &OutboundEvent) -> PortResult<()>;

    /// Whether published events go anywhere. `false` (events off) lets the emitting use case skip
    /// the reads that name the person, on every producer's path.
    fn enabled(&self) -> bool {
        true
    }
}

/// The event sender's side of the events queue: backing a failed delivery off, and moving a
/// record that can never be delivered (unreadable) to the dead-letter queue at once.
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Make the received record visible again `delay_seconds` from now (`ChangeMessageVisibility`,
    /// at most [`crate::ports::queue::MAX_VISIBILITY_SECONDS`]); the caller also reports it in
    /// `batchItemFailures`, so the receive count grows towards the dead-letter queue.
    async fn retry_after(&self, receipt_handle: &str, delay_seconds: u32) -> PortResult<()>;

    /// Put `body` on the events dead-letter queue as it is (the caller then acknowledges the record).
    async fn dead_letter(&self, body: &str) -> PortResult<()>;
}
