//! Promise 3: a Page Meta blocked stays silent until Meta unblocks it; pause, block, unblock,
//! resume and re-queue live here, for the sender's probe, the policy webhook and the sweep alike.
//!
//! The Page item's rules are [`crate::page::PageEvent`]'s guards (a block is recorded from any
//! state, only an unblock lifts it, a probe never does). This file adds what follows a change:
//! the alert, and the re-queue of the Page's PAUSED opt-ins when it is active again. The re-queue
//! runs concurrently (at most [`REQUEUE_CONCURRENCY`] at once), retries each enqueue a few times,
//! and reports what it could not queue as an error, so the policy webhook answers 503 and Meta
//! redelivers. A redelivered unblock finds the Page already ACTIVE and still queues what the first
//! delivery left behind ([`PageState::left_behind`]); the sweep does the same every run, so
//! nothing is lost because the Page was set ACTIVE before its opt-ins were queued.

use crate::config::Config;
use crate::domain::{Alert, AlertKind, LastError, Millis, OptIn, OptInKey, SendJob};
use crate::page::{PageState, PauseCause};
use crate::ports::send::PageStateStore;
use crate::ports::{Alerts, Clock, PortError, PortResult, SendQueue};
use futures::StreamExt;
use std::collections::HashSet;
use std::time::Duration;
use tracing::{error, info, warn};

/// Most paused opt-ins one re-queue reads (the due index holds only unsent opt-ins).
pub const REQUEUE_LIMIT: usize = 20_000;
/// Enqueues in flight at once during a re-queue.
pub const REQUEUE_CONCURRENCY: usize = 16;
/// Tries per enqueue before the re-queue counts it as not queued.
pub const ENQUEUE_ATTEMPTS: u32 = 3;
/// The due index is eventually consistent: a resume looks for paused opt-ins twice, this far
/// apart, so that an opt-in parked just before the resume is not left behind (the second pass
/// also retries what the first could not queue).
pub const RESUME_SECOND_PASS: Duration = Duration::from_millis(1_500);
/// Time kept beyond the Graph timeout for the queue's delivery delay (the sender's
/// `LANDING_SLACK_MS`).
const LANDING_SLACK_MS: Millis = 1_000;

/// A failure of a Page use case.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Port(#[from] PortError),
    /// The Page is active but some of its paused opt-ins are not queued yet. They stay PAUSED;
    /// a redelivered unblock or the next sweep queues them.
    #[error("{failed} of {total} paused opt-ins of the Page could not be queued again")]
    Requeue { failed: usize, total: usize },
}

impl From<PageError> for PortError {
    fn from(e: PageError) -> Self {
        match e {
            PageError::Port(e) => e,
            e @ PageError::Requeue { .. } => PortError::new("send-queue", e.to_string()),
        }
    }
}

/// What Meta's `unblock` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unblocked {
    /// This call lifted the block; `queued` paused opt-ins were queued again.
    Lifted { queued: usize },
    /// The Page was already active (a redelivered unblock, or no block was recorded): `queued`
    /// opt-ins it had left behind were queued.
    AlreadyActive { queued: usize },
    /// The Page is paused by us (configuration, restriction), not blocked: the unblock leaves it
    /// to its probe.
    PausedByUs(Option<PauseCause>),
}

/// The ports the Page use cases need, borrowed from a function's `Deps`.
pub struct PagePorts<'a> {
    pub pages: &'a dyn PageStateStore,
    pub queue: &'a dyn SendQueue,
    pub alerts: &'a dyn Alerts,
    pub clock: &'a dyn Clock,
    /// An opt-in is re-queued only while a send can still end before its deadline: this much
    /// before it ([`requeue_margin_ms`]).
    pub margin_ms: Millis,
}

/// How long before its deadline a paused opt-in is still worth a job: the longest a Graph request
/// takes, plus the queue's delivery slack. Closer than that, the sweep expires it with an alert.
pub fn requeue_margin_ms(config: &Config) -> Millis {
    Millis::try_from(config.graph_timeout_ms)
        .unwrap_or(Millis::MAX)
        .saturating_add(LANDING_SLACK_MS)
}

impl PagePorts<'_> {
    /// A send error of ours pauses the Page (only an active one). `true` for the call that paused
    /// it: that caller alerts.
    pub async fn pause(
        &self,
        page_id: &str,
        cause: PauseCause,
        reason: &LastError,
        probe_at: Millis,
    ) -> PortResult<bool> {
        let now = self.clock.now();
        self.pages
            .pause_page(page_id, cause, reason, now, probe_at)
            .await
    }

    /// Meta's `block`: recorded whatever the Page's state (a pause of ours included), with no
    /// probe. Alerts once, from the call that recorded it. `true` when this call recorded it.
    pub async fn block(&self, page_id: &str, reason: &str) -> PortResult<bool> {
        let now = self.clock.now();
        let error = LastError {
            message: format!("policy enforcement block: {reason}")
                .chars()
                .take(200)
                .collect(),
            ..LastError::default()
        };
        if !self.pages.block_page(page_id, &error, now).await? {
            info!(page_id, "Page already blocked by Meta");
            return Ok(false);
        }
        warn!(page_id, "Page blocked by Meta: every send stopped");
        let detail = format!(
            "Meta blocked the Page: {reason}. Every send is stopped (no probe either) until Meta unblocks it; opt-ins wait in PAUSED and are queued again on the unblock if still before their deadline."
        );
        self.alert(page_id, true, detail).await;
        Ok(true)
    }

    /// Meta's `unblock`: lift the block (only a block) and queue the Page's paused opt-ins again.
    /// On an already active Page (Meta redelivering after our 503) it still queues what was left
    /// behind. `Err` when some could not be queued: the caller asks Meta to redeliver.
    pub async fn unblock(&self, page_id: &str) -> Result<Unblocked, PageError> {
        let now = self.clock.now();
        if self.pages.unblock_page(page_id, now).await? {
            let mut queued = HashSet::new();
            let result = self.requeue_after_resume(page_id, &mut queued).await;
            let failed = match &result {
                Err(PageError::Requeue { failed, .. }) => *failed,
                _ => 0,
            };
            info!(
                page_id,
                queued = queued.len(),
                failed,
                "Page unblocked by Meta: paused opt-ins queued again"
            );
            let mut detail = format!(
                "Meta unblocked the Page; {} paused opt-in(s) queued again.",
                queued.len()
            );
            if failed > 0 {
                detail.push_str(&format!(
                    " {failed} could not be queued yet: Meta's redelivery and the sweep queue them."
                ));
            }
            self.alert(page_id, false, detail).await;
            result?;
            return Ok(Unblocked::Lifted {
                queued: queued.len(),
            });
        }
        match self.pages.get_page(page_id).await? {
            Some(page) if page.is_paused() => {
                // Blocked again since, or paused by us: nothing to queue while it is paused.
                warn!(page_id, cause = ?page.cause, "unblock for a Page that is not blocked; it stays paused");
                if !page.is_blocked() {
                    let detail = "Meta unblocked the Page, but sending stays PAUSED for our own error (see the earlier pause alert); the next accepted probe resumes it.";
                    self.alert(page_id, true, detail).await;
                }
                Ok(Unblocked::PausedByUs(page.cause))
            }
            Some(page) => {
                let queued = self
                    .requeue_left_behind(&page, Millis::MAX, &mut HashSet::new())
                    .await?;
                info!(
                    page_id,
                    queued, "unblock for an active Page: left-behind opt-ins queued again"
                );
                Ok(Unblocked::AlreadyActive { queued })
            }
            None => Ok(Unblocked::AlreadyActive { queued: 0 }),
        }
    }

    /// A probe was accepted: resume the Page (never a blocked one) and queue its paused opt-ins
    /// again. `Ok(None)` when this call did not resume it (another sender did, or it is blocked).
    pub async fn probe_accepted(&self, page_id: &str) -> Result<Option<usize>, PageError> {
        let now = self.clock.now();
        if !self.pages.resume_page(page_id, now).await? {
            return Ok(None);
        }
        let mut queued = HashSet::new();
        let result = self.requeue_after_resume(page_id, &mut queued).await;
        warn!(
            page_id,
            requeued = queued.len(),
            "Page resumed: a probe was accepted"
        );
        result.map(|()| Some(queued.len()))
    }

    /// The sweep's part: when the Page is active and resumed recently enough
    /// ([`PageState::may_have_left_behind`] with the opt-in window), queue the PAUSED opt-ins its
    /// resume left behind. `already` holds the opt-ins this sweep has queued: each at most once
    /// per sweep. Returns how many were queued.
    pub async fn requeue_for_sweep(
        &self,
        page_id: &str,
        window_ms: Millis,
        already: &mut HashSet<OptInKey>,
    ) -> Result<usize, PageError> {
        match self.pages.get_page(page_id).await? {
            Some(page) => self.requeue_left_behind(&page, window_ms, already).await,
            None => Ok(0),
        }
    }

    async fn requeue_left_behind(
        &self,
        page: &PageState,
        window_ms: Millis,
        already: &mut HashSet<OptInKey>,
    ) -> Result<usize, PageError> {
        if !page.may_have_left_behind(self.clock.now(), window_ms) {
            return Ok(0);
        }
        let before = already.len();
        self.requeue(&page.page_id, |o| page.left_behind(o), already)
            .await?;
        Ok(already.len() - before)
    }

    /// Two passes over the Page's PAUSED opt-ins (see [`RESUME_SECOND_PASS`]); the second also
    /// retries what the first could not queue. Only the second pass's failures are returned.
    async fn requeue_after_resume(
        &self,
        page_id: &str,
        queued: &mut HashSet<OptInKey>,
    ) -> Result<(), PageError> {
        if let Err(e) = self.requeue(page_id, |_| true, queued).await {
            warn!(page_id, error = %e, "first re-queue pass incomplete; trying again");
        }
        tokio::time::sleep(RESUME_SECOND_PASS).await;
        self.requeue(page_id, |_| true, queued).await
    }

    /// Queue a job for every PAUSED opt-in of the Page that `keep` selects, can still be sent
    /// before its deadline and is not in `queued`; add those queued to `queued`. The job resumes
    /// the opt-in itself (PAUSED on an active Page → RETRYING → claim), so a failed enqueue never
    /// strands an opt-in beyond the next redelivery or sweep.
    async fn requeue(
        &self,
        page_id: &str,
        keep: impl Fn(&OptIn) -> bool,
        queued: &mut HashSet<OptInKey>,
    ) -> Result<(), PageError> {
        let now = self.clock.now();
        let paused = self.pages.paused_opt_ins(page_id, REQUEUE_LIMIT).await?;
        let todo: Vec<OptInKey> = paused
            .iter()
            .filter(|o| o.deadline_at.saturating_sub(now) > self.margin_ms && keep(o))
            .map(OptIn::key)
            .filter(|k| !queued.contains(k))
            .collect();
        let total = todo.len();
        // Futures collected first, then polled a bounded number at a time (a closure-built
        // stream would not be provably `Send`).
        let enqueues: Vec<_> = todo
            .into_iter()
            .map(|key| async move {
                let ok = self.enqueue_retried(&key).await;
                (key, ok)
            })
            .collect();
        let mut stream = futures::stream::iter(enqueues).buffer_unordered(REQUEUE_CONCURRENCY);
        let mut failed = 0;
        while let Some((key, ok)) = stream.next().await {
            if ok {
                queued.insert(key);
            } else {
                failed += 1;
            }
        }
        if failed > 0 {
            error!(page_id, failed, total, "paused opt-ins could not be queued again");
            return Err(PageError::Requeue { failed, total });
        }
        Ok(())
    }

    async fn enqueue_retried(&self, key: &OptInKey) -> bool {
        let job = SendJob::for_key(key);
        for attempt in 0..ENQUEUE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            match self.queue.enqueue(&job).await {
                Ok(()) => return true,
                Err(e) => warn!(error = %e, attempt, "could not re-queue a paused opt-in"),
            }
        }
        false
    }

    async fn alert(&self, page_id: &str, paused: bool, detail: impl Into<String>) {
        crate::actions::publish(
            self.alerts,
            &Alert::for_page(page_id, AlertKind::PolicyEnforcement, paused, detail),
        )
        .await;
    }
}
