//! [`RetryQueue`] on the SQS send queue: `ChangeMessageVisibility` for a received message, and
//! `SendMessage` with `DelaySeconds` for a fresh one.

use super::sqs::{SERVICE, SqsSendQueue};
use crate::aws::port_error;
use crate::domain::SendJob;
use crate::ports::send::{MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS, RetryQueue};
use crate::ports::{PortError, PortResult};
use async_trait::async_trait;

#[async_trait]
impl RetryQueue for SqsSendQueue {
    async fn retry_after(&self, receipt_handle: &str, delay_seconds: u32) -> PortResult<()> {
        let seconds = i32::try_from(delay_seconds.min(MAX_VISIBILITY_SECONDS)).unwrap_or(0);
        self.change_visibility(receipt_handle, seconds).await
    }

    async fn enqueue_after(&self, job: &SendJob, delay_seconds: u32) -> PortResult<()> {
        let body = serde_json::to_string(job)
            .map_err(|e| PortError::new(SERVICE, format!("cannot encode the send job: {e}")))?;
        let delay = i32::try_from(delay_seconds.min(MAX_DELAY_SECONDS)).unwrap_or(0);
        self.client
            .send_message()
            .queue_url(self.queue_url())
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "SendMessage", &e))?;
        Ok(())
    }
}
