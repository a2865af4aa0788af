//! Promises 1 and 2: an opt-out is recorded whatever arrives first, and nothing is sent after it.
//!
//! The one place every opt-out goes through: the website API, Meta's deauthorize and data deletion
//! callbacks, a stop word and `STOP NOTIFICATIONS` all call [`OptOuts`]. The opt-out itself is the
//! conditional write the sender's claim checks; when no opt-in exists yet an OPTED_OUT placeholder
//! takes its place (the opt-in webhook that arrives later finds it and sends nothing); a stop from
//! a PSID no opt-in is linked to is kept as a pending stop (counted, alerted) and applied when
//! the PSID is linked.
//!
//! An opt-out after the opt-in ended (SENT, UNREACHABLE, EXPIRED) is recorded on it too, once,
//! keeping its state and evidence ([`crate::domain::opt_in::Event::OptOutAfterEnd`]): every later
//! follow-up is refused on [`OptIn::has_opted_out`]. Every opt-out emits `person.opted_out`, and
//! so does a repeat of one (same event id, from the record), so a caller that is retried —
//! Meta redelivering a webhook answered 5xx — emits it again ([`OptOuts::redelivered`]).

use crate::domain::alert::{Alert, AlertKind};
use crate::domain::opt_in::{Event, Millis, OptIn, OptInKey, State, login_id_prefix, utc};
use crate::ports::alerts::Alerts;
use crate::ports::conversations::{ConversationStore, PendingStop};
use crate::ports::error::{PortError, PortResult};
use crate::ports::metrics;
use crate::ports::metrics::Metrics;
use crate::ports::opt_ins::{Created, OptInStore, Transitioned};
use crate::ports::scheduler::DeadlineScheduler;
use crate::use_cases::alert::publish;
use crate::use_cases::events::Events;
use crate::use_cases::expire::cancel_schedule;
use tracing::{info, warn};

// The placeholder's marks live with the opt-in (the events use case reads them too).
pub use crate::domain::opt_in::{BEFORE_OPT_IN_SUFFIX, is_placeholder, placeholder_source};

/// What an opt-out did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutOutcome {
    /// This call moved the opt-in to OPTED_OUT.
    Recorded,
    /// The opt-in had ended (SENT, UNREACHABLE, EXPIRED): this call recorded the opt-out on it,
    /// keeping its state and evidence.
    RecordedAfterEnd,
    /// No opt-in existed: an OPTED_OUT placeholder now stands in its place.
    Placeholder,
    /// An opt-out was already recorded (OPTED_OUT, or recorded after the end): left as it is.
    AlreadyRecorded,
}

impl OptOut {
    /// What an opt-out write returned: the item as it is, or `None` when no opt-in exists.
    fn from_write(result: Transitioned) -> Option<Self> {
        match result {
            Transitioned::Done(item) => Some(OptOut {
                outcome: if item.state == State::OptedOut {
                    OptOutOutcome::Recorded
                } else {
                    OptOutOutcome::RecordedAfterEnd
                },
                item: *item,
            }),
            Transitioned::Refused(Some(item)) => Some(OptOut {
                item: *item,
                outcome: OptOutOutcome::AlreadyRecorded,
            }),
            Transitioned::Refused(None) => None,
        }
    }
}

/// The opt-in as an opt-out left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    pub item: OptIn,
    pub outcome: OptOutOutcome,
}

impl OptOut {
    /// Whether the opt-out found a send in flight (the opt-in was SENDING): the message may still
    /// land, and the sender records it if it does. Read from the item, so a repeated opt-out
    /// answers the same.
    pub fn in_flight(&self) -> bool {
        in_flight(&self.item)
    }
}

/// Whether `opt_in` was opted out while a send was in flight.
pub fn in_flight(opt_in: &OptIn) -> bool {
    opt_in.state == State::OptedOut && opt_in.opted_out_from == Some(State::Sending)
}

/// A stop request from Messenger: a stop word, or `STOP NOTIFICATIONS`.
#[derive(Debug, Clone, Copy)]
pub struct StopRequest<'a> {
    pub page_id: &'a str,
    /// The sender's PSID, when the event carries one.
    pub psid: Option<&'a str>,
    /// The login_id the event links to (a message's `prior_message`, the status's `optin`).
    pub login_id: Option<&'a str>,
    /// `stop_keyword` or `stop_notifications`.
    pub source: &'a str,
    /// When the person wrote (a message links its PSID to the opt-in; a status does not).
    pub wrote_at: Option<Millis>,
}

/// What a stop request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// The opt-out is recorded on the opt-in (or its placeholder), by this call or before.
    OptedOut(Box<OptOut>),
    /// No opt-in is known for the PSID: the stop is kept (pending) until the PSID is linked.
    /// `new` is false for a repeat of a stop already kept.
    Pending { new: bool },
    /// Neither a login_id nor a PSID: nothing to keep it by. Counted and alerted.
    Unmatched,
}

/// What linking a PSID to an opt-in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linked {
    /// The opt-in does not exist: nothing linked.
    Unknown,
    /// Linked.
    Linked,
    /// Linked, and a stop kept earlier for this PSID was applied.
    Stopped(Box<OptOut>),
}

/// The ports and settings an opt-out needs.
#[derive(Clone, Copy)]
pub struct OptOuts<'a> {
    pub store: &'a dyn OptInStore,
    pub conversations: &'a dyn ConversationStore,
    pub scheduler: &'a dyn DeadlineScheduler,
    pub alerts: &'a dyn Alerts,
    pub metrics: &'a dyn Metrics,
    /// `person.opted_out`, for every opt-out and every repeat of one.
    pub events: Events<'a>,
    /// The opt-in window and alert lead a placeholder is given (the configured ones).
    pub window_ms: Millis,
    pub alert_lead_ms: Millis,
}

impl<'a> OptOuts<'a> {
    /// For a caller its own caller retries (a webhook): an event that could not be queued fails
    /// the call (after the opt-out is recorded), so the retry emits it again.
    pub fn redelivered(self) -> Self {
        Self {
            events: self.events.redelivered(),
            ..self
        }
    }

    /// Any non-terminal state → OPTED_OUT with a conditional write, then the deadline schedule
    /// is deleted. An opt-in that ended (sent, expired, unreachable) gets the opt-out recorded
    /// on it, once, its state and evidence kept. Then `person.opted_out` is emitted whenever the
    /// item records an opt-out (by this call or an earlier one: the same event id).
    pub async fn opt_out_opt_in(
        &self,
        key: &OptInKey,
        source: &str,
        now: Millis,
    ) -> PortResult<Transitioned> {
        let mut result = self.store.opt_out(key, source, now).await?;
        match &result {
            Transitioned::Done(item) => {
                info!(
                    login_id_prefix = %login_id_prefix(&key.login_id),
                    source,
                    in_flight = in_flight(item),
                    "opt-in OPTED_OUT"
                );
                cancel_schedule(self.scheduler, key).await;
            }
            // Nothing leaves an ended opt-in, so no race can undo this reading.
            Transitioned::Refused(Some(item))
                if Event::OptOutAfterEnd.sources().contains(&item.state)
                    && item.opted_out_at.is_none() =>
            {
                result = self.store.opt_out_late(key, source, now).await?;
                if let Transitioned::Done(item) = &result {
                    info!(
                        login_id_prefix = %login_id_prefix(&key.login_id),
                        source,
                        state = %item.state,
                        "opt-out recorded after the opt-in ended"
                    );
                }
            }
            _ => {}
        }
        if let Transitioned::Done(item) | Transitioned::Refused(Some(item)) = &result {
            self.events.opted_out(item).await?;
        }
        Ok(result)
    }

    /// Opt a person out whether or not their opt-in exists yet: an existing opt-in moves to
    /// OPTED_OUT (conditionally); when none exists, an OPTED_OUT placeholder is created in its
    /// place (source [`placeholder_source`]), so the webhook that arrives later finds it and
    /// nothing is sent.
    pub async fn opt_out_person(
        &self,
        key: &OptInKey,
        source: &str,
        now: Millis,
    ) -> PortResult<OptOut> {
        // At most two rounds: an opt-in created by a concurrent webhook is opted out in the second.
        for _ in 0..2 {
            match OptOut::from_write(self.opt_out_opt_in(key, source, now).await?) {
                Some(out) => return Ok(out),
                None => {
                    let mut placeholder = OptIn::new(
                        key.clone(),
                        Some(now),
                        now,
                        self.window_ms,
                        self.alert_lead_ms,
                    );
                    placeholder.state = State::OptedOut;
                    placeholder.opted_out_at = Some(now);
                    placeholder.opt_out_source = Some(placeholder_source(source));
                    placeholder.terminal_at = Some(now);
                    if let Created::New = self.store.create_opt_in(&placeholder).await? {
                        info!(
                            login_id_prefix = %login_id_prefix(&key.login_id),
                            source,
                            "opt-out before the opt-in: OPTED_OUT placeholder recorded"
                        );
                        self.events.opted_out(&placeholder).await?;
                        return Ok(OptOut {
                            item: placeholder,
                            outcome: OptOutOutcome::Placeholder,
                        });
                    }
                }
            }
        }
        Err(PortError::new(
            "opt-out",
            "the opt-out kept racing with the opt-in; retry",
        ))
    }

    /// A stop word or `STOP NOTIFICATIONS`. With a login_id, the placeholder path (it holds
    /// whether the opt-in came first or not); with only a PSID, the opt-in it is linked to; with
    /// neither known, the stop is kept as pending, counted and alerted. Never dropped.
    pub async fn stop_request(
        &self,
        stop: StopRequest<'_>,
        now: Millis,
    ) -> PortResult<StopOutcome> {
        if let Some(login_id) = stop.login_id {
            let key = OptInKey::new(stop.page_id, login_id);
            let out = self.opt_out_person(&key, stop.source, now).await?;
            if let (Some(psid), Some(at)) = (stop.psid, stop.wrote_at) {
                // Later messages carry only the PSID: link it (to the placeholder if need be).
                self.link(&key, psid, at, now).await?;
            }
            return Ok(StopOutcome::OptedOut(Box::new(out)));
        }
        let Some(psid) = stop.psid else {
            warn!(
                source = stop.source,
                "stop request with neither a login_id nor a PSID"
            );
            self.report_unmatched(stop.page_id, stop.source, now).await;
            return Ok(StopOutcome::Unmatched);
        };
        if let Some(key) = self
            .conversations
            .opt_in_for_psid(stop.page_id, psid)
            .await?
            // None: a link whose opt-in is gone: keep the stop like any unlinked one.
            && let Some(out) = OptOut::from_write(self.opt_out_opt_in(&key, stop.source, now).await?)
        {
            return Ok(StopOutcome::OptedOut(Box::new(out)));
        }
        let pending = PendingStop {
            page_id: stop.page_id.to_owned(),
            psid: psid.to_owned(),
            source: stop.source.to_owned(),
            received_at: now,
        };
        let new = self.conversations.keep_pending_stop(&pending).await?;
        // A link written at the same time checked for pending stops before this one was kept:
        // look again now that it is stored, so one of the two sides applies it.
        if let Some(key) = self
            .conversations
            .opt_in_for_psid(stop.page_id, psid)
            .await?
            && let Some(out) = self.apply_pending_stop(&key, psid, now).await?
        {
            return Ok(StopOutcome::OptedOut(Box::new(out)));
        }
        if new {
            warn!(
                source = stop.source,
                "stop request from a PSID not linked to any opt-in: kept as pending"
            );
            self.report_unmatched(stop.page_id, stop.source, now).await;
        }
        Ok(StopOutcome::Pending { new })
    }

    /// Link `psid` to the opt-in (only if it exists) and apply any stop kept for that PSID.
    pub async fn link(
        &self,
        key: &OptInKey,
        psid: &str,
        at: Millis,
        now: Millis,
    ) -> PortResult<Linked> {
        if !self.conversations.link_psid(key, psid, at).await? {
            return Ok(Linked::Unknown);
        }
        Ok(match self.apply_pending_stop(key, psid, now).await? {
            Some(out) => Linked::Stopped(Box::new(out)),
            None => Linked::Linked,
        })
    }

    /// Apply the stop kept for `psid` to the opt-in it is now linked to, then forget the stop
    /// (after the opt-out, so a failure in between keeps it for the next attempt).
    async fn apply_pending_stop(
        &self,
        key: &OptInKey,
        psid: &str,
        now: Millis,
    ) -> PortResult<Option<OptOut>> {
        let Some(stop) = self.conversations.pending_stop(&key.page_id, psid).await? else {
            return Ok(None);
        };
        let Some(out) = OptOut::from_write(self.opt_out_opt_in(key, &stop.source, now).await?)
        else {
            return Ok(None);
        };
        info!(
            login_id_prefix = %login_id_prefix(&key.login_id),
            source = %stop.source,
            state = %out.item.state,
            "pending stop applied to the opt-in its PSID is now linked to"
        );
        self.conversations
            .clear_pending_stop(&key.page_id, psid)
            .await?;
        Ok(Some(out))
    }

    async fn report_unmatched(&self, page_id: &str, source: &str, now: Millis) {
        metrics::record_unmatched_stop(self.metrics, page_id);
        let detail = format!(
            "A stop request ({source}) at {} came from a person whose Messenger id is not linked \
             to any opt-in. It is kept and applied if that id is linked later, but an opt-in that \
             arrives without that link is not covered: check the opt-ins received around then.",
            utc(now)
        );
        publish(
            self.alerts,
            &Alert::for_page(page_id, AlertKind::UnmatchedStop, false, detail),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::alerts::MemoryAlerts;
    use crate::adapters::memory::events::MemoryEvents;
    use crate::adapters::memory::logins::MemoryLoginStore;
    use crate::adapters::memory::metrics::MemoryMetrics;
    use crate::adapters::memory::opt_ins::MemoryOptInStore;
    use crate::adapters::memory::scheduler::MemoryScheduler;
    use crate::domain::events::EventType;
    use crate::domain::jobs::DeadlineCheck;
    use crate::domain::login::{Login, LoginSource, Permission};
    use crate::domain::metrics::Metric;
    use crate::domain::opt_in::SendOutcome;
    use crate::ports::logins::LoginStore;
    use std::sync::atomic::Ordering;

    struct World {
        store: MemoryOptInStore,
        scheduler: MemoryScheduler,
        alerts: MemoryAlerts,
        metrics: MemoryMetrics,
        logins: MemoryLoginStore,
        events: MemoryEvents,
    }

    impl World {
        fn new() -> Self {
            Self {
                store: MemoryOptInStore::new(),
                scheduler: MemoryScheduler::default(),
                alerts: MemoryAlerts::default(),
                metrics: MemoryMetrics::default(),
                logins: MemoryLoginStore::new(),
                events: MemoryEvents::default(),
            }
        }

        fn ports(&self) -> OptOuts<'_> {
            OptOuts {
                store: &self.store,
                conversations: &self.store,
                scheduler: &self.scheduler,
                alerts: &self.alerts,
                metrics: &self.metrics,
                events: Events {
                    publisher: &self.events,
                    logins: &self.logins,
                    opt_ins: &self.store,
                    metrics: &self.metrics,
                    redelivered: false,
                },
                window_ms: 60_000,
                alert_lead_ms: 0,
            }
        }

        /// The person's LOGIN, linked to `login-1`, with the website's `user_ref`.
        async fn logged_in(&self) {
            let login = Login {
                page_id: "p".into(),
                asid: "1234".into(),
                first_name: None,
                permission: Permission::Granted,
                expected_login_id: Some("login-1".into()),
                login_at: 500,
                last_login_at: 500,
                source: LoginSource::Api,
                user_ref: Some("shop-42".into()),
            };
            self.logins.record_login(&login).await.unwrap();
        }

        /// The opt-in of `login-1`, its initial message sent.
        async fn sent(&self) -> OptIn {
            let o = self.recorded().await;
            self.store
                .claim_for_send(&o.key(), "s", 1_500, 30_000)
                .await
                .unwrap();
            let sent = SendOutcome::Sent {
                message_id: "m.1".into(),
            };
            let done = self.store.finish_send(&o.key(), "s", &sent, 2_000).await;
            assert!(done.unwrap().is_done());
            o
        }

        async fn recorded(&self) -> OptIn {
            let o = OptIn::new(OptInKey::new("p", "login-1"), Some(1_000), 1_000, 60_000, 0);
            self.store.create_opt_in(&o).await.unwrap();
            self.scheduler
                .schedule_deadline_check(&DeadlineCheck::for_opt_in(&o), o.alert_at)
                .await
                .unwrap();
            o
        }
    }

    #[tokio::test]
    async fn opting_out_deletes_the_deadline_schedule() {
        let w = World::new();
        let o = w.recorded().await;
        let done = w
            .ports()
            .opt_out_opt_in(&o.key(), "api", 2_000)
            .await
            .unwrap();
        assert!(done.is_done());
        assert!(w.scheduler.get(&o.key()).is_none());
        let again = w
            .ports()
            .opt_out_opt_in(&o.key(), "api", 3_000)
            .await
            .unwrap();
        assert!(!again.is_done(), "already terminal");
    }

    #[tokio::test]
    async fn an_ended_opt_in_records_the_opt_out_once_and_keeps_its_state() {
        let w = World::new();
        let o = w.recorded().await;
        w.store.expire(&o.key(), o.deadline_at).await.unwrap();
        let at = o.deadline_at + 1;
        let out = w.ports().opt_out_person(&o.key(), "api", at).await.unwrap();
        assert_eq!(out.outcome, OptOutOutcome::RecordedAfterEnd);
        assert!(!out.in_flight());
        let now = w.store.get_opt_in(&o.key()).await.unwrap().unwrap();
        assert_eq!((now.state, now.opted_out_at), (State::Expired, Some(at)));
        assert_eq!(now.opt_out_source.as_deref(), Some("api"));
        assert!(now.has_opted_out());
        // Once: a later opt-out keeps the first one's time and source.
        let again = w
            .ports()
            .opt_out_person(&o.key(), "deauthorize", at + 5)
            .await
            .unwrap();
        assert_eq!(again.outcome, OptOutOutcome::AlreadyRecorded);
        assert_eq!(again.item.opted_out_at, Some(at));
        assert_eq!(again.item.opt_out_source.as_deref(), Some("api"));
    }

    /// Issue 12: "an opt-out after the initial message must still count". Before, SENT was
    /// terminal and a STOP after it changed nothing and was not even recorded.
    #[tokio::test]
    async fn stop_after_the_initial_message_is_recorded() {
        let w = World::new();
        w.logged_in().await;
        let o = w.sent().await;
        let stop = StopRequest {
            page_id: "p",
            psid: Some("PSID1"),
            login_id: Some("login-1"),
            source: "stop_keyword",
            wrote_at: Some(3_000),
        };
        let outcome = w.ports().stop_request(stop, 3_000).await.unwrap();
        let StopOutcome::OptedOut(out) = outcome else {
            panic!("the stop must opt the person out: {outcome:?}");
        };
        assert_eq!(out.outcome, OptOutOutcome::RecordedAfterEnd);
        let now = w.store.get_opt_in(&o.key()).await.unwrap().unwrap();
        assert!(now.has_opted_out(), "the stop is recorded");
        assert_eq!(now.state, State::Sent, "the SENT evidence is kept");
        assert_eq!(now.message_id.as_deref(), Some("m.1"));
        assert_eq!((now.sent_at, now.opted_out_at), (Some(2_000), Some(3_000)));
        assert_eq!(now.opt_out_source.as_deref(), Some("stop_keyword"));
        let emitted = w.events.of_type(EventType::PersonOptedOut);
        assert_eq!(emitted.len(), 1);
        let data = &emitted[0].data;
        assert_eq!(data["asid"], "1234");
        assert_eq!(data["user_ref"], "shop-42");
        assert_eq!(data["source"], "stop_keyword");
        assert_eq!(data["state"], "SENT");
        // Meta redelivers the STOP: nothing changes, the same event id is emitted again.
        w.ports().stop_request(stop, 9_000).await.unwrap();
        let again = w.events.of_type(EventType::PersonOptedOut);
        assert_eq!(again.len(), 2);
        assert_eq!(again[1], emitted[0]);
    }

    #[tokio::test]
    async fn a_failing_publisher_does_not_undo_a_committed_opt_out() {
        let w = World::new();
        let o = w.recorded().await;
        w.events.fail.store(true, Ordering::SeqCst);
        // Absorbed (the website API): the opt-out is answered as recorded.
        let out = w.ports().opt_out_person(&o.key(), "api", 2_000).await;
        assert_eq!(out.unwrap().outcome, OptOutOutcome::Recorded);
        assert_eq!(w.metrics.sum(Metric::EventsNotQueued), 1.0);
        // Redelivered (a webhook): the failure is returned, the opt-out stays recorded.
        let failed = w
            .ports()
            .redelivered()
            .opt_out_person(&o.key(), "api", 2_100)
            .await;
        assert!(failed.is_err());
        assert_eq!(w.metrics.sum(Metric::EventsNotQueued), 2.0);
        let now = w.store.get_opt_in(&o.key()).await.unwrap().unwrap();
        assert_eq!(
            (now.state, now.opted_out_at),
            (State::OptedOut, Some(2_000))
        );
        // The redelivery emits it, with the id the first try would have had.
        w.events.fail.store(false, Ordering::SeqCst);
        w.ports()
            .redelivered()
            .opt_out_person(&o.key(), "api", 2_200)
            .await
            .unwrap();
        let emitted = w.events.of_type(EventType::PersonOptedOut);
        assert_eq!(emitted.len(), 1);
        assert_eq!(emitted[0].data["state"], "OPTED_OUT");
        assert_eq!(
            emitted[0].data["asid"],
            serde_json::Value::Null,
            "no LOGIN linked"
        );
        assert_eq!(
            emitted[0].id,
            crate::domain::events::person_opted_out(&Default::default(), &now, "api", 2_000).id
        );
    }

    #[tokio::test]
    async fn an_opt_out_during_a_send_says_the_send_was_in_flight() {
        let w = World::new();
        let o = w.recorded().await;
        w.store
            .claim_for_send(&o.key(), "s", 2_000, 30_000)
            .await
            .unwrap();
        let out = w
            .ports()
            .opt_out_person(&o.key(), "api", 2_500)
            .await
            .unwrap();
        assert_eq!(out.outcome, OptOutOutcome::Recorded);
        assert!(out.in_flight());
        assert_eq!(out.item.opted_out_from, Some(State::Sending));
        // Repeated: the same answer, read from the item.
        let again = w
            .ports()
            .opt_out_person(&o.key(), "api", 2_600)
            .await
            .unwrap();
        assert!(again.in_flight());
        // An opt-out of a queued opt-in is not in flight.
        let w = World::new();
        let o = w.recorded().await;
        let out = w
            .ports()
            .opt_out_person(&o.key(), "api", 2_000)
            .await
            .unwrap();
        assert!(!out.in_flight());
        assert_eq!(out.item.opted_out_from, Some(State::OptedIn));
    }

    #[tokio::test]
    async fn an_opt_out_before_the_opt_in_leaves_a_placeholder() {
        let w = World::new();
        let key = OptInKey::new("p", "later");
        let out = w
            .ports()
            .opt_out_person(&key, "stop_keyword", 5_000)
            .await
            .unwrap();
        assert_eq!(out.outcome, OptOutOutcome::Placeholder);
        assert!(is_placeholder(&out.item));
        assert_eq!(
            out.item.opt_out_source.as_deref(),
            Some("stop_keyword_before_opt_in")
        );
        let stored = w.store.get_opt_in(&key).await.unwrap().unwrap();
        assert_eq!(stored.state, State::OptedOut);
        assert!(!out.in_flight());
        // The website hears the source without the placeholder suffix.
        let emitted = w.events.of_type(EventType::PersonOptedOut);
        assert_eq!(emitted.len(), 1);
        assert_eq!(emitted[0].data["source"], "stop_keyword");
    }

    #[tokio::test]
    async fn an_unlinked_stop_is_kept_counted_alerted_and_applied_when_the_psid_is_linked() {
        let w = World::new();
        let o = w.recorded().await;
        let stop = StopRequest {
            page_id: "p",
            psid: Some("PSID9"),
            login_id: None,
            source: "stop_keyword",
            wrote_at: Some(2_000),
        };
        let kept = w.ports().stop_request(stop, 2_000).await.unwrap();
        assert_eq!(kept, StopOutcome::Pending { new: true });
        let again = w.ports().stop_request(stop, 2_100).await.unwrap();
        assert_eq!(again, StopOutcome::Pending { new: false });
        assert_eq!(w.metrics.sum(Metric::UnmatchedStops), 1.0);
        assert_eq!(w.alerts.published().len(), 1);
        assert_eq!(w.alerts.published()[0].kind, AlertKind::UnmatchedStop);
        assert_eq!(w.store.pending_stops().len(), 1);
        // The PSID is linked to the opt-in: the stop applies.
        let linked = w
            .ports()
            .link(&o.key(), "PSID9", 3_000, 3_000)
            .await
            .unwrap();
        let Linked::Stopped(out) = linked else {
            panic!("the pending stop must apply: {linked:?}");
        };
        assert_eq!(out.item.state, State::OptedOut);
        assert_eq!(out.item.opt_out_source.as_deref(), Some("stop_keyword"));
        assert!(w.store.pending_stops().is_empty(), "applied once");
        assert!(w.scheduler.get(&o.key()).is_none());
    }

    #[tokio::test]
    async fn a_stop_with_neither_login_id_nor_psid_is_counted_and_alerted() {
        let w = World::new();
        let stop = StopRequest {
            page_id: "p",
            psid: None,
            login_id: None,
            source: "stop_notifications",
            wrote_at: None,
        };
        assert_eq!(
            w.ports().stop_request(stop, 1).await.unwrap(),
            StopOutcome::Unmatched
        );
        assert_eq!(w.metrics.sum(Metric::UnmatchedStops), 1.0);
        assert_eq!(w.alerts.published().len(), 1);
    }
}
