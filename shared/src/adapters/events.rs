//! Events off: the [`EventPublisher`] of a deployment without `EVENTS_URL` accepts every event and
//! drops it (nothing is queued, nothing is delivered).

use crate::domain::events::OutboundEvent;
use crate::ports::error::PortResult;
use crate::ports::events::EventPublisher;
use async_trait::async_trait;

/// The publisher when events are off.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventsOff;

#[async_trait]
impl EventPublisher for EventsOff {
    async fn publish(&self, _event: &OutboundEvent) -> PortResult<()> {
        Ok(())
    }
}
