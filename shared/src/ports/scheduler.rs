//! One-time schedules that wake deadline-alerts for one opt-in.

use crate::domain::jobs::DeadlineCheck;
use crate::domain::opt_in::{Millis, OptInKey};
use crate::ports::error::PortResult;
use async_trait::async_trait;

/// One-time schedules that wake deadline-alerts for one opt-in.
#[async_trait]
pub trait DeadlineScheduler: Send + Sync {
    /// Create the schedule `name` firing at `at`. An existing schedule of that name counts as success.
    async fn schedule_deadline_check(&self, check: &DeadlineCheck, at: Millis) -> PortResult<()>;
    /// Delete the opt-in's schedule. A schedule that no longer exists counts as success.
    async fn cancel_deadline_check(&self, key: &OptInKey) -> PortResult<()>;
}
