//! The erasure store: erase a person's items, remember the erasure, keep the deletion status record.

use crate::domain::erasure::{DeletionRecord, PersonItems};
use crate::domain::opt_in::Millis;
use crate::ports::error::PortResult;
use async_trait::async_trait;

#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Delete the LOGIN and, for every known opt-in, its erasure marker first, then the opt-in,
    /// its PSID link and pending stop (found from the deleted opt-in itself, not a separate read)
    /// and its login link item. Idempotent. Returns how many items were deleted.
    async fn erase(&self, person: &PersonItems, now: Millis) -> PortResult<u32>;
    /// When the opt-in behind `marker` was erased, if it was.
    async fn erased_at(&self, marker: &str) -> PortResult<Option<Millis>>;
    /// Store the status record (the first one for a code wins; a repeat keeps it).
    async fn put_deletion_record(&self, record: &DeletionRecord) -> PortResult<DeletionRecord>;
    async fn get_deletion_record(&self, code: &str) -> PortResult<Option<DeletionRecord>>;
}
