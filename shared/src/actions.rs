//! Small use cases shared by several functions, written once against the ports.

use crate::domain::{Alert, AlertKind, Millis, OptIn, OptInKey, login_id_prefix};
use crate::metrics::{self, Metrics};
use crate::ports::{Alerts, DeadlineScheduler, OptInStore, PortResult, Transitioned};
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

/// The person opted out (website API, deauthorize, data deletion, stop keyword, Page blocked): any
/// non-terminal state → OPTED_OUT with a conditional write, then the deadline schedule is deleted.
/// Returns what the store did; an opt-in already terminal (sent, expired, …) is left as it is.
pub async fn opt_out_opt_in(
    store: &dyn OptInStore,
    scheduler: &dyn DeadlineScheduler,
    key: &OptInKey,
    source: &str,
    now: Millis,
) -> PortResult<Transitioned> {
    let result = store.opt_out(key, source, now).await?;
    if let Transitioned::Done(_) = &result {
        tracing::info!(
            login_id_prefix = %login_id_prefix(&key.login_id),
            source,
            "opt-in OPTED_OUT"
        );
        cancel_schedule(scheduler, key).await;
    }
    Ok(result)
}

/// Opt a person out whether or not their opt-in exists yet: an existing opt-in moves to
/// OPTED_OUT (conditionally); when none exists, an OPTED_OUT one is created in its place (with
/// `placeholder_source`), so the webhook that arrives later finds it and nothing is sent. Returns
/// the item as it now is (already terminal ones are left as they are).
#[allow(clippy::too_many_arguments)]
pub async fn opt_out_person(
    store: &dyn OptInStore,
    scheduler: &dyn DeadlineScheduler,
    key: &OptInKey,
    source: &str,
    placeholder_source: &str,
    now: Millis,
    window_ms: Millis,
    alert_lead_ms: Millis,
) -> PortResult<OptIn> {
    // At most two rounds: an opt-in created by a concurrent webhook is opted out in the second.
    for _ in 0..2 {
        match opt_out_opt_in(store, scheduler, key, source, now).await? {
            Transitioned::Done(item) => return Ok(*item),
            Transitioned::Refused(Some(item)) => return Ok(*item),
            Transitioned::Refused(None) => {
                let mut placeholder =
                    OptIn::new(key.clone(), Some(now), now, window_ms, alert_lead_ms);
                placeholder.state = crate::domain::State::OptedOut;
                placeholder.opted_out_at = Some(now);
                placeholder.opt_out_source = Some(placeholder_source.to_owned());
                placeholder.terminal_at = Some(now);
                match store.create_opt_in(&placeholder).await? {
                    crate::ports::Created::New => return Ok(placeholder),
                    crate::ports::Created::AlreadyExists(_) => continue,
                }
            }
        }
    }
    Err(crate::ports::PortError::new(
        "opt-out",
        "the opt-out kept racing with the opt-in; retry",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryAlerts, MemoryOptInStore, MemoryScheduler};
    use crate::domain::{DeadlineCheck, State};
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
    async fn opting_out_deletes_the_deadline_schedule() {
        let (store, scheduler) = (MemoryOptInStore::new(), MemoryScheduler::default());
        let o = recorded(&store, &scheduler).await;
        let done = opt_out_opt_in(&store, &scheduler, &o.key(), "api", 2_000)
            .await
            .unwrap();
        assert!(done.is_done());
        assert!(scheduler.get(&o.key()).is_none());
        let again = opt_out_opt_in(&store, &scheduler, &o.key(), "api", 3_000)
            .await
            .unwrap();
        assert!(!again.is_done(), "already terminal");
    }

    #[tokio::test]
    async fn a_terminal_opt_in_is_not_opted_out_and_keeps_its_evidence() {
        let (store, scheduler) = (MemoryOptInStore::new(), MemoryScheduler::default());
        let o = recorded(&store, &scheduler).await;
        store.expire(&o.key(), o.deadline_at).await.unwrap();
        let refused = opt_out_opt_in(&store, &scheduler, &o.key(), "api", o.deadline_at + 1)
            .await
            .unwrap();
        assert!(!refused.is_done());
        let now = store.get_opt_in(&o.key()).await.unwrap().unwrap();
        assert_eq!((now.state, now.opt_out_source), (State::Expired, None));
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
