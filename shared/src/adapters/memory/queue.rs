//! In-memory twins of the queue ports: [`MemorySendQueue`] records every job, [`MemoryRetryQueue`]
//! every visibility change and delayed job.

use crate::adapters::memory::sync::lock;
use crate::domain::jobs::{Job, SendJob};
use crate::ports::error::{PortError, PortResult};
use crate::ports::queue::{MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS, RetryQueue, SendQueue};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// In-memory [`SendQueue`]: records every job.
#[derive(Default)]
pub struct MemorySendQueue {
    pub jobs: Mutex<VecDeque<SendJob>>,
    /// Jobs of the other kinds (follow-ups, drift checks), in order.
    pub other_jobs: Mutex<Vec<Job>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemorySendQueue {
    pub fn jobs(&self) -> Vec<SendJob> {
        lock(&self.jobs).iter().cloned().collect()
    }
}

#[async_trait]
impl SendQueue for MemorySendQueue {
    async fn enqueue(&self, job: &SendJob) -> PortResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::new("memory-queue", "injected failure"));
        }
        lock(&self.jobs).push_back(job.clone());
        Ok(())
    }

    async fn enqueue_job(&self, job: &Job) -> PortResult<()> {
        match job {
            Job::Initial(job) => self.enqueue(job).await,
            other => {
                if self.fail.load(Ordering::SeqCst) {
                    return Err(PortError::new("memory-queue", "injected failure"));
                }
                lock(&self.other_jobs).push(other.clone());
                Ok(())
            }
        }
    }
}

/// In-memory [`RetryQueue`]: records every visibility change and every delayed job.
#[derive(Default)]
pub struct MemoryRetryQueue {
    /// (receipt handle, seconds) of every `retry_after`.
    pub visibility: Mutex<Vec<(String, u32)>>,
    /// (job, seconds) of every `enqueue_after`.
    pub delayed: Mutex<Vec<(SendJob, u32)>>,
    /// (job, seconds) of every `enqueue_job_after` of another kind than an initial message.
    pub delayed_jobs: Mutex<Vec<(Job, u32)>>,
    pub fail: AtomicBool,
}

impl MemoryRetryQueue {
    pub fn visibility(&self) -> Vec<(String, u32)> {
        lock(&self.visibility).clone()
    }

    pub fn delayed(&self) -> Vec<(SendJob, u32)> {
        lock(&self.delayed).clone()
    }

    /// Take the delayed jobs recorded so far (a test delivers them itself).
    pub fn take_delayed(&self) -> Vec<(SendJob, u32)> {
        std::mem::take(&mut *lock(&self.delayed))
    }

    fn check(&self) -> PortResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(PortError::new("memory-retry-queue", "injected failure"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl RetryQueue for MemoryRetryQueue {
    async fn retry_after(&self, receipt_handle: &str, delay_seconds: u32) -> PortResult<()> {
        self.check()?;
        lock(&self.visibility).push((
            receipt_handle.to_owned(),
            delay_seconds.min(MAX_VISIBILITY_SECONDS),
        ));
        Ok(())
    }

    async fn enqueue_after(&self, job: &SendJob, delay_seconds: u32) -> PortResult<()> {
        self.check()?;
        lock(&self.delayed).push((job.clone(), delay_seconds.min(MAX_DELAY_SECONDS)));
        Ok(())
    }

    async fn enqueue_job_after(&self, job: &Job, delay_seconds: u32) -> PortResult<()> {
        match job {
            Job::Initial(job) => self.enqueue_after(job, delay_seconds).await,
            other => {
                self.check()?;
                lock(&self.delayed_jobs)
                    .push((other.clone(), delay_seconds.min(MAX_DELAY_SECONDS)));
                Ok(())
            }
        }
    }
}
