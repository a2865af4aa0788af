//! `messaging_policy_enforcement`: Meta's `block`, `unblock` and `warning` for the Page.
//!
//! Promise 3: a Page Meta blocked stays silent until Meta unblocks it. The rules live in
//! [`shared::use_cases::page`] (the sender's probe resumes through the same use case): `block` is
//! recorded whatever the Page's state and stops every send and probe; `unblock` lifts only a block
//! and queues the paused opt-ins again; `warning` is logged and alerted. When some paused opt-ins
//! could not be queued, the item fails so the webhook answers 503 and Meta redelivers; the
//! redelivered unblock finds the Page active and queues what is left.

use crate::Deps;
use crate::webhook::ItemOutcome;
use shared::domain::{Alert, AlertKind};
use shared::ports::PortError;
use shared::use_cases::page::PagePorts;
use tracing::warn;

fn page_ports(deps: &Deps) -> PagePorts<'_> {
    PagePorts::new(
        deps.pages.as_ref(),
        deps.queue.as_ref(),
        deps.alerts.as_ref(),
        deps.clock.as_ref(),
        &deps.config,
    )
}

pub(crate) async fn on_policy(
    deps: &Deps,
    page_id: &str,
    action: &str,
    reason: Option<&str>,
) -> Result<ItemOutcome, PortError> {
    if page_id != deps.config.fb_page_id {
        return Ok(ItemOutcome::Ignored);
    }
    let reason = reason.unwrap_or("no reason given");
    match action {
        "block" => {
            page_ports(deps).block(page_id, reason).await?;
        }
        "unblock" => {
            page_ports(deps).unblock(page_id).await?;
        }
        other => {
            warn!(
                page_id,
                action = other,
                reason,
                "policy enforcement warning"
            );
            let detail = format!("Meta sent a policy enforcement {other}: {reason}");
            shared::actions::publish(
                deps.alerts.as_ref(),
                &Alert::for_page(page_id, AlertKind::PolicyEnforcement, false, detail),
            )
            .await;
        }
    }
    Ok(ItemOutcome::Ignored)
}
