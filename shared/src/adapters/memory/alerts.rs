//! In-memory twin of operator alerts.

use crate::adapters::memory::sync::lock;
use crate::domain::alert::Alert;
use crate::ports::alerts::Alerts;
use crate::ports::error::PortResult;
use async_trait::async_trait;
use std::sync::Mutex;

/// In-memory [`Alerts`]: records every alert.
#[derive(Default)]
pub struct MemoryAlerts {
    pub published: Mutex<Vec<Alert>>,
}

impl MemoryAlerts {
    pub fn published(&self) -> Vec<Alert> {
        lock(&self.published).clone()
    }
}

#[async_trait]
impl Alerts for MemoryAlerts {
    async fn publish(&self, alert: &Alert) -> PortResult<()> {
        lock(&self.published).push(alert.clone());
        Ok(())
    }
}
