//! The Send API's per-Page rate limit: calls admitted in a rolling one-second window, code 613
//! beyond it (Meta: 300 calls/s per Page for text, `shared/reference/messenger.md` §3.4).
//!
//! Only admitted calls count: a refused call does not extend the limit, so a sender that backs off
//! gets through again one second after its last admitted burst.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub(crate) const WINDOW: Duration = Duration::from_secs(1);

pub(crate) struct RateLimiter {
    /// Calls per second and Page; 0 turns the limit off.
    limit: AtomicU32,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: u32) -> Self {
        Self {
            limit: AtomicU32::new(limit),
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::SeqCst)
    }

    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::SeqCst);
    }

    /// Count a call for `page_id` at `now` if it fits in the window. Returns whether it was
    /// admitted, and how many admitted calls the window then holds.
    pub fn admit(&self, page_id: &str, now: Instant) -> (bool, usize) {
        let limit = self.limit();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let calls = windows.entry(page_id.to_owned()).or_default();
        while calls
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            calls.pop_front();
        }
        if limit > 0 && calls.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return (false, calls.len());
        }
        calls.push_back(now);
        (true, calls.len())
    }

    pub fn clear(&self) {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolling_window_per_page() {
        let r = RateLimiter::new(2);
        let t0 = Instant::now();
        assert_eq!(r.admit("p", t0), (true, 1));
        assert_eq!(r.admit("p", t0 + Duration::from_millis(10)), (true, 2));
        assert_eq!(r.admit("p", t0 + Duration::from_millis(20)), (false, 2));
        assert_eq!(
            r.admit("q", t0 + Duration::from_millis(20)),
            (true, 1),
            "per Page"
        );
        // The first call leaves the window one second after it was made.
        assert_eq!(r.admit("p", t0 + Duration::from_millis(999)), (false, 2));
        assert_eq!(r.admit("p", t0 + Duration::from_millis(1_000)), (true, 2));
        r.set_limit(0);
        for i in 0..10 {
            assert!(r.admit("p", t0 + Duration::from_millis(1_001 + i)).0, "off");
        }
    }
}
