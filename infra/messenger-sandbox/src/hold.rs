//! Holding deliveries, so a person can watch a message "in flight" and try STOP by hand.
//!
//! A Send API call normally lands in ~150 ms locally, too fast to send a STOP or call the opt-out
//! API while it is on its way. A hold makes the Send API call for a person (or every call) wait,
//! unanswered, until it is released; then it proceeds as usual (Graph's checks, the inbox).
//!
//! - `POST /_sandbox/hold` `{"login_id": "…"}` holds that person's sends; `{}` holds every send.
//! - `POST /_sandbox/release` `{"login_id": "…"}` releases that person; `{}` releases everything.
//! - `GET /_sandbox/hold` — `{"all": bool, "login_ids": […], "waiting": n}` (`waiting`: calls held
//!   right now).
//!
//! `POST /_sandbox/reset` releases everything too. The caller's own timeout still applies (the
//! sender's `GRAPH_TIMEOUT_MS`, 10 s by default): a call held longer is abandoned by the client and
//! never lands.

//!
//! This module is the hold itself; its endpoints are in `controls`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::watch;

/// What is held: every send, and/or the sends to these login_ids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct HoldSet {
    pub all: bool,
    pub login_ids: BTreeSet<String>,
}

impl HoldSet {
    pub(crate) fn holds(&self, login_id: Option<&str>) -> bool {
        self.all || login_id.is_some_and(|id| self.login_ids.contains(id))
    }
}

/// The holds, watched by the Send API calls waiting on them.
pub(crate) struct Holds {
    set: watch::Sender<HoldSet>,
    waiting: AtomicU64,
}

impl Default for Holds {
    fn default() -> Self {
        Self {
            set: watch::Sender::new(HoldSet::default()),
            waiting: AtomicU64::new(0),
        }
    }
}

/// Decrements the waiting count however the wait ends (released, or the client went away).
struct Waiting<'a>(&'a AtomicU64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Holds {
    /// Hold `login_id`'s sends, or every send when `None`.
    pub fn hold(&self, login_id: Option<String>) {
        self.set.send_modify(|h| match login_id {
            Some(id) => {
                h.login_ids.insert(id);
            }
            None => h.all = true,
        });
    }

    /// Release `login_id` (its own hold; a hold on every send stays), or everything when `None`.
    pub fn release(&self, login_id: Option<&str>) {
        self.set.send_modify(|h| match login_id {
            Some(id) => {
                h.login_ids.remove(id);
            }
            None => *h = HoldSet::default(),
        });
    }

    /// What is held right now.
    pub fn current(&self) -> HoldSet {
        self.set.borrow().clone()
    }

    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Return once nothing holds a send to `login_id` (at once when nothing does).
    pub async fn wait_until_released(&self, login_id: Option<&str>) {
        let mut rx = self.set.subscribe();
        if !rx.borrow_and_update().holds(login_id) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        tracing::info!("sandbox holds a send until released");
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|h| !h.holds(login_id)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_person_s_hold_releases_only_that_person() {
        let holds = Holds::default();
        holds.hold(Some("a".into()));
        // Another person is not held.
        holds.wait_until_released(Some("b")).await;
        let held = holds.wait_until_released(Some("a"));
        tokio::pin!(held);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut held)
                .await
                .is_err()
        );
        assert_eq!(holds.waiting(), 1);
        holds.release(Some("a"));
        held.await;
        assert_eq!(holds.waiting(), 0);
        holds.hold(None);
        assert!(holds.set.borrow().holds(Some("b")));
        holds.release(None);
        assert!(!holds.set.borrow().holds(Some("b")));
    }
}
