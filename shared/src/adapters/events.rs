//! Events to the website backend on AWS: [`EventsOff`] (no `EVENTS_URL`: every event is accepted
//! and dropped) and [`SqsEvents`] (the events queue: `publish` is one `SendMessage` of the event's
//! JSON; the event sender's [`EventQueue`] side backs records off and dead-letters unreadable ones).

use crate::adapters::aws::port_error;
use crate::adapters::sqs::SqsSendQueue;
use crate::domain::events::OutboundEvent;
use crate::ports::error::{PortError, PortResult};
use crate::ports::events::{EventPublisher, EventQueue};
use crate::ports::queue::RetryQueue;
use async_trait::async_trait;
use aws_sdk_sqs::Client;

/// The publisher when events are off.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventsOff;

#[async_trait]
impl EventPublisher for EventsOff {
    async fn publish(&self, _event: &OutboundEvent) -> PortResult<()> {
        Ok(())
    }

    fn enabled(&self) -> bool {
        false
    }
}

const SERVICE: &str = "sqs-events";

/// The events queue on SQS (and, for the event sender, its dead-letter queue).
#[derive(Debug, Clone)]
pub struct SqsEvents {
    client: crate::adapters::aws::LazyClient<Client>,
    /// The events queue; its visibility changes are the send queue's ([`RetryQueue`]).
    queue: SqsSendQueue,
    dlq_url: Option<String>,
}

impl SqsEvents {
    pub fn new(
        client: impl Into<crate::adapters::aws::LazyClient<Client>>,
        queue_url: impl Into<String>,
    ) -> Self {
        let client = client.into();
        Self {
            queue: SqsSendQueue::new(client.clone(), queue_url),
            client,
            dlq_url: None,
        }
    }

    /// With the dead-letter queue the event sender moves unreadable records to.
    pub fn with_dead_letter_queue(mut self, dlq_url: Option<String>) -> Self {
        self.dlq_url = dlq_url;
        self
    }

    pub fn queue_url(&self) -> &str {
        self.queue.queue_url()
    }

    /// One `SendMessage` of `body` to `queue_url`.
    async fn send(&self, queue_url: &str, body: String) -> PortResult<()> {
        let request = self.client.get().send_message().queue_url(queue_url);
        match request.message_body(body).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(port_error(SERVICE, "SendMessage", &e)),
        }
    }
}

#[async_trait]
impl EventPublisher for SqsEvents {
    async fn publish(&self, event: &OutboundEvent) -> PortResult<()> {
        let body = serde_json::to_string(event)
            .map_err(|e| PortError::new(SERVICE, format!("cannot encode the event: {e}")))?;
        self.send(self.queue.queue_url(), body).await
    }
}

#[async_trait]
impl EventQueue for SqsEvents {
    async fn retry_after(&self, receipt_handle: &str, delay_seconds: u32) -> PortResult<()> {
        RetryQueue::retry_after(&self.queue, receipt_handle, delay_seconds).await
    }

    async fn dead_letter(&self, body: &str) -> PortResult<()> {
        let Some(dlq) = &self.dlq_url else {
            return Err(PortError::new(SERVICE, "EVENTS_DLQ_URL is not configured"));
        };
        self.send(dlq, body.to_owned()).await
    }
}
