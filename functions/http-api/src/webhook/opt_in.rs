//! A Login Connect opt-in (`optin.login_id`): recorded with one conditional write that also checks
//! the person's erasure marker, then the send is queued, the deadline alert arranged and
//! `optin.received` emitted. A redelivery of an opt-in no sender has touched yet repeats those
//! follow-up steps; every redelivery emits `optin.received` again, with the same event id.

use super::outcome::ItemOutcome;
use crate::deps::Deps;
use shared::domain::jobs::{DeadlineCheck, SendJob};
use shared::domain::opt_in::{OptIn, OptInKey, login_id_prefix};
use shared::ports::error::PortError;
use shared::ports::opt_ins::{ConsentGuard, Recorded};
use tracing::{error, info};

/// Record the opt-in for `login_id` on this deployment's Page (the dispatcher checked the Page).
pub async fn on_opt_in(
    deps: &Deps,
    page_id: &str,
    login_id: &str,
    timestamp: Option<i64>,
) -> Result<ItemOutcome, PortError> {
    let now = deps.ports.clock.now();
    let opt_in = OptIn::new(
        OptInKey::new(page_id, login_id),
        timestamp,
        now,
        deps.config.optin_window_ms,
        deps.config.alert_lead_ms,
    );
    let login = login_id_prefix(login_id);
    // One transaction checks the person's erasure marker with the write: an opt-in from before a
    // data deletion (a redelivered webhook, or one racing the deletion) never comes back; one
    // after it is a new consent. An opted-out opt-in is replaced only by a new consent dated
    // beyond Meta's redelivery horizon (`shared::domain::opt_in::is_new_consent`).
    let guard = ConsentGuard {
        erasure_marker: shared::domain::erasure::erasure_marker(
            deps.secrets.app_secret.expose(),
            &opt_in.key(),
        ),
        event_at: timestamp.filter(|t| *t > 0).map(|_| opt_in.opted_in_at),
    };
    let recorded = deps
        .ports
        .opt_ins
        .record_opt_in(&opt_in, &guard)
        .await
        .map_err(|e| {
            error!(login_id_prefix = %login, error = %e, "could not record the opt-in");
            e
        })?;
    let (opt_in, outcome) = match recorded {
        Recorded::New => {
            info!(login_id_prefix = %login, deadline_at = opt_in.deadline_at, "opt-in recorded");
            (opt_in, ItemOutcome::New)
        }
        Recorded::Renewed(renewed) => {
            info!(
                login_id_prefix = %login,
                generation = renewed.generation,
                deadline_at = renewed.deadline_at,
                "new consent after an opt-out recorded"
            );
            (*renewed, ItemOutcome::New)
        }
        Recorded::Erased => {
            info!(login_id_prefix = %login, "opt-in from before a data deletion; ignored");
            return Ok(ItemOutcome::Ignored);
        }
        Recorded::AlreadyExists(existing) => {
            info!(login_id_prefix = %login, state = %existing.state, "duplicate opt-in delivery");
            // Only an opt-in no sender has touched yet needs the follow-up steps again (the
            // first delivery may have failed after the write); later states are past them.
            if existing.state != shared::domain::opt_in::State::OptedIn {
                received(deps, &as_received(&existing, opt_in)).await?;
                return Ok(ItemOutcome::Duplicate);
            }
            (*existing, ItemOutcome::Duplicate)
        }
    };
    follow_up(deps, &opt_in, now).await;
    received(deps, &opt_in).await?;
    Ok(outcome)
}

/// `optin.received`, for the first delivery and again for every redelivery (the same event id):
/// a failure is returned, so Facebook redelivers and the redelivery emits it again.
async fn received(deps: &Deps, opt_in: &OptIn) -> Result<(), PortError> {
    deps.ports
        .events()
        .redelivered()
        .opt_in_received(opt_in)
        .await
}

/// The opt-in a redelivery reports: the stored one, or, when a stop came first (an opt-out
/// placeholder holds no opt-in evidence), this webhook's, in the placeholder's state.
fn as_received(existing: &OptIn, webhook: OptIn) -> OptIn {
    if !shared::use_cases::opt_out::is_placeholder(existing) {
        return existing.clone();
    }
    OptIn {
        state: existing.state,
        ..webhook
    }
}

/// Enqueue the send and arrange the deadline alert. Failures are logged, not returned: the opt-in
/// is recorded, the recurring sweep re-enqueues stuck opt-ins and covers missing schedules.
async fn follow_up(deps: &Deps, opt_in: &OptIn, now: i64) {
    let key = opt_in.key();
    let login = login_id_prefix(&key.login_id);
    let enqueue = async {
        if let Err(e) = deps.ports.queue.enqueue(&SendJob::for_key(&key)).await {
            error!(login_id_prefix = %login, error = %e, "could not enqueue the send job");
        }
    };
    let arrange_alert = async {
        if opt_in.deadline_passed(now) {
            // Nothing to schedule: the sender marks it EXPIRED and alerts.
            return;
        }
        if opt_in.alert_at <= now {
            // A late webhook: the alert time has already passed, so alert now.
            alert_at_once(deps, opt_in, now).await;
            return;
        }
        let check = DeadlineCheck::for_opt_in(opt_in);
        if let Err(e) = deps
            .ports
            .scheduler
            .schedule_deadline_check(&check, opt_in.alert_at)
            .await
        {
            error!(login_id_prefix = %login, error = %e, "could not create the deadline schedule");
        }
    };
    futures::join!(enqueue, arrange_alert);
}

/// A late webhook's alert, sent now (once: the opt-in records that it was alerted).
async fn alert_at_once(deps: &Deps, opt_in: &OptIn, now: i64) {
    deps.ports
        .deadlines()
        .alert_at_risk_once(opt_in, now, LATE_OPT_IN)
        .await;
}

/// Why a late opt-in is alerted at once.
const LATE_OPT_IN: &str =
    "the opt-in arrived after its alert time; the initial message is not yet sent";
