//! In-memory twins of [`EventPublisher`] (records every published event) and of the event sender's
//! [`crate::ports::events::EventQueue`] (records backoffs and dead letters); both can be made to fail.

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

/// In-memory twin of [`EventQueue`]: records the backoffs and the dead letters; can be made to fail.
#[derive(Default)]
pub struct MemoryEventQueue {
    /// (receipt handle, delay in seconds), in call order.
    pub retries: Mutex<Vec<(String, u32)>>,
    pub dead_letters: Mutex<Vec<String>>,
    pub fail: AtomicBool,
}

impl MemoryEventQueue {
    pub fn retries(&self) -> Vec<(String, u32)> {
        lock(&self.retries).clone()
    }

    pub fn dead_letters(&self) -> Vec<String> {
        lock(&self.dead_letters).clone()
    }

    fn check(&self) -> PortResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::new("memory-event-queue", "injected failure"));
        }
        Ok(())
    }
}

#[async_trait]
impl crate::ports::events::EventQueue for MemoryEventQueue {
    async fn retry_after(&self, receipt_handle: &str, delay_seconds: u32) -> PortResult<()> {
        self.check()?;
        lock(&self.retries).push((receipt_handle.to_owned(), delay_seconds));
        Ok(())
    }

    async fn dead_letter(&self, body: &str) -> PortResult<()> {
        self.check()?;
        lock(&self.dead_letters).push(body.to_owned());
        Ok(())
    }
}
