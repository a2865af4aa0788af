//! One send job: the per-job machine, claim → send → record.
//!
//! The claim is the only gate: whatever the number of jobs or senders, one conditional write lets
//! exactly one through. It comes after everything slow (the LOGIN read for `{first_name}`, the
//! pacer), so the item is SENDING only from the claim to Graph's answer; the margins are checked
//! after it, against the lease and the deadline as they are when the request starts. What Graph
//! answered is written by [`crate::record`]; a job for a paused Page goes through
//! [`crate::pause`] first.

use crate::backoff::{RecordOutcome, seconds_until, store_retry_seconds};
use crate::deps::Deps;
use crate::pause::{self, PageViews, PausedJob};
use crate::record;
use shared::domain::jobs::SendJob;
use shared::domain::message::{needs_first_name, render_initial_message};
use shared::domain::opt_in::SendOutcome;
use shared::domain::opt_in::{LastError, Millis, OptIn, OptInKey, State, login_id_prefix};
use shared::ports::opt_ins::Transitioned;
use std::time::Duration;
use tracing::{error, warn};

/// One send job. Returns what to do with its record.
pub async fn process_job(
    deps: &Deps,
    views: &PageViews,
    job: &SendJob,
    message_id: &str,
) -> RecordOutcome {
    let key = &job.key();
    let Some(page) = views.paused(&key.page_id) else {
        return attempt(deps, key, job.created_at, message_id, false).await;
    };
    match pause::job_for_paused_page(deps, key, page).await {
        PausedJob::Probe => {
            let outcome = attempt(deps, key, job.created_at, message_id, true).await;
            pause::after_probe(deps, key).await;
            outcome
        }
        PausedJob::Done(outcome) => outcome,
        PausedJob::NotParked(item, now) => not_claimed(deps, &item, now, message_id).await,
    }
}

/// Render, pace, claim, check the margins, send, record. `probing`: this send is the probe of a
/// paused Page.
async fn attempt(
    deps: &Deps,
    key: &OptInKey,
    incarnation: Option<Millis>,
    message_id: &str,
    probing: bool,
) -> RecordOutcome {
    // The lease owner names the message, so a redelivery recognises its own earlier attempt.
    let owner = format!("{message_id}:{}", uuid::Uuid::new_v4().simple());
    let text = initial_message(deps, key).await;
    let waited = deps.pacer.acquire(&key.page_id).await;
    let claimed = match claim(deps, key, incarnation, &owner, message_id).await {
        Ok(claimed) => claimed,
        Err(outcome) => return outcome,
    };
    // Nothing slow between here and the request: a send that starts now ends (answer or
    // timeout) within the margin.
    if let Some(outcome) = too_late_to_send(deps, &claimed, &owner, waited).await {
        return outcome;
    }
    let result = deps
        .ports
        .messenger
        .send_initial_message(&key.page_id, &key.login_id, &text)
        .await;
    let done_at = deps.ports.clock.now();
    match result {
        Ok(sent) => {
            let outcome = record::sent(deps, &claimed, &owner, sent.message_id, done_at).await;
            if probing {
                pause::probe_succeeded(deps, &key.page_id).await;
            }
            outcome
        }
        Err(graph_error) => {
            record::failed(deps, &claimed, &owner, &graph_error, done_at, probing).await
        }
    }
}

/// Claim the opt-in for this send (resuming it first if it is PAUSED but may go), or say what to
/// do with the record when the claim is refused.
async fn claim(
    deps: &Deps,
    key: &OptInKey,
    incarnation: Option<Millis>,
    owner: &str,
    message_id: &str,
) -> Result<Box<OptIn>, RecordOutcome> {
    let login = login_id_prefix(&key.login_id);
    let mut resumed = false;
    loop {
        let now = deps.ports.clock.now();
        let lease_until = now + deps.config.send_lease_ms;
        let claimed = match incarnation {
            Some(created_at) => {
                deps.ports
                    .opt_ins
                    .claim_incarnation_for_send(key, created_at, owner, now, lease_until)
                    .await
            }
            None => {
                deps.ports
                    .opt_ins
                    .claim_for_send(key, owner, now, lease_until)
                    .await
            }
        };
        match claimed {
            Ok(Transitioned::Done(item)) => return Ok(item),
            Ok(Transitioned::Refused(None)) => {
                warn!(login_id_prefix = %login, "send job for an unknown opt-in; dropped");
                return Err(RecordOutcome::Done);
            }
            Ok(Transitioned::Refused(Some(item)))
                if incarnation.is_some_and(|created_at| created_at != item.created_at) =>
            {
                // Queued for an earlier incarnation (erased, or replaced by a new consent, which
                // has its own job): never sends for this one.
                warn!(login_id_prefix = %login, "send job for an earlier incarnation of the opt-in; dropped");
                return Err(RecordOutcome::Done);
            }
            Ok(Transitioned::Refused(Some(item))) => {
                if item.state == State::Paused && !resumed && !item.deadline_passed(now) {
                    // Paused, but its Page is active (or this is the probe): resume and claim.
                    resumed = true;
                    match deps.ports.pages.resume_opt_in(key, now).await {
                        Ok(_) => continue,
                        Err(e) => {
                            error!(login_id_prefix = %login, error = %e, "resume failed");
                            return Err(RecordOutcome::RetryIn(store_retry_seconds()));
                        }
                    }
                }
                return Err(not_claimed(deps, &item, now, message_id).await);
            }
            Err(e) => {
                error!(login_id_prefix = %login, error = %e, "claim failed");
                return Err(RecordOutcome::RetryIn(store_retry_seconds()));
            }
        }
    }
}

/// After the claim: `Some` when a send starting now could end after the deadline (EXPIRED) or
/// outlive the lease (the opt-in is handed back).
async fn too_late_to_send(
    deps: &Deps,
    claimed: &OptIn,
    owner: &str,
    waited: Duration,
) -> Option<RecordOutcome> {
    let margin = deps.send_margin_ms();
    let now = deps.ports.clock.now();
    if claimed.deadline_at - now <= margin {
        return Some(record::out_of_time(deps, claimed, owner, None).await);
    }
    if claimed.lease_until.is_none_or(|until| until - now > margin) {
        return None;
    }
    // The claim itself was slow: sending now could outlive the lease. Hand the opt-in back.
    warn!(login_id_prefix = %login_id_prefix(&claimed.login_id), waited_ms = waited.as_millis() as u64, "lease too short to send");
    let error = LastError {
        message: "lease too short to send".into(),
        ..LastError::default()
    };
    Some(
        match deps
            .ports
            .opt_ins
            .finish_send(&claimed.key(), owner, &SendOutcome::Retry { error }, now)
            .await
        {
            Ok(Transitioned::Done(_)) => RecordOutcome::RetryIn(1),
            Ok(Transitioned::Refused(_)) => RecordOutcome::Done,
            Err(_) => {
                RecordOutcome::RetryKeep(seconds_until(claimed.lease_until.unwrap_or(now), now))
            }
        },
    )
}

/// The configured text, with `{first_name}` filled from the LOGIN linked to the opt-in (one
/// consistent read, only when the text uses it) or the fallback when none is linked yet.
async fn initial_message(deps: &Deps, key: &OptInKey) -> String {
    let template = &deps.config.initial_message_text;
    if !needs_first_name(template) {
        return template.clone();
    }
    let first_name = match deps.ports.logins.link_for(key).await {
        Ok(link) => link.and_then(|l| l.first_name),
        Err(e) => {
            warn!(login_id_prefix = %login_id_prefix(&key.login_id), error = %e, "could not read the linked login; using the fallback name");
            None
        }
    };
    render_initial_message(
        template,
        first_name.as_deref(),
        &deps.config.login.first_name_fallback,
    )
}

/// The claim was refused: decide from the item's current state. An ended opt-in's events are
/// emitted again (the same ids): this job may be the retry of one whose events were not queued.
async fn not_claimed(deps: &Deps, item: &OptIn, now: Millis, message_id: &str) -> RecordOutcome {
    if item.state.is_terminal() {
        return record::ended(deps, item).await;
    }
    let live_lease = item.state == State::Sending && !item.lease_expired(now);
    if live_lease {
        let ours = item
            .lease_owner
            .as_deref()
            .is_some_and(|o| !message_id.is_empty() && o.starts_with(&format!("{message_id}:")));
        if ours {
            // An earlier receive of this very message claimed it and then crashed or could not
            // record the outcome: come back when its lease has expired, and take over.
            let until = item.lease_until.unwrap_or(now);
            return RecordOutcome::RetryKeep(seconds_until(until, now));
        }
        // Another job holds the lease; if it crashes, its own message comes back after the
        // visibility timeout (longer than the lease) and takes over. This one is a duplicate.
        return RecordOutcome::Done;
    }
    if item.deadline_passed(now) {
        record::expire(deps, &item.key(), now).await;
        return RecordOutcome::Done;
    }
    match item.state {
        // Parked by its paused Page: the resume re-queues it.
        State::Paused => RecordOutcome::Done,
        // OPTED_IN / RETRYING refused by a race: look again shortly.
        _ => RecordOutcome::RetryIn(store_retry_seconds()),
    }
}
