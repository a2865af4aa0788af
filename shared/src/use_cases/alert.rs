//! Operator alerts from the use cases: publish (a failure is logged, never fatal) and alert once
//! that an opt-in is at risk.

use crate::domain::alert::{Alert, AlertKind};
use crate::domain::opt_in::{Millis, OptIn, login_id_prefix};
use crate::ports::alerts::Alerts;
use crate::ports::metrics::{self, Metrics};
use crate::ports::opt_ins::{OptInStore, Transitioned};
use tracing::{error, warn};

/// Publish an operator alert; a failure is logged, never fatal to the work it is about.
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
