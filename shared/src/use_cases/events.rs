//! Events to the website backend (issue 12): the one place that turns an occurrence into an
//! [`OutboundEvent`] and publishes it. It resolves the person (asid and `user_ref`) from the LOGIN
//! linked to the opt-in, fills every `data` with `occurred_at`, `state` and `user_ref`, and picks
//! the event's occurrence (hence its `webhook-id`) from what happened, never from when it was
//! emitted: a producer that runs again emits the same id, and the receiver, idempotent per
//! `webhook-id`, sees it once.
//!
//! Publishing failures. The event is queued after the action it reports is committed, so a failure
//! never undoes or fails the person's action: it is logged (type and id only, no PII) and counted
//! (`EventsNotQueued`). Then, per producer:
//! - the producer is retried by its caller — a webhook answered 5xx is redelivered by Meta, an SQS
//!   record reported failed comes back — so it returns the failure ([`Events::redelivered`]) and the
//!   retry emits again: the webhook's opt-in, stop word and reply handlers, and the sender;
//! - nobody retries it — the website API (its answer must say what was recorded), the Facebook
//!   callbacks, the deadline schedule and sweep: the failure is absorbed (logged, counted, the
//!   alarm on `EventsNotQueued` tells the operator).
//!
//! Retried producers re-emit from the stored record, not from what this call changed: the opt-out
//! use case emits `person.opted_out` whenever the item records an opt-out, and the sender emits an
//! opt-in's end (`message.sent`, `optin.expired`, …) whenever a job finds it ended ([`Events::ended`]).

use crate::domain::events::{
    MessageKind, OutboundEvent, Subject, message_failed, message_sent, opt_in_expired, opt_in_id,
    opt_in_received, opt_in_unreachable, person_deleted, person_opted_out, person_replied,
};
use crate::domain::login::Login;
use crate::domain::metrics::{Metric, Sample};
use crate::domain::opt_in::{BEFORE_OPT_IN_SUFFIX, Millis, OptIn, OptInKey, State, is_placeholder};
use crate::ports::error::{PortError, PortResult};
use crate::ports::events::EventPublisher;
use crate::ports::logins::LoginStore;
use crate::ports::metrics::Metrics;
use crate::ports::opt_ins::OptInStore;
use tracing::{debug, error};

/// The ports an event needs ([`crate::ports::bundle::Ports::events`]).
#[derive(Clone, Copy)]
pub struct Events<'a> {
    /// The producer is retried by its caller: a failure is returned (after being logged and
    /// counted) so the retry emits again. Otherwise it is absorbed.
    pub redelivered: bool,
    /// The events queue (`EventsOff` without `EVENTS_URL`).
    pub publisher: &'a dyn EventPublisher,
    /// The person behind an opt-in: the LOGIN link (asid) and the LOGIN (`user_ref`).
    pub logins: &'a dyn LoginStore,
    /// The person's state, for the producers that do not hold the opt-in.
    pub opt_ins: &'a dyn OptInStore,
    /// `EventsNotQueued`.
    pub metrics: &'a dyn Metrics,
}

impl<'a> Events<'a> {
    /// These events for a producer its caller retries (a webhook, an SQS record): failures are
    /// returned.
    pub fn redelivered(self) -> Self {
        Self {
            redelivered: true,
            ..self
        }
    }

    /// Publish `event` about `page_id`'s person. A failure is logged and counted, then returned
    /// or absorbed as [`Self::redelivered`] says.
    pub async fn publish(&self, page_id: &str, event: &OutboundEvent) -> PortResult<()> {
        match self.publisher.publish(event).await {
            Ok(()) => {
                debug!(event_type = event.event_type.as_str(), event_id = %event.id, "event queued");
                Ok(())
            }
            Err(e) => self.not_queued(page_id, event.event_type.as_str(), &event.id, e),
        }
    }

    fn not_queued(
        &self,
        page_id: &str,
        event_type: &str,
        id: &str,
        e: PortError,
    ) -> PortResult<()> {
        error!(event_type, event_id = %id, error = %e, redelivered = self.redelivered, "event not queued");
        self.metrics
            .record(page_id, &[Sample::count(Metric::EventsNotQueued)]);
        if self.redelivered { Err(e) } else { Ok(()) }
    }

    /// The person behind an opt-in: the LOGIN linked to its login_id (asid, `user_ref`), and
    /// `state`. No link (login_id derivation off, or the login not seen): asid and `user_ref` null.
    pub async fn subject(&self, key: &OptInKey, state: Option<State>) -> PortResult<Subject> {
        let Some(link) = self.logins.link_for(key).await? else {
            return Ok(Subject {
                state,
                ..Subject::default()
            });
        };
        let user_ref = self
            .logins
            .get_login(&key.page_id, &link.asid)
            .await?
            .and_then(|login| login.user_ref);
        Ok(Subject {
            asid: Some(link.asid),
            user_ref,
            state,
        })
    }

    /// Build the events about `key`'s person with `build` once the person is resolved, and
    /// publish them. A failure to resolve counts as a failure to queue.
    async fn emit(
        &self,
        key: &OptInKey,
        state: Option<State>,
        build: impl FnOnce(&Subject) -> Vec<OutboundEvent>,
    ) -> PortResult<()> {
        if !self.publisher.enabled() {
            return Ok(());
        }
        let subject = match self.subject(key, state).await {
            Ok(subject) => subject,
            Err(e) => return self.not_queued(&key.page_id, "(person unresolved)", "-", e),
        };
        let mut result = Ok(());
        for event in build(&subject) {
            if let Err(e) = self.publish(&key.page_id, &event).await {
                result = Err(e);
            }
        }
        result
    }

    /// `login.completed`, with the state of the person's opt-in when one is linked.
    pub async fn login_completed(&self, login: &Login) -> PortResult<()> {
        if !self.publisher.enabled() {
            return Ok(());
        }
        let state = match login.opt_in_key() {
            Some(key) => match self.opt_ins.get_opt_in(&key).await {
                Ok(opt_in) => opt_in.map(|o| o.state),
                Err(e) => return self.not_queued(&login.page_id, "login.completed", "-", e),
            },
            None => None,
        };
        let subject = Subject {
            asid: Some(login.asid.clone()),
            user_ref: login.user_ref.clone(),
            state,
        };
        let event =
            crate::domain::events::login_completed(&subject, login.permission, login.last_login_at);
        self.publish(&login.page_id, &event).await
    }

    /// `optin.received` (one per consent: a redelivery repeats the id).
    pub async fn opt_in_received(&self, opt_in: &OptIn) -> PortResult<()> {
        self.emit(&opt_in.key(), Some(opt_in.state), |s| {
            vec![opt_in_received(s, opt_in)]
        })
        .await
    }

    /// Every event the opt-in's record says happened at its end, whoever ended it: its initial
    /// message `message.sent` (also one that landed after an opt-out), `message.failed` with
    /// `optin.unreachable` or `optin.expired`, and `person.opted_out`. Each once per consent (the
    /// ids come from the record), so calling it again — a job finding the opt-in ended, a retried
    /// producer — repeats ids and the receiver keeps one. Nothing for an opt-in not ended.
    pub async fn ended(&self, opt_in: &OptIn) -> PortResult<()> {
        let events = |s: &Subject| end_events(s, opt_in);
        if !opt_in.state.is_terminal() && !opt_in.has_opted_out() {
            return Ok(());
        }
        self.emit(&opt_in.key(), Some(opt_in.state), events).await
    }

    /// `person.opted_out` for the opt-out recorded on `opt_in` (nothing when none is).
    pub async fn opted_out(&self, opt_in: &OptIn) -> PortResult<()> {
        if opted_out_event(&Subject::default(), opt_in).is_none() {
            return Ok(());
        }
        self.emit(&opt_in.key(), Some(opt_in.state), |s| {
            opted_out_event(s, opt_in).into_iter().collect()
        })
        .await
    }

    /// `person.replied`: the person wrote `text` in the conversation linked to `key` (from
    /// `psid`). The text goes in the event body only.
    pub async fn person_replied(
        &self,
        key: &OptInKey,
        psid: &str,
        text: &str,
        received_at: Millis,
    ) -> PortResult<()> {
        if !self.publisher.enabled() {
            return Ok(());
        }
        let state = match self.opt_ins.get_opt_in(key).await {
            Ok(opt_in) => opt_in.map(|o| o.state),
            Err(e) => return self.not_queued(&key.page_id, "person.replied", "-", e),
        };
        let thread = format!("{}\u{1f}{psid}", key.page_id);
        self.emit(key, state, |s| {
            vec![person_replied(s, &thread, text, received_at)]
        })
        .await
    }

    /// `person.deleted`, about the person as they were before the erasure (`subject`).
    pub async fn person_deleted(
        &self,
        page_id: &str,
        subject: &Subject,
        confirmation_code: &str,
        at: Millis,
    ) -> PortResult<()> {
        let event = person_deleted(subject, confirmation_code, at);
        self.publish(page_id, &event).await
    }
}

/// The events an opt-in's record says happened at its end (see [`Events::ended`]).
pub fn end_events(subject: &Subject, opt_in: &OptIn) -> Vec<OutboundEvent> {
    let id = opt_in_id(opt_in);
    let ended_at = opt_in.terminal_at.unwrap_or(opt_in.updated_at);
    let mut events = Vec::new();
    if let (Some(message_id), Some(sent_at)) = (&opt_in.message_id, opt_in.sent_at) {
        events.push(message_sent(
            subject,
            MessageKind::Initial,
            &id,
            message_id,
            sent_at,
        ));
    }
    match opt_in.state {
        State::Unreachable => {
            events.push(message_failed(
                subject,
                MessageKind::Initial,
                &id,
                "unreachable",
                ended_at,
            ));
            events.push(opt_in_unreachable(subject, opt_in, ended_at));
        }
        State::Expired => {
            events.push(message_failed(
                subject,
                MessageKind::Initial,
                &id,
                "expired",
                ended_at,
            ));
            events.push(opt_in_expired(subject, opt_in, ended_at));
        }
        _ => {}
    }
    events.extend(opted_out_event(subject, opt_in));
    events
}

/// `person.opted_out` for the opt-out recorded on `opt_in`, if any. The source is the one the
/// opt-out recorded (an opt-out before the opt-in loses its placeholder suffix), so a repeat
/// builds the same event.
fn opted_out_event(subject: &Subject, opt_in: &OptIn) -> Option<OutboundEvent> {
    let at = opt_in.opted_out_at?;
    let recorded = opt_in.opt_out_source.as_deref().unwrap_or("unknown");
    let source = if is_placeholder(opt_in) {
        recorded.trim_end_matches(BEFORE_OPT_IN_SUFFIX)
    } else {
        recorded
    };
    Some(person_opted_out(subject, opt_in, source, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::events::MemoryEvents;
    use crate::adapters::memory::logins::MemoryLoginStore;
    use crate::adapters::memory::metrics::MemoryMetrics;
    use crate::adapters::memory::opt_ins::MemoryOptInStore;
    use crate::domain::events::EventType;
    use crate::domain::opt_in::placeholder_source;
    use std::sync::atomic::Ordering;

    #[derive(Default)]
    struct World {
        publisher: MemoryEvents,
        logins: MemoryLoginStore,
        opt_ins: MemoryOptInStore,
        metrics: MemoryMetrics,
    }

    impl World {
        fn events(&self) -> Events<'_> {
            Events {
                redelivered: false,
                publisher: &self.publisher,
                logins: &self.logins,
                opt_ins: &self.opt_ins,
                metrics: &self.metrics,
            }
        }

        fn types(&self) -> Vec<EventType> {
            self.publisher
                .events()
                .iter()
                .map(|e| e.event_type)
                .collect()
        }
    }

    fn opt_in() -> OptIn {
        OptIn::new(OptInKey::new("p", "l"), Some(1_000), 1_000, 60_000, 0)
    }

    #[tokio::test]
    async fn with_events_off_nothing_is_read_to_name_the_person() {
        let w = World::default();
        // Every read would fail: with events on that is a counted `EventsNotQueued`.
        w.logins.fail.store(true, Ordering::SeqCst);
        w.opt_ins.fail.store(true, Ordering::SeqCst);
        let off = Events {
            publisher: &crate::adapters::events::EventsOff,
            ..w.events()
        };
        let mut o = opt_in();
        o.state = State::Sent;
        o.message_id = Some("m.1".into());
        o.sent_at = Some(2_000);
        off.redelivered().ended(&o).await.unwrap();
        off.redelivered().opt_in_received(&o).await.unwrap();
        off.redelivered()
            .person_replied(&o.key(), "psid", "hi", 3_000)
            .await
            .unwrap();
        assert_eq!(w.metrics.sum(Metric::EventsNotQueued), 0.0);
        // The same with events on: the failed read is counted and returned.
        assert!(w.events().redelivered().ended(&o).await.is_err());
        assert_eq!(w.metrics.sum(Metric::EventsNotQueued), 1.0);
    }

    #[tokio::test]
    async fn a_live_opt_in_has_no_end_to_emit() {
        let w = World::default();
        let mut o = opt_in();
        for state in [
            State::OptedIn,
            State::Sending,
            State::Retrying,
            State::Paused,
        ] {
            o.state = state;
            w.events().ended(&o).await.unwrap();
        }
        assert!(w.types().is_empty());
    }

    #[tokio::test]
    async fn the_end_is_read_from_the_record() {
        let w = World::default();
        // A send in flight at the opt-out landed: both are told.
        let mut o = opt_in();
        o.state = State::OptedOut;
        o.opted_out_at = Some(2_000);
        o.opt_out_source = Some("api".into());
        o.message_id = Some("m.1".into());
        o.sent_at = Some(2_100);
        w.events().ended(&o).await.unwrap();
        assert_eq!(
            w.types(),
            [EventType::MessageSent, EventType::PersonOptedOut]
        );
        // A placeholder: the source the person used, without the placeholder's suffix.
        let mut placeholder = opt_in();
        placeholder.state = State::OptedOut;
        placeholder.opted_out_at = Some(3_000);
        placeholder.opt_out_source = Some(placeholder_source("stop_keyword"));
        w.events().opted_out(&placeholder).await.unwrap();
        let out = w.publisher.of_type(EventType::PersonOptedOut);
        assert_eq!(out[1].data["source"], "stop_keyword");
        // No opt-out recorded: nothing.
        w.events().opted_out(&opt_in()).await.unwrap();
        assert_eq!(w.publisher.events().len(), 3);
    }

    #[tokio::test]
    async fn an_unresolved_person_counts_as_not_queued_and_is_returned_only_when_retried() {
        let w = World::default();
        w.logins.fail.store(true, Ordering::SeqCst);
        let mut o = opt_in();
        o.state = State::Expired;
        assert!(w.events().ended(&o).await.is_ok(), "absorbed");
        assert!(
            w.events().redelivered().ended(&o).await.is_err(),
            "returned"
        );
        assert_eq!(w.metrics.sum(Metric::EventsNotQueued), 2.0);
        assert!(w.types().is_empty(), "never an event without its person");
    }
}
