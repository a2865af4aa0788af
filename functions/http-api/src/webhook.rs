//! `GET /webhooks/messenger` (subscription handshake) and `POST /webhooks/messenger` (events).

use crate::{Deps, error_response, json_response};
use lambda_http::{Body, Request, RequestExt, Response, http::StatusCode};
use shared::domain::{DeadlineCheck, OptIn, OptInKey, SendJob, login_id_prefix};
use shared::facebook::{MessagingEvent, SIGNATURE_HEADER, parse_webhook, verify_webhook_signature};
use shared::ports::{ConsentGuard, PortError, Recorded};
use subtle::ConstantTimeEq;
use tracing::{error, info, warn};

/// The handshake Meta performs when the callback URL is configured.
pub fn verify_subscription(deps: &Deps, request: &Request) -> Response<Body> {
    let query = request.query_string_parameters_ref();
    let get = |name: &str| query.and_then(|q| q.first(name));
    let mode_ok = get("hub.mode") == Some("subscribe");
    let token_ok = get("hub.verify_token").is_some_and(|t| {
        bool::from(
            t.as_bytes()
                .ct_eq(deps.secrets.verify_token.expose().as_bytes()),
        )
    });
    match get("hub.challenge") {
        Some(challenge) if mode_ok && token_ok && challenge.len() <= 256 => {
            let mut response = Response::new(Body::Text(challenge.to_owned()));
            let headers = response.headers_mut();
            headers.insert(
                "content-type",
                lambda_http::http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            headers.insert(
                "x-content-type-options",
                lambda_http::http::HeaderValue::from_static("nosniff"),
            );
            response
        }
        _ => error_response(
            StatusCode::FORBIDDEN,
            "verification_failed",
            "hub.mode must be subscribe and hub.verify_token must match",
        ),
    }
}

/// What happened to one messaging item.
#[derive(Debug, Default)]
struct Tally {
    opt_ins_new: usize,
    opt_ins_duplicate: usize,
    /// Stop words and `STOP NOTIFICATIONS` that opted someone out (or found them already out).
    opt_outs: usize,
    /// Stops from a PSID not linked to any opt-in: kept as pending, counted, alerted.
    stops_kept: usize,
    ignored: usize,
    /// The opt-in could not be recorded: Facebook must redeliver.
    store_failures: usize,
}

/// Receive a signed webhook. The signature is checked over the exact raw bytes before anything
/// else; nothing is written unless it matches and the envelope parses.
pub async fn receive(deps: &Deps, request: &Request) -> Response<Body> {
    // lambda_http has already decoded an `isBase64Encoded` body to its raw bytes.
    let body: &[u8] = request.body().as_ref();
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if let Err(e) =
        verify_webhook_signature(deps.secrets.app_secret.expose().as_bytes(), body, signature)
    {
        warn!(reason = %e, "webhook refused: bad signature");
        return error_response(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            &e.to_string(),
        );
    }
    let (object, events) = match parse_webhook(body) {
        Ok(parsed) => parsed,
        Err(e) => {
            warn!(reason = %e, "webhook refused: malformed body");
            return error_response(
                StatusCode::BAD_REQUEST,
                "malformed_webhook",
                "the body is not a Messenger webhook envelope",
            );
        }
    };
    if object != "page" {
        info!(object = %object, "webhook for another object ignored");
        return json_response(StatusCode::OK, &serde_json::json!({"received": 0}));
    }

    // Items are independent: handle them concurrently so a large batch still answers fast.
    let outcomes = futures::future::join_all(events.iter().map(|e| handle_event(deps, e))).await;
    let mut tally = Tally::default();
    for outcome in outcomes {
        match outcome {
            Ok(ItemOutcome::New) => tally.opt_ins_new += 1,
            Ok(ItemOutcome::Duplicate) => tally.opt_ins_duplicate += 1,
            Ok(ItemOutcome::OptedOut) => tally.opt_outs += 1,
            Ok(ItemOutcome::StopKept) => tally.stops_kept += 1,
            Ok(ItemOutcome::Ignored) => tally.ignored += 1,
            Err(_) => tally.store_failures += 1,
        }
    }
    info!(
        new = tally.opt_ins_new,
        duplicate = tally.opt_ins_duplicate,
        opt_outs = tally.opt_outs,
        stops_kept = tally.stops_kept,
        ignored = tally.ignored,
        failed = tally.store_failures,
        "webhook processed"
    );
    if tally.store_failures > 0 {
        // Nothing durable exists for those items: ask Facebook to redeliver. Redelivery is
        // harmless for the others (creates are conditional, sends are claimed once).
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "some events could not be recorded; please redeliver",
        );
    }
    json_response(
        StatusCode::OK,
        &serde_json::json!({"received": tally.opt_ins_new
            + tally.opt_ins_duplicate
            + tally.opt_outs
            + tally.stops_kept
            + tally.ignored}),
    )
}

pub(crate) enum ItemOutcome {
    New,
    Duplicate,
    /// A stop opted the person out (or found them already out).
    OptedOut,
    /// A stop from an unlinked PSID, kept as pending.
    StopKept,
    Ignored,
}

async fn handle_event(deps: &Deps, event: &MessagingEvent) -> Result<ItemOutcome, PortError> {
    let (page_id, login_id, timestamp) = match event {
        MessagingEvent::OptIn {
            page_id,
            login_id,
            timestamp,
        } => (page_id, login_id, timestamp),
        MessagingEvent::Message {
            page_id,
            psid,
            text,
            timestamp,
            linked_login_id,
        } => {
            return crate::conversation::on_message(
                deps,
                page_id,
                psid,
                text.as_deref(),
                *timestamp,
                linked_login_id.as_deref(),
            )
            .await;
        }
        MessagingEvent::NotificationStatus {
            page_id,
            psid,
            login_id,
            status,
        } => {
            return crate::conversation::on_notification_status(
                deps,
                page_id,
                psid.as_deref(),
                login_id.as_deref(),
                status,
            )
            .await;
        }
        MessagingEvent::PolicyEnforcement {
            page_id,
            action,
            reason,
        } => {
            return crate::policy::on_policy(deps, page_id, action, reason.as_deref()).await;
        }
        MessagingEvent::Other { .. } => {
            return Ok(ItemOutcome::Ignored);
        }
    };
    if *page_id != deps.config.fb_page_id {
        warn!(page_id = %page_id, "opt-in for a Page this deployment does not serve; ignored");
        return Ok(ItemOutcome::Ignored);
    }
    let now = deps.clock.now();
    let opt_in = OptIn::new(
        OptInKey::new(page_id, login_id),
        *timestamp,
        now,
        deps.config.optin_window_ms,
        deps.config.alert_lead_ms,
    );
    let login = login_id_prefix(login_id);
    // One transaction checks the person's erasure marker with the write: an opt-in from before a
    // data deletion (a redelivered webhook, or one racing the deletion) never comes back; one
    // after it is a new consent. An opted-out opt-in is replaced only by a new consent dated
    // beyond Meta's redelivery horizon (`shared::domain::is_new_consent`).
    let guard = ConsentGuard {
        erasure_marker: shared::erasure::erasure_marker(
            deps.secrets.app_secret.expose(),
            &opt_in.key(),
        ),
        event_at: timestamp.filter(|t| *t > 0).map(|_| opt_in.opted_in_at),
    };
    let recorded = deps
        .store
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
            if existing.state != shared::domain::State::OptedIn {
                return Ok(ItemOutcome::Duplicate);
            }
            (*existing, ItemOutcome::Duplicate)
        }
    };
    follow_up(deps, &opt_in, now).await;
    Ok(outcome)
}

/// Enqueue the send and arrange the deadline alert. Failures are logged, not returned: the opt-in
/// is recorded, the recurring sweep re-enqueues stuck opt-ins and covers missing schedules.
async fn follow_up(deps: &Deps, opt_in: &OptIn, now: i64) {
    let key = opt_in.key();
    let login = login_id_prefix(&key.login_id);
    let enqueue = async {
        if let Err(e) = deps.queue.enqueue(&SendJob::for_key(&key)).await {
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
            .scheduler
            .schedule_deadline_check(&check, opt_in.alert_at)
            .await
        {
            error!(login_id_prefix = %login, error = %e, "could not create the deadline schedule");
        }
    };
    futures::join!(enqueue, arrange_alert);
}

async fn alert_at_once(deps: &Deps, opt_in: &OptIn, now: i64) {
    shared::actions::alert_at_risk_once(
        deps.store.as_ref(),
        deps.alerts.as_ref(),
        deps.metrics.as_ref(),
        opt_in,
        now,
        "the opt-in arrived after its alert time; the initial message is not yet sent",
    )
    .await;
}
