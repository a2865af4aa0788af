//! The per-Page pacer: keeps this sender instance under its share of the Send API's per-Page limit.
//!
//! Meta counts Send API calls per Page over a rolling one-second window (300 for text). The pacer
//! enforces two things per Page:
//!
//! - **the limit itself**, in the limit's own shape: at most `per_window` calls in any window of
//!   [`WINDOW`] (one second plus [`GUARD`], so that latency jitter between our clock and Graph's
//!   cannot squeeze one window's calls into another). This alone sustains the full rate, unlike a
//!   token bucket: a bucket of capacity `b` refilled at `r` lets `b + r` calls into some
//!   one-second window, so to stay under the limit it must give up either the burst or the rate;
//! - **spacing**: beyond a burst of `burst` calls (a batch, sent at once), calls are spaced
//!   `WINDOW / per_window` apart (a GCRA, i.e. a token bucket of `burst` at the same rate). Without
//!   it, a backlog would go out as one burst of `per_window` calls at the start of every window,
//!   and the queueing such a burst causes at the receiving end is exactly the jitter that pushes
//!   calls across a window boundary.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub const GUARD: Duration = Duration::from_millis(20);
pub const WINDOW: Duration = Duration::from_millis(1_000 + 20);
/// What one sender instance sustains for one Page, in sends per second: a batch of 10 sent at once
/// takes about one Graph round trip plus two DynamoDB writes (≈ 250 ms at Graph's typical
/// latency), so ≈ 40/s; 30 leaves headroom. The template's `SenderMaximumConcurrency` default is
/// ⌈`SendRatePerSecond` / this⌉ so that the fleet can reach the Page limit (a test checks).
pub const INSTANCE_SENDS_PER_SECOND: u32 = 30;

#[derive(Default)]
struct PageLog {
    /// The start times of the calls in the current window, oldest first.
    calls: VecDeque<Instant>,
    /// GCRA's theoretical arrival time of the next call.
    tat: Option<Instant>,
}

pub struct Pacer {
    per_window: usize,
    /// The spacing of calls beyond the burst.
    interval: Duration,
    /// How far ahead of its theoretical time a call may go (`(burst − 1) × interval`).
    tolerance: Duration,
    pages: Mutex<HashMap<String, PageLog>>,
}

impl Pacer {
    /// At most `per_second` calls per Page in any window of [`WINDOW`], bursts of at most `burst`.
    pub fn new(per_second: u32, burst: usize) -> Self {
        let per_window = usize::try_from(per_second.max(1)).unwrap_or(1);
        let burst = burst.clamp(1, per_window);
        let interval = WINDOW / u32::try_from(per_window).unwrap_or(u32::MAX);
        Self {
            per_window,
            interval,
            tolerance: interval * u32::try_from(burst - 1).unwrap_or(0),
            pages: Mutex::new(HashMap::new()),
        }
    }

    /// The pacer for this instance's share of the Page limit, with a batch as the burst.
    pub fn for_tuning(tuning: &shared::config::send::SendTuning) -> Self {
        Self::new(tuning.per_instance_rate(), tuning.max_in_flight)
    }

    pub fn per_window(&self) -> usize {
        self.per_window
    }

    /// Wait until a call for `page_id` is allowed, and count it. Returns the time waited.
    pub async fn acquire(&self, page_id: &str) -> Duration {
        let started = Instant::now();
        loop {
            let wait = {
                let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
                let page = pages.entry(page_id.to_owned()).or_default();
                let now = Instant::now();
                while page
                    .calls
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    page.calls.pop_front();
                }
                let window_wait = match page.calls.front() {
                    Some(oldest) if page.calls.len() >= self.per_window => {
                        WINDOW.saturating_sub(now.duration_since(*oldest))
                    }
                    _ => Duration::ZERO,
                };
                let tat = page.tat.map_or(now, |t| t.max(now));
                let spacing_wait = tat.saturating_duration_since(now + self.tolerance);
                if window_wait.is_zero() && spacing_wait.is_zero() {
                    page.calls.push_back(now);
                    page.tat = Some(tat + self.interval);
                    return now.duration_since(started);
                }
                window_wait.max(spacing_wait)
            };
            tokio::time::sleep(wait.max(Duration::from_micros(100))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_and_no_window_holds_more_than_the_limit() {
        let pacer = Arc::new(Pacer::new(3, 3));
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
        let pacer = Pacer::new(1, 1);
        assert_eq!(pacer.acquire("a").await, Duration::ZERO);
        assert_eq!(pacer.acquire("b").await, Duration::ZERO);
        let waited = pacer.acquire("a").await;
        assert!(waited >= WINDOW - Duration::from_millis(1), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_burst_calls_are_spaced_evenly() {
        // 100 per window, bursts of 10: 10 at once, then one every WINDOW / 100.
        let pacer = Pacer::new(100, 10);
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..30 {
            pacer.acquire("page").await;
            at.push(Instant::now().duration_since(t0));
        }
        assert!(at[..10].iter().all(|t| t.is_zero()), "{at:?}");
        let interval = WINDOW / 100;
        for pair in at[10..].windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= interval - Duration::from_micros(200), "{gap:?}");
            assert!(gap <= interval + Duration::from_millis(1), "{gap:?}");
        }
        // Sustained: the 30th call goes out after about 20 intervals, not after a window.
        assert!(at[29] < interval * 21, "{:?}", at[29]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sustained_rate_is_the_window_rate_and_no_window_holds_more() {
        let pacer = Pacer::new(300, 10);
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..3_000 {
            pacer.acquire("page").await;
            at.push(Instant::now().duration_since(t0));
        }
        let rate = 2_990.0 / at[2_999].as_secs_f64();
        assert!((290.0..=300.0).contains(&rate), "{rate:.1}/s");
        let mut j = 0;
        for i in 0..at.len() {
            while at[i] - at[j] >= Duration::from_secs(1) {
                j += 1;
            }
            assert!(i - j < 300, "{} calls in one second", i - j + 1);
        }
    }
}
