//! In-memory twins of the sender's ports ([`RetryQueue`], [`PageStateStore`]), with the same rules
//! as the real adapters (tested against moto in `tests/`): a Page change is
//! [`PageChange::apply`], whose guard the DynamoDB adapter turns into its condition.

use super::memory::{MemoryOptInStore, lock};
use crate::domain::{Event, Millis, OptIn, OptInKey, SendJob, State};
use crate::page::{PageChange, PageState};
use crate::ports::send::{MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS, PageStateStore, RetryQueue};
use crate::ports::{PortError, PortResult, Transitioned};
use async_trait::async_trait;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// In-memory [`RetryQueue`]: records every visibility change and every delayed job.
#[derive(Default)]
pub struct MemoryRetryQueue {
    /// (receipt handle, seconds) of every `retry_after`.
    pub visibility: Mutex<Vec<(String, u32)>>,
    /// (job, seconds) of every `enqueue_after`.
    pub delayed: Mutex<Vec<(SendJob, u32)>>,
    pub fail: AtomicBool,
}

impl MemoryRetryQueue {
    pub fn visibility(&self) -> Vec<(String, u32)> {
        lock(&self.visibility).clone()
    }

    pub fn delayed(&self) -> Vec<(SendJob, u32)> {
        lock(&self.delayed).clone()
    }

    /// Take the delayed jobs recorded so far (a test delivers them itself).
    pub fn take_delayed(&self) -> Vec<(SendJob, u32)> {
        std::mem::take(&mut *lock(&self.delayed))
    }

    fn check(&self) -> PortResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(PortError::new("memory-retry-queue", "injected failure"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl RetryQueue for MemoryRetryQueue {
    async fn retry_after(&self, receipt_handle: &str, delay_seconds: u32) -> PortResult<()> {
        self.check()?;
        lock(&self.visibility).push((
            receipt_handle.to_owned(),
            delay_seconds.min(MAX_VISIBILITY_SECONDS),
        ));
        Ok(())
    }

    async fn enqueue_after(&self, job: &SendJob, delay_seconds: u32) -> PortResult<()> {
        self.check()?;
        lock(&self.delayed).push((job.clone(), delay_seconds.min(MAX_DELAY_SECONDS)));
        Ok(())
    }
}

impl MemoryOptInStore {
    /// Every Page state item.
    pub fn pages(&self) -> Vec<PageState> {
        lock(&self.pages).values().cloned().collect()
    }
}

#[async_trait]
impl PageStateStore for MemoryOptInStore {
    async fn get_page(&self, page_id: &str) -> PortResult<Option<PageState>> {
        self.check()?;
        Ok(lock(&self.pages).get(page_id).cloned())
    }

    async fn change_page(
        &self,
        page_id: &str,
        change: &PageChange,
        now: Millis,
    ) -> PortResult<bool> {
        self.check()?;
        let mut pages = lock(&self.pages);
        match change.apply(page_id, pages.get(page_id), now) {
            Some(page) => {
                pages.insert(page_id.to_owned(), page);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn park_opt_in(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned> {
        self.apply(key, Event::PagePaused, |_| true, |i| i.updated_at = now)
    }

    async fn resume_opt_in(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned> {
        self.apply(
            key,
            Event::Resume,
            |i| !i.deadline_passed(now),
            |i| i.updated_at = now,
        )
    }

    async fn paused_opt_ins(&self, page_id: &str, limit: usize) -> PortResult<Vec<OptIn>> {
        self.check()?;
        let mut found: Vec<OptIn> = lock(&self.items)
            .values()
            .filter(|i| i.state == State::Paused && i.page_id == page_id)
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.deadline_at, &a.login_id).cmp(&(b.deadline_at, &b.login_id)));
        found.truncate(limit);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LastError;
    use crate::page::PauseCause;
    use crate::ports::OptInStore;

    fn opt_in(login: &str, deadline: Millis) -> OptIn {
        OptIn::new(OptInKey::new("p", login), Some(0), 0, deadline, 0)
    }

    #[tokio::test]
    async fn a_page_pauses_once_probes_once_per_slot_and_resumes_once() {
        let s = MemoryOptInStore::new();
        let reason = LastError {
            code: 190,
            ..LastError::default()
        };
        assert!(s.get_page("p").await.unwrap().is_none());
        assert!(!s.take_probe("p", 0, 10).await.unwrap(), "not paused");
        assert!(
            s.pause_page("p", PauseCause::Configuration, &reason, 5, 100)
                .await
                .unwrap()
        );
        assert!(
            !s.pause_page("p", PauseCause::Configuration, &reason, 6, 100)
                .await
                .unwrap()
        );
        assert!(!s.take_probe("p", 99, 200).await.unwrap(), "not yet");
        assert!(s.take_probe("p", 100, 200).await.unwrap());
        assert!(!s.take_probe("p", 100, 200).await.unwrap(), "slot taken");
        let page = s.get_page("p").await.unwrap().unwrap();
        assert_eq!((page.probe_at, page.probes), (Some(200), 1));
        assert!(s.resume_page("p", 300).await.unwrap());
        assert!(!s.resume_page("p", 301).await.unwrap());
        assert!(!s.get_page("p").await.unwrap().unwrap().is_paused());
        assert!(
            s.pause_page("p", PauseCause::PageRestricted, &reason, 400, 500)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn park_and_resume_follow_the_state_machine() {
        let s = MemoryOptInStore::new();
        let o = opt_in("a", 1_000);
        let k = o.key();
        s.create_opt_in(&o).await.unwrap();
        assert!(s.park_opt_in(&k, 1).await.unwrap().is_done());
        assert!(
            !s.park_opt_in(&k, 2).await.unwrap().is_done(),
            "already paused"
        );
        assert_eq!(s.paused_opt_ins("p", 10).await.unwrap().len(), 1);
        assert!(s.paused_opt_ins("q", 10).await.unwrap().is_empty());
        assert!(
            !s.resume_opt_in(&k, 1_000).await.unwrap().is_done(),
            "deadline"
        );
        let Transitioned::Done(item) = s.resume_opt_in(&k, 999).await.unwrap() else {
            panic!("resume before the deadline");
        };
        assert_eq!(item.state, State::Retrying);
        assert!(
            s.claim_for_send(&k, "me", 999, 2_000)
                .await
                .unwrap()
                .is_done()
        );
        assert!(
            !s.park_opt_in(&k, 999).await.unwrap().is_done(),
            "SENDING is not parked"
        );
    }

    #[tokio::test]
    async fn meta_block_on_an_already_paused_page_is_recorded_and_stops_probes() {
        let s = MemoryOptInStore::new();
        let reason = LastError {
            code: 190,
            ..LastError::default()
        };
        assert!(
            s.pause_page("p", PauseCause::Configuration, &reason, 5, 100)
                .await
                .unwrap()
        );
        let block = LastError {
            message: "policy enforcement block: spam".into(),
            ..LastError::default()
        };
        assert!(
            s.block_page("p", &block, 6).await.unwrap(),
            "a block during a configuration pause is recorded"
        );
        assert!(!s.block_page("p", &block, 7).await.unwrap(), "once");
        let page = s.get_page("p").await.unwrap().unwrap();
        assert!(page.is_blocked());
        assert_eq!(page.probe_at, None);
        // The configuration pause's probe time passes: no probe, no resume.
        assert!(!s.take_probe("p", 1_000, 2_000).await.unwrap());
        assert!(!s.resume_page("p", 1_000).await.unwrap());
        assert!(
            !s.pause_page("p", PauseCause::Configuration, &reason, 1_000, 2_000)
                .await
                .unwrap()
        );
        assert!(s.get_page("p").await.unwrap().unwrap().is_blocked());
        // Unblock lifts only a block.
        assert!(s.unblock_page("p", 1_001).await.unwrap());
        assert!(!s.unblock_page("p", 1_002).await.unwrap());
        assert!(
            s.pause_page("p", PauseCause::Configuration, &reason, 1_003, 2_000)
                .await
                .unwrap()
        );
        assert!(
            !s.unblock_page("p", 1_004).await.unwrap(),
            "an unblock does not lift a pause of ours"
        );
        assert!(s.get_page("p").await.unwrap().unwrap().is_paused());
    }
}
