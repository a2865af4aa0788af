//! In-memory twins of the drift check's ports: [`DriftStatusStore`] on [`MemoryOptInStore`]
//! (the same rules as `adapters::dynamodb::drift`'s conditions, tested against moto in `tests/`),
//! and [`MemoryMetaSetup`], Meta's answers as a test sets them.

use crate::adapters::memory::opt_ins::MemoryOptInStore;
use crate::adapters::memory::sync::lock;
use crate::domain::drift::SetupAnswers;
use crate::domain::opt_in::Millis;
use crate::ports::drift::{DriftStatusStore, MetaSetup, StatusChange};
use crate::ports::error::PortResult;
use async_trait::async_trait;
use std::sync::Mutex;

impl MemoryOptInStore {
    /// The recorded status of `check` (`None`: never recorded).
    pub fn drift_status(&self, page_id: &str, check: &str) -> Option<bool> {
        lock(&self.drift_failing)
            .get(&(page_id.to_owned(), check.to_owned()))
            .copied()
    }
}

#[async_trait]
impl DriftStatusStore for MemoryOptInStore {
    async fn claim_drift_day(&self, page_id: &str, day: &str, _now: Millis) -> PortResult<bool> {
        self.check()?;
        let mut days = lock(&self.drift_days);
        match days.get(page_id) {
            Some(claimed) if claimed.as_str() >= day => Ok(false),
            _ => {
                days.insert(page_id.to_owned(), day.to_owned());
                Ok(true)
            }
        }
    }

    async fn record_drift_status(
        &self,
        page_id: &str,
        check: &str,
        failing: bool,
        _now: Millis,
    ) -> PortResult<StatusChange> {
        self.check()?;
        let mut all = lock(&self.drift_failing);
        let key = (page_id.to_owned(), check.to_owned());
        let was_failing = all.get(&key).copied().unwrap_or(false);
        Ok(match (was_failing, failing) {
            (false, true) => {
                all.insert(key, true);
                StatusChange::NewProblem
            }
            (true, false) => {
                all.insert(key, false);
                StatusChange::Recovered
            }
            _ => StatusChange::Unchanged,
        })
    }
}

/// Meta's answers as the test sets them ([`Self::set`]); `None` until set.
#[derive(Default)]
pub struct MemoryMetaSetup {
    answers: Mutex<Option<SetupAnswers>>,
    /// How many times the answers were read (one drift check reads once).
    pub reads: std::sync::atomic::AtomicUsize,
}

impl MemoryMetaSetup {
    pub fn set(&self, answers: SetupAnswers) {
        *lock(&self.answers) = Some(answers);
    }
}

#[async_trait]
impl MetaSetup for MemoryMetaSetup {
    async fn read_setup(&self, _page_id: &str) -> Option<SetupAnswers> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        lock(&self.answers).clone()
    }
}
