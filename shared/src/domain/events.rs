//! Events to the website backend (issue 12): what happened to a person, as the body of a
//! Standard Webhooks delivery (standardwebhooks.com). Pure: the envelope, the event types, and the
//! deterministic event id; signing and delivery live in the adapters and the event sender.
//!
//! Every `data` carries `occurred_at` and the person's `state`, and the website's `user_ref` when
//! one is known, so a receiver can order events itself (delivery order is not guaranteed).

use crate::domain::opt_in::{Millis, utc};
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
