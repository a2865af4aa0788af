//! The twins' one lock helper.

use std::sync::Mutex;

/// Lock `m`. A poisoned lock only means another test thread panicked; the data is still usable.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
