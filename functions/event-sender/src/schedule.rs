//! When a failed delivery is tried again: 30 s after the first attempt, doubling each time, at
//! most [`MAX_DELAY_SECONDS`] (SQS keeps a received message invisible for at most 12 hours), for
//! [`MAX_RECEIVE_COUNT`] attempts, which span more than 24 hours; then the dead-letter queue.
//!
//! The delay is computed from SQS's `ApproximateReceiveCount` (the attempt's number), so it needs
//! no state of its own and a redelivered record continues the schedule where it was.

/// The events queue's `maxReceiveCount` (template.yaml `EventsQueue.RedrivePolicy`; a contract
/// test checks): attempt number 13 is the last, after 12 retries spanning 104 310 s (29 h).
pub const MAX_RECEIVE_COUNT: u32 = 13;

/// The longest retry delay: SQS refuses a visibility that ends more than 12 hours after the
/// receive, and the delay is set up to a function timeout (30 s) after it; 5 minutes of margin.
pub const MAX_DELAY_SECONDS: u32 = 43_200 - 300;

/// The delay before attempt `receive_count + 1`, after attempt `receive_count` (from 1) failed:
/// `base_seconds × 2^(receive_count − 1)`, at most [`MAX_DELAY_SECONDS`].
pub fn retry_delay_seconds(receive_count: u32, base_seconds: u32) -> u32 {
    let doublings = receive_count.saturating_sub(1).min(31);
    u64::from(base_seconds)
        .saturating_mul(1u64 << doublings)
        .min(u64::from(MAX_DELAY_SECONDS)) as u32
}

/// Whether attempt `receive_count` was the last one (the record's next receive moves it to the
/// dead-letter queue).
pub fn is_last_attempt(receive_count: u32) -> bool {
    receive_count >= MAX_RECEIVE_COUNT
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::events::DEFAULT_EVENTS_RETRY_BASE_SECONDS as BASE;

    #[test]
    fn delays_double_from_30_seconds_up_to_just_under_12_hours() {
        let delays: Vec<u32> = (1..MAX_RECEIVE_COUNT)
            .map(|n| retry_delay_seconds(n, BASE))
            .collect();
        assert_eq!(
            delays,
            [
                30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 15_360, 30_720, 42_900
            ]
        );
        assert_eq!(retry_delay_seconds(40, BASE), MAX_DELAY_SECONDS);
        assert_eq!(retry_delay_seconds(u32::MAX, u32::MAX), MAX_DELAY_SECONDS);
        const { assert!(MAX_DELAY_SECONDS < shared::ports::queue::MAX_VISIBILITY_SECONDS) };
        // Tests only: base 0 retries at once.
        assert_eq!(retry_delay_seconds(5, 0), 0);
    }

    /// Issue 12: "retry with growing delays for at least 24 hours". The 12 retries between the 13
    /// attempts wait 30 + 60 + … + 30 720 = 30 × (2^11 − 1) = 61 410 s, plus 42 900 s: 104 310 s
    /// (29 h) from the first attempt to the last. 12 attempts would stop at 61 410 s (17 h): 13 is
    /// the smallest count that lasts 24 hours.
    #[test]
    fn retries_last_at_least_24_hours_and_13_attempts_is_the_least_that_does() {
        let span =
            |attempts: u32| -> u32 { (1..attempts).map(|n| retry_delay_seconds(n, BASE)).sum() };
        assert_eq!(span(MAX_RECEIVE_COUNT), 104_310);
        assert!(span(MAX_RECEIVE_COUNT) >= 86_400);
        assert_eq!(span(MAX_RECEIVE_COUNT - 1), 61_410);
        assert!(span(MAX_RECEIVE_COUNT - 1) < 86_400);
        // SQS keeps the message for the whole span (EventsQueue.MessageRetentionPeriod: 4 days).
        assert!(span(MAX_RECEIVE_COUNT) < 345_600);
        assert!(!is_last_attempt(MAX_RECEIVE_COUNT - 1) && is_last_attempt(MAX_RECEIVE_COUNT));
    }
}
