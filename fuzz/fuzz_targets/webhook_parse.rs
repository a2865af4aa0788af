//! `shared::facebook::webhook::parse_webhook` (the Messenger webhook JSON).
//!
//! Arbitrary bytes never panic. When a body parses, each event is checked against a plain reading
//! of the JSON: one event per `messaging`/`standby` item, in order; an `OptIn` carries the item's
//! own non-empty `optin.login_id` and page id; an echo is never a person's `Message`; every id the
//! events carry is non-empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::facebook::webhook::{MessagingEvent, WebhookParseError, parse_webhook};

/// A webhook timestamp read plainly: milliseconds as a number or a string of digits, seconds
/// (×1000) below 10^12, anything else none.
fn epoch_ms(v: &Value) -> Option<i64> {
    let raw = match v {
        Value::Number(n) => n.as_i64()?,
        Value::String(s)
            if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.trim().parse().ok()?
        }
        _ => return None,
    };
    if raw < 0 {
        None
    } else if raw < 1_000_000_000_000 {
        raw.checked_mul(1000)
    } else {
        Some(raw)
    }
}

const OTHER_KINDS: &[&str] = &[
    "no_page",
    "optin",
    "echo",
    "message",
    "policy_enforcement",
    "postback",
    "delivery",
    "read",
    "referral",
    "reaction",
    "unknown",
];

/// A struct field as serde reads it from a JSON object, or from an array (serde's sequence form).
fn field<'a>(v: &'a Value, name: &str, index: usize) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(name),
        Value::Array(a) => a.get(index),
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |cur, p| cur.get(p))?.as_str()
}

fn non_empty(s: &Option<String>) -> bool {
    s.as_ref().is_none_or(|s| !s.is_empty())
}

fuzz_target!(|data: &[u8]| {
    let result = parse_webhook(data);
    assert_eq!(result, parse_webhook(data), "parsing is deterministic");
    let json = serde_json::from_slice::<Value>(data);
    let (object, events) = match result {
        Err(WebhookParseError::NotJson(_)) => {
            assert!(json.is_err(), "valid JSON reported as NotJson");
            return;
        }
        Err(WebhookParseError::NotEnvelope(_)) => {
            assert!(json.is_ok(), "invalid JSON reported as NotEnvelope");
            return;
        }
        Ok(parsed) => parsed,
    };
    let json = json.expect("a parsed webhook is JSON");
    assert_eq!(
        field(&json, "object", 0).and_then(Value::as_str),
        Some(object.as_str())
    );

    // The items, in the parser's order: per entry, `messaging` then `standby`.
    let entries = field(&json, "entry", 1)
        .and_then(Value::as_array)
        .expect("`entry` is an array");
    let mut items = Vec::new();
    for entry in entries {
        let entry_id = field(entry, "id", 0).and_then(Value::as_str);
        let entry_time = field(entry, "time", 1).and_then(epoch_ms);
        for (name, index) in [("messaging", 2), ("standby", 3)] {
            if let Some(list) = field(entry, name, index).and_then(Value::as_array) {
                items.extend(list.iter().map(|item| (entry_id, entry_time, item)));
            }
        }
    }
    assert_eq!(events.len(), items.len(), "one event per item");

    for (event, (entry_id, entry_time, item)) in events.iter().zip(items) {
        let page = str_at(item, &["recipient", "id"]).or(entry_id);
        let timestamp = item.get("timestamp").and_then(epoch_ms).or(entry_time);
        let sender = str_at(item, &["sender", "id"]);
        match event {
            MessagingEvent::OptIn {
                page_id,
                login_id,
                timestamp: ts,
            } => {
                assert!(!page_id.is_empty() && !login_id.is_empty());
                assert_eq!(Some(page_id.as_str()), page);
                assert_eq!(
                    Some(login_id.as_str()),
                    str_at(item, &["optin", "login_id"])
                );
                assert_eq!(*ts, timestamp);
            }
            MessagingEvent::Message {
                page_id,
                psid,
                text,
                timestamp: ts,
                linked_login_id,
            } => {
                assert!(!page_id.is_empty() && !psid.is_empty() && non_empty(linked_login_id));
                assert_eq!(Some(page_id.as_str()), page);
                assert_eq!(Some(psid.as_str()), sender);
                assert!(
                    item.get("optin").is_none(),
                    "an opt-in item read as a message"
                );
                let message = item.get("message").expect("a message item");
                assert_ne!(
                    message.get("is_echo").and_then(Value::as_bool),
                    Some(true),
                    "an echo (the Page's own message) read as the person's"
                );
                assert_eq!(text.as_deref(), str_at(message, &["text"]));
                assert_eq!(*ts, timestamp);
            }
            MessagingEvent::NotificationStatus {
                page_id,
                psid,
                login_id,
                status,
            } => {
                assert!(!page_id.is_empty() && !status.is_empty());
                assert!(non_empty(psid) && non_empty(login_id));
                assert_eq!(Some(page_id.as_str()), page);
                assert_eq!(
                    Some(status.as_str()),
                    str_at(item, &["optin", "notification_messages_status"])
                );
                if let Some(psid) = psid {
                    assert_eq!(Some(psid.as_str()), sender);
                }
            }
            MessagingEvent::PolicyEnforcement {
                page_id, action, ..
            } => {
                assert!(!page_id.is_empty() && !action.is_empty());
                assert_eq!(Some(page_id.as_str()), page);
                assert_eq!(
                    Some(action.as_str()),
                    str_at(item, &["policy_enforcement", "action"])
                );
            }
            MessagingEvent::Other { kind } => {
                assert!(OTHER_KINDS.contains(kind), "unknown kind {kind}");
                // An item with a page and a non-empty optin.login_id is never dropped.
                let has_page = page.is_some_and(|p| !p.is_empty());
                let has_login_id =
                    str_at(item, &["optin", "login_id"]).is_some_and(|l| !l.is_empty());
                assert!(
                    !(has_page && has_login_id),
                    "an opt-in with a login_id was dropped as Other({kind})"
                );
            }
        }
    }
});
