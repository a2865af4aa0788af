//! What the person does on Messenger after the initial message: PSID links and pending stops.

use crate::domain::opt_in::{Millis, OptInKey};
use crate::ports::error::PortResult;
use async_trait::async_trait;

/// A stop request (stop word or `STOP NOTIFICATIONS`) from a PSID no opt-in is linked to yet. It
/// is kept, not dropped: when the PSID is later linked to an opt-in, the stop is applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingStop {
    pub page_id: String,
    pub psid: String,
    /// The opt-out source it becomes (`stop_keyword`, `stop_notifications`).
    pub source: String,
    pub received_at: Millis,
}

/// What the person does on Messenger after the initial message.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Record on the opt-in that the person wrote from `psid` at `at` and remember which opt-in
    /// that PSID belongs to, in one transaction that requires the opt-in to exist (the PSID link
    /// never outlives an erased opt-in). Returns whether the opt-in exists.
    async fn link_psid(&self, key: &OptInKey, psid: &str, at: Millis) -> PortResult<bool>;
    /// The opt-in a PSID was linked to, if any.
    async fn opt_in_for_psid(&self, page_id: &str, psid: &str) -> PortResult<Option<OptInKey>>;
    /// Keep a stop from an unlinked PSID (conditional put: the first one for a Page and PSID is
    /// kept). Returns whether this call stored it.
    async fn keep_pending_stop(&self, stop: &PendingStop) -> PortResult<bool>;
    /// The pending stop of a PSID, if any (consistent read).
    async fn pending_stop(&self, page_id: &str, psid: &str) -> PortResult<Option<PendingStop>>;
    /// Delete the pending stop of a PSID once applied (a missing one counts as success).
    async fn clear_pending_stop(&self, page_id: &str, psid: &str) -> PortResult<()>;
}
