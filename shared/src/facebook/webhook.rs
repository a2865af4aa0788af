//! Page webhooks: the `X-Hub-Signature-256` signature and the payloads (messaging events, opt-ins,
//! policy enforcement), parsed without trusting their shape.

use crate::facebook::crypto::{hmac_sha256_hex, hmac_sha256_verify};
use serde::{Deserialize, Serialize};

/// The webhook signature header Meta sends (`sha256=<hex>`).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not of the form sha256=<hex>")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// The value of `X-Hub-Signature-256` for `body` (what Facebook, and our sandbox, send).
pub fn sign_webhook(app_secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hmac_sha256_hex(app_secret, body))
}

/// Check `X-Hub-Signature-256` over the exact raw body, in constant time.
pub fn verify_webhook_signature(
    app_secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
    if hmac_sha256_verify(app_secret, body, &expected) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The envelope of a Page webhook. Unknown fields are ignored; `entry` must be an array.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WebhookEnvelope {
    pub object: String,
    pub entry: Vec<WebhookEntry>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct WebhookEntry {
    /// The Page id.
    #[serde(default)]
    pub id: Option<String>,
    /// The delivery time. Meta documents epoch milliseconds as a number; strings and seconds
    /// have been seen too, so it is kept raw and read by [`WebhookEntry::time_ms`].
    #[serde(default)]
    pub time: Option<serde_json::Value>,
    #[serde(default)]
    pub messaging: Vec<serde_json::Value>,
    #[serde(default)]
    pub standby: Vec<serde_json::Value>,
}

impl WebhookEntry {
    /// `time` in epoch milliseconds (see [`epoch_ms`]).
    pub fn time_ms(&self) -> Option<i64> {
        self.time.as_ref().and_then(epoch_ms)
    }
}

/// Timestamps below this are seconds, not milliseconds (10^12 ms is September 2001, and 10^12 s
/// is 33,000 years away): Meta's payloads use milliseconds, but seconds have been seen.
pub const SECONDS_BELOW: i64 = 1_000_000_000_000;

/// A webhook timestamp (`timestamp`, `entry.time`) in epoch milliseconds: a JSON number or a
/// string of digits; values below [`SECONDS_BELOW`] are seconds and are multiplied by 1000.
/// Anything else (negative, fractional, text, out of range) is no timestamp at all, so the caller
/// falls back to the entry's time or the time of receipt instead of refusing the batch.
pub fn epoch_ms(value: &serde_json::Value) -> Option<i64> {
    let raw = match value {
        serde_json::Value::Number(n) => n.as_i64()?,
        serde_json::Value::String(s) => {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse::<i64>().ok()?
        }
        _ => return None,
    };
    match raw {
        ..0 => None,
        0..SECONDS_BELOW => raw.checked_mul(1000),
        _ => Some(raw),
    }
}

/// One messaging item we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagingEvent {
    /// A Login Connect opt-in: `optin.login_id`.
    OptIn {
        page_id: String,
        login_id: String,
        timestamp: Option<i64>,
    },
    /// A person wrote to the Page (`sender.id` is their PSID). `linked_login_id` is the login_id
    /// of the conversation's first message when Facebook says so (`prior_message`), which links the
    /// PSID to the opt-in.
    Message {
        page_id: String,
        psid: String,
        text: Option<String>,
        timestamp: Option<i64>,
        linked_login_id: Option<String>,
    },
    /// `messaging_optins` with `notification_messages_status` (e.g. "STOP NOTIFICATIONS").
    NotificationStatus {
        page_id: String,
        psid: Option<String>,
        login_id: Option<String>,
        status: String,
    },
    /// `messaging_policy_enforcement`: `block`, `unblock` or `warning` for the Page.
    PolicyEnforcement {
        page_id: String,
        action: String,
        reason: Option<String>,
    },
    /// Anything else (echoes, deliveries, reads, postbacks, …): acknowledged and ignored.
    Other { kind: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookParseError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a webhook envelope: {0}")]
    NotEnvelope(String),
}

/// Parse a webhook body into its messaging events (every entry, every messaging item).
///
/// Malformed envelopes are errors; malformed *items* are reported as `Other` so one odd item does
/// not make Facebook redeliver the whole batch.
pub fn parse_webhook(body: &[u8]) -> Result<(String, Vec<MessagingEvent>), WebhookParseError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| WebhookParseError::NotJson(e.to_string()))?;
    let envelope: WebhookEnvelope =
        serde_json::from_value(value).map_err(|e| WebhookParseError::NotEnvelope(e.to_string()))?;
    let mut events = Vec::new();
    for entry in &envelope.entry {
        for item in entry.messaging.iter().chain(entry.standby.iter()) {
            events.push(classify_item(entry, item));
        }
    }
    Ok((envelope.object, events))
}

fn str_at<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn non_empty(v: Option<&str>) -> Option<String> {
    v.filter(|s| !s.is_empty()).map(str::to_owned)
}

fn classify_item(entry: &WebhookEntry, item: &serde_json::Value) -> MessagingEvent {
    // The Page is the recipient of a messaging event; fall back to the entry id.
    let page_id = non_empty(str_at(item, &["recipient", "id"]).or(entry.id.as_deref()));
    let timestamp = item
        .get("timestamp")
        .and_then(epoch_ms)
        .or_else(|| entry.time_ms());
    let Some(page_id) = page_id else {
        return MessagingEvent::Other { kind: "no_page" };
    };
    if let Some(optin) = item.get("optin") {
        if let Some(status) = non_empty(
            optin
                .get("notification_messages_status")
                .and_then(|v| v.as_str()),
        ) {
            return MessagingEvent::NotificationStatus {
                page_id,
                psid: non_empty(str_at(item, &["sender", "id"])),
                login_id: non_empty(optin.get("login_id").and_then(|v| v.as_str())),
                status,
            };
        }
        return match non_empty(optin.get("login_id").and_then(|v| v.as_str())) {
            Some(login_id) => MessagingEvent::OptIn {
                page_id,
                login_id,
                timestamp,
            },
            None => MessagingEvent::Other { kind: "optin" },
        };
    }
    if let Some(message) = item.get("message") {
        if message.get("is_echo").and_then(|v| v.as_bool()) == Some(true) {
            return MessagingEvent::Other { kind: "echo" };
        }
        let Some(psid) = non_empty(str_at(item, &["sender", "id"])) else {
            return MessagingEvent::Other { kind: "message" };
        };
        // Shapes seen for the link to the first message: `prior_message.identifier` (Messenger's
        // snake_case, documented for checkbox/user_ref threads) and the sample's
        // `priorMessage.login_id`; both unverified for Login Connect (see docs/opt-outs.md).
        let linked_login_id = non_empty(
            str_at(item, &["prior_message", "identifier"])
                .or_else(|| str_at(message, &["prior_message", "identifier"]))
                .or_else(|| str_at(item, &["priorMessage", "login_id"])),
        );
        return MessagingEvent::Message {
            page_id,
            psid,
            text: message
                .get("text")
                .and_then(|t| t.as_str())
                .map(str::to_owned),
            timestamp,
            linked_login_id,
        };
    }
    if let Some(policy) = item.get("policy_enforcement") {
        return match non_empty(policy.get("action").and_then(|a| a.as_str())) {
            Some(action) => MessagingEvent::PolicyEnforcement {
                page_id,
                action,
                reason: policy
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .map(str::to_owned),
            },
            None => MessagingEvent::Other {
                kind: "policy_enforcement",
            },
        };
    }
    let kind = ["postback", "delivery", "read", "referral", "reaction"]
        .into_iter()
        .find(|k| item.get(*k).is_some())
        .unwrap_or("unknown");
    MessagingEvent::Other { kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"app-secret";

    #[test]
    fn signature_round_trips_and_rejects_tampering() {
        let body = br#"{"object":"page","entry":[]}"#;
        let header = sign_webhook(SECRET, body);
        assert!(header.starts_with("sha256="));
        assert_eq!(
            verify_webhook_signature(SECRET, body, Some(&header)),
            Ok(())
        );
        assert_eq!(
            verify_webhook_signature(
                SECRET,
                b"{\"object\":\"page\",\"entry\":[] }",
                Some(&header)
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_webhook_signature(b"other", body, Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_webhook_signature(SECRET, body, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_webhook_signature(SECRET, body, Some("sha1=abcd")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_webhook_signature(SECRET, body, Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_webhook_signature(SECRET, body, Some("sha256=abcd")),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn parses_every_entry_and_item() {
        let body = br#"{"object":"page","entry":[
          {"id":"P1","time":1,"messaging":[
            {"recipient":{"id":"P1"},"timestamp":1767225600010,"optin":{"login_id":"L1"}},
            {"sender":{"id":"S"},"recipient":{"id":"P1"},"timestamp":1767225600011,"message":{"mid":"m","text":"hi"}}]},
          {"id":"P2","time":2,"messaging":[
            {"timestamp":1767225600012,"optin":{"login_id":"L2"}},
            {"optin":{"ref":"no-login-id"}}]}]}"#;
        let (object, events) = parse_webhook(body).unwrap();
        assert_eq!(object, "page");
        assert_eq!(
            events,
            vec![
                MessagingEvent::OptIn {
                    page_id: "P1".into(),
                    login_id: "L1".into(),
                    timestamp: Some(1_767_225_600_010)
                },
                MessagingEvent::Message {
                    page_id: "P1".into(),
                    psid: "S".into(),
                    text: Some("hi".into()),
                    timestamp: Some(1_767_225_600_011),
                    linked_login_id: None,
                },
                MessagingEvent::OptIn {
                    page_id: "P2".into(),
                    login_id: "L2".into(),
                    timestamp: Some(1_767_225_600_012)
                },
                MessagingEvent::Other { kind: "optin" },
            ]
        );
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        assert!(matches!(
            parse_webhook(b"not json"),
            Err(WebhookParseError::NotJson(_))
        ));
        assert!(matches!(
            parse_webhook(br#"{"object":"page"}"#),
            Err(WebhookParseError::NotEnvelope(_))
        ));
        assert!(matches!(
            parse_webhook(br#"{"object":"page","entry":{}}"#),
            Err(WebhookParseError::NotEnvelope(_))
        ));
        assert!(matches!(
            parse_webhook(br#"[1,2]"#),
            Err(WebhookParseError::NotEnvelope(_))
        ));
    }

    #[test]
    fn messages_policy_and_notification_status_are_parsed() {
        let body = br#"{"object":"page","entry":[{"id":"P","time":5,"messaging":[
          {"sender":{"id":"PSID1"},"recipient":{"id":"P"},"timestamp":1767225600006,"message":{"mid":"m1","text":"STOP"},
           "prior_message":{"source":"login_connect","identifier":"L1"}},
          {"sender":{"id":"P"},"recipient":{"id":"PSID1"},"timestamp":7,"message":{"mid":"m2","is_echo":true,"text":"hi"}},
          {"sender":{"id":"PSID2"},"recipient":{"id":"P"},"timestamp":1767225600008,"message":{"mid":"m3","attachments":[]},
           "priorMessage":{"login_id":"L2"}},
          {"recipient":{"id":"P"},"timestamp":9,"policy_enforcement":{"action":"block","reason":"spam"}},
          {"recipient":{"id":"P"},"timestamp":10,"policy_enforcement":{"action":"unblock"}},
          {"sender":{"id":"PSID3"},"recipient":{"id":"P"},"timestamp":11,
           "optin":{"type":"notification_messages","notification_messages_status":"STOP NOTIFICATIONS"}},
          {"sender":{"id":"PSID4"},"recipient":{"id":"P"},"delivery":{"mids":["m"]}}]}]}"#;
        let (_, events) = parse_webhook(body).unwrap();
        assert_eq!(
            events,
            vec![
                MessagingEvent::Message {
                    page_id: "P".into(),
                    psid: "PSID1".into(),
                    text: Some("STOP".into()),
                    timestamp: Some(1_767_225_600_006),
                    linked_login_id: Some("L1".into()),
                },
                MessagingEvent::Other { kind: "echo" },
                MessagingEvent::Message {
                    page_id: "P".into(),
                    psid: "PSID2".into(),
                    text: None,
                    timestamp: Some(1_767_225_600_008),
                    linked_login_id: Some("L2".into()),
                },
                MessagingEvent::PolicyEnforcement {
                    page_id: "P".into(),
                    action: "block".into(),
                    reason: Some("spam".into()),
                },
                MessagingEvent::PolicyEnforcement {
                    page_id: "P".into(),
                    action: "unblock".into(),
                    reason: None,
                },
                MessagingEvent::NotificationStatus {
                    page_id: "P".into(),
                    psid: Some("PSID3".into()),
                    login_id: None,
                    status: "STOP NOTIFICATIONS".into(),
                },
                MessagingEvent::Other { kind: "delivery" },
            ]
        );
    }

    #[test]
    fn standby_items_are_parsed_too() {
        let body = br#"{"object":"page","entry":[{"id":"P","standby":[
          {"sender":{"id":"PSID"},"recipient":{"id":"P"},"timestamp":1,"message":{"mid":"m","text":"hello"}}]}]}"#;
        let (_, events) = parse_webhook(body).unwrap();
        assert!(matches!(&events[..], [MessagingEvent::Message { psid, .. }] if psid == "PSID"));
    }

    #[test]
    fn webhook_timestamps_as_numeric_strings_or_seconds_are_read_as_milliseconds() {
        use serde_json::json;
        // Milliseconds, as a number or a string of digits.
        assert_eq!(
            epoch_ms(&json!(1_767_225_600_123_i64)),
            Some(1_767_225_600_123)
        );
        assert_eq!(epoch_ms(&json!("1767225600123")), Some(1_767_225_600_123));
        // Below 10^12: seconds.
        assert_eq!(epoch_ms(&json!(1_767_225_600)), Some(1_767_225_600_000));
        assert_eq!(epoch_ms(&json!("1767225600")), Some(1_767_225_600_000));
        assert_eq!(
            epoch_ms(&json!(999_999_999_999_i64)),
            Some(999_999_999_999_000)
        );
        assert_eq!(epoch_ms(&json!(SECONDS_BELOW)), Some(SECONDS_BELOW));
        // Not a timestamp: the caller falls back (entry time, then the time of receipt).
        for bad in [
            json!(-1),
            json!(1.5e12),
            json!("-5"),
            json!("12a"),
            json!(""),
            json!("99999999999999999999"),
            json!(null),
            json!(true),
            json!([1]),
        ] {
            assert_eq!(epoch_ms(&bad), None, "{bad}");
        }

        // Through the parser: item timestamps and entry times, in every form.
        let body = br#"{"object":"page","entry":[
          {"id":"P","time":"1767225600","messaging":[
            {"recipient":{"id":"P"},"timestamp":"1767225600500","optin":{"login_id":"L1"}},
            {"recipient":{"id":"P"},"timestamp":1767225601,"optin":{"login_id":"L2"}},
            {"recipient":{"id":"P"},"optin":{"login_id":"L3"}},
            {"recipient":{"id":"P"},"timestamp":"soon","optin":{"login_id":"L4"}}]},
          {"id":"Q","time":1767225602000,"messaging":[
            {"recipient":{"id":"Q"},"optin":{"login_id":"L5"}}]},
          {"id":"R","time":{"no":1},"messaging":[
            {"recipient":{"id":"R"},"optin":{"login_id":"L6"}}]}]}"#;
        let (_, events) = parse_webhook(body).expect("a string entry.time is no longer refused");
        let stamps: Vec<Option<i64>> = events
            .iter()
            .map(|e| match e {
                MessagingEvent::OptIn { timestamp, .. } => *timestamp,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            stamps,
            [
                Some(1_767_225_600_500),
                Some(1_767_225_601_000),
                Some(1_767_225_600_000),
                Some(1_767_225_600_000),
                Some(1_767_225_602_000),
                None,
            ]
        );
    }
}
