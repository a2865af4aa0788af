//! The in-memory twins behind a test sender, kept by the tests for their assertions, and the port
//! bundle over them that `Deps::from_ports` takes.

use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::memory::erasure::MemoryErasure;
use shared::adapters::memory::logins::{MemoryFacebookLogin, MemoryLoginStore};
use shared::adapters::memory::messenger::MemoryMessenger;
use shared::adapters::memory::metrics::MemoryMetrics;
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::adapters::memory::queue::MemoryRetryQueue;
use shared::adapters::memory::queue::MemorySendQueue;
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::ports::bundle::Ports;
use std::sync::Arc;

pub struct Twins {
    pub store: Arc<MemoryOptInStore>,
    pub logins: Arc<MemoryLoginStore>,
    pub queue: Arc<MemorySendQueue>,
    pub retry: Arc<MemoryRetryQueue>,
    pub scheduler: Arc<MemoryScheduler>,
    pub alerts: Arc<MemoryAlerts>,
    pub messenger: Arc<MemoryMessenger>,
    pub clock: Arc<ManualClock>,
    pub metrics: Arc<MemoryMetrics>,
    pub events: Arc<shared::adapters::memory::events::MemoryEvents>,
}

impl Twins {
    /// Fresh twins, the clock at `now`.
    pub fn at(now: i64) -> Self {
        Self {
            store: Arc::new(MemoryOptInStore::new()),
            logins: Arc::new(MemoryLoginStore::new()),
            queue: Arc::new(MemorySendQueue::default()),
            retry: Arc::new(MemoryRetryQueue::default()),
            scheduler: Arc::new(MemoryScheduler::default()),
            alerts: Arc::new(MemoryAlerts::default()),
            messenger: Arc::new(MemoryMessenger::default()),
            clock: Arc::new(ManualClock::at(now)),
            metrics: Arc::new(MemoryMetrics::default()),
            events: Arc::default(),
        }
    }

    /// Every port over these twins (the ones the sender never calls get fresh twins of their own).
    pub fn ports(&self) -> Ports {
        Ports {
            opt_ins: self.store.clone(),
            conversations: self.store.clone(),
            pages: self.store.clone(),
            erasure: Arc::new(MemoryErasure::new(self.store.clone(), self.logins.clone())),
            logins: self.logins.clone(),
            queue: self.queue.clone(),
            retry: self.retry.clone(),
            scheduler: self.scheduler.clone(),
            events: self.events.clone(),
            alerts: self.alerts.clone(),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            facebook: Arc::new(MemoryFacebookLogin::default()),
            messenger: self.messenger.clone(),
        }
    }
}
