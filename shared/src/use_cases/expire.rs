//! Expire an opt-in whose deadline passed (sender, schedule and sweep race; one wins), and drop its
//! deadline schedule once it no longer matters.

use crate::domain::alert::{Alert, AlertKind};
use crate::domain::opt_in::{Millis, OptIn, OptInKey, login_id_prefix};
use crate::ports::alerts::Alerts;
use crate::ports::metrics::{self, Metrics};
use crate::ports::opt_ins::{OptInStore, Transitioned};
use crate::ports::scheduler::DeadlineScheduler;
use crate::use_cases::alert::{alert_at_risk_once, publish};
use crate::use_cases::events::Events;
use tracing::{error, warn};

/// The ports a deadline's outcome needs, named once ([`crate::ports::bundle::Ports::deadlines`])
/// instead of passed to every call.
#[derive(Clone, Copy)]
pub struct Deadlines<'a> {
    pub store: &'a dyn OptInStore,
    pub scheduler: &'a dyn DeadlineScheduler,
    pub alerts: &'a dyn Alerts,
    pub metrics: &'a dyn Metrics,
    /// `optin.expired` (absorbing failures: the schedule and the sweep are not retried for it).
    pub events: Events<'a>,
}

impl Deadlines<'_> {
    /// [`expire_opt_in`] over these ports, then the opt-in's end events (`message.failed`,
    /// `optin.expired`) when this call expired it.
    pub async fn expire(&self, key: &OptInKey, now: Millis) -> Option<OptIn> {
        let expired = expire_opt_in(
            self.store,
            self.scheduler,
            self.alerts,
            self.metrics,
            key,
            now,
        )
        .await?;
        // Absorbed (logged and counted) unless these events were built for a retried producer.
        let _ = self.events.ended(&expired).await;
        Some(expired)
    }

    /// [`alert_at_risk_once`] over these ports.
    pub async fn alert_at_risk_once(&self, opt_in: &OptIn, now: Millis, detail: &str) -> bool {
        alert_at_risk_once(self.store, self.alerts, self.metrics, opt_in, now, detail).await
    }
}

/// Mark the opt-in EXPIRED if its deadline has passed. The write is conditional, so when the
/// sender, the schedule and the sweep race, exactly one wins, and only the winner alerts and counts
/// a `DeadlinesMissed`. Returns the expired item when this call made the change.
pub async fn expire_opt_in(
    store: &dyn OptInStore,
    scheduler: &dyn DeadlineScheduler,
    alerts: &dyn Alerts,
    metrics: &dyn Metrics,
    key: &OptInKey,
    now: Millis,
) -> Option<OptIn> {
    match store.expire(key, now).await {
        Ok(Transitioned::Done(item)) => {
            warn!(
                login_id_prefix = %login_id_prefix(&key.login_id),
                "deadline passed; opt-in EXPIRED, nothing sent"
            );
            metrics::record_deadline_missed(metrics, &key.page_id);
            cancel_schedule(scheduler, key).await;
            publish(
                alerts,
                &Alert::about(
                    &item,
                    AlertKind::DeadlineMissed,
                    "the deadline passed before the initial message was sent",
                ),
            )
            .await;
            Some(*item)
        }
        Ok(Transitioned::Refused(_)) => None,
        Err(e) => {
            error!(error = %e, "could not mark the opt-in EXPIRED");
            None
        }
    }
}

/// Delete the opt-in's deadline schedule. A failure is harmless: the schedule fires, finds the
/// opt-in terminal and does nothing.
pub async fn cancel_schedule(scheduler: &dyn DeadlineScheduler, key: &OptInKey) {
    if let Err(e) = scheduler.cancel_deadline_check(key).await {
        warn!(error = %e, "could not delete the deadline schedule");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::alerts::MemoryAlerts;
    use crate::adapters::memory::metrics::MemoryMetrics;
    use crate::adapters::memory::opt_ins::MemoryOptInStore;
    use crate::adapters::memory::scheduler::MemoryScheduler;
    use crate::domain::jobs::DeadlineCheck;
    use crate::domain::metrics::Metric;

    async fn recorded(store: &MemoryOptInStore, scheduler: &MemoryScheduler) -> OptIn {
        let o = OptIn::new(OptInKey::new("p", "login-1"), Some(1_000), 1_000, 60_000, 0);
        store.create_opt_in(&o).await.unwrap();
        scheduler
            .schedule_deadline_check(&DeadlineCheck::for_opt_in(&o), o.alert_at)
            .await
            .unwrap();
        o
    }

    #[tokio::test]
    async fn expiring_counts_one_miss_and_alerting_one_risk_whoever_calls() {
        let (store, scheduler) = (MemoryOptInStore::new(), MemoryScheduler::default());
        let (alerts, metrics) = (MemoryAlerts::default(), MemoryMetrics::default());
        let o = recorded(&store, &scheduler).await;
        assert!(alert_at_risk_once(&store, &alerts, &metrics, &o, 2_000, "x").await);
        assert!(!alert_at_risk_once(&store, &alerts, &metrics, &o, 2_001, "x").await);
        assert_eq!(metrics.sum(Metric::OptInsAtRisk), 1.0);
        let k = o.key();
        assert!(
            expire_opt_in(&store, &scheduler, &alerts, &metrics, &k, o.deadline_at - 1)
                .await
                .is_none(),
            "not before the deadline"
        );
        assert!(
            expire_opt_in(&store, &scheduler, &alerts, &metrics, &k, o.deadline_at)
                .await
                .is_some()
        );
        assert!(
            expire_opt_in(&store, &scheduler, &alerts, &metrics, &k, o.deadline_at + 1)
                .await
                .is_none()
        );
        assert_eq!(metrics.sum(Metric::DeadlinesMissed), 1.0);
        assert_eq!(alerts.published().len(), 2);
        assert!(scheduler.get(&k).is_none());
    }
}
