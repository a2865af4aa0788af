//! A clock tests can set and move.

use crate::domain::opt_in::Millis;
use crate::ports::clock::Clock;
use std::sync::atomic::{AtomicI64, Ordering};

/// A [`Clock`] tests can set and move.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(now: Millis) -> Self {
        Self(AtomicI64::new(now))
    }
    pub fn set(&self, now: Millis) {
        self.0.store(now, Ordering::SeqCst);
    }
    pub fn advance(&self, by: Millis) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}
