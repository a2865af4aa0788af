//! A Login Connect opt-in (`optin.login_id`): recorded through the one opt-in path
//! (`shared::use_cases::opt_in`: a conditional write that also checks the person's erasure marker,
//! then the send queued and the deadline alert arranged). A redelivery of an opt-in no sender has
//! touched yet repeats those follow-up steps; after an opt-in a login created (`START_AT_LOGIN`)
//! the webhook is a duplicate.

use super::outcome::ItemOutcome;
use crate::deps::Deps;
use shared::domain::opt_in::OptInKey;
use shared::ports::error::PortError;
use shared::use_cases::opt_in::{OptInRecorded, Origin};

/// Record the opt-in for `login_id` on this deployment's Page (the dispatcher checked the Page).
pub async fn on_opt_in(
    deps: &Deps,
    page_id: &str,
    login_id: &str,
    timestamp: Option<i64>,
) -> Result<ItemOutcome, PortError> {
    let recorded = deps
        .ports
        .opt_in_recording(&deps.config)
        .record(
            OptInKey::new(page_id, login_id),
            Origin::Webhook { timestamp },
            deps.secrets.app_secret.expose(),
            deps.ports.clock.now(),
        )
        .await?;
    Ok(match recorded {
        OptInRecorded::New(_) => ItemOutcome::New,
        OptInRecorded::Duplicate(_) => ItemOutcome::Duplicate,
        OptInRecorded::Erased => ItemOutcome::Ignored,
    })
}
