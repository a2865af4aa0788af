//! [`SendQueue`] on SQS: one message per send job, the job as its JSON body.

use crate::aws::port_error;
use crate::domain::SendJob;
use crate::ports::{PortError, PortResult, SendQueue};
use async_trait::async_trait;
use aws_sdk_sqs::Client;

pub(super) const SERVICE: &str = "sqs";

/// The SQS send queue.
#[derive(Debug, Clone)]
pub struct SqsSendQueue {
    pub(super) client: Client,
    queue_url: String,
}

impl SqsSendQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Make a received message visible again after `seconds` (0–43 200), e.g. to back off a retry.
    pub async fn change_visibility(&self, receipt_handle: &str, seconds: i32) -> PortResult<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds.clamp(0, 43_200))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "ChangeMessageVisibility", &e))?;
        Ok(())
    }
}

#[async_trait]
impl SendQueue for SqsSendQueue {
    async fn enqueue(&self, job: &SendJob) -> PortResult<()> {
        let body = serde_json::to_string(job)
            .map_err(|e| PortError::new(SERVICE, format!("cannot encode the send job: {e}")))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "SendMessage", &e))?;
        Ok(())
    }
}
