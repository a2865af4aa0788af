//! Small use cases shared by several functions, written once against the ports.

use crate::domain::{Alert, AlertKind, Millis, OptIn, OptInKey, login_id_prefix};
use crate::ports::{Alerts, DeadlineScheduler, OptInStore, Transitioned};
use tracing::{error, warn};

/// Mark the opt-in EXPIRED if its deadline has passed. The write is conditional, so when the
/// sender, the schedule and the sweep race, exactly one wins, and only the winner alerts.
/// Returns the expired item when this call made the change.
pub async fn expire_opt_in(
    store: &dyn OptInStore,
    scheduler: &dyn DeadlineScheduler,
    alerts: &dyn Alerts,
    key: &OptInKey,
    now: Millis,
) -> Option<OptIn> {
    match store.expire(key, now).await {
        Ok(Transitioned::Done(item)) => {
            warn!(
                login_id_prefix = %login_id_prefix(&key.login_id),
                "deadline passed; opt-in EXPIRED, nothing sent"
            );
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
/// schedule, the sweep and their retries agree on one alert.
pub async fn alert_at_risk_once(
    store: &dyn OptInStore,
    alerts: &dyn Alerts,
    opt_in: &OptIn,
    now: Millis,
    detail: &str,
) -> bool {
    match store.mark_alerted(&opt_in.key(), now).await {
        Ok(Transitioned::Done(item)) => {
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
