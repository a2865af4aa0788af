//! deadline-alerts: invoked by a per-opt-in one-time schedule (`deadline_check`) or by the
//! recurring sweep (`sweep`). It re-reads the opt-in before acting, so late, duplicate or retried
//! invocations are harmless.

use serde::Serialize;
use shared::actions;
use shared::config::Config;
use shared::domain::{AlertInput, Millis, OptIn, SendJob, State, login_id_prefix};
use shared::ports::{
    Alerts, Clock, DeadlineScheduler, OptInStore, PortError, SendQueue, SystemClock,
};
use std::sync::Arc;
use tracing::{error, info};

/// An opt-in still `OPTED_IN` this long after it was recorded lost its send job (the DynamoDB
/// write succeeded, the SQS send did not): the sweep enqueues it again.
pub const STUCK_AFTER_MS: Millis = 3 * 60_000;
/// Most opt-ins one sweep attends to (the next sweep continues).
pub const SWEEP_LIMIT: usize = 1000;

pub struct Deps {
    pub config: Config,
    pub store: Arc<dyn OptInStore>,
    pub queue: Arc<dyn SendQueue>,
    pub scheduler: Arc<dyn DeadlineScheduler>,
    pub alerts: Arc<dyn Alerts>,
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    /// The production wiring, shared by the Lambda main and the local runner.
    pub fn from_aws(config: Config, sdk: &shared::bootstrap::SdkConfig) -> Self {
        let ports = shared::bootstrap::AwsPorts::new(&config, sdk);
        Self {
            config,
            store: ports.store,
            queue: ports.queue,
            scheduler: ports.scheduler,
            alerts: ports.alerts,
            clock: Arc::new(SystemClock),
        }
    }
}

/// What one invocation did (returned as the invocation's result, and logged).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub checked: usize,
    pub alerted: usize,
    pub expired: usize,
    pub requeued: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("the invocation input is not a deadline_check or sweep: {0}")]
    BadInput(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Handle one invocation with its raw JSON input.
pub async fn handle(deps: &Deps, input: serde_json::Value) -> Result<Summary, AlertsError> {
    let input: AlertInput =
        serde_json::from_value(input).map_err(|e| AlertsError::BadInput(e.to_string()))?;
    let now = deps.clock.now();
    let mut summary = Summary::default();
    match input {
        AlertInput::DeadlineCheck(check) => {
            if let Some(opt_in) = deps.store.get_opt_in(&check.key()).await? {
                attend(deps, &opt_in, now, false, &mut summary).await;
            }
        }
        AlertInput::Sweep { .. } => {
            // The index holds only unsent opt-ins (normally a handful: most are sent within
            // seconds), so one range covering the whole window finds those due for an alert, past
            // their deadline, or stuck without a send job.
            let horizon = now.saturating_add(deps.config.optin_window_ms);
            for opt_in in deps.store.due_for_attention(horizon, SWEEP_LIMIT).await? {
                attend(deps, &opt_in, now, true, &mut summary).await;
            }
        }
    }
    info!(
        checked = summary.checked,
        alerted = summary.alerted,
        expired = summary.expired,
        requeued = summary.requeued,
        "deadline-alerts done"
    );
    Ok(summary)
}

async fn attend(deps: &Deps, opt_in: &OptIn, now: Millis, sweeping: bool, summary: &mut Summary) {
    summary.checked += 1;
    if opt_in.state.is_terminal() {
        return;
    }
    let key = opt_in.key();
    if opt_in.deadline_passed(now) {
        let (store, scheduler, alerts) = (
            deps.store.as_ref(),
            deps.scheduler.as_ref(),
            deps.alerts.as_ref(),
        );
        if actions::expire_opt_in(store, scheduler, alerts, &key, now)
            .await
            .is_some()
        {
            summary.expired += 1;
        }
        return;
    }
    if opt_in.alert_at <= now
        && opt_in.alerted_at.is_none()
        && actions::alert_at_risk_once(
            deps.store.as_ref(),
            deps.alerts.as_ref(),
            opt_in,
            now,
            "the initial message is still not sent and the deadline is near",
        )
        .await
    {
        summary.alerted += 1;
    }
    if sweeping {
        requeue_if_stuck(deps, opt_in, now, summary).await;
    }
}

async fn requeue_if_stuck(deps: &Deps, opt_in: &OptIn, now: Millis, summary: &mut Summary) {
    if opt_in.state != State::OptedIn || now - opt_in.created_at < STUCK_AFTER_MS {
        return;
    }
    match deps.queue.enqueue(&SendJob::for_key(&opt_in.key())).await {
        Ok(()) => {
            info!(login_id_prefix = %login_id_prefix(&opt_in.login_id), "stuck opt-in re-enqueued");
            summary.requeued += 1;
        }
        Err(e) => error!(error = %e, "could not re-enqueue a stuck opt-in"),
    }
}
