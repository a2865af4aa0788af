//! When the recurring sweep must next look at an unsent opt-in.
//!
//! The sparse due index ([`crate::adapters::dynamodb::table::DUE_INDEX`]) is sorted by this instant (`due_at`), not by
//! the alert time: a sweep at `now` queries `due_at <= now` and reads exactly the opt-ins that need
//! something — a stuck send job to re-enqueue, an alert to raise, a deadline to expire — and, after
//! attending to one, moves its `due_at` to the next such instant. Opt-ins waiting quietly for their
//! alert time are not read at all, however many there are.
//!
//! **Who watches an unsent opt-in** (issue 13 §5; the invariant every change here must keep):
//! every unsent, non-terminal opt-in is always watched by its one-time deadline schedule, by the
//! due index, or — until its webhook was answered 200 — by Meta's redelivery. The index holds only
//! the opt-ins nothing else watches, so a sent one never costs an index write:
//! - a recorded opt-in is **not** in the index: its send job watches the send, its schedule (at
//!   the alert time) the alert; the webhook answers 200 only after that follow-up;
//! - the follow-up puts it in the index at [`first_attention`] when the job could not be queued,
//!   the schedule could not be created, or no schedule is made (a late opt-in: alert time or
//!   deadline already past); if that write fails too the webhook answers 503 and Meta's
//!   redelivery repeats the follow-up (a redelivery of an unsent opt-in always arranges its alert
//!   again, free when the schedule exists; it queues a job again only when no sender has touched
//!   an opt-in the webhook created, and indexes an unclaimed one a login created instead);
//! - when the schedule fires (it deletes itself), deadline-alerts alerts and puts the opt-in in
//!   the index at [`next_attention`] (the deadline, a lease's end), so the sweep expires it; a
//!   failed write fails the invocation, which Scheduler retries, then keeps in its DLQ (alarmed;
//!   `ops redrive` puts the opt-ins it names in the index);
//! - a PAUSED opt-in (a send paused by a configuration error, or parked on a paused Page) enters
//!   the index in the same write: the Page's resume finds PAUSED opt-ins there;
//! - terminal writes remove `due_shard` and `due_at` (free when the item is not indexed).
//!
//! Pure functions; the store writes what they compute.

use crate::domain::opt_in::{Millis, OptIn, State};

/// An opt-in still `OPTED_IN` this long after it was recorded lost its send job (the DynamoDB write
/// succeeded, the SQS send did not): the sweep enqueues it again.
pub const STUCK_AFTER_MS: Millis = 3 * 60_000;

/// The first instant the sweep must look at a new opt-in nothing else watches: when it would count
/// as stuck, or its alert time, whichever comes first (a late webhook's alert time may already be
/// past: then at once).
pub fn first_attention(opt_in: &OptIn) -> Millis {
    opt_in
        .alert_at
        .min(opt_in.created_at.saturating_add(STUCK_AFTER_MS))
        .min(opt_in.deadline_at)
}

/// When the sweep must look at `opt_in` again, given the item as it is after being attended to at
/// `now`. `None`: never (terminal). A value at or before `now` means it still needs attention
/// (an alert or expiry that could not be done yet): it stays due for the next sweep.
///
/// Computed from a possibly stale copy, the answer can only be too early, never too late: every
/// later change of an unsent opt-in (claimed, alerted, terminal) only postpones or ends its
/// attention.
pub fn next_attention(opt_in: &OptIn, now: Millis) -> Option<Millis> {
    if opt_in.state.is_terminal() {
        return None;
    }
    if opt_in.deadline_passed(now) {
        // Not expired yet: a sender holds a live lease (look again when it ends), or the write failed.
        return Some(match (opt_in.state, opt_in.lease_until) {
            (State::Sending, Some(until)) if until > now => until,
            _ => now,
        });
    }
    let mut next = opt_in.deadline_at;
    if opt_in.alerted_at.is_none() {
        next = next.min(opt_in.alert_at);
    }
    if opt_in.state == State::OptedIn {
        // Not claimed by a sender yet: check again when it would count as stuck (again).
        let stuck_at = opt_in.created_at.saturating_add(STUCK_AFTER_MS);
        let recheck = if stuck_at > now {
            stuck_at
        } else {
            now.saturating_add(STUCK_AFTER_MS)
        };
        next = next.min(recheck);
    }
    Some(next)
}

/// Whether an opt-in lost its send job: still `OPTED_IN` [`STUCK_AFTER_MS`] after it was recorded.
pub fn is_stuck(opt_in: &OptIn, now: Millis) -> bool {
    opt_in.state == State::OptedIn && now.saturating_sub(opt_in.created_at) >= STUCK_AFTER_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::opt_in::{HOUR_MS, OptInKey};

    const T0: Millis = 1_000_000_000;

    fn opt_in() -> OptIn {
        // Window 24 h, lead 2 h: alert at T0 + 22 h.
        OptIn::new(
            OptInKey::new("p", "l"),
            Some(T0),
            T0,
            24 * HOUR_MS,
            2 * HOUR_MS,
        )
    }

    #[test]
    fn a_new_opt_in_is_first_looked_at_when_it_would_be_stuck() {
        let o = opt_in();
        assert_eq!(first_attention(&o), T0 + STUCK_AFTER_MS);
        // A late webhook: the alert time is already past.
        let mut late = opt_in();
        late.alert_at = T0 - 1;
        assert_eq!(first_attention(&late), T0 - 1);
    }

    #[test]
    fn after_each_visit_the_next_one_is_the_next_thing_to_do() {
        let mut o = opt_in();
        // Still OPTED_IN after 3 minutes: re-enqueued, look again 3 minutes later.
        let now = T0 + STUCK_AFTER_MS;
        assert_eq!(next_attention(&o, now), Some(now + STUCK_AFTER_MS));
        assert!(is_stuck(&o, now));
        assert!(!is_stuck(&o, now - 1));
        // Claimed meanwhile (RETRYING): nothing until the alert time.
        o.state = State::Retrying;
        assert_eq!(next_attention(&o, now), Some(o.alert_at));
        // Alerted: nothing until the deadline.
        o.alerted_at = Some(o.alert_at);
        assert_eq!(next_attention(&o, o.alert_at), Some(o.deadline_at));
        // An alert that could not be raised keeps it due.
        o.alerted_at = None;
        assert_eq!(next_attention(&o, o.alert_at + 5), Some(o.alert_at));
        // Past the deadline and still unsent: due until expired.
        assert_eq!(next_attention(&o, o.deadline_at), Some(o.deadline_at));
        // ... unless a sender holds a live lease: then when it ends.
        o.state = State::Sending;
        o.lease_until = Some(o.deadline_at + 30_000);
        assert_eq!(
            next_attention(&o, o.deadline_at + 1),
            Some(o.deadline_at + 30_000)
        );
        for terminal in State::ALL.into_iter().filter(|s| s.is_terminal()) {
            o.state = terminal;
            assert_eq!(next_attention(&o, T0), None);
        }
    }

    #[test]
    fn an_opt_in_not_yet_stuck_is_looked_at_when_it_would_be() {
        let o = opt_in();
        assert_eq!(next_attention(&o, T0 + 1), Some(T0 + STUCK_AFTER_MS));
    }

    #[test]
    fn the_next_visit_is_never_later_than_the_deadline() {
        let mut o = OptIn::new(OptInKey::new("p", "l"), Some(T0), T0, 60_000, 0);
        o.state = State::Paused;
        o.alerted_at = Some(T0);
        assert_eq!(next_attention(&o, T0 + 10), Some(T0 + 60_000));
        let fresh = OptIn::new(OptInKey::new("p", "l"), Some(T0), T0, 60_000, 30_000);
        assert_eq!(first_attention(&fresh), T0 + 30_000);
    }
}
