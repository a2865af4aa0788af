//! The time, as a port so tests can move it.

use crate::domain::opt_in::Millis;

/// The time. A trait so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}
