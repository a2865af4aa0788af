//! `messaging_policy_enforcement`: Meta's `block`, `unblock` and `warning` for the Page.
//!
//! Promise 3: a Page Meta blocked stays silent until Meta unblocks it. The rules live in
//! [`shared::use_cases::page`] (the sender's probe resumes through the same use case): `block` is
//! recorded whatever the Page's state and stops every send and probe; `unblock` lifts only a block
//! and queues the paused opt-ins again; `warning` is logged and alerted. When some paused opt-ins
//! could not be queued, the item fails so the webhook answers 503 and Meta redelivers; the
//! redelivered unblock finds the Page active and queues what is left.

use super::outcome::ItemOutcome;
use crate::deps::Deps;
use shared::domain::alert::{Alert, AlertKind};
use shared::ports::error::PortError;
use tracing::warn;

/// One policy enforcement item for this deployment's Page (the dispatcher checked the Page).
pub async fn on_policy(
    deps: &Deps,
    page_id: &str,
    action: &str,
    reason: Option<&str>,
) -> Result<ItemOutcome, PortError> {
    let reason = reason.unwrap_or("no reason given");
    match action {
        "block" => {
            deps.ports
                .page_ports(&deps.config)
                .block(page_id, reason)
                .await?;
        }
        "unblock" => {
            deps.ports.page_ports(&deps.config).unblock(page_id).await?;
        }
        other => {
            warn!(
                page_id,
                action = other,
                reason,
                "policy enforcement warning"
            );
            let detail = format!("Meta sent a policy enforcement {other}: {reason}");
            shared::use_cases::alert::publish(
                deps.ports.alerts.as_ref(),
                &Alert::for_page(page_id, AlertKind::PolicyEnforcement, false, detail),
            )
            .await;
        }
    }
    Ok(ItemOutcome::Ignored)
}
