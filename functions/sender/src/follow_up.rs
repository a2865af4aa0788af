//! One follow-up job (issue 12 §2): pace → claim → the policy guard again → send → record.
//!
//! The claim (queued and unleased, conditional) lets one attempt through at a time, so duplicate
//! jobs send once. The guard ([`shared::domain::follow_up::guard`]) runs on the person as they are
//! *after* the claim, just before the send: an opt-out or a closed window recorded since the API
//! accepted the follow-up stops it (failed, with the refusal's code as the reason). The send uses
//! the same pacer and the same Graph error table as the initial message; transient errors back off
//! ([`crate::backoff`]) only while a retry can still land inside the person's window. Each outcome
//! is written by the lease owner only (queued → sent | failed) and emitted as `message.sent` /
//! `message.failed` with `kind: follow_up`.

use crate::backoff::{self, RecordOutcome, seconds_until, store_retry_seconds};
use crate::deps::Deps;
use crate::record::{MAX_BOUNDED_ATTEMPTS, MAX_UNKNOWN_ATTEMPTS};
use shared::domain::events::{MessageKind, Subject, message_failed, message_sent};
use shared::domain::follow_up::{
    FollowUp, FollowUpKey, FollowUpOutcome, FollowUpState, Refusal, guard,
};
use shared::domain::jobs::FollowUpJob;
use shared::domain::login::Login;
use shared::domain::opt_in::{Millis, OptIn};
use shared::facebook::graph_error::{ErrorClass, GraphError};
use shared::ports::error::PortResult;
use shared::ports::follow_ups::FollowUpChange;
use std::time::Duration;
use tracing::{error, info, warn};

/// Tries of the `sent` write after Graph accepted the message (as for the initial message).
const WRITE_TRIES: u32 = 3;

/// One follow-up job. Returns what to do with its record.
pub async fn process_follow_up(deps: &Deps, job: &FollowUpJob, message_id: &str) -> RecordOutcome {
    let key = FollowUpKey {
        page_id: job.page_id.clone(),
        asid: job.asid.clone(),
        id: job.id.clone(),
    };
    // The lease owner names the message, so a redelivery recognises its own earlier attempt.
    let owner = format!("{message_id}:{}", uuid::Uuid::new_v4().simple());
    deps.pacer.acquire(&key.page_id).await;
    let now = deps.ports.clock.now();
    let claimed = match deps
        .ports
        .follow_ups
        .claim_follow_up(&key, &owner, now, now + deps.config.send_lease_ms)
        .await
    {
        Ok(FollowUpChange::Done(item)) => *item,
        Ok(FollowUpChange::Refused(None)) => {
            warn!("follow-up job for an unknown follow-up; dropped");
            return RecordOutcome::Done;
        }
        Ok(FollowUpChange::Refused(Some(item))) if item.state != FollowUpState::Queued => {
            // Finished: emit its end event again (the same id). When the first emission could not
            // be queued, the record was handed back for exactly this.
            return match person(deps, &key).await {
                Ok((login, opt_in)) => {
                    let person = Person {
                        login: login.as_ref(),
                        opt_in: opt_in.as_ref(),
                    };
                    emit_end(deps, &item, &person).await
                }
                Err(e) => {
                    error!(error = %e, "could not read the person of a finished follow-up");
                    RecordOutcome::RetryIn(store_retry_seconds())
                }
            };
        }
        Ok(FollowUpChange::Refused(Some(item))) => return not_claimed(&item, now, message_id),
        Err(e) => {
            error!(error = %e, "follow-up claim failed");
            return RecordOutcome::RetryIn(store_retry_seconds());
        }
    };
    let (login, opt_in) = match person(deps, &key).await {
        Ok(person) => person,
        Err(e) => {
            // The lease stands: this record comes back once it has expired and takes over.
            error!(error = %e, "could not read the person of a follow-up");
            return RecordOutcome::RetryKeep(seconds_until(
                claimed.lease_until.unwrap_or(now),
                now,
            ));
        }
    };
    let person = Person {
        login: login.as_ref(),
        opt_in: opt_in.as_ref(),
    };
    let now = deps.ports.clock.now();
    let allowed = match guard(opt_in.as_ref(), now, deps.config.human_agent_tag) {
        Ok(allowed) if allowed.window_ends_at - now > deps.send_margin_ms() => allowed,
        // A send starting now could end after the window closes.
        Ok(allowed) => {
            let refusal = Refusal::OutsideWindow {
                window_ended_at: allowed.window_ends_at,
            };
            return fail(deps, &claimed, &owner, refusal.code(), &person).await;
        }
        Err(refusal) => {
            info!(
                code = refusal.code(),
                "follow-up stopped by the guard before the send"
            );
            return fail(deps, &claimed, &owner, refusal.code(), &person).await;
        }
    };
    let result = deps
        .ports
        .messenger
        .send_follow_up(
            &key.page_id,
            &allowed.psid,
            &claimed.message,
            allowed.delivery,
        )
        .await;
    let done_at = deps.ports.clock.now();
    match result {
        Ok(sent) => record_sent(deps, &claimed, &owner, sent.message_id, done_at, &person).await,
        Err(graph_error) => {
            failed(
                deps,
                &claimed,
                &owner,
                &graph_error,
                allowed.window_ends_at,
                &person,
            )
            .await
        }
    }
}

/// The person a follow-up is for, as read just before the send.
struct Person<'a> {
    login: Option<&'a Login>,
    opt_in: Option<&'a OptIn>,
}

/// The person's LOGIN and, through its login_id link, their opt-in (consistent reads).
async fn person(deps: &Deps, key: &FollowUpKey) -> PortResult<(Option<Login>, Option<OptIn>)> {
    let login = deps.ports.logins.get_login(&key.page_id, &key.asid).await?;
    let opt_in = match login.as_ref().and_then(Login::opt_in_key) {
        Some(opt_in_key) => deps.ports.opt_ins.get_opt_in(&opt_in_key).await?,
        None => None,
    };
    Ok((login, opt_in))
}

/// The claim was refused: finished (done), or another job's live lease (a duplicate: done), or an
/// earlier receive of this very message holds it (come back when the lease has expired).
fn not_claimed(item: &FollowUp, now: Millis, message_id: &str) -> RecordOutcome {
    let ours = item
        .lease_owner
        .as_deref()
        .is_some_and(|o| !message_id.is_empty() && o.starts_with(&format!("{message_id}:")));
    match item.lease_until {
        // Queued and free again (a race with another claim): look again shortly.
        _ if item.claimable(now) => RecordOutcome::RetryIn(store_retry_seconds()),
        Some(until) if ours && item.state == FollowUpState::Queued => {
            RecordOutcome::RetryKeep(seconds_until(until, now))
        }
        _ => RecordOutcome::Done,
    }
}

/// The reason a Graph error ends a follow-up with (`None`: retry it).
fn final_reason(graph_error: &GraphError, attempts: u32) -> Option<&'static str> {
    match graph_error.class() {
        ErrorClass::Retry => None,
        ErrorClass::RetryBounded if attempts < MAX_BOUNDED_ATTEMPTS => None,
        ErrorClass::Unknown if attempts < MAX_UNKNOWN_ATTEMPTS => None,
        ErrorClass::Window => Some("outside_window"),
        ErrorClass::Unreachable => Some("unreachable"),
        ErrorClass::Configuration => Some("configuration"),
        ErrorClass::PageRestricted | ErrorClass::AbuseWarning => Some("page_restricted"),
        ErrorClass::RetryBounded | ErrorClass::Unknown => Some("unknown"),
    }
}

/// Graph refused the send: retry inside the window, or fail with the error's reason.
async fn failed(
    deps: &Deps,
    claimed: &FollowUp,
    owner: &str,
    graph_error: &GraphError,
    window_ends_at: Millis,
    person: &Person<'_>,
) -> RecordOutcome {
    let error = graph_error.to_last_error();
    warn!(
        code = error.code,
        subcode = ?error.subcode,
        fbtrace_id = ?error.fbtrace_id,
        class = ?graph_error.class(),
        attempts = claimed.attempts,
        "follow-up send failed"
    );
    if let Some(reason) = final_reason(graph_error, claimed.attempts) {
        if reason == "configuration" || reason == "page_restricted" {
            error!(
                reason,
                "a follow-up failed on the Page's configuration or restriction"
            );
        }
        return fail(deps, claimed, owner, reason, person).await;
    }
    let now = deps.ports.clock.now();
    let Some(seconds) = backoff::next_attempt_in(
        claimed.attempts,
        now,
        window_ends_at,
        &deps.config.send,
        deps.send_margin_ms(),
        rand::random::<f64>(),
    ) else {
        return fail(deps, claimed, owner, "outside_window", person).await;
    };
    match finish(deps, claimed, owner, &FollowUpOutcome::Retry, now).await {
        Ok(FollowUpChange::Done(_)) => RecordOutcome::RetryIn(seconds),
        Ok(FollowUpChange::Refused(_)) => RecordOutcome::Done,
        Err(e) => {
            // The lease still stands: the record comes back, sees its own lease, and waits.
            error!(error = %e, "could not release the follow-up for a retry");
            RecordOutcome::RetryKeep(seconds)
        }
    }
}

/// End the claim on `claimed` with `outcome` (conditional: still queued, still ours).
async fn finish(
    deps: &Deps,
    claimed: &FollowUp,
    owner: &str,
    outcome: &FollowUpOutcome,
    now: Millis,
) -> PortResult<FollowUpChange> {
    deps.ports
        .follow_ups
        .finish_follow_up(&claimed.key(), owner, outcome, now)
        .await
}

/// End the follow-up as failed with `reason`, and say so to the website backend.
async fn fail(
    deps: &Deps,
    claimed: &FollowUp,
    owner: &str,
    reason: &str,
    person: &Person<'_>,
) -> RecordOutcome {
    let now = deps.ports.clock.now();
    let outcome = FollowUpOutcome::Failed {
        reason: reason.to_owned(),
    };
    match finish(deps, claimed, owner, &outcome, now).await {
        Ok(FollowUpChange::Done(item)) => emit_end(deps, &item, person).await,
        Ok(FollowUpChange::Refused(_)) => RecordOutcome::Done,
        Err(e) => {
            error!(error = %e, "could not record the failed follow-up");
            RecordOutcome::RetryKeep(seconds_until(claimed.lease_until.unwrap_or(now), now))
        }
    }
}

/// Write `sent`, retried briefly: Graph has accepted the message, and until the write is durable
/// a crash could lead to a second one (the lease protects until it expires).
async fn record_sent(
    deps: &Deps,
    claimed: &FollowUp,
    owner: &str,
    message_id: String,
    now: Millis,
    person: &Person<'_>,
) -> RecordOutcome {
    let outcome = FollowUpOutcome::Sent { message_id };
    for retry in 0..WRITE_TRIES {
        if retry > 0 {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(retry))).await;
        }
        match finish(deps, claimed, owner, &outcome, now).await {
            Ok(FollowUpChange::Done(item)) => {
                info!(attempts = item.attempts, "follow-up sent");
                return emit_end(deps, &item, person).await;
            }
            Ok(FollowUpChange::Refused(_)) => {
                warn!("follow-up accepted by Graph but its lease was lost meanwhile; left as is");
                return RecordOutcome::Done;
            }
            Err(e) => warn!(error = %e, retry, "follow-up sent write failed"),
        }
    }
    error!("follow-up accepted by Graph but `sent` could not be written");
    RecordOutcome::Done
}

/// The person a follow-up's event is about: the asid, the website's `user_ref`, the opt-in's state.
fn subject(item: &FollowUp, person: &Person<'_>) -> Subject {
    Subject {
        asid: Some(item.asid.clone()),
        user_ref: person.login.and_then(|l| l.user_ref.clone()),
        state: person.opt_in.map(|o| o.state),
    }
}

/// A finished follow-up's end event (`message.sent` or `message.failed`), from the stored record,
/// through the one events use case. Its id comes from the follow-up's own id, so emitting it again
/// gives the same `webhook-id`. A failure to queue it hands the record back
/// ([`events::Events::redelivered`]): the job comes back, finds the follow-up finished and emits
/// again; nothing is sent twice (the claim refuses a finished follow-up).
async fn emit_end(deps: &Deps, item: &FollowUp, person: &Person<'_>) -> RecordOutcome {
    let subject = subject(item, person);
    let event = match item.state {
        FollowUpState::Sent => message_sent(
            &subject,
            MessageKind::FollowUp,
            &item.id,
            item.message_id.as_deref().unwrap_or_default(),
            item.sent_at.unwrap_or(item.updated_at),
        ),
        FollowUpState::Failed => message_failed(
            &subject,
            MessageKind::FollowUp,
            &item.id,
            item.reason.as_deref().unwrap_or("unknown"),
            item.failed_at.unwrap_or(item.updated_at),
        ),
        FollowUpState::Queued => return RecordOutcome::Done,
    };
    match deps
        .ports
        .events()
        .redelivered()
        .publish(&item.page_id, &event)
        .await
    {
        Ok(()) => RecordOutcome::Done,
        Err(_) => RecordOutcome::RetryIn(store_retry_seconds()),
    }
}
