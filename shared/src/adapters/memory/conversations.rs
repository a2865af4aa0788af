//! In-memory twin of the conversation store: PSID links and pending stops beside the opt-ins of a
//! [`MemoryOptInStore`].

use crate::adapters::memory::opt_ins::MemoryOptInStore;
use crate::adapters::memory::sync::lock;
use crate::domain::opt_in::{Millis, OptInKey};
use crate::ports::conversations::{ConversationStore, PendingStop};
use crate::ports::error::PortResult;
use async_trait::async_trait;

#[async_trait]
impl ConversationStore for MemoryOptInStore {
    async fn link_psid(&self, key: &OptInKey, psid: &str, at: Millis) -> PortResult<bool> {
        self.check()?;
        let mut items = lock(&self.items);
        let Some(item) = items.get_mut(key) else {
            return Ok(false);
        };
        item.psid = Some(psid.to_owned());
        item.last_user_message_at = Some(at);
        item.updated_at = at;
        lock(&self.psids).insert((key.page_id.clone(), psid.to_owned()), key.clone());
        Ok(true)
    }

    async fn opt_in_for_psid(&self, page_id: &str, psid: &str) -> PortResult<Option<OptInKey>> {
        self.check()?;
        Ok(lock(&self.psids)
            .get(&(page_id.to_owned(), psid.to_owned()))
            .cloned())
    }

    async fn keep_pending_stop(&self, stop: &PendingStop) -> PortResult<bool> {
        self.check()?;
        let mut stops = lock(&self.pending_stops);
        let id = (stop.page_id.clone(), stop.psid.clone());
        if stops.contains_key(&id) {
            return Ok(false);
        }
        stops.insert(id, stop.clone());
        Ok(true)
    }

    async fn pending_stop(&self, page_id: &str, psid: &str) -> PortResult<Option<PendingStop>> {
        self.check()?;
        Ok(lock(&self.pending_stops)
            .get(&(page_id.to_owned(), psid.to_owned()))
            .cloned())
    }

    async fn clear_pending_stop(&self, page_id: &str, psid: &str) -> PortResult<()> {
        self.check()?;
        lock(&self.pending_stops).remove(&(page_id.to_owned(), psid.to_owned()));
        Ok(())
    }
}
