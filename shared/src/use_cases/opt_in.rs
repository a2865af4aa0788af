//! Record an opt-in and arrange what follows it (the send job, the deadline alert): the one path
//! of the `messaging_optins` webhook and of a login with `START_AT_LOGIN`, so both pass the same
//! erasure check and conditional write, and whichever comes second finds the opt-in there and is a
//! duplicate (no second job, no second message). What follows keeps the opt-in watched
//! ([`crate::domain::attention`]): its job and schedule, or else the due index; an error is
//! returned only when none of them could be arranged, so the webhook answers 503 and Meta's
//! redelivery tries again.

use crate::domain::attention::first_attention;
use crate::domain::erasure::erasure_marker;
use crate::domain::jobs::{DeadlineCheck, SendJob};
use crate::domain::opt_in::{Millis, OptIn, OptInKey, State, login_id_prefix};
use crate::ports::error::PortResult;
use crate::ports::opt_ins::{ConsentGuard, OptInStore, Recorded};
use crate::ports::queue::SendQueue;
use crate::ports::scheduler::DeadlineScheduler;
use crate::use_cases::expire::Deadlines;
use tracing::{error, info};

/// Where a consent was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The `messaging_optins` webhook, with its own event time when it carried one.
    Webhook { timestamp: Option<Millis> },
    /// A login that granted `user_messenger_contact`, with the derived login_id
    /// (`START_AT_LOGIN`): opted in at the login's time. Never a new consent after an opt-out
    /// (only Meta's webhook, dated, can be one).
    Login,
}

/// What recording did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptInRecorded {
    /// A new opt-in (or a new consent after an opt-out): the send is queued, the alert arranged.
    New(Box<OptIn>),
    /// One was already there (the stored copy): a redelivery, or the second of login and webhook.
    Duplicate(Box<OptIn>),
    /// From before the person's data deletion: nothing written.
    Erased,
}

/// The ports recording an opt-in needs ([`crate::ports::bundle::Ports::opt_in_recording`]).
#[derive(Clone, Copy)]
pub struct OptInRecording<'a> {
    pub store: &'a dyn OptInStore,
    pub queue: &'a dyn SendQueue,
    pub scheduler: &'a dyn DeadlineScheduler,
    pub deadlines: Deadlines<'a>,
    pub window_ms: Millis,
    pub alert_lead_ms: Millis,
}

impl OptInRecording<'_> {
    /// Record the opt-in of `key` seen at `now` (the write and the erasure check), then
    /// queue the send and arrange the deadline alert (or put the opt-in in the due index when
    /// either is missing). `app_secret` keys the erasure marker. An error: the opt-in may be
    /// recorded but nothing may watch it yet; the caller must make it be tried again (the webhook
    /// answers 503).
    pub async fn record(
        &self,
        key: OptInKey,
        origin: Origin,
        app_secret: &str,
        now: Millis,
    ) -> PortResult<OptInRecorded> {
        let timestamp = match origin {
            Origin::Webhook { timestamp } => timestamp,
            Origin::Login => None,
        };
        let mut opt_in = OptIn::new(key, timestamp, now, self.window_ms, self.alert_lead_ms);
        opt_in.started_at_login = origin == Origin::Login;
        let login = login_id_prefix(&opt_in.login_id);
        // The store checks the person's erasure marker after its write, and nothing is queued
        // before it returns: an opt-in from before a data deletion (a redelivered webhook, or one
        // racing the deletion) never comes back; one after it is a new consent. An opted-out opt-in is replaced only by a new consent dated
        // beyond Meta's redelivery horizon (`crate::domain::opt_in::is_new_consent`).
        let guard = ConsentGuard {
            erasure_marker: erasure_marker(app_secret, &opt_in.key()),
            event_at: timestamp.filter(|t| *t > 0).map(|_| opt_in.opted_in_at),
        };
        let recorded = self
            .store
            .record_opt_in(&opt_in, &guard)
            .await
            .inspect_err(|e| {
                error!(login_id_prefix = %login, error = %e, "could not record the opt-in");
            })?;
        let opt_in = match recorded {
            Recorded::New => {
                info!(
                    login_id_prefix = %login,
                    deadline_at = opt_in.deadline_at,
                    at_login = opt_in.started_at_login,
                    "opt-in recorded"
                );
                opt_in
            }
            Recorded::Renewed(renewed) => {
                info!(
                    login_id_prefix = %login,
                    generation = renewed.generation,
                    deadline_at = renewed.deadline_at,
                    "new consent after an opt-out recorded"
                );
                *renewed
            }
            Recorded::Erased => {
                info!(login_id_prefix = %login, "opt-in from before a data deletion; ignored");
                return Ok(OptInRecorded::Erased);
            }
            Recorded::AlreadyExists(existing) => {
                info!(
                    login_id_prefix = %login,
                    state = %existing.state,
                    at_login = origin == Origin::Login,
                    "duplicate opt-in"
                );
                match repeats_follow_up(&existing, origin) {
                    Repeat::All => self.follow_up(&existing, now, Job::Enqueue).await?,
                    Repeat::Watch(job) => self.follow_up(&existing, now, job).await?,
                    Repeat::Nothing => {}
                }
                return Ok(OptInRecorded::Duplicate(existing));
            }
        };
        self.follow_up(&opt_in, now, Job::Enqueue).await?;
        Ok(OptInRecorded::New(Box::new(opt_in)))
    }

    /// Enqueue the send (as `job` says) and arrange the deadline alert, and when either is missing
    /// put the opt-in in the due index at its first attention time, so something always watches
    /// it ([`crate::domain::attention`]): the send job and the schedule, or the sweep. Enqueue and
    /// schedule failures are logged; a failed index write is returned (the webhook answers 503,
    /// Meta redelivers, and the redelivery repeats this follow-up: [`repeats_follow_up`]).
    async fn follow_up(&self, opt_in: &OptIn, now: Millis, job: Job) -> PortResult<()> {
        let key = opt_in.key();
        let login = login_id_prefix(&key.login_id);
        let enqueue = async {
            match job {
                Job::Held => return true,
                Job::Unknown => return false,
                Job::Enqueue => {}
            }
            match self.queue.enqueue(&SendJob::for_opt_in(opt_in)).await {
                Ok(()) => true,
                Err(e) => {
                    error!(login_id_prefix = %login, error = %e, "could not enqueue the send job");
                    false
                }
            }
        };
        // Whether a deadline schedule now watches the alert.
        let arrange_alert = async {
            if opt_in.deadline_passed(now) {
                // Nothing to schedule: the sender (or the sweep) marks it EXPIRED and alerts.
                return false;
            }
            if opt_in.alert_at <= now {
                // A late webhook: the alert time has already passed, so alert now (once).
                self.deadlines
                    .alert_at_risk_once(opt_in, now, LATE_OPT_IN)
                    .await;
                return false;
            }
            let check = DeadlineCheck::for_opt_in(opt_in);
            match self
                .scheduler
                .schedule_deadline_check(&check, opt_in.alert_at)
                .await
            {
                Ok(()) => true,
                Err(e) => {
                    error!(login_id_prefix = %login, error = %e, "could not create the deadline schedule");
                    false
                }
            }
        };
        let (queued, scheduled) = futures::join!(enqueue, arrange_alert);
        if queued && scheduled {
            return Ok(());
        }
        self.watch(opt_in).await
    }

    /// Put the opt-in in the due index at its first attention time (refused when it is already
    /// terminal: then nothing needs watching).
    async fn watch(&self, opt_in: &OptIn) -> PortResult<()> {
        let at = first_attention(opt_in);
        self.store
            .watch_from(&opt_in.key(), at)
            .await
            .map(|_| ())
            .inspect_err(|e| {
                error!(
                    login_id_prefix = %login_id_prefix(&opt_in.login_id),
                    error = %e,
                    "could not put the opt-in in the due index"
                );
            })
    }
}

/// The send job, as a follow-up finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// Queue it (a new opt-in, or a redelivery before any sender touched it).
    Enqueue,
    /// A sender has the opt-in (it left OPTED_IN): its job watches the send.
    Held,
    /// Queued by a login whose process may have stopped before queueing it: not queued again (a
    /// second job would be one too many), the due index watches it (the sweep re-enqueues it if
    /// it is still OPTED_IN when it would count as stuck).
    Unknown,
}

/// What a duplicate repeats of the follow-up steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Nothing,
    /// Arrange the alert again (the schedule, or the due index when it cannot be made), with the
    /// job as it is.
    Watch(Job),
    /// Queue the job and arrange the alert again.
    All,
}

/// What a duplicate repeats: only a webhook redelivery of an unsent opt-in repeats anything (the
/// first delivery may have failed after the write, and it answered 200 only after its follow-up).
/// It queues the job again only for an opt-in the webhook itself created and no sender has
/// touched yet. After an opt-in a login created (`START_AT_LOGIN`) the webhook is the duplicate
/// `START_AT_LOGIN` expects: a second job would be one too many, but arranging the alert again
/// is free (creating an existing schedule is a no-op, not charged) and, with the due index while
/// no sender has claimed it yet, covers a login whose process stopped before its follow-up (a
/// login is not redelivered). A redelivery that finds a sender at work arranges the alert again
/// too (the delivery before may have failed to make both the schedule and the index write). A
/// login never repeats anything: the webhook's own delivery answers for it.
fn repeats_follow_up(existing: &OptIn, origin: Origin) -> Repeat {
    if existing.state.is_terminal() || !matches!(origin, Origin::Webhook { .. }) {
        Repeat::Nothing
    } else if existing.state != State::OptedIn {
        Repeat::Watch(Job::Held)
    } else if existing.started_at_login {
        Repeat::Watch(Job::Unknown)
    } else {
        Repeat::All
    }
}

/// Why a late opt-in is alerted at once.
const LATE_OPT_IN: &str =
    "the opt-in arrived after its alert time; the initial message is not yet sent";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::alerts::MemoryAlerts;
    use crate::adapters::memory::metrics::MemoryMetrics;
    use crate::adapters::memory::opt_ins::MemoryOptInStore;
    use crate::adapters::memory::queue::MemorySendQueue;
    use crate::adapters::memory::scheduler::MemoryScheduler;

    struct Twins {
        store: MemoryOptInStore,
        logins: crate::adapters::memory::logins::MemoryLoginStore,
        events: crate::adapters::memory::events::MemoryEvents,
        queue: MemorySendQueue,
        scheduler: MemoryScheduler,
        alerts: MemoryAlerts,
        metrics: MemoryMetrics,
    }

    impl Twins {
        fn new() -> Self {
            Self {
                store: MemoryOptInStore::new(),
                logins: crate::adapters::memory::logins::MemoryLoginStore::new(),
                events: crate::adapters::memory::events::MemoryEvents::default(),
                queue: MemorySendQueue::default(),
                scheduler: MemoryScheduler::default(),
                alerts: MemoryAlerts::default(),
                metrics: MemoryMetrics::default(),
            }
        }

        fn recording(&self) -> OptInRecording<'_> {
            OptInRecording {
                store: &self.store,
                queue: &self.queue,
                scheduler: &self.scheduler,
                deadlines: Deadlines {
                    store: &self.store,
                    scheduler: &self.scheduler,
                    alerts: &self.alerts,
                    metrics: &self.metrics,
                    events: crate::use_cases::events::Events {
                        publisher: &self.events,
                        logins: &self.logins,
                        opt_ins: &self.store,
                        metrics: &self.metrics,
                        redelivered: false,
                    },
                },
                window_ms: 86_400_000,
                alert_lead_ms: 7_200_000,
            }
        }

        /// Record an opt-in that must be new; the opt-in as recorded.
        async fn new_opt_in(&self, origin: Origin, now: Millis) -> OptIn {
            match self.record(origin, now).await {
                OptInRecorded::New(o) => *o,
                other => panic!("not new: {other:?}"),
            }
        }

        async fn record(&self, origin: Origin, now: Millis) -> OptInRecorded {
            self.recording()
                .record(OptInKey::new("p", "lid"), origin, "secret", now)
                .await
                .unwrap()
        }
    }

    const T: Millis = 1_795_536_000_000;

    #[tokio::test]
    async fn a_login_opt_in_is_dated_at_the_login_and_the_webhook_after_it_queues_nothing() {
        let t = Twins::new();
        let OptInRecorded::New(o) = t.record(Origin::Login, T).await else {
            panic!("the login creates the opt-in")
        };
        assert!(o.started_at_login);
        assert_eq!((o.opted_in_at, o.deadline_at), (T, T + 86_400_000));
        let webhook = Origin::Webhook {
            timestamp: Some(T - 1_000),
        };
        assert!(matches!(
            t.record(webhook, T + 2_000).await,
            OptInRecorded::Duplicate(_)
        ));
        assert_eq!(t.queue.jobs().len(), 1, "one send job");
    }

    fn fail(flag: &std::sync::atomic::AtomicBool, on: bool) {
        flag.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    const WEBHOOK: Origin = Origin::Webhook { timestamp: Some(T) };

    fn key() -> OptInKey {
        OptInKey::new("p", "lid")
    }

    #[tokio::test]
    async fn an_opt_in_its_job_and_schedule_watch_never_enters_the_due_index() {
        let t = Twins::new();
        assert!(matches!(t.record(WEBHOOK, T).await, OptInRecorded::New(_)));
        assert_eq!(t.queue.jobs().len(), 1);
        assert!(t.scheduler.get(&key()).is_some());
        assert_eq!(t.store.due_at(&key()), None, "no due-index write");
    }

    #[tokio::test]
    async fn an_opt_in_whose_job_was_not_queued_is_watched_by_the_index_from_its_first_attention() {
        let t = Twins::new();
        fail(&t.queue.fail, true);
        let o = t.new_opt_in(WEBHOOK, T).await;
        assert_eq!(t.store.due_at(&key()), Some(first_attention(&o)));
        assert_eq!(
            first_attention(&o),
            T + crate::domain::attention::STUCK_AFTER_MS
        );
    }

    #[tokio::test]
    async fn an_opt_in_whose_schedule_was_not_created_is_watched_by_the_index() {
        let t = Twins::new();
        fail(&t.scheduler.fail, true);
        let o = t.new_opt_in(WEBHOOK, T).await;
        assert_eq!(t.queue.jobs().len(), 1);
        assert_eq!(t.store.due_at(&key()), Some(first_attention(&o)));
    }

    #[tokio::test]
    async fn a_late_opt_in_no_schedule_is_made_for_is_watched_by_the_index() {
        // 23 h old: the alert time has passed (the alert is raised at once); 25 h old: the
        // deadline too. No schedule is made for either.
        for hours in [23, 25] {
            let t = Twins::new();
            let late = Origin::Webhook {
                timestamp: Some(T - hours * 3_600_000),
            };
            let o = t.new_opt_in(late, T).await;
            assert!(t.scheduler.get(&key()).is_none());
            assert_eq!(t.store.due_at(&key()), Some(first_attention(&o)));
            assert!(first_attention(&o) <= T, "due at once");
        }
    }

    #[tokio::test]
    async fn the_webhook_after_a_login_created_opt_in_arranges_its_alert_again_but_queues_nothing()
    {
        // The login's process stopped after the write, before its follow-up: no job, no schedule.
        let t = Twins::new();
        let o = OptIn::new(key(), None, T, 86_400_000, 7_200_000);
        let guard = ConsentGuard {
            erasure_marker: "m".into(),
            event_at: None,
        };
        let mut login_created = o.clone();
        login_created.started_at_login = true;
        t.store.record_opt_in(&login_created, &guard).await.unwrap();
        assert!(t.scheduler.get(&key()).is_none());
        // Meta's webhook: a duplicate that arranges the alert (the schedule watches it) and,
        // no sender having claimed it, hands it to the index (the sweep re-enqueues it if it is
        // still OPTED_IN when it would count as stuck); no second job.
        assert!(matches!(
            t.record(WEBHOOK, T + 2_000).await,
            OptInRecorded::Duplicate(_)
        ));
        assert!(t.queue.jobs().is_empty(), "no second job");
        assert!(t.scheduler.get(&key()).is_some(), "watched by its schedule");
        assert_eq!(t.store.due_at(&key()), Some(first_attention(&o)));
        // Claimed by a sender before the webhook came (the usual case): no index write.
        let t = Twins::new();
        t.store.record_opt_in(&login_created, &guard).await.unwrap();
        t.store
            .claim_for_send(&key(), "s", T + 1, T + 60_000)
            .await
            .unwrap();
        t.record(WEBHOOK, T + 2_000).await;
        assert!(t.queue.jobs().is_empty());
        assert!(t.scheduler.get(&key()).is_some());
        assert_eq!(t.store.due_at(&key()), None);
    }

    #[tokio::test]
    async fn a_redelivery_that_finds_a_sender_at_work_arranges_the_alert_again() {
        // First delivery: queued, but neither the schedule nor the index write worked (503).
        let t = Twins::new();
        fail(&t.scheduler.fail, true);
        fail(&t.store.fail_watch, true);
        assert!(
            t.recording()
                .record(key(), WEBHOOK, "secret", T)
                .await
                .is_err()
        );
        fail(&t.scheduler.fail, false);
        fail(&t.store.fail_watch, false);
        // The sender claimed it meanwhile; Meta's redelivery arranges the alert, queues nothing.
        t.store
            .claim_for_send(&key(), "s", T + 1, T + 60_000)
            .await
            .unwrap();
        t.record(WEBHOOK, T + 2_000).await;
        assert_eq!(t.queue.jobs().len(), 1, "only the first delivery's job");
        assert!(t.scheduler.get(&key()).is_some(), "watched by its schedule");
    }

    #[tokio::test]
    async fn a_failed_due_index_write_fails_the_recording_and_the_redelivery_repeats_the_follow_up()
    {
        let t = Twins::new();
        fail(&t.queue.fail, true);
        fail(&t.store.fail_watch, true);
        let first = t.recording().record(key(), WEBHOOK, "secret", T).await;
        assert!(first.is_err(), "the webhook answers 503: {first:?}");
        assert_eq!(t.store.all().len(), 1, "the opt-in itself is recorded");
        assert_eq!(t.store.due_at(&key()), None);
        // Meta redelivers: a duplicate whose follow-up runs again.
        fail(&t.queue.fail, false);
        fail(&t.store.fail_watch, false);
        assert!(matches!(
            t.record(WEBHOOK, T + 60_000).await,
            OptInRecorded::Duplicate(_)
        ));
        assert_eq!(t.queue.jobs().len(), 1, "queued by the redelivery");
        assert!(t.scheduler.get(&key()).is_some());
        // A redelivery whose enqueue fails again is watched by the index this time.
        fail(&t.queue.fail, true);
        t.record(WEBHOOK, T + 120_000).await;
        let stored = t.store.all().remove(0);
        assert_eq!(t.store.due_at(&key()), Some(first_attention(&stored)));
    }

    #[tokio::test]
    async fn a_login_after_the_webhook_queues_nothing_but_a_webhook_redelivery_still_does() {
        let t = Twins::new();
        let webhook = Origin::Webhook { timestamp: Some(T) };
        assert!(matches!(t.record(webhook, T).await, OptInRecorded::New(_)));
        assert!(matches!(
            t.record(Origin::Login, T + 1_000).await,
            OptInRecorded::Duplicate(_)
        ));
        assert_eq!(t.queue.jobs().len(), 1);
        // The webhook's own redelivery repeats the follow-up (its first delivery may have failed
        // after the write): unchanged by START_AT_LOGIN.
        t.record(webhook, T + 2_000).await;
        assert_eq!(t.queue.jobs().len(), 2);
    }
}
