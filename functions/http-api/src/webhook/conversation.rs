//! What the person does on Messenger after the opt-in: their messages link their PSID to the
//! opt-in (the standard 24-hour reply window then runs from their last message), and a stop
//! keyword or a "STOP NOTIFICATIONS" status opts them out at once, through the one opt-out use
//! case ([`shared::use_cases::opt_out`]): before the opt-in exists too (a placeholder), and from a
//! PSID not linked yet (kept as a pending stop, counted and alerted). Any other text in a linked
//! conversation becomes `person.replied` for the website (the text in the event body only).
//! Events that cannot be queued fail the item, so Meta redelivers and they are emitted again.

use super::outcome::ItemOutcome;
use crate::deps::Deps;
use shared::domain::message::is_stop_request;
use shared::domain::opt_in::{OptInKey, login_id_prefix};
use shared::ports::error::PortError;
use shared::use_cases::opt_out::{Linked, StopOutcome, StopRequest};
use tracing::{info, warn};

/// `opt_out_source` of a stop word.
pub const OPT_OUT_STOP_KEYWORD: &str = "stop_keyword";
/// `opt_out_source` of a `STOP NOTIFICATIONS` status.
pub const OPT_OUT_STOP_NOTIFICATIONS: &str = "stop_notifications";

fn stop_outcome(outcome: StopOutcome) -> ItemOutcome {
    match outcome {
        StopOutcome::OptedOut(_) => ItemOutcome::OptedOut,
        StopOutcome::Pending { .. } | StopOutcome::Unmatched => ItemOutcome::StopKept,
    }
}

/// A message from the person: a stop word opts them out, anything else links their PSID.
pub async fn on_message(
    deps: &Deps,
    page_id: &str,
    psid: &str,
    text: Option<&str>,
    timestamp: Option<i64>,
    linked_login_id: Option<&str>,
) -> Result<ItemOutcome, PortError> {
    let now = deps.ports.clock.now();
    let at = timestamp.filter(|t| *t > 0).map_or(now, |t| t.min(now));
    // A webhook answered 5xx is redelivered: events that could not be queued fail the item.
    let opt_outs = deps.ports.opt_outs(&deps.config).redelivered();
    if text.is_some_and(|t| is_stop_request(t, &deps.config.stop_keywords)) {
        // Whatever arrived first: the placeholder path with a login_id, the PSID link without,
        // else kept as pending. A failure is returned so Facebook redelivers.
        let stop = StopRequest {
            page_id,
            psid: Some(psid),
            login_id: linked_login_id,
            source: OPT_OUT_STOP_KEYWORD,
            wrote_at: Some(at),
        };
        return Ok(stop_outcome(opt_outs.stop_request(stop, now).await?));
    }
    let key = match linked_login_id {
        Some(login_id) => OptInKey::new(page_id, login_id),
        None => match deps
            .ports
            .conversations
            .opt_in_for_psid(page_id, psid)
            .await?
        {
            Some(key) => key,
            // Someone who did not come through Login Connect: not ours to track.
            None => return Ok(ItemOutcome::Ignored),
        },
    };
    let outcome = match opt_outs.link(&key, psid, at, now).await? {
        Linked::Unknown => return Ok(ItemOutcome::Ignored),
        Linked::Linked => {
            info!(login_id_prefix = %login_id_prefix(&key.login_id), "person wrote to the Page; PSID linked");
            ItemOutcome::Ignored
        }
        Linked::Stopped(_) => ItemOutcome::OptedOut,
    };
    // The reply, to the website (its text in the event body only, never in a log).
    if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
        opt_outs.events.person_replied(&key, psid, text, at).await?;
    }
    Ok(outcome)
}

/// A `notification_messages_status`: `STOP NOTIFICATIONS` opts the person out.
pub async fn on_notification_status(
    deps: &Deps,
    page_id: &str,
    psid: Option<&str>,
    login_id: Option<&str>,
    status: &str,
) -> Result<ItemOutcome, PortError> {
    if !status.eq_ignore_ascii_case("STOP NOTIFICATIONS") {
        info!(status, "notification status other than a stop; ignored");
        return Ok(ItemOutcome::Ignored);
    }
    let stop = StopRequest {
        page_id,
        psid,
        login_id,
        source: OPT_OUT_STOP_NOTIFICATIONS,
        // A status is not a message: it does not link the PSID or open a reply window.
        wrote_at: None,
    };
    let outcome = deps
        .ports
        .opt_outs(&deps.config)
        .redelivered()
        .stop_request(stop, deps.ports.clock.now())
        .await?;
    if let StopOutcome::Unmatched = outcome {
        warn!("STOP NOTIFICATIONS without a login_id or PSID");
    }
    Ok(stop_outcome(outcome))
}
