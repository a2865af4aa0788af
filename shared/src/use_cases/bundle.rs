//! The use cases over the port bundle: a function holding a [`Ports`] gets each use case's ports
//! from it in one call, instead of naming four to seven of them at every call.

use crate::config::settings::Config;
use crate::ports::bundle::Ports;
use crate::use_cases::events::Events;
use crate::use_cases::expire::Deadlines;
use crate::use_cases::opt_in::OptInRecording;
use crate::use_cases::opt_out::OptOuts;
use crate::use_cases::page::PagePorts;

impl Ports {
    /// Expire and alert-at-risk ([`Deadlines`]).
    pub fn deadlines(&self) -> Deadlines<'_> {
        Deadlines {
            store: self.opt_ins.as_ref(),
            scheduler: self.scheduler.as_ref(),
            alerts: self.alerts.as_ref(),
            metrics: self.metrics.as_ref(),
            events: self.events(),
        }
    }

    /// Events to the website backend ([`Events`]); failures absorbed unless the producer asks
    /// for them ([`Events::redelivered`]).
    pub fn events(&self) -> Events<'_> {
        Events {
            publisher: self.events.as_ref(),
            logins: self.logins.as_ref(),
            opt_ins: self.opt_ins.as_ref(),
            metrics: self.metrics.as_ref(),
            redelivered: false,
        }
    }

    /// Every opt-out ([`OptOuts`]), placeholders given the configured window and alert lead.
    pub fn opt_outs(&self, config: &Config) -> OptOuts<'_> {
        OptOuts {
            store: self.opt_ins.as_ref(),
            conversations: self.conversations.as_ref(),
            scheduler: self.scheduler.as_ref(),
            alerts: self.alerts.as_ref(),
            metrics: self.metrics.as_ref(),
            events: self.events(),
            window_ms: config.optin_window_ms,
            alert_lead_ms: config.alert_lead_ms,
        }
    }

    /// Pause, block, unblock, resume and re-queue ([`PagePorts`]).
    pub fn page_ports(&self, config: &Config) -> PagePorts<'_> {
        PagePorts::new(
            self.pages.as_ref(),
            self.queue.as_ref(),
            self.alerts.as_ref(),
            self.clock.as_ref(),
            config,
        )
    }

    /// Record an opt-in from the webhook or a login ([`OptInRecording`]), with the configured
    /// window and alert lead.
    pub fn opt_in_recording(&self, config: &Config) -> OptInRecording<'_> {
        OptInRecording {
            store: self.opt_ins.as_ref(),
            queue: self.queue.as_ref(),
            scheduler: self.scheduler.as_ref(),
            deadlines: self.deadlines(),
            window_ms: config.optin_window_ms,
            alert_lead_ms: config.alert_lead_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::alerts::MemoryAlerts;
    use crate::adapters::memory::clock::ManualClock;
    use crate::adapters::memory::config::test_config;
    use crate::adapters::memory::erasure::MemoryErasure;
    use crate::adapters::memory::logins::{MemoryFacebookLogin, MemoryLoginStore};
    use crate::adapters::memory::messenger::MemoryMessenger;
    use crate::adapters::memory::metrics::MemoryMetrics;
    use crate::adapters::memory::opt_ins::MemoryOptInStore;
    use crate::adapters::memory::queue::{MemoryRetryQueue, MemorySendQueue};
    use crate::adapters::memory::scheduler::MemoryScheduler;
    use crate::domain::metrics::Metric;
    use crate::domain::opt_in::{OptIn, OptInKey, State};
    use crate::ports::opt_ins::OptInStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_bundle_s_use_cases_act_on_its_ports() {
        let opt_ins = Arc::new(MemoryOptInStore::new());
        let logins = Arc::new(MemoryLoginStore::default());
        let metrics = Arc::new(MemoryMetrics::default());
        let queue = Arc::new(MemorySendQueue::default());
        let events = Arc::new(crate::adapters::memory::events::MemoryEvents::default());
        let ports = Ports {
            opt_ins: opt_ins.clone(),
            conversations: opt_ins.clone(),
            pages: opt_ins.clone(),
            erasure: Arc::new(MemoryErasure::new(opt_ins.clone(), logins.clone())),
            logins,
            queue: queue.clone(),
            retry: Arc::new(MemoryRetryQueue::default()),
            scheduler: Arc::new(MemoryScheduler::default()),
            events: events.clone(),
            follow_ups: Arc::new(crate::adapters::memory::follow_ups::MemoryFollowUps::default()),
            alerts: Arc::new(MemoryAlerts::default()),
            metrics: metrics.clone(),
            clock: Arc::new(ManualClock::at(0)),
            facebook: Arc::new(MemoryFacebookLogin::default()),
            messenger: Arc::new(MemoryMessenger::default()),
        };
        let config = test_config(&[]);
        let o = OptIn::new(OptInKey::new("p", "a"), Some(0), 0, 1_000, 0);
        opt_ins.create_opt_in(&o).await.unwrap();
        assert!(ports.deadlines().expire(&o.key(), 1_000).await.is_some());
        assert_eq!(metrics.sum(Metric::DeadlinesMissed), 1.0);
        use crate::domain::events::EventType;
        assert_eq!(events.of_type(EventType::OptInExpired).len(), 1);
        assert_eq!(events.of_type(EventType::MessageFailed).len(), 1);
        let other = OptIn::new(OptInKey::new("p", "b"), Some(0), 0, 1_000, 0);
        opt_ins.create_opt_in(&other).await.unwrap();
        ports
            .opt_outs(&config)
            .opt_out_opt_in(&other.key(), "api", 10)
            .await
            .unwrap();
        let stored = opt_ins.get_opt_in(&other.key()).await.unwrap().unwrap();
        assert_eq!(stored.state, State::OptedOut);
        assert_eq!(events.of_type(EventType::PersonOptedOut).len(), 1);
        assert_eq!(ports.page_ports(&config).margin_ms, requeue_margin(&config));
    }

    fn requeue_margin(config: &Config) -> i64 {
        crate::use_cases::page::requeue_margin_ms(config)
    }
}
