//! What the person does on Messenger after the opt-in: their messages link their PSID to the
//! opt-in (the standard 24-hour reply window then runs from their last message), and a stop
//! keyword or a "STOP NOTIFICATIONS" status opts them out at once, through the one opt-out use
//! case ([`shared::use_cases::opt_out`]): before the opt-in exists too (a placeholder), and from a
//! PSID not linked yet (kept as a pending stop, counted and alerted).

use crate::Deps;
use crate::webhook::ItemOutcome;
use shared::domain::{OptInKey, is_stop_request, login_id_prefix};
use shared::ports::PortError;
use shared::use_cases::opt_out::{Linked, OptOuts, StopOutcome, StopRequest};
use tracing::{info, warn};

/// `opt_out_source` of a stop word.
pub const OPT_OUT_STOP_KEYWORD: &str = "stop_keyword";
/// `opt_out_source` of a `STOP NOTIFICATIONS` status.
pub const OPT_OUT_STOP_NOTIFICATIONS: &str = "stop_notifications";

/// The opt-out use case over this function's ports.
pub(crate) fn opt_outs(deps: &Deps) -> OptOuts<'_> {
    OptOuts {
        store: deps.store.as_ref(),
        conversations: deps.conversations.as_ref(),
        scheduler: deps.scheduler.as_ref(),
        alerts: deps.alerts.as_ref(),
        metrics: deps.metrics.as_ref(),
        window_ms: deps.config.optin_window_ms,
        alert_lead_ms: deps.config.alert_lead_ms,
    }
}

fn stop_outcome(outcome: StopOutcome) -> ItemOutcome {
    match outcome {
        StopOutcome::OptedOut(_) => ItemOutcome::OptedOut,
        StopOutcome::Pending { .. } | StopOutcome::Unmatched => ItemOutcome::StopKept,
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
    let now = deps.clock.now();
    let at = timestamp.filter(|t| *t > 0).map_or(now, |t| t.min(now));
    let opt_outs = opt_outs(deps);
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
        None => match deps.conversations.opt_in_for_psid(page_id, psid).await? {
            Some(key) => key,
            // Someone who did not come through Login Connect: not ours to track.
            None => return Ok(ItemOutcome::Ignored),
        },
    };
    match opt_outs.link(&key, psid, at, now).await? {
        Linked::Unknown => Ok(ItemOutcome::Ignored),
        Linked::Linked => {
            info!(login_id_prefix = %login_id_prefix(&key.login_id), "person wrote to the Page; PSID linked");
            Ok(ItemOutcome::Ignored)
        }
        Linked::Stopped(_) => Ok(ItemOutcome::OptedOut),
    }
}

pub(crate) async fn on_notification_status(
    deps: &Deps,
    page_id: &str,
    psid: Option<&str>,
    login_id: Option<&str>,
    status: &str,
) -> Result<ItemOutcome, PortError> {
    if page_id != deps.config.fb_page_id {
        return Ok(ItemOutcome::Ignored);
    }
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
    let outcome = opt_outs(deps).stop_request(stop, deps.clock.now()).await?;
    if let StopOutcome::Unmatched = outcome {
        warn!("STOP NOTIFICATIONS without a login_id or PSID");
    }
    Ok(stop_outcome(outcome))
}

/// `messaging_policy_enforcement`: `block` stops every send for the Page at once (the Page is
/// PAUSED, with no probe, and the operators alerted); `unblock` resumes it and queues again every
/// paused opt-in still before its deadline; `warning` is logged and alerted.
pub(crate) async fn on_policy(
    deps: &Deps,
    page_id: &str,
    action: &str,
    reason: Option<&str>,
) -> Result<ItemOutcome, PortError> {
    use shared::domain::{Alert, AlertKind, LastError, SendJob};
    use shared::page::PauseCause;
    if page_id != deps.config.fb_page_id {
        return Ok(ItemOutcome::Ignored);
    }
    let now = deps.clock.now();
    let reason = reason.unwrap_or("no reason given");
    match action {
        "block" => {
            let error = LastError {
                message: format!("policy enforcement block: {reason}")
                    .chars()
                    .take(200)
                    .collect(),
                ..LastError::default()
            };
            // No probe while blocked: a probe is a real message to a person.
            if deps
                .pages
                .pause_page(page_id, PauseCause::PolicyBlock, &error, now, i64::MAX)
                .await?
            {
                warn!(page_id, "Page blocked by Meta: every send stopped");
                let detail = format!(
                    "Meta blocked the Page: {reason}. Every send is stopped until Meta unblocks it."
                );
                shared::actions::publish(
                    deps.alerts.as_ref(),
                    &Alert::for_page(page_id, AlertKind::PolicyEnforcement, true, detail),
                )
                .await;
            }
        }
        "unblock" => {
            if deps.pages.resume_page(page_id, now).await? {
                let paused = deps.pages.paused_opt_ins(page_id, 20_000).await?;
                let mut queued = 0;
                for opt_in in paused.iter().filter(|o| !o.deadline_passed(now)) {
                    // The job resumes the opt-in itself (PAUSED on an active Page → RETRYING).
                    deps.queue.enqueue(&SendJob::for_key(&opt_in.key())).await?;
                    queued += 1;
                }
                info!(
                    page_id,
                    queued, "Page unblocked by Meta: paused opt-ins queued again"
                );
                let detail =
                    format!("Meta unblocked the Page; {queued} paused opt-in(s) queued again.");
                shared::actions::publish(
                    deps.alerts.as_ref(),
                    &Alert::for_page(page_id, AlertKind::PolicyEnforcement, false, detail),
                )
                .await;
            }
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
