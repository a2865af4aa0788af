//! The Page state item and the opt-in transitions of a Page pause. Real adapter:
//! [`crate::adapters::dynamodb::pages`]; twin: [`crate::adapters::memory::pages`].

use crate::domain::opt_in::{LastError, Millis, OptIn, OptInKey};
use crate::domain::page::{PageChange, PageState, PauseCause};
use crate::ports::drift::DriftStatusStore;
use crate::ports::error::PortResult;
use crate::ports::opt_ins::Transitioned;
use async_trait::async_trait;

/// The Page state item and the opt-in transitions of a Page pause. Every change is conditional:
/// an adapter implements [`Self::change_page`] from the guard of [`crate::domain::page::PageEvent`] (the
/// one definition), and the named changes below are that call. Each returns `true` only for the
/// call that made the change (that caller alerts or re-queues, so it happens once).
///
/// The drift check's status items are the Page's too ([`DriftStatusStore`], a supertrait): every
/// wiring that has a Page store has them, with no field of its own in the port bundle.
#[async_trait]
pub trait PageStateStore: DriftStatusStore + Send + Sync {
    async fn get_page(&self, page_id: &str) -> PortResult<Option<PageState>>;

    /// Apply `change` at `now` when its event's guard holds for the stored item (a missing item is
    /// an active Page). One conditional write.
    async fn change_page(
        &self,
        page_id: &str,
        change: &PageChange,
        now: Millis,
    ) -> PortResult<bool>;

    /// ACTIVE (or no item) → PAUSED for `cause`, first probe at `probe_at`. A
    /// [`PauseCause::PolicyBlock`] is a [`Self::block_page`].
    async fn pause_page(
        &self,
        page_id: &str,
        cause: PauseCause,
        reason: &LastError,
        now: Millis,
        probe_at: Millis,
    ) -> PortResult<bool> {
        let change = PageChange::pause(cause, reason, probe_at);
        self.change_page(page_id, &change, now).await
    }

    /// Meta's `block`: any state but blocked → PAUSED by [`PauseCause::PolicyBlock`], with no
    /// probe. A pause of ours is replaced by the block.
    async fn block_page(&self, page_id: &str, reason: &LastError, now: Millis) -> PortResult<bool> {
        let change = PageChange::Block {
            reason: reason.clone(),
        };
        self.change_page(page_id, &change, now).await
    }

    /// Meta's `unblock`: blocked → ACTIVE. A pause of ours is left alone (its probe resumes it).
    async fn unblock_page(&self, page_id: &str, now: Millis) -> PortResult<bool> {
        self.change_page(page_id, &PageChange::Unblock, now).await
    }

    /// Take the probe slot: paused by us (not blocked) with `probe_at <= now` → `probe_at =
    /// next_probe_at`. `true` for the one sender that may send a probe now.
    async fn take_probe(
        &self,
        page_id: &str,
        now: Millis,
        next_probe_at: Millis,
    ) -> PortResult<bool> {
        let change = PageChange::TakeProbe { next_probe_at };
        self.change_page(page_id, &change, now).await
    }

    /// A probe was accepted: paused by us (not blocked) → ACTIVE. A probe never lifts a block.
    async fn resume_page(&self, page_id: &str, now: Millis) -> PortResult<bool> {
        self.change_page(page_id, &PageChange::ProbeAccepted, now)
            .await
    }

    /// OPTED_IN | RETRYING → PAUSED: a job found its Page paused.
    async fn park_opt_in(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned>;

    /// PAUSED → RETRYING, only before the deadline.
    async fn resume_opt_in(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned>;

    /// The Page's PAUSED opt-ins, earliest deadline first, at most `limit`.
    async fn paused_opt_ins(&self, page_id: &str, limit: usize) -> PortResult<Vec<OptIn>>;
}
