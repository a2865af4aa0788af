//! The opt-in and its state machine: pure types and functions, no I/O.
//!
//! Every transition the product makes is listed in [`Event::sources`] / [`Event::target`]. Store
//! adapters derive their DynamoDB condition expressions from the same table, so the rules written
//! here are the rules enforced by the database.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch (UTC). Facebook webhook timestamps use the same unit.
pub type Millis = i64;

pub const HOUR_MS: Millis = 3_600_000;
/// Meta's Login Connect rule: one initial message within 24 hours of the opt-in.
pub const DEFAULT_OPTIN_WINDOW_MS: Millis = 24 * HOUR_MS;

/// Where an opt-in is in its life. Serialised as the SCREAMING_SNAKE names of the blueprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    OptedIn,
    Sending,
    Retrying,
    Paused,
    Sent,
    Unreachable,
    Expired,
    OptedOut,
}

impl State {
    pub const ALL: [State; 8] = [
        State::OptedIn,
        State::Sending,
        State::Retrying,
        State::Paused,
        State::Sent,
        State::Unreachable,
        State::Expired,
        State::OptedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::OptedIn => "OPTED_IN",
            State::Sending => "SENDING",
            State::Retrying => "RETRYING",
            State::Paused => "PAUSED",
            State::Sent => "SENT",
            State::Unreachable => "UNREACHABLE",
            State::Expired => "EXPIRED",
            State::OptedOut => "OPTED_OUT",
        }
    }

    /// Terminal states end the opt-in: nothing is ever sent from them and nothing leaves them.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Sent | State::Unreachable | State::Expired | State::OptedOut
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happens to an opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A sender takes the opt-in (conditional write with a lease).
    Claim,
    /// The Send API accepted the message (2xx).
    Accepted,
    /// A transient failure before the deadline: try again.
    TransientFailure,
    /// Graph says the person cannot be reached (blocked, unavailable, unknown login_id).
    Unreachable,
    /// Graph says the messaging window is closed.
    WindowRejected,
    /// Graph says our configuration is wrong (token, permission, Page restricted).
    ConfigRejected,
    /// The clock reached the deadline before a message was sent.
    DeadlinePassed,
    /// The person opted out (API, deauthorize, deletion, stop keyword, Page blocked).
    OptOut,
    /// The operator fixed the configuration: a paused opt-in may be tried again.
    Resume,
    /// A send job found its Page paused (our configuration is wrong or the Page is restricted):
    /// the opt-in waits, unsent, until the Page resumes.
    PagePaused,
    /// The person opted out after their opt-in ended (SENT, UNREACHABLE or EXPIRED): the opt-out
    /// is recorded on it (`opted_out_at`, once) and the state and its evidence stay as they are,
    /// so [`OptIn::has_opted_out`] refuses every later follow-up.
    OptOutAfterEnd,
}

impl Event {
    pub const ALL: [Event; 11] = [
        Event::Claim,
        Event::Accepted,
        Event::TransientFailure,
        Event::Unreachable,
        Event::WindowRejected,
        Event::ConfigRejected,
        Event::DeadlinePassed,
        Event::OptOut,
        Event::Resume,
        Event::PagePaused,
        Event::OptOutAfterEnd,
    ];

    /// The states this event may leave from.
    ///
    /// `Claim` from `SENDING` is allowed only when the previous lease has expired (a crashed sender);
    /// `DeadlinePassed` from `SENDING` likewise. Stores add that lease condition.
    pub fn sources(self) -> &'static [State] {
        use State::*;
        match self {
            Event::Claim => &[OptedIn, Retrying, Sending],
            Event::Accepted
            | Event::TransientFailure
            | Event::Unreachable
            | Event::WindowRejected
            | Event::ConfigRejected => &[Sending],
            Event::DeadlinePassed => &[OptedIn, Retrying, Paused, Sending],
            Event::OptOut => &[OptedIn, Sending, Retrying, Paused],
            Event::Resume => &[Paused],
            Event::PagePaused => &[OptedIn, Retrying],
            Event::OptOutAfterEnd => &[Sent, Unreachable, Expired],
        }
    }

    /// The state this event leads to; `None` for an event that records something on the opt-in
    /// and leaves its state as it is ([`Event::OptOutAfterEnd`]).
    pub fn target(self) -> Option<State> {
        Some(match self {
            Event::Claim => State::Sending,
            Event::Accepted => State::Sent,
            Event::TransientFailure => State::Retrying,
            Event::Unreachable => State::Unreachable,
            Event::WindowRejected => State::Expired,
            Event::ConfigRejected => State::Paused,
            Event::DeadlinePassed => State::Expired,
            Event::OptOut => State::OptedOut,
            Event::Resume => State::Retrying,
            Event::PagePaused => State::Paused,
            Event::OptOutAfterEnd => return None,
        })
    }

    /// Whether leaving `SENDING` with this event requires the current lease to have expired
    /// (as opposed to being done by the lease owner).
    pub fn from_sending_needs_expired_lease(self) -> bool {
        matches!(self, Event::Claim | Event::DeadlinePassed)
    }

    /// Whether leaving `SENDING` with this event must be done by the lease owner.
    pub fn from_sending_needs_owner(self) -> bool {
        matches!(
            self,
            Event::Accepted
                | Event::TransientFailure
                | Event::Unreachable
                | Event::WindowRejected
                | Event::ConfigRejected
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transition {event:?} is not allowed from {from}")]
pub struct TransitionRefused {
    pub from: State,
    pub event: Event,
}

/// The pure state machine: where `event` takes an opt-in that is in `from`.
pub fn transition(from: State, event: Event) -> Result<State, TransitionRefused> {
    if event.sources().contains(&from) {
        Ok(event.target().unwrap_or(from))
    } else {
        Err(TransitionRefused { from, event })
    }
}

/// Identifies one opt-in: the Page that may message and the person's `login_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OptInKey {
    pub page_id: String,
    pub login_id: String,
}

impl OptInKey {
    pub fn new(page_id: impl Into<String>, login_id: impl Into<String>) -> Self {
        Self {
            page_id: page_id.into(),
            login_id: login_id.into(),
        }
    }
}

/// The last error Graph returned for this opt-in (evidence; never contains tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LastError {
    /// Graph error code, or 0 for transport failures (timeout, connection, 5xx without a body).
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
    /// Short, non-identifying description (the Graph message or the transport error kind).
    pub message: String,
}

/// One opt-in, as stored. Timestamps are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptIn {
    pub page_id: String,
    pub login_id: String,
    pub state: State,
    /// When the person opted in (the webhook event's timestamp, never later than its receipt).
    pub opted_in_at: Millis,
    /// The instant after which nothing may be sent.
    pub deadline_at: Millis,
    /// When the operators should hear about this opt-in if it is still unsent.
    pub alert_at: Millis,
    /// When the webhook was received and the item written.
    pub created_at: Millis,
    /// Which consent of this (Page, login_id) the item holds: 0 for the first, +1 for each new
    /// consent recorded after an opt-out ([`is_new_consent`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u32,
    /// The earlier generations, oldest first, as they ended (evidence kept on the item, so a data
    /// deletion that erases the item erases them too). Their own `previous_generations` is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_generations: Vec<OptIn>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Millis>,
    /// Graph accepted the initial message after the opt-out was recorded (a send already in flight
    /// when the person opted out): `message_id` and `sent_at` then say what landed, never hidden.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sent_after_opt_out: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerted_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opted_out_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out_source: Option<String>,
    /// The state the opt-out found (written by the same conditional write): `SENDING` means a
    /// send was in flight when the person opted out, so the message may still land (promise 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opted_out_from: Option<State>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// The person's page-scoped id, once they wrote to the Page after the initial message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psid: Option<String>,
    /// When the person last wrote to the Page: the standard 24-hour reply window runs from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_user_message_at: Option<Millis>,
    /// Created by a login (`START_AT_LOGIN`), not by the webhook: the webhook that follows is a
    /// duplicate and queues nothing (the login already did), and only the sweep re-queues it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub started_at_login: bool,
    #[serde(default)]
    pub updated_at: Millis,
}

impl OptIn {
    /// A new opt-in in `OPTED_IN`.
    ///
    /// The opt-in time is the event's own timestamp, but never later than `received_at`: a clock
    /// skewed into the future must not stretch the 24-hour window.
    pub fn new(
        key: OptInKey,
        event_timestamp: Option<Millis>,
        received_at: Millis,
        window_ms: Millis,
        alert_lead_ms: Millis,
    ) -> Self {
        let opted_in_at = event_timestamp
            .filter(|t| *t > 0)
            .map_or(received_at, |t| t.min(received_at));
        let deadline_at = opted_in_at.saturating_add(window_ms);
        Self {
            page_id: key.page_id,
            login_id: key.login_id,
            state: State::OptedIn,
            opted_in_at,
            deadline_at,
            alert_at: deadline_at.saturating_sub(alert_lead_ms).max(opted_in_at),
            created_at: received_at,
            generation: 0,
            previous_generations: Vec::new(),
            attempts: 0,
            lease_owner: None,
            lease_until: None,
            message_id: None,
            sent_at: None,
            sent_after_opt_out: false,
            terminal_at: None,
            alerted_at: None,
            opted_out_at: None,
            opt_out_source: None,
            opted_out_from: None,
            last_error: None,
            psid: None,
            last_user_message_at: None,
            started_at_login: false,
            updated_at: received_at,
        }
    }

    pub fn key(&self) -> OptInKey {
        OptInKey::new(&self.page_id, &self.login_id)
    }

    /// This new opt-in as the next generation after `previous` (a new consent, see
    /// [`is_new_consent`]): its own times and 24-hour window, the previous one kept as evidence,
    /// and the person's PSID link carried over (it belongs to the person, not to one consent).
    pub fn renewing(mut self, previous: &OptIn) -> Self {
        let mut history = previous.previous_generations.clone();
        let mut ended = previous.clone();
        ended.previous_generations = Vec::new();
        history.push(ended);
        self.generation = previous.generation.saturating_add(1);
        self.previous_generations = history;
        self.psid = previous.psid.clone();
        self.last_user_message_at = previous.last_user_message_at;
        self
    }

    /// Whether the person has opted out of this Page: the opt-in ended in `OPTED_OUT`, or an
    /// opt-out was recorded after it ended (a `SENT` opt-in keeps its state and its evidence and
    /// gets `opted_out_at`). Every later follow-up is refused with `opted_out` on this one rule.
    pub fn has_opted_out(&self) -> bool {
        self.state == State::OptedOut || self.opted_out_at.is_some()
    }

    pub fn deadline_passed(&self, now: Millis) -> bool {
        now >= self.deadline_at
    }

    pub fn lease_expired(&self, now: Millis) -> bool {
        self.lease_until.is_none_or(|until| until <= now)
    }

    /// Whether a sender could claim this opt-in at `now` (the same rule the store's condition encodes).
    pub fn claimable(&self, now: Millis) -> bool {
        let state_ok = match self.state {
            State::OptedIn | State::Retrying => true,
            State::Sending => self.lease_expired(now),
            _ => false,
        };
        state_ok && !self.deadline_passed(now)
    }
}

/// How long Meta may redeliver a webhook (it retries failed deliveries for up to 36 hours). An
/// opt-in webhook dated within this horizon after a recorded opt-out may be a redelivery of the
/// consent that was withdrawn.
pub const REDELIVERY_HORIZON_MS: Millis = 36 * HOUR_MS;

/// Whether an opt-in webhook dated `event_at` is a new consent that replaces `current`: only an
/// opt-in the person opted out of (OPTED_OUT, an opt-out placeholder, or an ended opt-in with an
/// opt-out recorded after its end) is replaced, and only by an event later than the opt-out by
/// more than [`REDELIVERY_HORIZON_MS`], so a redelivered old webhook can never revive it. A
/// webhook without its own event time (`None`) is never a new consent.
pub fn is_new_consent(current: &OptIn, event_at: Option<Millis>) -> bool {
    let Some(event_at) = event_at else {
        return false;
    };
    // Every opt-out writes `opted_out_at`: it alone says the person opted out (has_opted_out).
    current
        .opted_out_at
        .is_some_and(|out| event_at > out.saturating_add(REDELIVERY_HORIZON_MS))
}

/// The suffix of an `opt_out_source` recorded on a placeholder (the opt-out came before the
/// opt-in): such an item holds no opt-in evidence.
pub const BEFORE_OPT_IN_SUFFIX: &str = "_before_opt_in";

/// The `opt_out_source` of a placeholder created for an opt-out from `source`.
pub fn placeholder_source(source: &str) -> String {
    format!("{source}{BEFORE_OPT_IN_SUFFIX}")
}

/// Whether the item is a placeholder (an opt-out recorded before any opt-in), not an opt-in.
pub fn is_placeholder(opt_in: &OptIn) -> bool {
    opt_in
        .opt_out_source
        .as_deref()
        .is_some_and(|s| s.ends_with(BEFORE_OPT_IN_SUFFIX))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An epoch-millisecond instant as RFC 3339 in UTC (`2026-11-24T16:43:06Z`); empty when out of range.
pub fn utc(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The first 8 characters of a login_id, for logs and alerts.
pub fn login_id_prefix(login_id: &str) -> String {
    login_id.chars().take(8).collect()
}

/// How a sender leaves `SENDING` after talking to Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent { message_id: String },
    Retry { error: LastError },
    Unreachable { error: LastError },
    WindowClosed { error: LastError },
    Paused { error: LastError },
}

impl SendOutcome {
    pub fn target_state(&self) -> State {
        match self {
            SendOutcome::Sent { .. } => State::Sent,
            SendOutcome::Retry { .. } => State::Retrying,
            SendOutcome::Unreachable { .. } => State::Unreachable,
            SendOutcome::WindowClosed { .. } => State::Expired,
            SendOutcome::Paused { .. } => State::Paused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_transition_reaches_its_target() {
        let expected: &[(State, Event, State)] = &[
            (State::OptedIn, Event::Claim, State::Sending),
            (State::Retrying, Event::Claim, State::Sending),
            (State::Sending, Event::Claim, State::Sending),
            (State::Sending, Event::Accepted, State::Sent),
            (State::Sending, Event::TransientFailure, State::Retrying),
            (State::Sending, Event::Unreachable, State::Unreachable),
            (State::Sending, Event::WindowRejected, State::Expired),
            (State::Sending, Event::ConfigRejected, State::Paused),
            (State::OptedIn, Event::DeadlinePassed, State::Expired),
            (State::Retrying, Event::DeadlinePassed, State::Expired),
            (State::Paused, Event::DeadlinePassed, State::Expired),
            (State::Sending, Event::DeadlinePassed, State::Expired),
            (State::OptedIn, Event::OptOut, State::OptedOut),
            (State::Sending, Event::OptOut, State::OptedOut),
            (State::Retrying, Event::OptOut, State::OptedOut),
            (State::Paused, Event::OptOut, State::OptedOut),
            (State::Paused, Event::Resume, State::Retrying),
            (State::OptedIn, Event::PagePaused, State::Paused),
            (State::Retrying, Event::PagePaused, State::Paused),
            (State::Sent, Event::OptOutAfterEnd, State::Sent),
            (
                State::Unreachable,
                Event::OptOutAfterEnd,
                State::Unreachable,
            ),
            (State::Expired, Event::OptOutAfterEnd, State::Expired),
        ];
        for (from, event, to) in expected {
            assert_eq!(transition(*from, *event), Ok(*to), "{from} --{event:?}-->");
        }
        // And nothing else is allowed: the table above is the whole machine.
        let mut allowed = 0;
        for from in State::ALL {
            for event in Event::ALL {
                let listed = expected.iter().any(|(f, e, _)| *f == from && *e == event);
                match transition(from, event) {
                    Ok(_) => {
                        allowed += 1;
                        assert!(
                            listed,
                            "{from} --{event:?}--> allowed but not in the blueprint"
                        );
                    }
                    Err(refused) => {
                        assert!(!listed, "{from} --{event:?}--> refused but listed");
                        assert_eq!(refused, TransitionRefused { from, event });
                    }
                }
            }
        }
        assert_eq!(allowed, expected.len());
    }

    #[test]
    fn nothing_leaves_a_terminal_state() {
        for from in State::ALL.into_iter().filter(|s| s.is_terminal()) {
            for event in Event::ALL {
                match transition(from, event) {
                    Err(_) => {}
                    // Issue 12: an opt-out after the end is recorded; the state stays.
                    Ok(to) => assert_eq!(
                        (to, event),
                        (from, Event::OptOutAfterEnd),
                        "{from} left by {event:?}"
                    ),
                }
            }
        }
        // Every state but OPTED_OUT can record an opt-out, one way or the other.
        for from in State::ALL.into_iter().filter(|s| *s != State::OptedOut) {
            let recorded = [Event::OptOut, Event::OptOutAfterEnd]
                .iter()
                .filter(|e| transition(from, **e).is_ok())
                .count();
            assert_eq!(recorded, 1, "{from}");
        }
    }

    #[test]
    fn every_non_terminal_state_can_opt_out_and_expire_or_be_sent() {
        for from in State::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert_eq!(transition(from, Event::OptOut), Ok(State::OptedOut));
            assert_eq!(transition(from, Event::DeadlinePassed), Ok(State::Expired));
        }
    }

    #[test]
    fn sending_rules_distinguish_owner_from_expired_lease() {
        assert!(!Event::OptOutAfterEnd.sources().contains(&State::Sending));
        for event in Event::ALL {
            if event.sources().contains(&State::Sending) && event != Event::OptOut {
                assert!(
                    event.from_sending_needs_owner() ^ event.from_sending_needs_expired_lease(),
                    "{event:?} must need exactly one of owner / expired lease"
                );
            }
        }
        assert!(!Event::OptOut.from_sending_needs_owner());
        assert!(!Event::OptOut.from_sending_needs_expired_lease());
    }

    #[test]
    fn state_names_round_trip_through_json() {
        for state in State::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(serde_json::from_str::<State>(&json).unwrap(), state);
        }
    }

    #[test]
    fn deadline_is_event_time_plus_window_but_never_after_receipt_plus_window() {
        let key = OptInKey::new("p", "l");
        let o = OptIn::new(
            key.clone(),
            Some(1_000),
            5_000,
            DEFAULT_OPTIN_WINDOW_MS,
            2 * HOUR_MS,
        );
        assert_eq!(o.opted_in_at, 1_000);
        assert_eq!(o.deadline_at, 1_000 + DEFAULT_OPTIN_WINDOW_MS);
        assert_eq!(o.alert_at, 1_000 + 22 * HOUR_MS);
        // A timestamp from the future is clamped to the receipt time.
        let f = OptIn::new(key.clone(), Some(9_000), 5_000, DEFAULT_OPTIN_WINDOW_MS, 0);
        assert_eq!(f.opted_in_at, 5_000);
        // Missing or nonsense timestamps use the receipt time.
        let m = OptIn::new(key.clone(), None, 5_000, 1_000, 0);
        assert_eq!((m.opted_in_at, m.deadline_at), (5_000, 6_000));
        let z = OptIn::new(key, Some(-3), 5_000, 1_000, 0);
        assert_eq!(z.opted_in_at, 5_000);
    }

    #[test]
    fn alert_time_never_precedes_the_opt_in() {
        let o = OptIn::new(
            OptInKey::new("p", "l"),
            Some(10_000),
            10_000,
            60_000,
            120 * 60_000,
        );
        assert_eq!(o.alert_at, 10_000);
    }

    #[test]
    fn claimable_follows_state_lease_and_deadline() {
        let mut o = OptIn::new(OptInKey::new("p", "l"), Some(0), 0, 1_000, 0);
        assert!(o.claimable(10));
        assert!(!o.claimable(1_000), "at the deadline nothing may be sent");
        o.state = State::Sending;
        o.lease_until = Some(500);
        assert!(!o.claimable(100), "live lease");
        assert!(o.claimable(500), "expired lease");
        for s in [
            State::Paused,
            State::Sent,
            State::OptedOut,
            State::Expired,
            State::Unreachable,
        ] {
            o.state = s;
            assert!(!o.claimable(10), "{s}");
        }
    }

    fn opted_out_at(at: Millis) -> OptIn {
        let mut o = OptIn::new(
            OptInKey::new("p", "l"),
            Some(at - HOUR_MS),
            at,
            DEFAULT_OPTIN_WINDOW_MS,
            0,
        );
        o.state = State::OptedOut;
        o.opted_out_at = Some(at);
        o.terminal_at = Some(at);
        o
    }

    #[test]
    fn a_new_consent_is_an_opt_in_dated_beyond_the_redelivery_horizon_after_an_opt_out() {
        let out = opted_out_at(1_000_000);
        let horizon = out.opted_out_at.unwrap() + REDELIVERY_HORIZON_MS;
        assert!(is_new_consent(&out, Some(horizon + 1)));
        assert!(
            !is_new_consent(&out, Some(horizon)),
            "at the horizon it may be a redelivery"
        );
        assert!(
            !is_new_consent(&out, Some(1_000_000 - HOUR_MS)),
            "the withdrawn consent itself"
        );
        assert!(!is_new_consent(&out, None), "no event time, no new consent");
        // Issue 12: an opt-out recorded after the end counts too (the state stays SENT, …).
        for state in [State::Sent, State::Unreachable, State::Expired] {
            let mut ended = out.clone();
            ended.state = state;
            assert!(is_new_consent(&ended, Some(horizon + 1)), "{state}");
            assert!(!is_new_consent(&ended, Some(horizon)), "{state}");
        }
        // No opt-out recorded: never replaced, whatever the state.
        for state in State::ALL {
            let mut other = out.clone();
            other.state = state;
            other.opted_out_at = None;
            assert!(!is_new_consent(&other, Some(horizon + 1)), "{state}");
        }
        let mut no_time = out;
        no_time.opted_out_at = None;
        assert!(!is_new_consent(&no_time, Some(horizon + 1)));
    }

    #[test]
    fn a_renewed_opt_in_has_its_own_window_and_keeps_the_previous_generations() {
        let mut first = opted_out_at(1_000_000);
        first.psid = Some("psid".into());
        let at = 1_000_000 + REDELIVERY_HORIZON_MS + 5;
        let second =
            OptIn::new(first.key(), Some(at), at, DEFAULT_OPTIN_WINDOW_MS, 0).renewing(&first);
        assert_eq!((second.generation, second.state), (1, State::OptedIn));
        assert_eq!(second.deadline_at, at + DEFAULT_OPTIN_WINDOW_MS);
        assert_eq!(second.previous_generations, vec![first.clone()]);
        assert_eq!(second.psid.as_deref(), Some("psid"));
        let mut ended = second.clone();
        ended.state = State::OptedOut;
        ended.opted_out_at = Some(at + 10);
        let later = at + 10 + REDELIVERY_HORIZON_MS + 1;
        let third = OptIn::new(first.key(), Some(later), later, DEFAULT_OPTIN_WINDOW_MS, 0)
            .renewing(&ended);
        assert_eq!(third.generation, 2);
        assert_eq!(third.previous_generations.len(), 2);
        assert!(
            third.previous_generations[1]
                .previous_generations
                .is_empty(),
            "no nesting"
        );
        let json = serde_json::to_string(&third).unwrap();
        assert_eq!(serde_json::from_str::<OptIn>(&json).unwrap(), third);
        // A first generation serialises as before (no generation fields).
        let plain = serde_json::to_value(OptIn::new(first.key(), Some(1), 1, 10, 0)).unwrap();
        assert!(plain.get("generation").is_none() && plain.get("previous_generations").is_none());
    }

    #[test]
    fn an_opt_in_stored_before_the_in_flight_flag_reads_as_not_sent_after_opt_out() {
        let mut o = OptIn::new(OptInKey::new("p", "l"), Some(0), 0, 10, 0);
        let json = serde_json::to_value(&o).unwrap();
        assert!(
            json.get("sent_after_opt_out").is_none(),
            "absent while false"
        );
        let old: OptIn = serde_json::from_value(json).unwrap();
        assert!(!old.sent_after_opt_out);
        o.sent_after_opt_out = true;
        let back: OptIn = serde_json::from_value(serde_json::to_value(&o).unwrap()).unwrap();
        assert!(back.sent_after_opt_out);
    }
}
