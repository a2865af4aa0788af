//! In-memory twins of the sender's Page port ([`PageStateStore`]), with the same rules
//! as the real adapters (tested against moto in `tests/`): a Page change is
//! [`PageChange::apply`], whose guard the DynamoDB adapter turns into its condition.

use crate::adapters::memory::opt_ins::MemoryOptInStore;
use crate::adapters::memory::sync::lock;
use crate::domain::opt_in::{Event, Millis, OptIn, OptInKey, State};
use crate::domain::page::{PageChange, PageState};
use crate::ports::error::PortResult;
use crate::ports::opt_ins::Transitioned;
use crate::ports::pages::PageStateStore;
use async_trait::async_trait;

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
        let parked = self.apply(key, Event::PagePaused, |_| true, |i| i.updated_at = now)?;
        if parked.is_done() {
            // As DynamoDB's park: watched from now on (the resume finds it in the due index).
            self.watch_now(key, now);
        }
        Ok(parked)
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
        // From the due index, as DynamoDB queries it: a PAUSED opt-in nothing put there is not found.
        let watched: std::collections::HashSet<OptInKey> =
            lock(&self.attention).keys().cloned().collect();
        let mut found: Vec<OptIn> = lock(&self.items)
            .values()
            .filter(|i| i.state == State::Paused && i.page_id == page_id)
            .filter(|i| watched.contains(&i.key()))
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
    use crate::domain::opt_in::LastError;
    use crate::domain::page::PauseCause;
    use crate::ports::opt_ins::OptInStore;

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
