//! In-memory twin of the deadline scheduler.

use crate::adapters::memory::sync::lock;
use crate::domain::jobs::{DeadlineCheck, deadline_schedule_name};
use crate::domain::opt_in::{Millis, OptInKey};
use crate::ports::error::{PortError, PortResult};
use crate::ports::scheduler::DeadlineScheduler;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

/// In-memory [`DeadlineScheduler`]: schedule name → (check, fire time).
#[derive(Default)]
pub struct MemoryScheduler {
    pub schedules: Mutex<BTreeMap<String, (DeadlineCheck, Millis)>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryScheduler {
    pub fn get(&self, key: &OptInKey) -> Option<(DeadlineCheck, Millis)> {
        lock(&self.schedules)
            .get(&deadline_schedule_name(key))
            .cloned()
    }
}

#[async_trait]
impl DeadlineScheduler for MemoryScheduler {
    async fn schedule_deadline_check(&self, check: &DeadlineCheck, at: Millis) -> PortResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::new("memory-scheduler", "injected failure"));
        }
        lock(&self.schedules)
            .entry(deadline_schedule_name(&check.key()))
            .or_insert_with(|| (check.clone(), at));
        Ok(())
    }

    async fn cancel_deadline_check(&self, key: &OptInKey) -> PortResult<()> {
        lock(&self.schedules).remove(&deadline_schedule_name(key));
        Ok(())
    }
}
