//! Facebook facts: webhook signatures and payloads, `appsecret_proof`, `login_id` derivation and the
//! classification of Graph errors. Pure code; the HTTP client lives in `adapters::graph`.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

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

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// Hex HMAC-SHA256 of `message` with `key`.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut m = mac(key);
    m.update(message);
    hex::encode(m.finalize().into_bytes())
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
    let mut m = mac(app_secret);
    m.update(body);
    // `verify_slice` compares in constant time.
    m.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// `appsecret_proof = hex(HMAC_SHA256(key = app_secret, msg = access_token))`.
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    hmac_sha256_hex(app_secret.as_bytes(), access_token.as_bytes())
}

/// The login_id Facebook assigns for an app-scoped user id, per Meta's direct-integrator sample:
/// `hex(HMAC_SHA256(key = client_token, msg = "umc_{asid}_{app_id}_{page_id}"))`.
pub fn derive_login_id(client_token: &str, asid: &str, app_id: &str, page_id: &str) -> String {
    let msg = format!("umc_{asid}_{app_id}_{page_id}");
    hmac_sha256_hex(client_token.as_bytes(), msg.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// Webhook payloads
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Graph errors
// ---------------------------------------------------------------------------------------------

/// The `error` object of a Graph error response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
pub struct GraphErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub error_type: Option<String>,
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub fbtrace_id: Option<String>,
    #[serde(default)]
    pub is_transient: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct GraphErrorEnvelope {
    pub error: GraphErrorBody,
}

/// What went wrong talking to Graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("Graph answered HTTP {status} with error {}/{:?}", body.code, body.error_subcode)]
    Api { status: u16, body: GraphErrorBody },
    #[error("Graph answered HTTP {status} without an error body")]
    Http { status: u16 },
    #[error("the request to Graph timed out")]
    Timeout,
    #[error("could not connect to Graph")]
    Connection,
    #[error("Graph's answer could not be read: {0}")]
    BadResponse(String),
}

/// What the sender does about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: try again (with backoff) while the deadline allows.
    Retry,
    /// Retry, but only a few times (codes Meta documents as possibly permanent).
    RetryBounded,
    /// The person cannot be reached: treat as an opt-out, never retry.
    Unreachable,
    /// Graph says the window is closed: EXPIRED, and alert (our clock or latency is wrong).
    Window,
    /// Our token, permissions or request are wrong: PAUSED, alert.
    Configuration,
    /// The Page may not send for now: PAUSED for the Page, alert.
    PageRestricted,
    /// Meta warned the Page that its messages may be considered bothersome or abusive
    /// (`613`/`2018338`): not a rate limit. PAUSED for the Page, and the alert names the warning.
    AbuseWarning,
    /// Not in the table: retried a bounded number of times, then alerted.
    Unknown,
}

impl GraphError {
    /// The evidence recorded on the opt-in (no tokens, no URLs).
    pub fn to_last_error(&self) -> crate::domain::LastError {
        use crate::domain::LastError;
        match self {
            GraphError::Api { body, .. } => LastError {
                code: body.code,
                subcode: body.error_subcode,
                fbtrace_id: body.fbtrace_id.clone(),
                message: body.message.chars().take(200).collect(),
            },
            GraphError::Http { status } => LastError {
                code: 0,
                subcode: None,
                fbtrace_id: None,
                message: format!("HTTP {status}"),
            },
            GraphError::Timeout => LastError {
                message: "timeout".into(),
                ..LastError::default()
            },
            GraphError::Connection => LastError {
                message: "connection error".into(),
                ..LastError::default()
            },
            GraphError::BadResponse(_) => LastError {
                message: "unreadable response".into(),
                ..LastError::default()
            },
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            GraphError::Api { status, body } => classify_graph_error(*status, body),
            GraphError::Http { status } if *status >= 500 => ErrorClass::Retry,
            GraphError::Http { status } if *status == 429 => ErrorClass::Retry,
            GraphError::Http { .. } => ErrorClass::Unknown,
            GraphError::Timeout | GraphError::Connection => ErrorClass::Retry,
            GraphError::BadResponse(_) => ErrorClass::Unknown,
        }
    }
}

/// Whether a Graph error message says the messaging window is closed (Meta has used several
/// codes and subcodes for it; the text is the stable part).
fn says_outside_window(message: &str) -> bool {
    message.contains("outside of allowed window")
}

/// Whether a bare `100` names the *recipient* as unknown ("No matching user found", "Bad
/// Parameter Error: Invalid FBID"): one bad recipient, not our configuration.
fn says_unknown_recipient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("no matching user found") || m.contains("invalid fbid")
}

/// The Graph error table in one place: Messenger's "Common Error Codes" (updated 2026-06-25) and
/// Graph's "Handling Errors", as summarised in `shared/reference/messenger.md` (corrections of
/// 2026-11-30, §3.5, §7.4). The window text first (it applies to every code), then every (code,
/// subcode) row, then the code families, then the HTTP status. The rows are tried in order; the
/// first that matches decides. docs/sender.md has the same table for people.
pub fn classify_graph_error(status: u16, body: &GraphErrorBody) -> ErrorClass {
    use ErrorClass::*;
    if says_outside_window(&body.message) {
        return Window;
    }
    let sub = body.error_subcode;
    match (body.code, sub) {
        // The person cannot be reached: an opt-out in effect, never retried.
        (551, _) => Unreachable,
        // "This person isn't available right now" (Meta's Send page calls it "window closed"
        // under some codes; the error table's reading wins).
        (_, Some(1_545_041)) => Unreachable,
        (10, Some(2_018_108)) => Unreachable,
        // "This user has currently stopped notification messages for this topic": an opt-out.
        (10, Some(1_893_015)) => Unreachable,
        (100, Some(2_018_001)) => Unreachable,
        // A bare 100 naming the recipient: before the 100 rows below, which are ours to fix.
        (100, _) if says_unknown_recipient(&body.message) => Unreachable,
        // The window is closed (by subcode; the text was checked above).
        (10, Some(2_018_278 | 2_018_065 | 2_534_022)) => Window,
        // The Page is restricted from sending, or blocked for policy violations: pause the Page,
        // probe later.
        (10, Some(1_893_063)) => PageRestricted,
        (368, _) => PageRestricted,
        // An abuse warning under the rate-limit code: not retried, the Page pauses.
        (613, Some(2_018_338)) => AbuseWarning,
        // Our configuration: token, permissions, review status, appsecret_proof, bad request.
        (190, _) => Configuration,
        (200, Some(2_018_028 | 2_018_027 | 2_018_021)) => Configuration,
        (230, _) => Configuration,
        (100, _) if body.message.contains("appsecret_proof") => Configuration,
        (100, None) => Configuration,
        // Transient: back off and try again while the deadline allows (613/2534040 is the rate
        // limit; 341 is the application limit).
        (1200, _) | (4, _) | (17, _) | (32, _) | (341, _) | (613, _) => Retry,
        (80_000..=80_008, _) => Retry,
        // "Unexpected error, retry later" (also seen when a person blocked the business): retried
        // until the deadline, which bounds it.
        (2, _) => Retry,
        // "Unknown error" (99: missing permissions can cause it; 1357046: invalid JSON reply).
        (1, _) => RetryBounded,
        // Families: 100 with any other subcode is a malformed request (ours to fix); 10 and
        // 200–299 are permission errors.
        (100, Some(_)) => Configuration,
        (10, _) | (200..=299, _) => Configuration,
        _ if status >= 500 => Retry,
        _ if body.is_transient == Some(true) => Retry,
        _ => Unknown,
    }
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
    fn known_hmac_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn login_id_follows_the_sample_formula() {
        let expected = hmac_sha256_hex(b"client-token", b"umc_123_456_789");
        assert_eq!(
            derive_login_id("client-token", "123", "456", "789"),
            expected
        );
        assert_eq!(expected.len(), 64);
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

    fn err(code: i64, sub: Option<i64>, message: &str) -> GraphErrorBody {
        GraphErrorBody {
            code,
            error_subcode: sub,
            message: message.into(),
            ..Default::default()
        }
    }

    /// One row per row of the reference table (`shared/reference/messenger.md` §3.5, §7.4), plus
    /// the families and statuses the table's notes name.
    #[test]
    fn graph_error_table() {
        use ErrorClass::*;
        const WINDOW: &str = "(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview";
        let rows: &[(u16, i64, Option<i64>, &str, ErrorClass)] = &[
            // §3.5, in the reference's order.
            (500, 1, Some(99), "An unknown error occurred", RetryBounded),
            (
                400,
                1,
                Some(1_357_046),
                "Received invalid JSON reply",
                RetryBounded,
            ),
            (
                500,
                2,
                None,
                "An unexpected error has occurred. Please retry your request later.",
                Retry,
            ),
            (
                400,
                2,
                Some(2_018_344),
                "Service temporarily unavailable",
                Retry,
            ),
            (
                400,
                4,
                None,
                "(#4) Application request limit reached",
                Retry,
            ),
            (
                400,
                4,
                Some(2_018_022),
                "Too many send requests to phone numbers",
                Retry,
            ),
            (
                400,
                4,
                Some(2_018_354),
                "Marketing Messages minimum delay",
                Retry,
            ),
            (400, 17, None, "User request limit reached", Retry),
            (400, 32, None, "Page request limit reached", Retry),
            (400, 80_000, None, "", Retry),
            (400, 80_004, None, "", Retry),
            (400, 80_006, None, "", Retry),
            (400, 80_008, None, "", Retry),
            (
                400,
                613,
                None,
                "(#613) Calls to this api have exceeded the rate limit.",
                Retry,
            ),
            (
                400,
                1200,
                None,
                "(#1200) Temporary send message failure. Please try again later.",
                Retry,
            ),
            (
                500,
                1200,
                Some(2_018_024),
                "(#1200) Temporary send message failure. Please try again later.",
                Retry,
            ),
            (400, 100, None, "(#100) Invalid parameter", Configuration),
            (
                400,
                100,
                Some(2_018_001),
                "(#100) No matching user found",
                Unreachable,
            ),
            (
                400,
                100,
                Some(2_018_109),
                "Attachment size exceeds allowable limit",
                Configuration,
            ),
            (
                400,
                100,
                Some(2_018_034),
                "Message cannot be empty",
                Configuration,
            ),
            (400, 100, Some(2_018_032), "Invalid data", Configuration),
            (
                400,
                100,
                Some(2_018_218),
                "profile not found",
                Configuration,
            ),
            (
                400,
                100,
                None,
                "API calls from the server require an appsecret_proof argument",
                Configuration,
            ),
            (
                400,
                100,
                None,
                "Invalid appsecret_proof provided in the API argument",
                Configuration,
            ),
            (400, 190, None, "Invalid OAuth access token.", Configuration),
            (
                401,
                190,
                Some(1_234_567),
                "Invalid OAuth access token.",
                Configuration,
            ),
            (400, 190, Some(458), "", Configuration),
            (400, 190, Some(459), "", Configuration),
            (400, 190, Some(460), "", Configuration),
            (
                400,
                190,
                Some(463),
                "Error validating access token: Session has expired",
                Configuration,
            ),
            (400, 190, Some(464), "", Configuration),
            (400, 190, Some(467), "", Configuration),
            (
                400,
                10,
                Some(2_018_065),
                "(#10) This message is sent outside of allowed window. You need page_messaging_subscriptions permission",
                Window,
            ),
            (400, 10, Some(2_018_278), WINDOW, Window),
            (
                400,
                10,
                Some(2_018_108),
                "(#10) This person isn't receiving messages from you right now.",
                Unreachable,
            ),
            (
                400,
                10,
                Some(1_893_063),
                "(#10) This Page is temporarily restricted from sending messages.",
                PageRestricted,
            ),
            (
                400,
                200,
                Some(1_545_041),
                "(#200) This person isn't available right now.",
                Unreachable,
            ),
            (
                400,
                200,
                Some(2_018_028),
                "(#200) Cannot message users who are not admins, developers or testers",
                Configuration,
            ),
            (400, 200, Some(2_018_027), "", Configuration),
            (400, 200, Some(2_018_021), "", Configuration),
            (
                400,
                230,
                None,
                "Requires pages_messaging permission",
                Configuration,
            ),
            (
                400,
                551,
                Some(1_545_041),
                "(#551) This person isn't available right now.",
                Unreachable,
            ),
            (400, 10_303, None, "Invalid account_linking_token", Unknown),
            // §7.4's notes: any "outside of allowed window" message; the permission families.
            (400, 10, Some(2_018_999), WINDOW, Window),
            (400, 551, None, "", Unreachable),
            (
                400,
                10,
                None,
                "(#10) Application does not have permission for this action",
                Configuration,
            ),
            (403, 200, None, "(#200) Permissions error", Configuration),
            (400, 299, None, "", Configuration),
            // HTTP status and Meta's is_transient hint for codes outside the table.
            (503, 12_345, None, "", Retry),
            (400, 12_345, None, "", Unknown),
            (400, 80_009, None, "", Unknown),
        ];
        for (status, code, sub, msg, class) in rows {
            assert_eq!(
                classify_graph_error(*status, &err(*code, *sub, msg)),
                *class,
                "{code}/{sub:?} {msg}"
            );
        }
        let transient = GraphErrorBody {
            is_transient: Some(true),
            ..err(12_345, None, "")
        };
        assert_eq!(classify_graph_error(400, &transient), Retry);
        // Transport failures and answers without a Graph error body.
        assert_eq!(GraphError::Timeout.class(), Retry);
        assert_eq!(GraphError::Connection.class(), Retry);
        assert_eq!(GraphError::Http { status: 502 }.class(), Retry);
        assert_eq!(GraphError::Http { status: 429 }.class(), Retry);
        assert_eq!(GraphError::Http { status: 404 }.class(), Unknown);
        assert_eq!(GraphError::BadResponse("x".into()).class(), Unknown);
    }

    /// Messenger's "Common Error Codes" (updated 2026-06-25) and Graph's "Handling Errors", row by
    /// row: the rows that changed with that table, and the neighbours that must not.
    #[test]
    fn meta_error_table_of_2026_06_25_row_by_row() {
        use ErrorClass::*;
        const ABUSE: &str = "(#613) Warning! You are engaging in behavior that may be considered bothersome or abusive by the recipient. Please review our policies.";
        let rows: &[(u16, i64, Option<i64>, &str, ErrorClass)] = &[
            // The recipient is unknown: one bad recipient, never a Page pause.
            (400, 100, None, "(#100) No matching user found", Unreachable),
            (
                400,
                100,
                None,
                "(#100) Bad Parameter Error: Invalid FBID",
                Unreachable,
            ),
            (
                400,
                100,
                Some(2_018_001),
                "No matching user found",
                Unreachable,
            ),
            (400, 100, Some(2_018_001), "", Unreachable),
            (
                400,
                100,
                Some(2_018_034),
                "(#100) Invalid FBID for recipient",
                Unreachable,
            ),
            // …while a bare 100 that does not name the recipient stays ours to fix.
            (400, 100, None, "(#100) Invalid parameter", Configuration),
            (
                400,
                100,
                None,
                "(#100) Param recipient must be an FBID",
                Configuration,
            ),
            // 613: the abuse warning pauses; the rate limit is retried.
            (400, 613, Some(2_018_338), ABUSE, AbuseWarning),
            (400, 613, Some(2_018_338), "", AbuseWarning),
            (
                400,
                613,
                Some(2_534_040),
                "(#613) Calls to this api have exceeded the rate limit.",
                Retry,
            ),
            (400, 613, None, "", Retry),
            // 368: temporarily blocked for policy violations: the Page pauses.
            (
                400,
                368,
                None,
                "The action attempted has been deemed abusive or is otherwise disallowed",
                PageRestricted,
            ),
            (400, 368, Some(1_390_008), "", PageRestricted),
            // 341: application limit reached: retried later.
            (400, 341, None, "(#341) Application limit reached", Retry),
            // 10/1893015: the person stopped notification messages for this topic (an opt-out).
            (
                400,
                10,
                Some(1_893_015),
                "(#10) This user has currently stopped notification messages for this topic",
                Unreachable,
            ),
            // The window: both subcodes of the table, and the text under any code.
            (
                400,
                10,
                Some(2_534_022),
                "(#10) This message is sent outside of allowed window.",
                Window,
            ),
            (400, 10, Some(2_534_022), "", Window),
            (400, 10, Some(2_018_278), "", Window),
            (
                400,
                100,
                None,
                "(#100) This message is sent outside of allowed window.",
                Window,
            ),
            (
                400,
                200,
                Some(2_018_028),
                "This message is sent outside of allowed window",
                Window,
            ),
            (
                400,
                12_345,
                None,
                "Message sent outside of allowed window",
                Window,
            ),
            // 1545041 under any code: the person is unavailable.
            (
                400,
                200,
                Some(1_545_041),
                "(#200) This person isn't available right now.",
                Unreachable,
            ),
            (
                400,
                10,
                Some(1_545_041),
                "Messaging window closed",
                Unreachable,
            ),
            // Unchanged neighbours.
            (
                400,
                10,
                Some(1_893_063),
                "(#10) This Page is temporarily restricted from sending messages.",
                PageRestricted,
            ),
            (400, 10, Some(2_018_108), "", Unreachable),
            (400, 10, None, "(#10) Permission denied", Configuration),
            (400, 190, Some(463), "", Configuration),
            (400, 1, Some(99), "", RetryBounded),
            (400, 2, None, "", Retry),
        ];
        for (status, code, sub, msg, class) in rows {
            assert_eq!(
                classify_graph_error(*status, &err(*code, *sub, msg)),
                *class,
                "{code}/{sub:?} {msg}"
            );
        }
    }

    #[test]
    fn last_error_keeps_codes_and_trace_but_not_more() {
        let e = GraphError::Api {
            status: 400,
            body: GraphErrorBody {
                code: 551,
                error_subcode: Some(1_545_041),
                fbtrace_id: Some("T".into()),
                message: "x".repeat(500),
                ..Default::default()
            },
        };
        let l = e.to_last_error();
        assert_eq!(
            (l.code, l.subcode, l.fbtrace_id.as_deref()),
            (551, Some(1_545_041), Some("T"))
        );
        assert_eq!(l.message.len(), 200);
    }
}
