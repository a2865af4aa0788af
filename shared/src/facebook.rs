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
    #[serde(default)]
    pub time: Option<i64>,
    #[serde(default)]
    pub messaging: Vec<serde_json::Value>,
    #[serde(default)]
    pub standby: Vec<serde_json::Value>,
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
        .and_then(|t| t.as_i64())
        .or(entry.time);
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
/// subcodes for it; the text is the stable part).
fn says_outside_window(message: &str) -> bool {
    message.contains("outside of allowed window")
}

/// The Graph error table (`shared/reference/messenger.md` §3.5 and §7.4) in one place: every
/// (code, subcode) the reference lists, then the code families, then the HTTP status. The rows are
/// tried in order; the first that matches decides.
pub fn classify_graph_error(status: u16, body: &GraphErrorBody) -> ErrorClass {
    use ErrorClass::*;
    let sub = body.error_subcode;
    match (body.code, sub) {
        // The person cannot be reached: an opt-out in effect, never retried.
        (551, _) => Unreachable,
        (200, Some(1_545_041)) => Unreachable,
        (10, Some(2_018_108)) => Unreachable,
        (100, Some(2_018_001)) => Unreachable,
        // The window is closed (by subcode, or by Meta's wording under another subcode).
        (10, Some(2_018_278 | 2_018_065)) => Window,
        (10, _) if says_outside_window(&body.message) => Window,
        // The Page is restricted from sending: pause the Page, probe later.
        (10, Some(1_893_063)) => PageRestricted,
        // Our configuration: token, permissions, review status, appsecret_proof, bad request.
        (190, _) => Configuration,
        (200, Some(2_018_028 | 2_018_027 | 2_018_021)) => Configuration,
        (230, _) => Configuration,
        (100, _) if body.message.contains("appsecret_proof") => Configuration,
        (100, None) => Configuration,
        // Transient: back off and try again while the deadline allows.
        (1200, _) | (4, _) | (17, _) | (32, _) | (613, _) => Retry,
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
            {"recipient":{"id":"P1"},"timestamp":10,"optin":{"login_id":"L1"}},
            {"sender":{"id":"S"},"recipient":{"id":"P1"},"timestamp":11,"message":{"mid":"m","text":"hi"}}]},
          {"id":"P2","time":2,"messaging":[
            {"timestamp":12,"optin":{"login_id":"L2"}},
            {"optin":{"ref":"no-login-id"}}]}]}"#;
        let (object, events) = parse_webhook(body).unwrap();
        assert_eq!(object, "page");
        assert_eq!(
            events,
            vec![
                MessagingEvent::OptIn {
                    page_id: "P1".into(),
                    login_id: "L1".into(),
                    timestamp: Some(10)
                },
                MessagingEvent::Message {
                    page_id: "P1".into(),
                    psid: "S".into(),
                    text: Some("hi".into()),
                    timestamp: Some(11),
                    linked_login_id: None,
                },
                MessagingEvent::OptIn {
                    page_id: "P2".into(),
                    login_id: "L2".into(),
                    timestamp: Some(12)
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
          {"sender":{"id":"PSID1"},"recipient":{"id":"P"},"timestamp":6,"message":{"mid":"m1","text":"STOP"},
           "prior_message":{"source":"login_connect","identifier":"L1"}},
          {"sender":{"id":"P"},"recipient":{"id":"PSID1"},"timestamp":7,"message":{"mid":"m2","is_echo":true,"text":"hi"}},
          {"sender":{"id":"PSID2"},"recipient":{"id":"P"},"timestamp":8,"message":{"mid":"m3","attachments":[]},
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
                    timestamp: Some(6),
                    linked_login_id: Some("L1".into()),
                },
                MessagingEvent::Other { kind: "echo" },
                MessagingEvent::Message {
                    page_id: "P".into(),
                    psid: "PSID2".into(),
                    text: None,
                    timestamp: Some(8),
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
