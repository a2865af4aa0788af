//! Promise 3: a Page Meta blocked stays silent until Meta unblocks it; pause, block, unblock,
//! resume and re-queue live here, for the sender's probe, the policy webhook and the sweep alike.
//!
//! The Page item's rules are [`crate::domain::page::PageEvent`]'s guards (a block is recorded from any
//! state, only an unblock lifts it, a probe never does). This file adds what follows a change:
//! the alert, and the re-queue of the Page's PAUSED opt-ins when it is active again. The re-queue
//! runs concurrently (at most [`REQUEUE_CONCURRENCY`] at once), retries each enqueue a few times,
//! and reports what it could not queue as an error, so the policy webhook answers 503 and Meta
//! redelivers. A redelivered unblock finds the Page already ACTIVE and still queues what the first
//! delivery left behind ([`PageState::left_behind`]); the sweep does the same every run, so
//! nothing is lost because the Page was set ACTIVE before its opt-ins were queued.

use crate::config::settings::Config;
use crate::domain::alert::{Alert, AlertKind};
use crate::domain::jobs::SendJob;
use crate::domain::opt_in::{LastError, Millis, OptIn, OptInKey};
use crate::domain::page::{PageState, PauseCause};
use crate::ports::alerts::Alerts;
use crate::ports::clock::Clock;
use crate::ports::error::{PortError, PortResult};
use crate::ports::pages::PageStateStore;
use crate::ports::queue::SendQueue;
use futures::StreamExt;
use std::collections::HashSet;
use std::time::Duration;
use tracing::{error, info, warn};

/// Most paused opt-ins one re-queue reads (the due index holds only unsent opt-ins).
pub const REQUEUE_LIMIT: usize = 20_000;
/// Enqueues in flight at once during a re-queue.
pub const REQUEUE_CONCURRENCY: usize = 16;
/// Paused opt-ins (earliest deadline first) looked at for one that can still be the probe.
const PROBE_CANDIDATES: usize = 50;
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

impl<'a> PagePorts<'a> {
    /// The Page use cases over a function's ports, with the re-queue margin its configuration
    /// gives ([`requeue_margin_ms`]): the one wiring the webhook, the sender and the sweep share.
    pub fn new(
        pages: &'a dyn PageStateStore,
        queue: &'a dyn SendQueue,
        alerts: &'a dyn Alerts,
        clock: &'a dyn Clock,
        config: &Config,
    ) -> Self {
        Self {
            pages,
            queue,
            alerts,
            clock,
            margin_ms: requeue_margin_ms(config),
        }
    }
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
        // Meta's reasons end in a period of their own ("… policies.").
        let reason = reason.trim_end().trim_end_matches('.');
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

    /// The sweep's part for a paused Page: when its probe chain is broken
    /// ([`PageState::probe_chain_broken`]: the prober crashed before queueing the next probe), queue
    /// one probe job ([`Self::queue_probe`]). `true` when one was queued.
    pub async fn restart_probe_chain(
        &self,
        page_id: &str,
        probe_interval_ms: Millis,
    ) -> PortResult<bool> {
        match self.pages.get_page(page_id).await? {
            Some(page) if page.probe_chain_broken(self.clock.now(), probe_interval_ms) => {
                self.queue_probe(page_id, None).await
            }
            _ => Ok(false),
        }
    }

    /// Queue one job for the Page's PAUSED opt-in (not `except`) with the earliest deadline a send
    /// can still reach: delivered while the probe is due, it takes the probe slot. `true` when one
    /// was queued; `false` when no paused opt-in can be sent any more (a new opt-in probes then).
    pub async fn queue_probe(&self, page_id: &str, except: Option<&OptInKey>) -> PortResult<bool> {
        let now = self.clock.now();
        let paused = self.pages.paused_opt_ins(page_id, PROBE_CANDIDATES).await?;
        let Some(opt_in) = paused
            .iter()
            .filter(|o| o.deadline_at.saturating_sub(now) > self.margin_ms)
            .find(|o| Some(&o.key()) != except)
        else {
            return Ok(false);
        };
        self.queue.enqueue(&SendJob::for_opt_in(opt_in)).await?;
        Ok(true)
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
            error!(
                page_id,
                failed, total, "paused opt-ins could not be queued again"
            );
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
        crate::use_cases::alert::publish(
            self.alerts,
            &Alert::for_page(page_id, AlertKind::PolicyEnforcement, paused, detail),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::alerts::MemoryAlerts;
    use crate::adapters::memory::clock::ManualClock;
    use crate::adapters::memory::opt_ins::MemoryOptInStore;
    use crate::domain::opt_in::{HOUR_MS, OptIn};
    use crate::domain::page::PROBE_CHAIN_SLACK_MS;
    use crate::ports::opt_ins::OptInStore;
    use async_trait::async_trait;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const NOW: Millis = 1_795_536_000_000;

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
    const PAGE: &str = "p";

    /// A queue that fails some logins a number of times (or always), and measures concurrency.
    #[derive(Default)]
    struct FlakyQueue {
        jobs: Mutex<Vec<SendJob>>,
        failures: Mutex<HashMap<String, u32>>,
        down: AtomicBool,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    impl FlakyQueue {
        fn logins(&self) -> Vec<String> {
            let mut l: Vec<String> = lock(&self.jobs)
                .iter()
                .map(|j| j.login_id.clone())
                .collect();
            l.sort();
            l
        }
    }

    #[async_trait]
    impl SendQueue for FlakyQueue {
        async fn enqueue(&self, job: &SendJob) -> PortResult<()> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let fail = self.down.load(Ordering::SeqCst)
                || match lock(&self.failures).get_mut(&job.login_id) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                };
            if fail {
                return Err(PortError::new("flaky-queue", "injected failure"));
            }
            lock(&self.jobs).push(job.clone());
            Ok(())
        }

        async fn enqueue_job(&self, job: &crate::domain::jobs::Job) -> PortResult<()> {
            match job {
                crate::domain::jobs::Job::Initial(job) => self.enqueue(job).await,
                _ => Ok(()),
            }
        }
    }

    struct World {
        store: MemoryOptInStore,
        queue: FlakyQueue,
        alerts: MemoryAlerts,
        clock: ManualClock,
    }

    impl World {
        fn new() -> Self {
            Self {
                store: MemoryOptInStore::new(),
                queue: FlakyQueue::default(),
                alerts: MemoryAlerts::default(),
                clock: ManualClock::at(NOW),
            }
        }

        fn ports(&self) -> PagePorts<'_> {
            PagePorts {
                pages: &self.store,
                queue: &self.queue,
                alerts: &self.alerts,
                clock: &self.clock,
                margin_ms: 11_000,
            }
        }

        /// An opt-in of the Page, parked (PAUSED) now.
        async fn parked(&self, login: &str) -> OptIn {
            let o = OptIn::new(OptInKey::new(PAGE, login), Some(NOW), NOW, 24 * HOUR_MS, 0);
            self.store.create_opt_in(&o).await.unwrap();
            let now = self.clock.now();
            assert!(
                self.store
                    .park_opt_in(&o.key(), now)
                    .await
                    .unwrap()
                    .is_done()
            );
            o
        }

        /// The Page paused by us (a configuration error, first probe in a minute) and one
        /// opt-in, "a", parked.
        async fn paused_by_us_with_a_parked_opt_in() -> Self {
            let w = Self::new();
            w.ports()
                .pause(
                    PAGE,
                    PauseCause::Configuration,
                    &Self::config_error(),
                    NOW + 60_000,
                )
                .await
                .unwrap();
            w.parked("a").await;
            w
        }

        fn config_error() -> LastError {
            LastError {
                code: 190,
                ..LastError::default()
            }
        }
    }

    #[tokio::test]
    async fn unblock_requeues_concurrently_retries_each_and_reports_what_it_could_not_queue() {
        let w = World::new();
        for i in 0..40 {
            w.parked(&format!("l{i:02}")).await;
        }
        lock(&w.queue.failures).insert("l03".into(), ENQUEUE_ATTEMPTS - 1);
        lock(&w.queue.failures).insert("l07".into(), u32::MAX);
        assert!(w.ports().block(PAGE, "spam").await.unwrap());
        let result = w.ports().unblock(PAGE).await;
        assert!(
            matches!(result, Err(PageError::Requeue { failed: 1, .. })),
            "{result:?}"
        );
        let queued = w.queue.logins();
        assert_eq!(queued.len(), 39, "one failure does not stop the rest");
        assert!(queued.contains(&"l03".to_owned()), "retried until queued");
        assert!(!queued.contains(&"l07".to_owned()));
        let max = w.queue.max_in_flight.load(Ordering::SeqCst);
        assert!(
            (2..=REQUEUE_CONCURRENCY).contains(&max),
            "concurrent and bounded: {max}"
        );
        assert!(!w.store.get_page(PAGE).await.unwrap().unwrap().is_paused());
        let alerts = w.alerts.published();
        assert_eq!(alerts.len(), 2, "block and unblock");
        assert!(alerts[1].detail.contains("1 could not be queued yet"));
    }

    #[tokio::test]
    async fn a_redelivered_unblock_on_an_active_page_still_requeues_paused_opt_ins() {
        let w = World::new();
        w.ports().block(PAGE, "spam").await.unwrap();
        for login in ["a", "b", "c"] {
            w.parked(login).await;
        }
        // The first delivery sets the Page ACTIVE, then cannot queue anything: 503.
        w.queue.down.store(true, Ordering::SeqCst);
        w.clock.advance(1_000);
        assert!(w.ports().unblock(PAGE).await.is_err());
        assert!(!w.store.get_page(PAGE).await.unwrap().unwrap().is_paused());
        // Meta redelivers: the Page is already ACTIVE, and the opt-ins are queued all the same.
        w.queue.down.store(false, Ordering::SeqCst);
        w.clock.advance(1_000);
        assert_eq!(
            w.ports().unblock(PAGE).await.unwrap(),
            Unblocked::AlreadyActive { queued: 3 }
        );
        assert_eq!(w.queue.logins(), ["a", "b", "c"]);
        assert_eq!(w.alerts.published().len(), 2, "no second unblock alert");
    }

    /// Issue 14: Meta's reason ends in a period, and the block alert added its own ("policies..").
    #[tokio::test]
    async fn the_block_alert_does_not_end_a_sentence_twice() {
        let w = World::new();
        let reason = "The Page violated the Messenger policies.";
        assert!(w.ports().block(PAGE, reason).await.unwrap());
        let alerts = w.alerts.published();
        assert_eq!(alerts.len(), 1);
        let detail = &alerts[0].detail;
        assert!(
            detail.contains("Messenger policies. Every send"),
            "{detail}"
        );
        assert!(!detail.contains(".."), "{detail}");
    }

    #[tokio::test]
    async fn a_probe_never_resumes_a_blocked_page() {
        let w = World::paused_by_us_with_a_parked_opt_in().await;
        assert!(w.ports().block(PAGE, "spam").await.unwrap());
        w.clock.advance(120_000);
        assert_eq!(w.ports().probe_accepted(PAGE).await.unwrap(), None);
        assert!(w.store.get_page(PAGE).await.unwrap().unwrap().is_blocked());
        assert!(w.queue.logins().is_empty());
        // The unblock resumes it and queues the parked opt-in.
        assert_eq!(
            w.ports().unblock(PAGE).await.unwrap(),
            Unblocked::Lifted { queued: 1 }
        );
        assert_eq!(w.queue.logins(), ["a"]);
    }

    #[tokio::test]
    async fn unblock_leaves_a_pause_of_ours_to_its_probe() {
        let w = World::paused_by_us_with_a_parked_opt_in().await;
        assert_eq!(
            w.ports().unblock(PAGE).await.unwrap(),
            Unblocked::PausedByUs(Some(PauseCause::Configuration))
        );
        assert!(w.store.get_page(PAGE).await.unwrap().unwrap().is_paused());
        assert!(w.queue.logins().is_empty());
        assert_eq!(
            w.ports().unblock("never-paused").await.unwrap(),
            Unblocked::AlreadyActive { queued: 0 }
        );
    }

    #[tokio::test]
    async fn a_probe_job_goes_to_another_paused_opt_in_a_send_can_still_reach() {
        let w = World::paused_by_us_with_a_parked_opt_in().await;
        let close = OptIn::new(OptInKey::new(PAGE, "close"), Some(NOW), NOW, 10_000, 0);
        w.store.create_opt_in(&close).await.unwrap();
        w.store.park_opt_in(&close.key(), NOW).await.unwrap();
        w.parked("b").await;
        let a = OptInKey::new(PAGE, "a");
        // Earliest deadline first, but not "close" (too near its deadline) and not the asker.
        assert!(w.ports().queue_probe(PAGE, Some(&a)).await.unwrap());
        assert_eq!(w.queue.logins(), ["b"]);
        // The chain is alive (its probe a minute off): the sweep queues nothing.
        assert!(!w.ports().restart_probe_chain(PAGE, 60_000).await.unwrap());
        w.clock.advance(120_001 + PROBE_CHAIN_SLACK_MS);
        assert!(w.ports().restart_probe_chain(PAGE, 60_000).await.unwrap());
        assert_eq!(w.queue.logins(), ["a", "b"]);
    }

    #[tokio::test]
    async fn the_sweep_requeues_what_a_resume_left_behind_and_nothing_paused_after_it() {
        let w = World::new();
        w.ports()
            .pause(PAGE, PauseCause::Configuration, &World::config_error(), NOW)
            .await
            .unwrap();
        w.parked("left").await;
        let close = OptIn::new(OptInKey::new(PAGE, "close"), Some(NOW), NOW, 20_000, 0);
        w.store.create_opt_in(&close).await.unwrap();
        w.store.park_opt_in(&close.key(), NOW).await.unwrap();
        // The probe is accepted but the process stops before queueing (simulated: queue down).
        w.queue.down.store(true, Ordering::SeqCst);
        w.clock.advance(10_000);
        assert!(w.ports().probe_accepted(PAGE).await.is_err());
        w.queue.down.store(false, Ordering::SeqCst);
        // Paused after the resume (bounded retries exhausted): waits for the next resume.
        w.clock.advance(1_000);
        w.parked("after").await;
        let window = 24 * HOUR_MS;
        let mut once = HashSet::new();
        assert_eq!(
            w.ports()
                .requeue_for_sweep(PAGE, window, &mut once)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            w.queue.logins(),
            ["left"],
            "not 'after', not 'close' (too near its deadline)"
        );
        // Within one sweep, once.
        assert_eq!(
            w.ports()
                .requeue_for_sweep(PAGE, window, &mut once)
                .await
                .unwrap(),
            0
        );
        // One opt-in window after the resume, nothing is looked for any more.
        w.clock.advance(window);
        assert_eq!(
            w.ports()
                .requeue_for_sweep(PAGE, window, &mut HashSet::new())
                .await
                .unwrap(),
            0
        );
        assert_eq!(w.queue.logins(), ["left"]);
    }
}
