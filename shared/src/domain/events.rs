//! Events to the website backend (issue 12): what happened to a person, as the body of a
//! Standard Webhooks delivery (standardwebhooks.com). Pure: the envelope, the event types, and the
//! deterministic event id; signing and delivery live in the adapters and the event sender.
//!
//! Every `data` carries `occurred_at` and the person's `state`, and the website's `user_ref` when
//! one is known, so a receiver can order events itself (delivery order is not guaranteed).

use crate::domain::login::Permission;
use crate::domain::opt_in::{HOUR_MS, Millis, OptIn, State, utc};
use serde::{Deserialize, Serialize};

/// The event types, as their wire names (`type` of the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "login.completed")]
    LoginCompleted,
    #[serde(rename = "optin.received")]
    OptInReceived,
    #[serde(rename = "message.sent")]
    MessageSent,
    #[serde(rename = "message.failed")]
    MessageFailed,
    #[serde(rename = "optin.expired")]
    OptInExpired,
    #[serde(rename = "optin.unreachable")]
    OptInUnreachable,
    #[serde(rename = "person.opted_out")]
    PersonOptedOut,
    #[serde(rename = "person.replied")]
    PersonReplied,
    #[serde(rename = "person.deleted")]
    PersonDeleted,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::LoginCompleted,
        EventType::OptInReceived,
        EventType::MessageSent,
        EventType::MessageFailed,
        EventType::OptInExpired,
        EventType::OptInUnreachable,
        EventType::PersonOptedOut,
        EventType::PersonReplied,
        EventType::PersonDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::LoginCompleted => "login.completed",
            EventType::OptInReceived => "optin.received",
            EventType::MessageSent => "message.sent",
            EventType::MessageFailed => "message.failed",
            EventType::OptInExpired => "optin.expired",
            EventType::OptInUnreachable => "optin.unreachable",
            EventType::PersonOptedOut => "person.opted_out",
            EventType::PersonReplied => "person.replied",
            EventType::PersonDeleted => "person.deleted",
        }
    }
}

/// One event to deliver. `id` is the Standard Webhooks `webhook-id`: the same on every retry of
/// the delivery, and derived from what happened ([`event_id`]) so that a producer that emits the
/// same occurrence twice (a redelivered webhook, a retried job) emits the same id and a receiver
/// that is idempotent per `webhook-id` sees it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened (epoch ms); the body's `timestamp` is this as RFC 3339.
    pub occurred_at: Millis,
    /// The type's fields, plus `occurred_at` (RFC 3339), `state` and `user_ref`.
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// The deterministic `webhook-id` of an occurrence: `evt_` + 32 hex characters of SHA-256 over
/// the type and `occurrence` (a string naming what happened, e.g. Page, login_id and message id).
/// A hash, so the id carries no identifier in clear.
pub fn event_id(event_type: EventType, occurrence: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}\u{1f}{occurrence}", event_type.as_str()).as_bytes());
    format!("evt_{}", &hex::encode(digest)[..32])
}

impl OutboundEvent {
    /// An event of `event_type` for `occurrence` at `occurred_at`, with `data` (the type's own
    /// fields); `occurred_at` (RFC 3339) is added to `data`.
    pub fn new(
        event_type: EventType,
        occurrence: &str,
        occurred_at: Millis,
        mut data: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        data.insert("occurred_at".into(), utc_millis(occurred_at).into());
        Self {
            id: event_id(event_type, occurrence),
            event_type,
            occurred_at,
            data,
        }
    }

    /// The Standard Webhooks body: `{"type", "timestamp", "data"}` (exact bytes that get signed).
    pub fn body(&self) -> String {
        serde_json::json!({
            "type": self.event_type.as_str(),
            "timestamp": utc_millis(self.occurred_at),
            "data": self.data,
        })
        .to_string()
    }
}

/// Who an event is about, as every `data` carries it: the person's asid, the website's
/// `user_ref`, and the person's state (the opt-in's state wire name), each `null` when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub asid: Option<String>,
    pub user_ref: Option<String>,
    pub state: Option<State>,
}

/// Which message a `message.*` event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Initial,
    FollowUp,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Initial => "initial",
            MessageKind::FollowUp => "follow_up",
        }
    }
}

/// The standard messaging window a person's message opens (Meta: 24 hours after it).
pub const REPLY_WINDOW_MS: Millis = 24 * HOUR_MS;

/// The stable id of one opt-in (one consent: Page, login_id and generation), for the website:
/// the `id` of its initial message's `message.sent` / `message.failed`, and the occurrence its
/// other events derive from. A hash, so the login_id is never in an event in clear.
pub fn opt_in_id(opt_in: &OptIn) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(
        format!(
            "{}\u{1f}{}\u{1f}{}",
            opt_in.page_id, opt_in.login_id, opt_in.generation
        )
        .as_bytes(),
    );
    format!("optin_{}", &hex::encode(digest)[..32])
}

fn event(
    event_type: EventType,
    occurrence: &str,
    occurred_at: Millis,
    subject: &Subject,
    fields: serde_json::Value,
) -> OutboundEvent {
    let mut data = match fields {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    data.insert("asid".into(), subject.asid.clone().into());
    data.insert("state".into(), subject.state.map(State::as_str).into());
    data.insert("user_ref".into(), subject.user_ref.clone().into());
    OutboundEvent::new(event_type, occurrence, occurred_at, data)
}

/// `login.completed`: one login (occurrence: the person and the login's time).
pub fn login_completed(
    subject: &Subject,
    permission: Permission,
    login_at: Millis,
) -> OutboundEvent {
    let occurrence = format!("{}\u{1f}{login_at}", subject.asid.as_deref().unwrap_or(""));
    event(
        EventType::LoginCompleted,
        &occurrence,
        login_at,
        subject,
        serde_json::json!({"permission": permission.as_str()}),
    )
}

/// `optin.received`: the opt-in (one per consent), at its opt-in time.
pub fn opt_in_received(subject: &Subject, opt_in: &OptIn) -> OutboundEvent {
    event(
        EventType::OptInReceived,
        &opt_in_id(opt_in),
        opt_in.opted_in_at,
        subject,
        serde_json::json!({
            "opted_in_at": utc_millis(opt_in.opted_in_at),
            "deadline_at": utc_millis(opt_in.deadline_at),
        }),
    )
}

/// `message.sent`: message `id` of `kind` (the initial one: [`opt_in_id`]) accepted by Meta as
/// `message_id` at `sent_at` (occurrence: kind and id, so a retried producer repeats the id).
pub fn message_sent(
    subject: &Subject,
    kind: MessageKind,
    id: &str,
    message_id: &str,
    sent_at: Millis,
) -> OutboundEvent {
    event(
        EventType::MessageSent,
        &format!("{}\u{1f}{id}", kind.as_str()),
        sent_at,
        subject,
        serde_json::json!({
            "kind": kind.as_str(),
            "id": id,
            "message_id": message_id,
            "sent_at": utc_millis(sent_at),
        }),
    )
}

/// `message.failed`: message `id` of `kind` will not be sent, for `reason` (a short code).
pub fn message_failed(
    subject: &Subject,
    kind: MessageKind,
    id: &str,
    reason: &str,
    failed_at: Millis,
) -> OutboundEvent {
    event(
        EventType::MessageFailed,
        &format!("{}\u{1f}{id}", kind.as_str()),
        failed_at,
        subject,
        serde_json::json!({"kind": kind.as_str(), "id": id, "reason": reason}),
    )
}

/// `optin.expired`: the opt-in's window ended with no message sent.
pub fn opt_in_expired(subject: &Subject, opt_in: &OptIn, at: Millis) -> OutboundEvent {
    event(
        EventType::OptInExpired,
        &opt_in_id(opt_in),
        at,
        subject,
        serde_json::json!({}),
    )
}

/// `optin.unreachable`: Meta says the person cannot be reached.
pub fn opt_in_unreachable(subject: &Subject, opt_in: &OptIn, at: Millis) -> OutboundEvent {
    event(
        EventType::OptInUnreachable,
        &opt_in_id(opt_in),
        at,
        subject,
        serde_json::json!({}),
    )
}

/// `person.opted_out`: the opt-out recorded on `opt_in` (once per consent), from `source`
/// (`api`, `stop_keyword`, `stop_notifications`, `deauthorize`, `data_deletion`, …).
pub fn person_opted_out(
    subject: &Subject,
    opt_in: &OptIn,
    source: &str,
    opted_out_at: Millis,
) -> OutboundEvent {
    event(
        EventType::PersonOptedOut,
        &opt_in_id(opt_in),
        opted_out_at,
        subject,
        serde_json::json!({"source": source}),
    )
}

/// `person.replied`: the person wrote `text` at `received_at`; the standard window runs to
/// `received_at` + 24 h. The occurrence names the conversation (`thread`, e.g. Page and PSID),
/// the time and the text, so a redelivered webhook repeats the id.
pub fn person_replied(
    subject: &Subject,
    thread: &str,
    text: &str,
    received_at: Millis,
) -> OutboundEvent {
    event(
        EventType::PersonReplied,
        &format!("{thread}\u{1f}{received_at}\u{1f}{text}"),
        received_at,
        subject,
        serde_json::json!({
            "text": text,
            "received_at": utc_millis(received_at),
            "window_ends_at": utc_millis(received_at.saturating_add(REPLY_WINDOW_MS)),
        }),
    )
}

/// `person.deleted`: the person's data was erased (Meta's data deletion callback), with the
/// confirmation code Meta was given (the occurrence: one per deletion request).
pub fn person_deleted(subject: &Subject, confirmation_code: &str, at: Millis) -> OutboundEvent {
    event(
        EventType::PersonDeleted,
        confirmation_code,
        at,
        subject,
        serde_json::json!({"confirmation_code": confirmation_code}),
    )
}

/// RFC 3339 with milliseconds (events of the same second stay ordered).
fn utc_millis(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| utc(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_per_type_and_occurrence() {
        let a = event_id(EventType::MessageSent, "p#l#m1");
        assert_eq!(a, event_id(EventType::MessageSent, "p#l#m1"));
        assert_ne!(a, event_id(EventType::MessageSent, "p#l#m2"));
        assert_ne!(a, event_id(EventType::MessageFailed, "p#l#m1"));
        assert!(a.starts_with("evt_") && a.len() == 36);
    }

    fn subject() -> Subject {
        Subject {
            asid: Some("42".into()),
            user_ref: Some("cust_1".into()),
            state: Some(State::Sent),
        }
    }

    fn opt_in() -> OptIn {
        let mut o = OptIn::new(
            crate::domain::opt_in::OptInKey::new("p", "login-secret"),
            Some(1_764_000_000_000),
            1_764_000_000_000,
            24 * HOUR_MS,
            0,
        );
        o.generation = 1;
        o
    }

    /// The keys of an event's `data`, sorted.
    fn keys(event: &OutboundEvent) -> Vec<&str> {
        let mut keys: Vec<&str> = event.data.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    const COMMON: [&str; 4] = ["asid", "occurred_at", "state", "user_ref"];

    fn with_common<'a>(own: &[&'a str]) -> Vec<&'a str> {
        let mut all: Vec<&str> = COMMON.iter().copied().chain(own.iter().copied()).collect();
        all.sort_unstable();
        all
    }

    #[test]
    fn every_constructor_builds_its_type_with_its_fields_and_the_common_ones() {
        let s = subject();
        let o = opt_in();
        let id = opt_in_id(&o);
        let at = 1_764_000_100_000;
        let cases = [
            (
                login_completed(&s, Permission::Granted, at),
                EventType::LoginCompleted,
                vec!["permission"],
            ),
            (
                opt_in_received(&s, &o),
                EventType::OptInReceived,
                vec!["deadline_at", "opted_in_at"],
            ),
            (
                message_sent(&s, MessageKind::Initial, &id, "m.1", at),
                EventType::MessageSent,
                vec!["id", "kind", "message_id", "sent_at"],
            ),
            (
                message_failed(&s, MessageKind::FollowUp, "msg_1", "outside_window", at),
                EventType::MessageFailed,
                vec!["id", "kind", "reason"],
            ),
            (opt_in_expired(&s, &o, at), EventType::OptInExpired, vec![]),
            (
                opt_in_unreachable(&s, &o, at),
                EventType::OptInUnreachable,
                vec![],
            ),
            (
                person_opted_out(&s, &o, "stop_keyword", at),
                EventType::PersonOptedOut,
                vec!["source"],
            ),
            (
                person_replied(&s, "p\u{1f}psid", "hi", at),
                EventType::PersonReplied,
                vec!["received_at", "text", "window_ends_at"],
            ),
            (
                person_deleted(&s, "CODE1", at),
                EventType::PersonDeleted,
                vec!["confirmation_code"],
            ),
        ];
        for (event, event_type, own) in &cases {
            assert_eq!(event.event_type, *event_type);
            assert_eq!(keys(event), with_common(own), "{event_type:?}");
            assert_eq!(event.data["asid"], "42");
            assert_eq!(event.data["user_ref"], "cust_1");
            assert_eq!(event.data["state"], "SENT");
            assert!(!event.body().contains("login-secret"), "{event_type:?}");
        }
        let sent = &cases[2].0;
        assert_eq!(sent.data["kind"], "initial");
        assert_eq!(sent.data["id"], id.as_str());
        assert_eq!(sent.data["sent_at"], "2025-11-24T16:01:40.000Z");
        assert_eq!(cases[3].0.data["kind"], "follow_up");
        assert_eq!(cases[0].0.data["permission"], "granted");
        let replied = &cases[7].0;
        assert_eq!(replied.data["received_at"], "2025-11-24T16:01:40.000Z");
        assert_eq!(replied.data["window_ends_at"], "2025-11-25T16:01:40.000Z");
        assert_eq!(cases[1].0.occurred_at, o.opted_in_at);
        // Unknown: nulls, never missing keys.
        let unknown = opt_in_expired(&Subject::default(), &o, at);
        for key in ["asid", "user_ref", "state"] {
            assert_eq!(unknown.data[key], serde_json::Value::Null, "{key}");
        }
    }

    #[test]
    fn ids_follow_the_occurrence_not_the_emission() {
        let s = subject();
        let o = opt_in();
        let id = opt_in_id(&o);
        assert!(id.starts_with("optin_") && id.len() == 38);
        assert!(!id.contains("login-secret"));
        let mut next = o.clone();
        next.generation = 2;
        assert_ne!(opt_in_id(&next), id, "a new consent is a new opt-in");
        // The same occurrence, whenever and with whatever subject it is built: the same id.
        let a = message_sent(&s, MessageKind::Initial, &id, "m.1", 1);
        let b = message_sent(&Subject::default(), MessageKind::Initial, &id, "m.1", 2);
        assert_eq!(a.id, b.id);
        assert_ne!(
            a.id,
            message_sent(&s, MessageKind::FollowUp, &id, "m.1", 1).id
        );
        assert_eq!(
            person_opted_out(&s, &o, "api", 5).id,
            person_opted_out(&s, &o, "api", 5).id
        );
        let r1 = person_replied(&s, "t", "hi", 7);
        assert_eq!(r1.id, person_replied(&s, "t", "hi", 7).id);
        assert_ne!(r1.id, person_replied(&s, "t", "hi", 8).id);
        assert_ne!(r1.id, person_replied(&s, "t", "hello", 7).id);
    }

    #[test]
    fn the_body_is_the_standard_webhooks_envelope() {
        let mut data = serde_json::Map::new();
        data.insert("asid".into(), "42".into());
        let event = OutboundEvent::new(EventType::PersonReplied, "x", 1_764_000_000_123, data);
        let body: serde_json::Value = serde_json::from_str(&event.body()).unwrap();
        assert_eq!(body["type"], "person.replied");
        assert_eq!(body["timestamp"], "2025-11-24T16:00:00.123Z");
        assert_eq!(body["data"]["asid"], "42");
        assert_eq!(body["data"]["occurred_at"], "2025-11-24T16:00:00.123Z");
        for t in EventType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }
}
