//! `POST /webhooks/messenger`: the signature over the exact raw bytes first, then the envelope,
//! then each messaging item to its handler, concurrently. Only the Page this deployment serves is
//! handled: that check is made here, once, for every kind of item. Nothing is written unless the
//! signature matches and the envelope parses.

use super::outcome::ItemOutcome;
use super::{conversation, opt_in, policy};
use crate::deps::Deps;
use crate::response::{HttpError, json};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::facebook::webhook::{
    MessagingEvent, SIGNATURE_HEADER, parse_webhook, verify_webhook_signature,
};
use shared::ports::error::PortError;
use tracing::{info, warn};

/// What happened to the items of one delivery.
#[derive(Debug, Default)]
struct Tally {
    opt_ins_new: usize,
    opt_ins_duplicate: usize,
    /// Stop words and `STOP NOTIFICATIONS` that opted someone out (or found them already out).
    opt_outs: usize,
    /// Stops from a PSID not linked to any opt-in: kept as pending, counted, alerted.
    stops_kept: usize,
    ignored: usize,
    /// The item could not be recorded: Facebook must redeliver.
    store_failures: usize,
}

impl Tally {
    fn count(&mut self, outcome: Result<ItemOutcome, PortError>) {
        match outcome {
            Ok(ItemOutcome::New) => self.opt_ins_new += 1,
            Ok(ItemOutcome::Duplicate) => self.opt_ins_duplicate += 1,
            Ok(ItemOutcome::OptedOut) => self.opt_outs += 1,
            Ok(ItemOutcome::StopKept) => self.stops_kept += 1,
            Ok(ItemOutcome::Ignored) => self.ignored += 1,
            Err(_) => self.store_failures += 1,
        }
    }

    fn received(&self) -> usize {
        self.opt_ins_new + self.opt_ins_duplicate + self.opt_outs + self.stops_kept + self.ignored
    }

    /// Every item was a new opt-in: each already logged "opt-in recorded" (with its
    /// login_id_prefix) in this invocation, so the summary says nothing more (DEBUG). The common
    /// case, one per opt-in: its line was ≈ 40 % of the http-api's log bytes per opt-in.
    fn only_new_opt_ins(&self) -> bool {
        self.opt_ins_new > 0 && self.received() == self.opt_ins_new && self.store_failures == 0
    }

    /// The summary line: INFO when anything but new opt-ins happened (a duplicate, an opt-out,
    /// a kept stop, an ignored item, a failure), else DEBUG.
    fn log(&self) {
        macro_rules! processed {
            ($level:ident) => {
                tracing::$level!(
                    new = self.opt_ins_new,
                    duplicate = self.opt_ins_duplicate,
                    opt_outs = self.opt_outs,
                    stops_kept = self.stops_kept,
                    ignored = self.ignored,
                    failed = self.store_failures,
                    "webhook processed"
                )
            };
        }
        if self.only_new_opt_ins() {
            processed!(debug);
        } else {
            processed!(info);
        }
    }
}

/// Receive a signed webhook.
pub async fn receive(deps: &Deps, request: &Request) -> Result<Response<Body>, HttpError> {
    // lambda_http has already decoded an `isBase64Encoded` body to its raw bytes.
    let body: &[u8] = request.body().as_ref();
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    verify_webhook_signature(deps.secrets.app_secret.expose().as_bytes(), body, signature)
        .map_err(|e| {
            warn!(reason = %e, "webhook refused: bad signature");
            HttpError::refused(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string())
        })?;
    let (object, events) = parse_webhook(body).map_err(|e| {
        warn!(reason = %e, "webhook refused: malformed body");
        HttpError::bad_request(
            "malformed_webhook",
            "the body is not a Messenger webhook envelope",
        )
    })?;
    if object != "page" {
        info!(object = %object, "webhook for another object ignored");
        return Ok(json(StatusCode::OK, &serde_json::json!({"received": 0})));
    }

    // Items are independent: handle them concurrently so a large batch still answers fast.
    let outcomes = futures::future::join_all(events.iter().map(|e| handle_event(deps, e))).await;
    let mut tally = Tally::default();
    outcomes.into_iter().for_each(|o| tally.count(o));
    tally.log();
    if tally.store_failures > 0 {
        // Nothing durable exists for those items: ask Facebook to redeliver. Redelivery is
        // harmless for the others (creates are conditional, sends are claimed once).
        return Err(HttpError::refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "some events could not be recorded; please redeliver",
        ));
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"received": tally.received()}),
    ))
}

/// The Page an item is for (none for the kinds this function does not handle).
fn page_of(event: &MessagingEvent) -> Option<&str> {
    match event {
        MessagingEvent::OptIn { page_id, .. }
        | MessagingEvent::Message { page_id, .. }
        | MessagingEvent::NotificationStatus { page_id, .. }
        | MessagingEvent::PolicyEnforcement { page_id, .. } => Some(page_id),
        MessagingEvent::Other { .. } => None,
    }
}

/// One item to its handler, once the Page is known to be ours.
async fn handle_event(deps: &Deps, event: &MessagingEvent) -> Result<ItemOutcome, PortError> {
    let Some(page_id) = page_of(event) else {
        return Ok(ItemOutcome::Ignored);
    };
    if page_id != deps.config.fb_page_id {
        warn!(page_id = %page_id, "event for a Page this deployment does not serve; ignored");
        return Ok(ItemOutcome::Ignored);
    }
    match event {
        MessagingEvent::OptIn {
            login_id,
            timestamp,
            ..
        } => opt_in::on_opt_in(deps, page_id, login_id, *timestamp).await,
        MessagingEvent::Message {
            psid,
            text,
            timestamp,
            linked_login_id,
            ..
        } => {
            let (text, linked) = (text.as_deref(), linked_login_id.as_deref());
            conversation::on_message(deps, page_id, psid, text, *timestamp, linked).await
        }
        MessagingEvent::NotificationStatus {
            psid,
            login_id,
            status,
            ..
        } => {
            let (psid, login_id) = (psid.as_deref(), login_id.as_deref());
            conversation::on_notification_status(deps, page_id, psid, login_id, status).await
        }
        MessagingEvent::PolicyEnforcement { action, reason, .. } => {
            policy::on_policy(deps, page_id, action, reason.as_deref()).await
        }
        MessagingEvent::Other { .. } => Ok(ItemOutcome::Ignored),
    }
}
