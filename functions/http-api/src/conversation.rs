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
