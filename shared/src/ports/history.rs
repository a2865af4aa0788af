//! Reading every opt-in of a time range, whatever its state: the compliance report's input.

use crate::domain::opt_in::{Millis, OptIn};
use crate::ports::error::PortResult;
use async_trait::async_trait;

/// Reads every opt-in of a time range, whatever its state (the report's input).
#[async_trait]
pub trait OptInHistory: Send + Sync {
    /// Every opt-in whose `opted_in_at` is in `[since, until)`.
    async fn opt_ins_between(&self, since: Millis, until: Millis) -> PortResult<Vec<OptIn>>;
}
