//! The promises of issue 10, checked after every step of the model. One small function per
//! promise, so a failure names the promise it broke; each returns the first violation it finds,
//! in words that name people by index and carry no ids.

use super::messenger::GraphCall;
use super::run::Model;
use super::world::PAGE;
use shared::domain::opt_in::{Millis, OptInKey, State};
use shared::ports::conversations::ConversationStore;
use shared::ports::logins::LoginStore;
use shared::ports::opt_ins::OptInStore;
use shared::ports::pages::PageStateStore;

/// Deliveries of one opt-in's jobs allowed in any hour: probes come every 5 minutes and backoffs
/// grow, so a legitimate hour holds a few dozen at most; a job looping every second holds 3,600.
pub const MAX_DELIVERIES_PER_HOUR: usize = 60;
/// A sender crash after Graph accepted and before SENT was written may lead to one more message
/// (docs/sender.md measures that window): counted as allowed, not as a defect.
pub const CRASH_WINDOW_MAY_RESEND: bool = true;

pub type Verdict = Result<(), String>;

fn person_of(model: &Model, login_id: &str) -> Option<usize> {
    model
        .world
        .people
        .iter()
        .position(|p| p.login_id == login_id)
}

fn who(model: &Model, call: &GraphCall) -> String {
    person_of(model, &call.login_id).map_or("someone unknown".into(), |p| format!("person {p}"))
}

/// Promise 1: no Graph acceptance after a recorded opt-out (whatever arrived first).
pub fn p1_nothing_sent_after_an_opt_out(model: &Model) -> Verdict {
    for call in model
        .world
        .messenger
        .calls()
        .iter()
        .filter(|c| c.answer.delivers())
    {
        let Some(p) = person_of(model, &call.login_id) else {
            continue;
        };
        let key = model.world.people[p].key();
        // A deletion ends the opt-in; an opt-in created after it is a new consent.
        let renewed = |since: u64| {
            model.seen.deletions.iter().any(|d| {
                d.p == p
                    && d.tick >= since
                    && model
                        .seen
                        .deadlines
                        .iter()
                        .any(|(t, k, _)| *k == key && *t > d.tick && *t < call.started_tick)
            })
        };
        if let Some(ack) = model
            .seen
            .opt_outs
            .iter()
            .find(|a| a.p == p && a.tick < call.started_tick && !renewed(a.tick))
        {
            return Err(format!(
                "person {p} opted out via {:?} (acknowledged), and later a message reached them (Graph accepted at {})",
                ack.via,
                shared::domain::opt_in::utc(call.at)
            ));
        }
    }
    Ok(())
}

/// Issue 12, "an opt-out after the initial message must still count": once an opt-out is
/// acknowledged, whatever state the opt-in was in (SENT included), the person's record says so
/// for good ([`shared::domain::opt_in::OptIn::has_opted_out`], the rule follow-ups are refused on),
/// until a data deletion erases the record. (That nothing is sent after it is [`p1_nothing_sent_after_an_opt_out`].)
pub async fn opt_outs_are_kept_whatever_the_state(model: &Model) -> Verdict {
    let w = &model.world;
    for ack in &model.seen.opt_outs {
        if ack.via == super::run::Via::Deletion {
            continue;
        }
        let erased_since = model
            .seen
            .deletions
            .iter()
            .any(|d| d.p == ack.p && d.tick >= ack.tick);
        if erased_since {
            continue;
        }
        let item = w
            .store
            .get_opt_in(&w.people[ack.p].key())
            .await
            .ok()
            .flatten();
        if !item.as_ref().is_some_and(|i| i.has_opted_out()) {
            return Err(format!(
                "person {} opted out via {:?} (acknowledged), yet their record does not say so (state {})",
                ack.p,
                ack.via,
                item.map_or("missing".into(), |i| i.state.to_string())
            ));
        }
    }
    Ok(())
}

/// Promise 1: a send already in flight when the opt-out is recorded is recorded on the opt-in
/// (its message id, or `sent_after_opt_out`), never hidden.
pub async fn p1_an_in_flight_send_is_recorded(model: &Model) -> Verdict {
    for call in model
        .world
        .messenger
        .calls()
        .iter()
        .filter(|c| c.answer.delivers())
    {
        let Some(p) = person_of(model, &call.login_id) else {
            continue;
        };
        let in_flight = model
            .seen
            .opt_outs
            .iter()
            .find(|a| a.p == p && a.tick > call.started_tick && a.tick < call.answered_tick);
        let Some(ack) = in_flight else { continue };
        let key = model.world.people[p].key();
        let item = model.world.store.get_opt_in(&key).await.ok().flatten();
        // A deletion during or after the call erases the evidence with the rest, by design
        // (a later stop may then leave an opt-out placeholder, which carries no send).
        let deleted = model.seen.deletions.iter().any(|d| {
            d.p == p && d.tick > call.started_tick && d.status.as_deref() != Some("partial")
        });
        let recorded = item.as_ref().is_some_and(|i| {
            i.message_id == call.message_id
                || i.sent_after_opt_out
                // The sender died after Graph accepted: nobody is left to learn the message id.
                // The opt-out write itself recorded that it met a send in flight (the API said
                // `in_flight: true`), which is all that can be known.
                || (call.answer == super::messenger::Answer::CrashAfterAccept
                    && i.opted_out_from == Some(shared::domain::opt_in::State::Sending))
        });
        let erased = deleted;
        if !(recorded || erased) {
            return Err(format!(
                "person {p} opted out via {:?} while their message was in flight; Graph accepted it but the opt-in does not record it (state {}, message id {})",
                ack.via,
                item.as_ref()
                    .map_or("missing".into(), |i| i.state.to_string()),
                if item.as_ref().is_some_and(|i| i.message_id.is_some()) {
                    "another"
                } else {
                    "absent"
                },
            ));
        }
    }
    Ok(())
}

/// Promise 2 (and the blueprint's invariants): at most one initial message per opt-in.
pub fn p2_at_most_one_message_per_opt_in(model: &Model) -> Verdict {
    let calls = model.world.messenger.calls();
    for (p, person) in model.world.people.iter().enumerate() {
        // A deletion ends the opt-in; a new opt-in after it is a new consent.
        let generation = |tick: u64| {
            model
                .seen
                .deletions
                .iter()
                .filter(|d| d.p == p && d.tick < tick)
                .count()
        };
        let mine: Vec<&GraphCall> = calls
            .iter()
            .filter(|c| c.login_id == person.login_id && c.answer.delivers())
            .collect();
        let generations = mine.iter().map(|c| generation(c.started_tick)).max();
        for g in 0..=generations.unwrap_or(0) {
            let sends: Vec<&&GraphCall> = mine
                .iter()
                .filter(|c| generation(c.started_tick) == g)
                .collect();
            let crashes = sends
                .iter()
                .filter(|c| c.answer == super::messenger::Answer::CrashAfterAccept)
                .count();
            let allowed = 1 + if CRASH_WINDOW_MAY_RESEND { crashes } else { 0 };
            if sends.len() > allowed {
                return Err(format!(
                    "person {p} received {} initial messages for one opt-in ({} after a sender crash)",
                    sends.len(),
                    crashes
                ));
            }
        }
    }
    Ok(())
}

/// Promise 2 (and the blueprint's invariants): nothing is sent at or after the deadline.
pub fn p2_nothing_at_or_after_the_deadline(model: &Model) -> Verdict {
    for call in model.world.messenger.calls() {
        let key = OptInKey::new(&call.page_id, &call.login_id);
        let deadline = model
            .seen
            .deadlines
            .iter()
            .rfind(|(tick, k, _)| *k == key && *tick < call.started_tick)
            .map(|(_, _, d)| *d);
        if let Some(deadline) = deadline
            && call.at >= deadline
        {
            return Err(format!(
                "a send to {} was made {} s after its deadline",
                who(model, &call),
                (call.at - deadline) / 1000
            ));
        }
    }
    Ok(())
}

/// Promise 3: a Page Meta blocked stays silent until Meta unblocks it (no probe, no resume).
pub fn p3_a_blocked_page_stays_silent(model: &Model) -> Verdict {
    for call in model.world.messenger.calls() {
        let blocked = model.seen.blocks.iter().any(|(from, until)| {
            *from < call.started_tick && until.is_none_or(|u| call.started_tick < u)
        });
        if blocked {
            return Err(format!(
                "a send to {} was made while Meta's block of the Page stood (Graph answer {:?})",
                who(model, &call),
                call.answer
            ));
        }
    }
    Ok(())
}

/// Promise 4: after a deletion nothing identifies the person, unless the status says `partial`.
pub async fn p4_deletion_erases_or_says_partial(model: &Model) -> Verdict {
    let w = &model.world;
    for d in &model.seen.deletions {
        if d.status.as_deref() == Some("partial") {
            continue;
        }
        let person = &w.people[d.p];
        let key = person.key();
        let status = d.status.as_deref().unwrap_or("unknown");
        let leftovers: Vec<&str> = {
            let mut l = Vec::new();
            let items = w.store.all();
            if items
                .iter()
                .any(|i| i.login_id == person.login_id && i.opted_in_at <= d.at)
            {
                l.push("the opt-in (login_id)");
            }
            if items
                .iter()
                .any(|i| i.psid.as_deref() == Some(&person.psid) && i.opted_in_at <= d.at)
            {
                l.push("the PSID on the opt-in");
            }
            if w.logins
                .logins()
                .iter()
                .any(|login| login.asid == person.asid && login.login_at <= d.at)
            {
                l.push("the LOGIN (asid, name)");
            }
            if w.logins
                .link_for(&key)
                .await
                .ok()
                .flatten()
                .is_some_and(|link| link.last_login_at <= d.at)
            {
                l.push("the login link (asid, name)");
            }
            let psid_link = w
                .store
                .opt_in_for_psid(PAGE, &person.psid)
                .await
                .ok()
                .flatten();
            if let Some(linked) = psid_link {
                let item = w.store.get_opt_in(&linked).await.ok().flatten();
                if item.is_none_or(|i| i.opted_in_at <= d.at) {
                    l.push("the PSID link");
                }
            }
            l
        };
        if !leftovers.is_empty() {
            return Err(format!(
                "person {}'s data deletion says {status:?}, yet the store still holds {}",
                d.p,
                leftovers.join(", ")
            ));
        }
    }
    Ok(())
}

/// Promise 5: nothing loops; each opt-in's jobs come back a bounded number of times.
pub fn p5_nothing_loops(model: &Model) -> Verdict {
    for (key, times) in &model.world.deliveries {
        let mut sorted = times.clone();
        sorted.sort_unstable();
        for (i, start) in sorted.iter().enumerate() {
            let within = sorted[i..]
                .iter()
                .take_while(|t| **t < start + 3_600_000)
                .count();
            if within > MAX_DELIVERIES_PER_HOUR {
                let p = person_of(model, &key.login_id).map_or("?".into(), |p| p.to_string());
                let state = model
                    .world
                    .store
                    .all()
                    .into_iter()
                    .find(|o| o.key() == *key)
                    .map_or("missing".into(), |o| o.state.to_string());
                return Err(format!(
                    "the jobs of person {p}'s opt-in (now {state}) were delivered {within} times within one hour"
                ));
            }
        }
    }
    Ok(())
}

/// Promise 6: one bad recipient never pauses the Page (Meta's table: the `100` rows, 551).
pub async fn p6_one_recipient_never_pauses_the_page(model: &Model) -> Verdict {
    let page = model.world.store.get_page(PAGE).await.ok().flatten();
    if let Some(page) = page.filter(|p| p.is_paused())
        && let Some(reason) = &page.reason
    {
        let recipient = (reason.code == 100
            && (reason.message.contains("No matching user")
                || reason.message.contains("Invalid FBID")))
            || reason.code == 551;
        if recipient {
            return Err(format!(
                "the Page is paused because of one recipient's error (code {}: {})",
                reason.code, reason.message
            ));
        }
    }
    Ok(())
}

/// Liveness after a sweep: an opt-in the sweep looked at (due in its attention index) that is
/// PAUSED while its Page is active, with time left, has a job on its way (the unblock or the
/// resume queued it, or the sweep did).
pub async fn paused_opt_ins_are_requeued_when_the_page_is_active(model: &Model) -> Verdict {
    let w = &model.world;
    // The sweep can only re-queue through a working queue.
    if !model.seen.after_sweep || w.send_queue.fail.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    let active = w
        .store
        .get_page(PAGE)
        .await
        .ok()
        .flatten()
        .is_none_or(|p| !p.is_paused());
    if !active {
        return Ok(());
    }
    let now = w.now();
    let margin: Millis = 60_000;
    for item in w.store.all() {
        if item.state == State::Paused
            && model.seen.swept.contains(&item.key())
            && item.deadline_at - now > margin
            && !w.queue.iter().any(|q| q.key == item.key())
        {
            let p = person_of(model, &item.login_id).map_or("?".into(), |p| p.to_string());
            return Err(format!(
                "person {p}'s opt-in is PAUSED on an active Page with {} min left and no job will send it (not even after the sweep)",
                (item.deadline_at - now) / 60_000
            ));
        }
    }
    Ok(())
}

/// Issue 13 §5: every unsent, non-terminal opt-in is watched — by its deadline schedule, by the
/// due index, or, until its webhook was acknowledged, by Meta's redelivery — so none misses its
/// alert unnoticed, whatever failed (queue, Scheduler, the due-index write).
pub fn every_unsent_opt_in_is_watched(model: &Model) -> Verdict {
    let w = &model.world;
    let scheduled: Vec<OptInKey> = w
        .scheduler
        .schedules
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .map(|(check, _)| check.key())
        .collect();
    for item in w.store.all() {
        if item.state.is_terminal() {
            continue;
        }
        let key = item.key();
        let p = person_of(model, &item.login_id);
        let watched = scheduled.contains(&key)
            || w.store.due_at(&key).is_some()
            || p.is_some_and(|p| model.seen.redelivery_pending.iter().any(|(q, _)| *q == p));
        if !watched {
            return Err(format!(
                "person {}'s opt-in is {} and nothing watches it: no deadline schedule, not in the due index, its webhook acknowledged",
                p.map_or("?".into(), |p| p.to_string()),
                item.state
            ));
        }
    }
    Ok(())
}
