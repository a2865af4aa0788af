//! Operator alerts (SNS in production).

use crate::domain::alert::Alert;
use crate::ports::error::PortResult;
use async_trait::async_trait;

/// Operator alerts.
#[async_trait]
pub trait Alerts: Send + Sync {
    async fn publish(&self, alert: &Alert) -> PortResult<()>;
}
