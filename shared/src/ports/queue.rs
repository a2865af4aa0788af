//! The send queue: new jobs ([`SendQueue`]) and backing a received job off ([`RetryQueue`]).

use crate::domain::jobs::{Job, SendJob};
use crate::ports::error::PortResult;
use async_trait::async_trait;

/// The queue that feeds the sender.
#[async_trait]
pub trait SendQueue: Send + Sync {
    async fn enqueue(&self, job: &SendJob) -> PortResult<()>;

    /// Enqueue any kind of job ([`Job::body`]); `enqueue` is the initial-message case.
    async fn enqueue_job(&self, job: &Job) -> PortResult<()>;
}

/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY_SECONDS: u32 = 43_200;
/// SQS's longest message delay (15 minutes).
pub const MAX_DELAY_SECONDS: u32 = 900;

/// Backing off a send job on the queue.
#[async_trait]
pub trait RetryQueue: Send + Sync {
    /// Make the received message visible again `delay_seconds` from now (`ChangeMessageVisibility`;
    /// at most [`MAX_VISIBILITY_SECONDS`]). The caller also reports it in `batchItemFailures`.
    async fn retry_after(&self, receipt_handle: &str, delay_seconds: u32) -> PortResult<()>;

    /// Enqueue a new job that becomes visible `delay_seconds` from now (at most
    /// [`MAX_DELAY_SECONDS`]). A new message starts a new receive count.
    async fn enqueue_after(&self, job: &SendJob, delay_seconds: u32) -> PortResult<()>;

    /// [`Self::enqueue_after`] for any kind of job ([`Job::body`]): a follow-up's retry is
    /// handed over the same way.
    async fn enqueue_job_after(&self, job: &Job, delay_seconds: u32) -> PortResult<()>;
}
