//! What the person does on Messenger after the opt-in: their messages link their PSID to the
//! opt-in (the standard 24-hour reply window then runs from their last message), and a stop
//! keyword or a "STOP NOTIFICATIONS" status opts them out at once.

use crate::Deps;
use crate::webhook::ItemOutcome;
use shared::domain::{OptInKey, is_stop_request, login_id_prefix};
use shared::ports::{PortError, Transitioned};
use tracing::{info, warn};

/// The opt-in a message belongs to: the login_id Facebook links it to, else the PSID's earlier link.
async fn opt_in_of(
    deps: &Deps,
    page_id: &str,
    psid: Option<&str>,
    linked_login_id: Option<&str>,
) -> Result<Option<OptInKey>, PortError> {
    if let Some(login_id) = linked_login_id {
        return Ok(Some(OptInKey::new(page_id, login_id)));
    }
    match psid {
        Some(psid) => deps.conversations.opt_in_for_psid(page_id, psid).await,
        None => Ok(None),
    }
}

pub(crate) async fn on_message(
    deps: &Deps,
    page_id: &str,
    psid: &str,
    text: Option<&str>,
    timestamp: Option<i64>,
    linked_login_id: Option<&str>,
) -> Result<ItemOutcome, PortError> {
    if page_id != deps.config.fb_page_id {
        return Ok(ItemOutcome::Ignored);
    }
    let Some(key) = opt_in_of(deps, page_id, Some(psid), linked_login_id).await? else {
        // Someone who did not come through Login Connect: not ours to track.
        return Ok(ItemOutcome::Ignored);
    };
    let now = deps.clock.now();
    let at = timestamp.filter(|t| *t > 0).map_or(now, |t| t.min(now));
    let known = deps.conversations.link_psid(&key, psid, at).await?;
    if !known {
        return Ok(ItemOutcome::Ignored);
    }
    info!(login_id_prefix = %login_id_prefix(&key.login_id), "person wrote to the Page; PSID linked");
    if text.is_some_and(|t| is_stop_request(t, &deps.config.stop_keywords)) {
        opt_out(deps, &key, "stop_keyword").await?;
    }
    Ok(ItemOutcome::Ignored)
}

pub(crate) async fn on_notification_status(
    deps: &Deps,
    page_id: &str,
    psid: Option<&str>,
    login_id: Option<&str>,
    status: &str,
) -> Result<ItemOutcome, PortError> {
    if page_id != deps.config.fb_page_id || !status.eq_ignore_ascii_case("STOP NOTIFICATIONS") {
        return Ok(ItemOutcome::Ignored);
    }
    if let Some(key) = opt_in_of(deps, page_id, psid, login_id).await? {
        opt_out(deps, &key, "stop_notifications").await?;
    }
    Ok(ItemOutcome::Ignored)
}

/// Opt out (conditional: any non-terminal state) and cancel the deadline schedule. A failure is
/// returned so the webhook answers 503 and Facebook redelivers: an opt-out must not be lost.
pub(crate) async fn opt_out(deps: &Deps, key: &OptInKey, source: &str) -> Result<(), PortError> {
    let now = deps.clock.now();
    match deps.store.opt_out(key, source, now).await? {
        Transitioned::Done(_) => {
            info!(login_id_prefix = %login_id_prefix(&key.login_id), source, "opted out");
            shared::actions::cancel_schedule(deps.scheduler.as_ref(), key).await;
        }
        Transitioned::Refused(current) => warn!(
            login_id_prefix = %login_id_prefix(&key.login_id),
            source,
            state = %current.map_or("missing".into(), |c| c.state.to_string()),
            "opt-out for an opt-in that is already terminal"
        ),
    }
    Ok(())
}
