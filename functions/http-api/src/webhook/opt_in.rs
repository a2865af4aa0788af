//! A Login Connect opt-in (`optin.login_id`): recorded through the one opt-in path
//! (`shared::use_cases::opt_in`: a conditional write that also checks the person's erasure marker,
//! then the send queued and the deadline alert arranged), then `optin.received` emitted. A
//! redelivery of an opt-in no sender has touched yet repeats those follow-up steps; after an opt-in
//! a login created (`START_AT_LOGIN`) the webhook is a duplicate. Every delivery, redeliveries
//! included, emits `optin.received` with the same event id: a failure to queue it answers 503, so
//! Meta redelivers and the redelivery emits it again.

use super::outcome::ItemOutcome;
use crate::deps::Deps;
use shared::domain::opt_in::{OptIn, OptInKey};
use shared::ports::error::PortError;
use shared::use_cases::opt_in::{OptInRecorded, Origin};

/// Record the opt-in for `login_id` on this deployment's Page (the dispatcher checked the Page).
pub async fn on_opt_in(
    deps: &Deps,
    page_id: &str,
    login_id: &str,
    timestamp: Option<i64>,
) -> Result<ItemOutcome, PortError> {
    let key = OptInKey::new(page_id, login_id);
    let now = deps.ports.clock.now();
    let recorded = deps
        .ports
        .opt_in_recording(&deps.config)
        .record(
            key.clone(),
            Origin::Webhook { timestamp },
            deps.secrets.app_secret.expose(),
            now,
        )
        .await?;
    match recorded {
        OptInRecorded::New(opt_in) => {
            received(deps, &opt_in).await?;
            Ok(ItemOutcome::New)
        }
        OptInRecorded::Duplicate(existing) => {
            let webhook = OptIn::new(
                key,
                timestamp,
                now,
                deps.config.optin_window_ms,
                deps.config.alert_lead_ms,
            );
            received(deps, &as_received(&existing, webhook)).await?;
            Ok(ItemOutcome::Duplicate)
        }
        OptInRecorded::Erased => Ok(ItemOutcome::Ignored),
    }
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
