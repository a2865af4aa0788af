//! When to try again: what becomes of a record ([`RecordOutcome`]), and for a transient failure
//! exponential backoff with jitter, never later than the last moment an attempt can still land
//! before the opt-in's deadline.

use shared::config::send::SendTuning;
use shared::domain::opt_in::Millis;
use shared::ports::queue::MAX_VISIBILITY_SECONDS;

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Acknowledge: the job is done (sent, terminal, parked, or nothing to do).
    Done,
    /// Try again in this many seconds (`ChangeMessageVisibility`, or a fresh delayed message).
    RetryIn(u32),
    /// Try again in this many seconds with *this* message (`ChangeMessageVisibility` only): a lease
    /// of this message may still stand, and only this message can take it over.
    RetryKeep(u32),
    /// Not a job this code can read: leave it, untouched, for `maxReceiveCount` and the DLQ.
    Unreadable,
}

/// Time kept between the latest retry and the send margin, for the queue's delivery delay and the
/// rounding of SQS delays to whole seconds.
pub const LANDING_SLACK_MS: Millis = 1_000;

/// Whole seconds covering `ms` (rounded up; negative counts as zero).
pub fn ceil_seconds(ms: Millis) -> Millis {
    (ms.max(0) + 999) / 1_000
}

/// Whole seconds from `now` until just after `until`, at most SQS's longest visibility timeout
/// ([`MAX_VISIBILITY_SECONDS`], 12 h): a time too far away (a Page parked until Meta unblocks it,
/// `i64::MAX`) waits the longest the queue allows, never a short loop.
pub fn seconds_until(until: Millis, now: Millis) -> u32 {
    let seconds = ceil_seconds(until.saturating_sub(now)).saturating_add(1);
    u32::try_from(seconds)
        .unwrap_or(MAX_VISIBILITY_SECONDS)
        .min(MAX_VISIBILITY_SECONDS)
}

/// A short backoff for store failures, so a DynamoDB hiccup does not wait a whole visibility
/// timeout.
pub fn store_retry_seconds() -> u32 {
    2 + rand::random_range(0..4)
}

/// Seconds until the next attempt after `attempts` attempts, or `None` when no attempt can land
/// before the deadline any more (the opt-in then ends EXPIRED, with an alert, instead of waiting).
///
/// The backoff is `base · 2^(attempts−1)` capped at `max`, with equal jitter (a uniformly random
/// point in its upper half, from `unit_random` ∈ [0, 1)), then capped so that
/// `now + delay + send_margin + LANDING_SLACK_MS <= deadline_at`: the retried attempt starts early
/// enough for the whole request (at most `send_margin`, the Graph timeout) to end before the deadline.
pub fn next_attempt_in(
    attempts: u32,
    now: Millis,
    deadline_at: Millis,
    tuning: &SendTuning,
    send_margin_ms: Millis,
    unit_random: f64,
) -> Option<u32> {
    let room_ms = deadline_at
        .saturating_sub(now)
        .saturating_sub(send_margin_ms)
        .saturating_sub(LANDING_SLACK_MS);
    if room_ms < 1_000 {
        return None;
    }
    let doublings = attempts.saturating_sub(1).min(30);
    let exponential = tuning
        .retry_base_ms
        .saturating_mul(1_i64 << doublings)
        .min(tuning.retry_max_ms);
    let half = exponential / 2;
    let jitter = (unit_random.clamp(0.0, 1.0) * half as f64) as Millis;
    let delay_ms = (exponential - half + jitter).max(1_000);
    let delay_s = ceil_seconds(delay_ms);
    let latest_s = room_ms / 1_000;
    u32::try_from(delay_s.min(latest_s)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuning() -> SendTuning {
        SendTuning {
            retry_base_ms: 5_000,
            retry_max_ms: 900_000,
            ..SendTuning::default()
        }
    }

    const DAY: Millis = 86_400_000;

    #[test]
    fn doubles_with_jitter_in_the_upper_half_and_caps() {
        let t = tuning();
        for (attempts, low, high) in [
            (1, 3, 5),
            (2, 5, 10),
            (3, 10, 20),
            (4, 20, 40),
            (8, 320, 640),
            (9, 450, 900),
            (30, 450, 900),
            (u32::MAX, 450, 900),
        ] {
            let lo = next_attempt_in(attempts, 0, DAY, &t, 10_000, 0.0).unwrap();
            let hi = next_attempt_in(attempts, 0, DAY, &t, 10_000, 0.999_999).unwrap();
            assert_eq!((lo, hi), (low, high), "attempt {attempts}");
        }
    }

    #[test]
    fn the_last_attempt_still_lands_before_the_deadline() {
        let t = tuning();
        let margin = 10_000;
        for attempts in 1..40 {
            for left in [
                0, 500, 11_000, 11_999, 12_000, 12_001, 13_500, 60_000, 3_600_000,
            ] {
                for r in [0.0, 0.5, 0.99] {
                    let now = 1_000_000;
                    let deadline = now + left;
                    match next_attempt_in(attempts, now, deadline, &t, margin, r) {
                        Some(s) => {
                            assert!(s >= 1);
                            let start = now + Millis::from(s) * 1_000;
                            assert!(
                                start + margin + LANDING_SLACK_MS <= deadline,
                                "attempt {attempts}, {left} ms left: retry in {s} s lands too late"
                            );
                        }
                        None => assert!(left < margin + LANDING_SLACK_MS + 1_000, "{left}"),
                    }
                }
            }
        }
    }

    #[test]
    fn no_time_left_means_no_retry() {
        let t = tuning();
        assert_eq!(next_attempt_in(1, 0, 11_999, &t, 10_000, 0.0), None);
        assert_eq!(next_attempt_in(1, 0, 12_000, &t, 10_000, 0.0), Some(1));
        assert_eq!(
            next_attempt_in(1, 50, 0, &t, 10_000, 0.0),
            None,
            "past the deadline"
        );
    }
}
