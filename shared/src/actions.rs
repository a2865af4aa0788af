//! Small use cases shared by several functions, written once against the ports. Opt-outs live in
//! [`crate::use_cases::opt_out`].

use crate::domain::{Alert, AlertKind, Millis, OptIn, OptInKey, login_id_prefix};
use crate::metrics::{self, Metrics};
use crate::ports::{Alerts, DeadlineScheduler, OptInStore, Transitioned};
use tracing::{error, warn};

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

pub async fn publish(alerts: &dyn Alerts, alert: &Alert) {
    if let Err(e) = alerts.publish(alert).await {
        error!(error = %e, kind = ?alert.kind, "could not publish the alert");
    }
}

/// Alert once that the opt-in is at risk: `alerted_at` is written with a condition first, so the
/// schedule, the sweep and their retries agree on one alert (and one `OptInsAtRisk`).
pub async fn alert_at_risk_once(
    store: &dyn OptInStore,
    alerts: &dyn Alerts,
    metrics: &dyn Metrics,
    opt_in: &OptIn,
    now: Millis,
    detail: &str,
) -> bool {
    match store.mark_alerted(&opt_in.key(), now).await {
        Ok(Transitioned::Done(item)) => {
            warn!(
                login_id_prefix = %login_id_prefix(&opt_in.login_id),
                state = %item.state,
                deadline_at = item.deadline_at,
                "opt-in at risk of missing its deadline; operators alerted"
            );
            metrics::record_at_risk(metrics, &item.page_id);
            publish(
                alerts,
                &Alert::about(&item, AlertKind::DeadlineAtRisk, detail),
            )
            .await;
            true
        }
        Ok(Transitioned::Refused(_)) => false,
        Err(e) => {
            error!(error = %e, "could not record the alert");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryAlerts, MemoryOptInStore, MemoryScheduler};
    use crate::domain::DeadlineCheck;
    use crate::metrics::{MemoryMetrics, Metric};

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
