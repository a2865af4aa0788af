//! Send API traffic control: the rate limit, added latency and fault injection, applied in front
//! of the Send API route as a middleware.
//!
//! Control endpoints:
//! - `POST /_sandbox/faults` — add a rule (below); `GET` lists the rules, `DELETE` clears them.
//! - `GET|PUT /_sandbox/limits` — `{"rate_limit_per_second": 300, "latency_ms": 50}` (0 = off).
//! - `GET /_sandbox/stats` — counters of Send API calls (requests, accepted, rate limited, faults)
//!   and the most calls one Page had in a one-second window.
//!
//! A fault rule (`POST /_sandbox/faults`):
//! ```json
//! {"kind": "error", "code": 1200, "subcode": 2018024,  // any Graph error; message, type and
//!  "status": 500, "message": "…", "is_transient": true, //   status default to Graph's own
//!  "fbtrace_id": "TRACE",                               // fixed trace id (random otherwise)
//!  "count": 3}                                          // the next 3 sends …
//! {"kind": "timeout", "delay_ms": 15000, "deliver": false, "fraction": 0.2}  // … or 20 % of sends
//! {"kind": "close", "page_id": "…"}                     // close the connection without answering
//! ```
//! `count` (default 1) and `fraction` are exclusive; a `count` rule ends when used up, a
//! `fraction` rule stays until cleared. Rules are tried in order; the first that applies answers.
//! A `timeout` waits `delay_ms` (longer than the client's timeout) and then answers Graph's
//! "unexpected error", or, with `"deliver": true`, delivers the message anyway (Graph processed it
//! but the answer was lost).
//!
//! Order for each Send API call: rate limit (613) → latency → fault rule → the Send API.
//!
//! This module is the model (rules, latency, counters, the answers of error rules); the endpoints
//! are in `controls`, the middleware in `gate` and the connection kill switch in `listener`.

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::errors::{
    GraphError, INVALID_TOKEN, NO_MATCHING_USER, OAUTH_EXCEPTION, OUTSIDE_WINDOW, RATE_LIMITED,
};

/// Longest `delay_ms` a timeout rule may ask for.
pub(crate) const MAX_DELAY_MS: u64 = 300_000;
pub(crate) const DEFAULT_TIMEOUT_DELAY_MS: u64 = 15_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    #[default]
    Error,
    Timeout,
    Close,
}

/// A fault rule, as posted and as listed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    #[serde(default)]
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_transient: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<bool>,
    /// Sends left for this rule (`count` rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
}

impl FaultRule {
    /// The next send answers Graph error `code`/`subcode` (message and status as Graph's).
    pub fn error(code: i64, subcode: Option<i64>) -> Self {
        Self {
            code: Some(code),
            subcode,
            ..Self::default()
        }
    }

    pub(crate) fn validate(mut self) -> Result<Self, String> {
        if self.kind == FaultKind::Error && self.code.is_none() {
            return Err("an error fault needs a code".into());
        }
        if self.kind != FaultKind::Error
            && (self.code.is_some() || self.subcode.is_some() || self.status.is_some())
        {
            return Err("code, subcode and status are for error faults".into());
        }
        if let Some(status) = self.status
            && !(400..=599).contains(&status)
        {
            return Err("status must be from 400 to 599".into());
        }
        if self.delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
            return Err(format!("delay_ms must be at most {MAX_DELAY_MS}"));
        }
        match (self.count, self.fraction) {
            (Some(_), Some(_)) => return Err("count and fraction are exclusive".into()),
            (Some(0), None) => return Err("count must be at least 1".into()),
            (None, Some(f)) if !(f > 0.0 && f <= 1.0) => {
                return Err("fraction must be in (0, 1]".into());
            }
            (None, None) => self.count = Some(1),
            _ => {}
        }
        Ok(self)
    }

    fn applies_to(&self, page_id: &str) -> bool {
        self.page_id.as_deref().is_none_or(|p| p == page_id)
    }
}

/// Counters of Send API calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficStats {
    pub send_requests: u64,
    pub accepted: u64,
    pub rate_limited: u64,
    pub faults_injected: u64,
    /// The most admitted calls one Page had in a one-second window.
    pub max_in_window: u64,
}

/// The fault rules, latency and counters of a running sandbox.
pub(crate) struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    latency_ms: AtomicU64,
    stats: Mutex<TrafficStats>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Faults {
    pub fn new(latency_ms: u64) -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            latency_ms: AtomicU64::new(latency_ms),
            stats: Mutex::new(TrafficStats::default()),
        }
    }

    pub fn clear(&self) {
        lock(&self.rules).clear();
        *lock(&self.stats) = TrafficStats::default();
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::SeqCst))
    }

    /// The rule that answers this send, if any (a `count` rule is used up by it).
    pub(crate) fn take(&self, page_id: &str) -> Option<FaultRule> {
        let mut rules = lock(&self.rules);
        let index = rules.iter().position(|r| {
            r.applies_to(page_id)
                && match (r.count, r.fraction) {
                    (Some(n), _) => n > 0,
                    (None, Some(f)) => rand::random::<f64>() < f,
                    (None, None) => false,
                }
        })?;
        let rule = rules[index].clone();
        if let Some(n) = rules[index].count.as_mut() {
            *n -= 1;
            if *n == 0 {
                rules.remove(index);
            }
        }
        Some(rule)
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut TrafficStats)) {
        f(&mut lock(&self.stats));
    }

    pub fn stats(&self) -> TrafficStats {
        lock(&self.stats).clone()
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        lock(&self.rules).clone()
    }

    /// Add a rule that passed `FaultRule::validate`.
    pub fn add(&self, rule: FaultRule) {
        lock(&self.rules).push(rule);
    }

    pub fn clear_rules(&self) {
        lock(&self.rules).clear();
    }

    pub fn latency_ms(&self) -> u64 {
        self.latency_ms.load(Ordering::SeqCst)
    }

    pub fn set_latency_ms(&self, latency_ms: u64) {
        self.latency_ms.store(latency_ms, Ordering::SeqCst);
    }
}

/// Graph's own message, type and HTTP status for the errors of the reference table
/// (`shared/reference/messenger.md` §3.5 and §7.6).
fn graph_defaults(code: i64, subcode: Option<i64>) -> (&'static str, &'static str, u16, bool) {
    const OAUTH: &str = OAUTH_EXCEPTION;
    match (code, subcode) {
        (1, _) => ("An unknown error occurred", OAUTH, 500, false),
        (2, _) => (
            "An unexpected error has occurred. Please retry your request later.",
            OAUTH,
            500,
            true,
        ),
        (4, _) => ("(#4) Application request limit reached", OAUTH, 400, true),
        (10, Some(2_018_278)) => (OUTSIDE_WINDOW, OAUTH, 400, false),
        (10, Some(2_018_065)) => (
            "(#10) This message is sent outside of allowed window. You need page_messaging_subscriptions permission to be able to do it. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
            OAUTH,
            400,
            false,
        ),
        (10, Some(2_018_108)) => (
            "(#10) This person isn't receiving messages from you right now.",
            OAUTH,
            400,
            false,
        ),
        (10, Some(2_534_022)) => (
            "(#10) This message is sent outside of allowed window.",
            OAUTH,
            400,
            false,
        ),
        (10, Some(1_893_015)) => (
            "(#10) This user has currently stopped notification messages for this topic",
            OAUTH,
            400,
            false,
        ),
        (10, Some(1_893_063)) => (
            "(#10) This Page is temporarily restricted from sending messages.",
            OAUTH,
            400,
            false,
        ),
        (10, _) => (
            "(#10) Application does not have permission for this action",
            OAUTH,
            400,
            false,
        ),
        (17, _) => ("(#17) User request limit reached", OAUTH, 400, true),
        (32, _) => ("(#32) Page request limit reached", OAUTH, 400, true),
        (100, Some(2_018_001)) => (NO_MATCHING_USER, OAUTH, 400, false),
        (100, _) => ("(#100) Invalid parameter", OAUTH, 400, false),
        (190, Some(463)) => (
            "Error validating access token: Session has expired.",
            OAUTH,
            400,
            false,
        ),
        (190, _) => (INVALID_TOKEN, OAUTH, 400, false),
        (200, Some(1_545_041)) => (
            "(#200) This person isn't available right now.",
            OAUTH,
            400,
            false,
        ),
        (200, Some(2_018_028)) => (
            "(#200) Cannot message users who are not admins, developers or testers of the app until pages_messaging permission is reviewed and the app is live.",
            OAUTH,
            400,
            false,
        ),
        (200, _) => ("(#200) Permissions error", OAUTH, 400, false),
        (230, _) => (
            "(#230) Requires pages_messaging permission to manage the object",
            OAUTH,
            400,
            false,
        ),
        (551, _) => (
            "(#551) This person isn't available right now.",
            OAUTH,
            400,
            false,
        ),
        (341, _) => ("(#341) Application limit reached", OAUTH, 400, true),
        (368, _) => (
            "The action attempted has been deemed abusive or is otherwise disallowed",
            OAUTH,
            400,
            false,
        ),
        (613, Some(2_018_338)) => (
            "(#613) Warning! You are engaging in behavior that may be considered bothersome or abusive by the recipient.",
            OAUTH,
            400,
            false,
        ),
        (613, _) => (RATE_LIMITED, OAUTH, 400, true),
        (1200, _) => (
            "(#1200) Temporary send message failure. Please try again later.",
            OAUTH,
            500,
            false,
        ),
        (80_000..=80_008, _) => (
            "There have been too many messenger api calls to this Page account. Wait a while and try again.",
            OAUTH,
            400,
            true,
        ),
        _ => ("Sandbox-injected error", OAUTH, 400, false),
    }
}

/// The Graph error an error rule answers with (Graph's message, type and status unless the rule
/// sets them).
pub(crate) fn rule_error(rule: &FaultRule) -> GraphError {
    let code = rule.code.unwrap_or(2);
    let (message, kind, status, transient) = graph_defaults(code, rule.subcode);
    let status =
        StatusCode::from_u16(rule.status.unwrap_or(status)).unwrap_or(StatusCode::BAD_REQUEST);
    GraphError {
        status,
        message: rule.message.as_deref().unwrap_or(message).to_owned(),
        kind: rule
            .error_type
            .clone()
            .map_or(Cow::Borrowed(kind), Cow::Owned),
        code,
        subcode: rule.subcode,
        is_transient: rule.is_transient.unwrap_or(transient),
        fbtrace_id: rule.fbtrace_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_validate() {
        assert!(
            FaultRule::default().validate().is_err(),
            "error without code"
        );
        let r = FaultRule::error(1200, None).validate().unwrap();
        assert_eq!(r.count, Some(1), "the next send by default");
        let both = FaultRule {
            count: Some(2),
            fraction: Some(0.5),
            ..FaultRule::error(1, None)
        };
        assert!(both.validate().is_err());
        let bad_fraction = FaultRule {
            fraction: Some(1.5),
            ..FaultRule::error(1, None)
        };
        assert!(bad_fraction.validate().is_err());
        let timeout_with_code = FaultRule {
            kind: FaultKind::Timeout,
            code: Some(1),
            ..FaultRule::default()
        };
        assert!(timeout_with_code.validate().is_err());
        let close = FaultRule {
            kind: FaultKind::Close,
            ..FaultRule::default()
        };
        assert!(close.validate().is_ok());
    }

    #[test]
    fn count_rules_are_used_up_and_page_filters_apply() {
        let f = Faults::new(0);
        lock(&f.rules).push(
            FaultRule {
                count: Some(2),
                page_id: Some("p".into()),
                ..FaultRule::error(1200, None)
            }
            .validate()
            .unwrap(),
        );
        assert!(f.take("q").is_none());
        assert_eq!(f.take("p").and_then(|r| r.code), Some(1200));
        assert!(f.take("p").is_some());
        assert!(f.take("p").is_none());
        assert!(lock(&f.rules).is_empty());
        lock(&f.rules).push(
            FaultRule {
                fraction: Some(1.0),
                ..FaultRule::error(2, None)
            }
            .validate()
            .unwrap(),
        );
        for _ in 0..5 {
            assert!(f.take("any").is_some(), "a fraction rule stays");
        }
    }
}
