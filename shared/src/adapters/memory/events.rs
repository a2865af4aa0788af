//! In-memory twin of [`EventPublisher`]: records every published event, can be made to fail.

use crate::adapters::memory::sync::lock;
use crate::domain::events::{EventType, OutboundEvent};
use crate::ports::error::{PortError, PortResult};
use crate::ports::events::EventPublisher;
use async_trait::async_trait;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct MemoryEvents {
    pub events: Mutex<Vec<OutboundEvent>>,
    pub fail: AtomicBool,
}

impl MemoryEvents {
    pub fn events(&self) -> Vec<OutboundEvent> {
        lock(&self.events).clone()
    }

    /// The published events of one type, in publishing order.
    pub fn of_type(&self, event_type: EventType) -> Vec<OutboundEvent> {
        lock(&self.events)
            .iter()
            .filter(|e| e.event_type == event_type)
            .cloned()
            .collect()
    }
}

#[async_trait]
impl EventPublisher for MemoryEvents {
    async fn publish(&self, event: &OutboundEvent) -> PortResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::new("memory-events", "injected failure"));
        }
        lock(&self.events).push(event.clone());
        Ok(())
    }
}
