//! Graph errors: the error body, the client-side failures, and their classification (which decides
//! retry, pause, expire or unreachable; `shared/reference/messenger.md` §3.5, §7.4).

use crate::domain::opt_in::LastError;
use serde::{Deserialize, Serialize};

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
    pub fn to_last_error(&self) -> LastError {
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
