//! The drift check's ports (issue 13 §2): reading Meta's answers about the Page's setup
//! ([`MetaSetup`]: the sender's Graph admin calls) and the last-known status of each check
//! ([`DriftStatusStore`]: conditional writes on the table, so that a problem alerts once and the
//! sweep enqueues one check per day whatever the number of sweeps or instances).
//!
//! Real adapters: `adapters::graph_admin::PageSetupReader`, `adapters::dynamodb::drift`; twins:
//! `adapters::memory::drift`.

use crate::domain::drift::SetupAnswers;
use crate::domain::opt_in::Millis;
use crate::ports::error::PortResult;
use async_trait::async_trait;

/// What Meta says about the Page's setup.
#[async_trait]
pub trait MetaSetup: Send + Sync {
    /// Ask Graph once: `None` when this wiring cannot ask (no admin client, see
    /// [`MetaSetupOff`]).
    async fn read_setup(&self, page_id: &str) -> Option<SetupAnswers>;
}

/// A wiring without Graph admin calls (tests that do not exercise drift): every check is "not
/// checked".
pub struct MetaSetupOff;

#[async_trait]
impl MetaSetup for MetaSetupOff {
    async fn read_setup(&self, _page_id: &str) -> Option<SetupAnswers> {
        None
    }
}

/// What recording a check's status changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// ok (or never recorded) → failing: alert, once.
    NewProblem,
    /// failing → ok: record (and say) the recovery, once.
    Recovered,
    /// As it was.
    Unchanged,
}

/// The last-known status of each drift check of a Page, and the once-a-day claim. Each change is
/// one conditional write; the write that made a change is the only one told so.
#[async_trait]
pub trait DriftStatusStore: Send + Sync {
    /// Take `day`'s drift check of `page_id` (`YYYY-MM-DD`): `true` for the first call of the day
    /// only (`attribute_not_exists(day) OR day < :day`).
    async fn claim_drift_day(&self, page_id: &str, day: &str, now: Millis) -> PortResult<bool>;

    /// Record `check` as failing or passing at `now`.
    async fn record_drift_status(
        &self,
        page_id: &str,
        check: &str,
        failing: bool,
        now: Millis,
    ) -> PortResult<StatusChange>;
}
