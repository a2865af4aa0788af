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
}
