//! The send queue on SQS: [`SendQueue`] (one message per send job, the job as its JSON body) and
//! [`RetryQueue`] (`ChangeMessageVisibility` for a received message, `SendMessage` with
//! `DelaySeconds` for a fresh one).

use crate::adapters::aws::port_error;
use crate::domain::jobs::{Job, SendJob};
use crate::ports::error::PortResult;
use crate::ports::queue::SendQueue;
use crate::ports::queue::{MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS, RetryQueue};
use async_trait::async_trait;
use aws_sdk_sqs::Client;

pub(super) const SERVICE: &str = "sqs";

/// The SQS send queue.
#[derive(Debug, Clone)]
pub struct SqsSendQueue {
    pub(super) client: crate::adapters::aws::LazyClient<Client>,
    queue_url: String,
}

impl SqsSendQueue {
    pub fn new(
        client: impl Into<crate::adapters::aws::LazyClient<Client>>,
        queue_url: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Make a received message visible again after `seconds` (0–43 200), e.g. to back off a retry.
    pub async fn change_visibility(&self, receipt_handle: &str, seconds: i32) -> PortResult<()> {
        self.client
            .get()
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
        self.enqueue_job(&Job::Initial(job.clone())).await
    }

    async fn enqueue_job(&self, job: &Job) -> PortResult<()> {
        let body = job.body();
        self.client
            .get()
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "SendMessage", &e))?;
        Ok(())
    }
}

#[async_trait]
impl RetryQueue for SqsSendQueue {
    async fn retry_after(&self, receipt_handle: &str, delay_seconds: u32) -> PortResult<()> {
        let seconds = i32::try_from(delay_seconds.min(MAX_VISIBILITY_SECONDS)).unwrap_or(0);
        self.change_visibility(receipt_handle, seconds).await
    }

    async fn enqueue_after(&self, job: &SendJob, delay_seconds: u32) -> PortResult<()> {
        self.enqueue_job_after(&Job::Initial(job.clone()), delay_seconds)
            .await
    }

    async fn enqueue_job_after(&self, job: &Job, delay_seconds: u32) -> PortResult<()> {
        let delay = i32::try_from(delay_seconds.min(MAX_DELAY_SECONDS)).unwrap_or(0);
        self.client
            .get()
            .send_message()
            .queue_url(self.queue_url())
            .message_body(job.body())
            .delay_seconds(delay)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "SendMessage", &e))?;
        Ok(())
    }
}
