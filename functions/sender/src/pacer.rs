//! The per-Page pacer: keeps this sender instance under its share of the Send API's per-Page limit.
//!
//! Meta counts Send API calls per Page over a rolling one-second window (300 for text). The pacer
//! enforces the same shape on our side: at most `per_window` calls in any window of
//! [`WINDOW`] (one second plus [`GUARD`], so that latency jitter between our clock and Graph's
//! cannot squeeze one window's calls into another). Unlike a token bucket, a sliding window lets a
//! whole batch go out at once *and* sustains the full rate: a bucket of capacity `b` refilled at
//! `r` lets `b + r` calls into some one-second window, so it must give up either the burst or the
//! rate.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub const GUARD: Duration = Duration::from_millis(20);
pub const WINDOW: Duration = Duration::from_millis(1_000 + 20);

pub struct Pacer {
    per_window: usize,
    /// Per Page, the start times of the calls in the current window, oldest first.
    log: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Pacer {
    /// At most `per_second` calls per Page in any window of [`WINDOW`].
    pub fn new(per_second: u32) -> Self {
        Self {
            per_window: usize::try_from(per_second.max(1)).unwrap_or(1),
            log: Mutex::new(HashMap::new()),
        }
    }

    /// The pacer for this instance's share of the Page limit.
    pub fn for_tuning(tuning: &shared::send_tuning::SendTuning) -> Self {
        Self::new(tuning.per_instance_rate())
    }

    pub fn per_window(&self) -> usize {
        self.per_window
    }

    /// Wait until a call for `page_id` fits in the window, and count it. Returns the time waited.
    pub async fn acquire(&self, page_id: &str) -> Duration {
        let started = Instant::now();
        loop {
            let wait = {
                let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
                let calls = log.entry(page_id.to_owned()).or_default();
                let now = Instant::now();
                while calls
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    calls.pop_front();
                }
                if calls.len() < self.per_window {
                    calls.push_back(now);
                    return now.duration_since(started);
                }
                match calls.front() {
                    Some(oldest) => WINDOW.saturating_sub(now.duration_since(*oldest)),
                    None => Duration::ZERO,
                }
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_and_no_window_holds_more_than_the_limit() {
        let pacer = Arc::new(Pacer::new(3));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let p = pacer.clone();
            tasks.push(tokio::spawn(async move {
                p.acquire("page").await;
                Instant::now().duration_since(t0)
            }));
        }
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.unwrap());
        }
        at.sort();
        assert_eq!(&at[..3], &[Duration::ZERO; 3], "the first three go at once");
        for (i, start) in at.iter().enumerate() {
            let in_window = at
                .iter()
                .filter(|t| **t >= *start && t.saturating_sub(*start) < WINDOW)
                .count();
            assert!(
                in_window <= 3,
                "{in_window} calls in the window starting at call {i}"
            );
        }
        assert!(
            at[9] >= WINDOW * 3,
            "10 calls at 3 per window need 3 windows"
        );
        assert!(at[9] < WINDOW * 3 + Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn pages_are_paced_separately() {
        let pacer = Pacer::new(1);
        assert_eq!(pacer.acquire("a").await, Duration::ZERO);
        assert_eq!(pacer.acquire("b").await, Duration::ZERO);
        let waited = pacer.acquire("a").await;
        assert!(waited >= WINDOW - Duration::from_millis(1), "{waited:?}");
    }
}
