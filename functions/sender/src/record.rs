//! Record what Graph answered, as the lease owner: SENT (retried briefly: the one window in which
//! a crash can lead to a second message), a message accepted after an opt-out (recorded and
//! counted, never hidden), a transient failure (RETRYING with a backoff that still lands before the
//! deadline, else EXPIRED with an alert), or a final one (UNREACHABLE, the window closed, or PAUSED
//! with the Page paused through [`crate::pause`]).
//!
//! An opt-in that ended here is reported to the website ([`ended`]: `message.sent`, `message.failed`
//! with `optin.unreachable` / `optin.expired`); an event that cannot be queued makes the record come
//! back, and the job that finds the opt-in ended reports it again, with the same event ids.

use crate::backoff::{self, RecordOutcome, seconds_until, store_retry_seconds};
use crate::deps::Deps;
use crate::pause;
use shared::domain::alert::{Alert, AlertKind};
use shared::domain::opt_in::SendOutcome;
use shared::domain::opt_in::{LastError, Millis, OptIn, OptInKey, State, login_id_prefix};
use shared::domain::page::PauseCause;
use shared::facebook::graph_error::{ErrorClass, GraphError};
use shared::ports::metrics;
use shared::ports::opt_ins::Transitioned;
use shared::use_cases::alert;
use shared::use_cases::expire;
use std::time::Duration;
use tracing::{error, info, warn};

/// Attempts allowed for errors Meta documents as possibly permanent (code 1) before pausing.
pub const MAX_BOUNDED_ATTEMPTS: u32 = 3;
/// Attempts allowed for errors not in the table before pausing and alerting.
pub const MAX_UNKNOWN_ATTEMPTS: u32 = 5;

/// Tries of a write after Graph accepted the message: a lost write there is a resend or a
/// send after an opt-out nobody recorded.
const WRITE_TRIES: u32 = 3;

/// The pause before the write's try number `retry` (from 0): none, 100 ms, 400 ms.
async fn pause_before_try(retry: u32) {
    if retry > 0 {
        tokio::time::sleep(Duration::from_millis(100 * u64::from(4u32.pow(retry - 1)))).await;
    }
}

/// The website hears how the opt-in ended (whoever ended it); when the events cannot be queued
/// the record comes back (SQS) and the job finding the opt-in ended emits them again.
pub(crate) async fn ended(deps: &Deps, item: &OptIn) -> RecordOutcome {
    match deps.ports.events().redelivered().ended(item).await {
        Ok(()) => RecordOutcome::Done,
        Err(_) => RecordOutcome::RetryIn(store_retry_seconds()),
    }
}

/// Write SENT. Graph has accepted the message: from here until the write is durable is the only
/// window in which a crash can lead to a second message (docs/sender.md measures it), so the
/// write is retried briefly rather than given up.
pub(crate) async fn sent(
    deps: &Deps,
    claimed: &OptIn,
    owner: &str,
    message_id: String,
    now: Millis,
) -> RecordOutcome {
    let key = claimed.key();
    let login = login_id_prefix(&key.login_id);
    let outcome = SendOutcome::Sent {
        message_id: message_id.clone(),
    };
    let started = std::time::Instant::now();
    for retry in 0..WRITE_TRIES {
        pause_before_try(retry).await;
        match deps
            .ports
            .opt_ins
            .finish_send(&key, owner, &outcome, now)
            .await
        {
            Ok(Transitioned::Done(item)) => {
                metrics::record_sent(deps.ports.metrics.as_ref(), &item);
                info!(
                    login_id_prefix = %login,
                    attempts = item.attempts,
                    opt_in_to_sent_ms = now - item.opted_in_at,
                    sent_write_ms = started.elapsed().as_millis() as u64,
                    "initial message sent"
                );
                expire::cancel_schedule(deps.ports.scheduler.as_ref(), &key).await;
                return ended(deps, &item).await;
            }
            Ok(Transitioned::Refused(Some(current)))
                if current.state == State::Sent
                    && current.message_id.as_deref() == Some(message_id.as_str()) =>
            {
                // An earlier try of this write succeeded but its answer was lost.
                metrics::record_sent(deps.ports.metrics.as_ref(), &current);
                expire::cancel_schedule(deps.ports.scheduler.as_ref(), &key).await;
                return ended(deps, &current).await;
            }
            Ok(Transitioned::Refused(current)) => {
                refused_after_send(deps, claimed, current.map(|c| *c), &message_id, now).await;
                return RecordOutcome::Done;
            }
            Err(e) => warn!(login_id_prefix = %login, error = %e, retry, "SENT write failed"),
        }
    }
    error!(
        login_id_prefix = %login,
        "message accepted by Graph but SENT could not be written; the lease protects against a resend until it expires"
    );
    RecordOutcome::Done
}

/// Graph accepted the message but the `SENT` write was refused: the opt-in changed while the
/// request was in flight. An opt-out (OPTED_OUT, or the item erased by a data deletion) is
/// recorded on the item with the message id, logged and counted: the person received a message
/// after opting out, and the operators and the evidence must say so.
async fn refused_after_send(
    deps: &Deps,
    claimed: &OptIn,
    current: Option<OptIn>,
    message_id: &str,
    sent_at: Millis,
) {
    let key = claimed.key();
    let login = login_id_prefix(&key.login_id);
    let state = current.as_ref().map(|c| c.state);
    if !matches!(state, None | Some(State::OptedOut)) {
        // Not an opt-out: the lease ran out and another sender or the sweep moved on.
        warn!(
            login_id_prefix = %login,
            state = %state.map_or("missing".into(), |s| s.to_string()),
            "message accepted by Graph but the opt-in changed meanwhile; left as is"
        );
        return;
    }
    metrics::record_sent_after_opt_out(deps.ports.metrics.as_ref(), &key.page_id);
    if state.is_none() {
        // Erased by a data deletion while in flight: nothing to record it on, and recording it
        // would bring the person's identifiers back.
        warn!(
            login_id_prefix = %login,
            "message accepted by Graph after the opt-in was erased (data deletion while sending)"
        );
        return;
    }
    warn!(
        login_id_prefix = %login,
        "message accepted by Graph after the opt-out was recorded (in flight); recording it on the opt-in"
    );
    for retry in 0..WRITE_TRIES {
        pause_before_try(retry).await;
        match deps
            .ports
            .opt_ins
            .record_send_after_opt_out(&key, claimed.attempts, message_id, sent_at)
            .await
        {
            Ok(Transitioned::Done(item)) => {
                // `message.sent` (it landed) beside `person.opted_out`; absorbed: the send job
                // is done either way.
                let _ = deps.ports.events().ended(&item).await;
                return;
            }
            // An earlier try succeeded but its answer was lost.
            Ok(Transitioned::Refused(Some(item)))
                if item.sent_after_opt_out && item.message_id.as_deref() == Some(message_id) =>
            {
                return;
            }
            Ok(Transitioned::Refused(item)) => {
                error!(
                    login_id_prefix = %login,
                    state = %item.map_or("missing".into(), |i| i.state.to_string()),
                    "could not record the message sent after the opt-out: the opt-in changed again"
                );
                return;
            }
            Err(e) => {
                warn!(login_id_prefix = %login, error = %e, retry, "recording the send after the opt-out failed")
            }
        }
    }
    error!(
        login_id_prefix = %login,
        "message accepted by Graph after the opt-out, but it could not be recorded on the opt-in"
    );
}

pub(crate) async fn expire(deps: &Deps, key: &OptInKey, now: Millis) {
    deps.ports.deadlines().expire(key, now).await;
}

/// No attempt can land before the deadline any more: EXPIRED now, with an alert, rather than
/// waiting for the deadline. The alert says what happened: the sender gave up at this moment,
/// this long before the deadline, after this many attempts, with this last Graph error
/// ([`AlertKind::GaveUpBeforeDeadline`]; `deadline_missed` only if the deadline has passed).
/// `error`: the failure of the attempt just made; `None` when no attempt was made (too little
/// time left), and the item keeps the last Graph error of its earlier attempts, if any.
pub(crate) async fn out_of_time(
    deps: &Deps,
    claimed: &OptIn,
    owner: &str,
    error: Option<LastError>,
) -> RecordOutcome {
    let key = claimed.key();
    let now = deps.ports.clock.now();
    let reason = match &error {
        Some(_) => "its last attempt failed and no retry can land before the deadline",
        None => "too little time was left for one more attempt (one may take GRAPH_TIMEOUT_MS)",
    };
    let error = error
        .or_else(|| claimed.last_error.clone())
        .unwrap_or_else(|| LastError {
            message: "too close to the deadline to send".into(),
            ..LastError::default()
        });
    warn!(
        login_id_prefix = %login_id_prefix(&key.login_id),
        ms_left = claimed.deadline_at - now,
        "no attempt can land before the deadline; EXPIRED"
    );
    // SENDING → EXPIRED by the lease owner (the transition Graph's window errors take).
    match deps
        .ports
        .opt_ins
        .finish_send(&key, owner, &SendOutcome::WindowClosed { error }, now)
        .await
    {
        Ok(Transitioned::Done(item)) => {
            metrics::record_deadline_missed(deps.ports.metrics.as_ref(), &key.page_id);
            expire::cancel_schedule(deps.ports.scheduler.as_ref(), &key).await;
            let last = item.last_error.as_ref().map_or(String::new(), |e| {
                let code = match e.subcode {
                    Some(sub) => format!("{}/{sub}", e.code),
                    None => e.code.to_string(),
                };
                format!("; last error {code}: {}", e.message)
            });
            let alert = if item.deadline_passed(now) {
                Alert::about(
                    &item,
                    AlertKind::DeadlineMissed,
                    format!(
                        "the deadline passed during the last attempt ({} attempt(s)){last}",
                        item.attempts
                    ),
                )
            } else {
                let detail = format!(
                    "the sender gave up at {}, {} s before the deadline ({}), after {} attempt(s): {reason}. The opt-in is EXPIRED; nothing will be sent to this person{last}",
                    shared::domain::opt_in::utc(now),
                    (item.deadline_at - now) / 1000,
                    shared::domain::opt_in::utc(item.deadline_at),
                    item.attempts
                );
                Alert::gave_up(&item, now, detail)
            };
            alert::publish(deps.ports.alerts.as_ref(), &alert).await;
            ended(deps, &item).await
        }
        Ok(Transitioned::Refused(_)) => RecordOutcome::Done,
        Err(e) => {
            error!(error = %e, "could not record EXPIRED");
            RecordOutcome::RetryKeep(store_retry_seconds())
        }
    }
}

pub(crate) async fn failed(
    deps: &Deps,
    claimed: &OptIn,
    owner: &str,
    graph_error: &GraphError,
    now: Millis,
    probing: bool,
) -> RecordOutcome {
    let key = claimed.key();
    let login = login_id_prefix(&key.login_id);
    let error = graph_error.to_last_error();
    let class = graph_error.class();
    warn!(
        login_id_prefix = %login,
        code = error.code,
        subcode = ?error.subcode,
        fbtrace_id = ?error.fbtrace_id,
        class = ?class,
        attempts = claimed.attempts,
        probing,
        "send failed"
    );
    let exhausted = match class {
        ErrorClass::Retry => false,
        ErrorClass::RetryBounded => claimed.attempts >= MAX_BOUNDED_ATTEMPTS,
        ErrorClass::Unknown => claimed.attempts >= MAX_UNKNOWN_ATTEMPTS,
        _ => true,
    };
    if !exhausted {
        return retry_or_expire(deps, claimed, owner, error, now).await;
    }
    let (outcome, alert) = match class {
        ErrorClass::Unreachable => (SendOutcome::Unreachable { error }, None),
        ErrorClass::Window => (
            SendOutcome::WindowClosed { error },
            Some(AlertKind::WindowRejected),
        ),
        // The Page is paused below; it alerts once for the Page.
        ErrorClass::Configuration | ErrorClass::PageRestricted | ErrorClass::AbuseWarning => {
            (SendOutcome::Paused { error }, None)
        }
        // Retried a bounded number of times: never dropped silently.
        _ => (
            SendOutcome::Paused { error },
            Some(AlertKind::ConfigurationError),
        ),
    };
    let item = match deps
        .ports
        .opt_ins
        .finish_send(&key, owner, &outcome, now)
        .await
    {
        Ok(Transitioned::Done(item)) => item,
        // Opted out or taken over meanwhile: nothing more to do for this job.
        Ok(Transitioned::Refused(_)) => return RecordOutcome::Done,
        Err(e) => {
            error!(login_id_prefix = %login, error = %e, "could not record the send failure");
            return RecordOutcome::RetryKeep(seconds_until(
                claimed.lease_until.unwrap_or(now),
                now,
            ));
        }
    };
    if item.state == State::Expired {
        metrics::record_deadline_missed(deps.ports.metrics.as_ref(), &key.page_id);
    }
    if item.state.is_terminal() {
        expire::cancel_schedule(deps.ports.scheduler.as_ref(), &key).await;
    }
    if let Some(kind) = alert {
        let detail = match class {
            ErrorClass::Window => format!(
                "Graph refused the send as outside the window although our deadline is {} s away: check the clock and the send latency ({graph_error})",
                (item.deadline_at - now) / 1000
            ),
            _ => format!(
                "Graph kept failing after {} attempts ({graph_error}); the opt-in is PAUSED: it is re-queued when its Page resumes, or send its job again",
                item.attempts
            ),
        };
        alert::publish(
            deps.ports.alerts.as_ref(),
            &Alert::about(&item, kind, detail),
        )
        .await;
    }
    if let Some(cause) = PauseCause::for_class(class) {
        pause::page_error(deps, &item, cause, graph_error, probing).await;
    }
    ended(deps, &item).await
}

/// A transient failure: RETRYING with a backoff that still lands before the deadline, or EXPIRED
/// when none can.
async fn retry_or_expire(
    deps: &Deps,
    claimed: &OptIn,
    owner: &str,
    error: LastError,
    now: Millis,
) -> RecordOutcome {
    let key = claimed.key();
    let Some(seconds) = backoff::next_attempt_in(
        claimed.attempts,
        now,
        claimed.deadline_at,
        &deps.config.send,
        deps.send_margin_ms(),
        rand::random::<f64>(),
    ) else {
        return out_of_time(deps, claimed, owner, Some(error)).await;
    };
    match deps
        .ports
        .opt_ins
        .finish_send(&key, owner, &SendOutcome::Retry { error }, now)
        .await
    {
        Ok(Transitioned::Done(_)) => RecordOutcome::RetryIn(seconds),
        Ok(Transitioned::Refused(_)) => RecordOutcome::Done,
        Err(e) => {
            // The lease still stands: the record comes back, sees its own lease, and waits for it.
            error!(error = %e, "could not record RETRYING");
            RecordOutcome::RetryKeep(seconds)
        }
    }
}
