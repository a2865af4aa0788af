//! The per-Page pause, as the sender sees it.
//!
//! When Graph says our token or permissions are wrong, or that the Page is restricted, every send
//! for the Page would fail the same way. So the sender:
//!
//! 1. **pauses the Page**: a conditional write on the Page state item (ACTIVE → PAUSED); only the
//!    sender whose write wins alerts, so a pause alerts once;
//! 2. **stops claiming** for the Page: each batch reads the Page item once (a consistent read) and
//!    parks the Page's opt-ins in PAUSED instead of sending (OPTED_IN | RETRYING → PAUSED,
//!    conditional, like every transition);
//! 3. **probes**: every `PAUSE_PROBE_SECONDS` one job wins the probe slot (a conditional write on
//!    `probe_at`) and sends. The prober then queues the next probe job, one interval later: that
//!    chain keeps one probe coming even when no new opt-in arrives. A job for an opt-in already
//!    PAUSED (a duplicate: each redelivered opt-in webhook queues one) comes back only when the
//!    probe is due or due within seconds (the chain's own job, delivered a little early); when the
//!    next probe is further off, a probe was taken and its prober holds the chain, so the job is
//!    acknowledged and the resume re-queues the opt-in. N duplicates thus cost N receives once,
//!    not N per probe interval until the deadline. A prober that crashes before queueing the next
//!    probe breaks the chain: the sweep (deadline-alerts) queues one probe job once the probe is
//!    overdue by more than an interval ([`shared::domain::page::PageState::probe_chain_broken`]);
//! 4. **resumes** when a probe is accepted: the Page goes back to ACTIVE (conditional: one resumer)
//!    and every paused opt-in still before its deadline is queued again
//!    ([`shared::use_cases::page`], the same use case as Meta's unblock). Paused opt-ins whose
//!    deadline passes meanwhile are expired, with an alert, by deadline-alerts.
//!
//! A Page **blocked by Meta** (`messaging_policy_enforcement`) is different: no probe is taken (a
//! probe is a real message), a probe never resumes it, and a job for it parks its opt-in and is
//! acknowledged; Meta's unblock re-queues it. So a blocked Page costs one receive per job, not a
//! loop.
//!
//! This file decides and records; it never sends: each batch reads the Page states once
//! ([`PageViews`]), and a job that is the probe goes back to [`crate::attempt`] as
//! [`PausedJob::Probe`], so the attempt calls the pause and never the other way round.
//!
//! Why a read and not a condition on the claim: a DynamoDB condition can only look at the item it
//! writes. Putting the Page item into every claim would take a transaction, and concurrent
//! transactions that touch the same item cancel each other (`TransactionConflict`): at 300 claims
//! per second for one Page, every claim would contend on the one Page item. The pause is a brake,
//! not a safety invariant (a send that races with it meets the same Graph error and is paused
//! too), so one read per batch is enough; every invariant (one message, before the deadline,
//! never after an opt-out) stays in the claim's own condition.

use crate::backoff::{
    LANDING_SLACK_MS, RecordOutcome, ceil_seconds, seconds_until, store_retry_seconds,
};
use crate::deps::Deps;
use shared::domain::alert::{Alert, AlertKind};
use shared::domain::jobs::SendJob;
use shared::domain::opt_in::{Millis, OptIn, OptInKey, State, login_id_prefix};
use shared::domain::page::{PageState, PauseCause};
use shared::facebook::graph_error::GraphError;
use shared::ports::opt_ins::Transitioned;
use shared::ports::queue::MAX_DELAY_SECONDS;
use shared::use_cases::page::PagePorts;
use std::collections::HashMap;
use tracing::{error, info, warn};

/// The Page states a batch needs, read once per batch (one consistent read per Page).
pub struct PageViews(HashMap<String, Option<PageState>>);

impl PageViews {
    pub async fn load(deps: &Deps, page_ids: Vec<String>) -> Self {
        let mut views = HashMap::new();
        for page_id in page_ids {
            if views.contains_key(&page_id) {
                continue;
            }
            let state = match deps.ports.pages.get_page(&page_id).await {
                Ok(state) => state,
                Err(e) => {
                    // Fail open: the claim still guards every invariant; at worst a send meets
                    // the same error that paused the Page.
                    warn!(error = %e, "could not read the Page state; treating the Page as active");
                    None
                }
            };
            views.insert(page_id, state);
        }
        Self(views)
    }

    /// The state of a paused Page, `None` when it is active.
    pub fn paused(&self, page_id: &str) -> Option<&PageState> {
        self.0
            .get(page_id)
            .and_then(Option::as_ref)
            .filter(|p| p.is_paused())
    }
}

/// What to do with a job for a paused Page.
pub enum PausedJob {
    /// This job is the Page's probe: send it (then [`after_probe`]).
    Probe,
    /// Parked or left for later: this is what becomes of the record.
    Done(RecordOutcome),
    /// Its opt-in could not be parked and is in no state the pause handles: decide as for a
    /// refused claim, with the item read at `now`.
    NotParked(Box<OptIn>, Millis),
}

/// The Page use cases over the sender's ports.
fn page_ports(deps: &Deps) -> PagePorts<'_> {
    deps.ports.page_ports(&deps.config)
}

/// How early a job for a parked opt-in may arrive and still wait for the probe slot: the chain's
/// next probe job is queued one probe interval after the last probe's send, so it arrives at the
/// probe time, earlier only by the difference between two senders' clocks.
const PROBE_EARLY_SLACK_MS: Millis = 5_000;

fn probe_interval_seconds(deps: &Deps) -> u32 {
    u32::try_from(ceil_seconds(deps.config.send.probe_interval_ms))
        .unwrap_or(MAX_DELAY_SECONDS)
        .clamp(1, MAX_DELAY_SECONDS)
}

/// Whether an opt-in can be the probe: it can be claimed and a send can still end before its deadline.
fn probe_candidate(deps: &Deps, item: &OptIn, now: Millis) -> bool {
    let claimable = match item.state {
        State::OptedIn | State::Retrying | State::Paused => true,
        State::Sending => item.lease_expired(now),
        _ => false,
    };
    claimable && item.deadline_at - now > deps.send_margin_ms() + LANDING_SLACK_MS
}

/// A job for an opt-in whose Page is paused: the probe if one is due, otherwise parked. A probe is
/// never due on a Page Meta blocked ([`PageState::probe_due`]).
pub(crate) async fn job_for_paused_page(
    deps: &Deps,
    key: &OptInKey,
    page: &PageState,
) -> PausedJob {
    let now = deps.ports.clock.now();
    if page.probe_due(now) {
        match deps.ports.opt_ins.get_opt_in(key).await {
            Ok(Some(item)) if probe_candidate(deps, &item, now) => {
                let next = now + deps.config.send.probe_interval_ms;
                match deps.ports.pages.take_probe(&key.page_id, now, next).await {
                    Ok(true) => {
                        warn!(page_id = %key.page_id, "probing the paused Page with one send");
                        return PausedJob::Probe;
                    }
                    Ok(false) => {}
                    Err(e) => warn!(error = %e, "could not take the probe slot"),
                }
            }
            Ok(_) => hand_probe_to_another(deps, key).await,
            Err(e) => warn!(error = %e, "could not read the opt-in"),
        }
    }
    park(deps, key, page).await
}

/// This job's opt-in cannot be the probe (it ended, or its deadline is too close): queue a job
/// for another paused opt-in of the Page, which will take the probe slot.
async fn hand_probe_to_another(deps: &Deps, key: &OptInKey) {
    if let Err(e) = page_ports(deps).queue_probe(&key.page_id, Some(key)).await {
        warn!(error = %e, "could not queue a probe");
    }
}

/// OPTED_IN | RETRYING → PAUSED: the opt-in waits for its Page.
async fn park(deps: &Deps, key: &OptInKey, page: &PageState) -> PausedJob {
    let now = deps.ports.clock.now();
    let outcome = match deps.ports.pages.park_opt_in(key, now).await {
        Ok(Transitioned::Done(_)) => {
            info!(login_id_prefix = %login_id_prefix(&key.login_id), "Page paused; opt-in parked");
            // A resume lists the paused opt-ins after flipping the Page to ACTIVE: if that
            // happened just now, this one may have been missed. Look once more.
            match deps.ports.pages.get_page(&key.page_id).await {
                Ok(Some(p)) if p.is_paused() => RecordOutcome::Done,
                _ => RecordOutcome::RetryIn(1),
            }
        }
        Ok(Transitioned::Refused(Some(item))) => match item.state {
            // Blocked by Meta: no probe will come, and Meta's unblock re-queues every parked
            // opt-in. Acknowledge, so the job does not come back until then.
            State::Paused if page.is_blocked() && !item.deadline_passed(now) => RecordOutcome::Done,
            // A sender crashed while sending for a blocked Page: the opt-in is not PAUSED, so the
            // unblock would not find it. Look again at SQS's longest delay (bounded by the
            // deadline, when the sweep expires it).
            State::Sending
                if page.is_blocked() && !item.deadline_passed(now) && item.lease_expired(now) =>
            {
                RecordOutcome::RetryIn(MAX_DELAY_SECONDS)
            }
            State::Paused if !item.deadline_passed(now) => {
                already_parked(deps, key, page, now).await
            }
            // A sender crashed while sending: come back when the probe is due, when this job
            // can be the probe (the lease has expired).
            State::Sending if !item.deadline_passed(now) && item.lease_expired(now) => {
                let until = page.probe_at.unwrap_or(now);
                RecordOutcome::RetryIn(seconds_until(until, now).min(MAX_DELAY_SECONDS))
            }
            _ => return PausedJob::NotParked(item, now),
        },
        Ok(Transitioned::Refused(None)) => RecordOutcome::Done,
        Err(e) => {
            error!(error = %e, "could not park the opt-in");
            RecordOutcome::RetryIn(store_retry_seconds())
        }
    };
    PausedJob::Done(outcome)
}

/// A job for an opt-in already PAUSED on a Page paused by us: the chain's probe job, or a
/// duplicate (a redelivered webhook queues one each time). Only a job that may be the next probe
/// comes back; the others are acknowledged, since the Page's resume re-queues every paused opt-in.
/// Without this, N duplicates came back every probe interval, N deliveries each time, until the
/// deadline.
///
/// The Page is read again: the batch's view may be older than a probe another job took meanwhile.
async fn already_parked(
    deps: &Deps,
    key: &OptInKey,
    view: &PageState,
    now: Millis,
) -> RecordOutcome {
    let fresh = match deps.ports.pages.get_page(&key.page_id).await {
        Ok(page) => page,
        Err(e) => {
            warn!(error = %e, "could not read the Page state again; using the batch's");
            Some(view.clone())
        }
    };
    match fresh.as_ref() {
        // Blocked by Meta meanwhile: its unblock re-queues.
        Some(p) if p.is_blocked() => RecordOutcome::Done,
        Some(p) if p.is_paused() => match p.probe_at {
            // The probe is due, or due so soon that this may be the chain's job delivered a
            // little early (clocks differ): come back then and try for the slot.
            Some(at) if at.saturating_sub(now) <= PROBE_EARLY_SLACK_MS => {
                RecordOutcome::RetryIn(seconds_until(at, now).min(MAX_DELAY_SECONDS))
            }
            // The next probe is a while off: a probe was taken and its prober queues the next
            // one. If that prober crashed, the sweep queues a probe job once the chain is overdue
            // (`PageState::probe_chain_broken`).
            _ => RecordOutcome::Done,
        },
        // Resumed meanwhile: come back and let the claim decide (duplicates of a sent opt-in are
        // acknowledged then).
        _ => RecordOutcome::RetryIn(1),
    }
}

/// After the probe's send: keep one probe coming while the Page is still paused (not when Meta
/// blocked it meanwhile: the unblock re-queues).
pub(crate) async fn after_probe(deps: &Deps, key: &OptInKey) {
    let still_paused = match deps.ports.pages.get_page(&key.page_id).await {
        Ok(page) => page.is_some_and(|p| p.is_paused() && !p.is_blocked()),
        Err(e) => {
            warn!(error = %e, "could not read the Page state after the probe");
            true
        }
    };
    if still_paused {
        schedule_probe(deps, key).await;
    }
}

/// Keep one probe coming while the Page is paused, even if no new opt-in arrives.
async fn schedule_probe(deps: &Deps, key: &OptInKey) {
    if let Err(e) = deps
        .ports
        .retry
        .enqueue_after(&SendJob::for_key(key), probe_interval_seconds(deps))
        .await
    {
        // New jobs for the Page still probe when the slot is due, and the sweep queues a probe
        // job once the chain is overdue.
        warn!(error = %e, "could not schedule the next probe");
    }
}

/// Graph refused a send because of our configuration or a Page restriction: pause the Page.
pub(crate) async fn page_error(
    deps: &Deps,
    item: &OptIn,
    cause: PauseCause,
    graph_error: &GraphError,
    probing: bool,
) {
    let now = deps.ports.clock.now();
    let error = graph_error.to_last_error();
    let next_probe = now + deps.config.send.probe_interval_ms;
    let newly = match page_ports(deps)
        .pause(&item.page_id, cause, &error, next_probe)
        .await
    {
        Ok(newly) => newly,
        Err(e) => {
            // Could not record the pause: alert anyway (twice is better than never).
            error!(error = %e, "could not pause the Page");
            true
        }
    };
    if !newly {
        return;
    }
    warn!(page_id = %item.page_id, ?cause, code = error.code, subcode = ?error.subcode, "Page paused");
    let fix = match cause {
        PauseCause::Configuration => {
            "check the Page access token and app secret in the secret (then force a cold start), the pages_messaging permission and the app's review status"
        }
        PauseCause::PageRestricted => {
            "Meta restricted the Page from sending; see the Page's Account Quality / Support Inbox"
        }
        PauseCause::AbuseWarning => {
            "Meta warned (613/2018338) that the Page's messages may be considered bothersome or abusive; review the message text and volume and the Page's Support Inbox before the next probe"
        }
        // Set by the policy webhook, never by a send error.
        PauseCause::PolicyBlock => "wait for Meta's unblock (see the Page's Support Inbox)",
    };
    let detail = format!(
        "Sending for this Page is PAUSED: {graph_error}. New opt-ins wait in PAUSED; every {} s one send is tried as a probe, and the first that Graph accepts resumes the Page and re-queues every paused opt-in still before its deadline. To fix: {fix}.",
        probe_interval_seconds(deps)
    );
    shared::use_cases::alert::publish(
        deps.ports.alerts.as_ref(),
        &Alert::about(item, AlertKind::ConfigurationError, detail),
    )
    .await;
    if !probing {
        schedule_probe(deps, &item.key()).await;
    }
}

/// A probe was accepted: resume the Page (never one Meta blocked) and queue its paused opt-ins
/// again. What could not be queued stays PAUSED; the sweep queues it.
pub(crate) async fn probe_succeeded(deps: &Deps, page_id: &str) {
    if let Err(e) = page_ports(deps).probe_accepted(page_id).await {
        error!(error = %e, "Page resume incomplete; the sweep re-queues what is left");
    }
}
