//! One typed configuration, loaded once at cold start. Loading reports *every* missing or malformed
//! variable at once, by name, so an operator fixes the template in one go.
//!
//! Secrets are not here: they live in one Secrets Manager secret named by `SECRET_ID`, and each
//! function parses only its own view of it ([`crate::config::secrets`]).

use crate::config::env;
use crate::config::login::LoginConfig;
use crate::config::reader::{ConfigError, Reader};
use crate::config::send::SendTuning;
use crate::domain::message::{
    DEFAULT_STOP_KEYWORDS, MAX_MESSAGE_TEXT_CHARS, needs_first_name, rendered_length_problem,
};
use crate::domain::opt_in::Millis;

/// How the initial message is classified (`messaging_type`). Never `MESSAGE_TAG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagingType {
    Update,
    Response,
}

impl MessagingType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessagingType::Update => "UPDATE",
            MessagingType::Response => "RESPONSE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table_name: String,
    pub send_queue_url: String,
    pub schedule_group: String,
    pub scheduler_role_arn: String,
    pub deadline_function_arn: String,
    /// Dead-letter queue for schedule deliveries that fail (optional).
    pub scheduler_dlq_arn: Option<String>,
    pub alert_topic_arn: String,
    pub secret_id: String,
    /// The secret holding only the Page token (`{"page_access_token": …}`), readable by the
    /// sender alone. `None`: the token is read from `secret_id` (the local stack's one secret).
    pub page_token_secret_id: Option<String>,
    pub fb_app_id: String,
    pub fb_page_id: String,
    pub graph_api_version: String,
    pub graph_api_base_url: String,
    pub facebook_web_base_url: String,
    pub public_base_url: Option<String>,
    pub initial_message_text: String,
    pub messaging_type: MessagingType,
    pub alert_lead_ms: Millis,
    pub optin_window_ms: Millis,
    /// How long a sender owns a claimed opt-in before another may take it over.
    pub send_lease_ms: Millis,
    pub graph_timeout_ms: u64,
    /// A message consisting of one of these (any case) opts the person out.
    pub stop_keywords: Vec<String>,
    /// Facebook Login settings (return_to origins, scopes, login_id derivation, first-name fallback).
    pub login: LoginConfig,
    /// The sender's throughput and retry settings.
    pub send: SendTuning,
    /// A granted LOGIN with no matching opt-in after this long is alerted once
    /// (`ORPHAN_LOGIN_ALERT_AFTER_MINUTES`, default 60).
    pub orphan_login_alert_after_ms: Millis,
    /// The unguessable first path segment of the routes only Facebook calls (webhook,
    /// deauthorize, data deletion): `/{segment}/webhooks/messenger`. `None` keeps the bare paths
    /// (the local stack's default). See docs/decisions.md, "Facebook-facing routes".
    pub facebook_path_segment: Option<String>,
    /// How long the http-api trusts its copy of the secret before reading it again, so a revoked
    /// API key stops working within this time instead of at the next cold start.
    pub secret_ttl_ms: Millis,
    /// Events to the website backend (`EVENTS_URL`, the events queue; docs/events.md).
    pub events: crate::config::events::EventsConfig,
    /// `HUMAN_AGENT_TAG` (default false): follow-ups may go up to 7 days after the person's last
    /// message, tagged `HUMAN_AGENT` past the first 24 hours. Only with Meta's approval of the tag.
    pub human_agent_tag: bool,
}

/// The newest Graph version (v27.0, released 2026-11-04); v25.0 stays valid until 2028-07-29.
pub const DEFAULT_GRAPH_API_VERSION: &str = "v27.0";
pub const DEFAULT_GRAPH_API_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_FACEBOOK_WEB_BASE_URL: &str = "https://www.facebook.com";
pub const DEFAULT_INITIAL_MESSAGE_TEXT: &str =
    "Thanks for connecting with us on Messenger! Reply here any time if you have a question.";
/// Shortest accepted `FACEBOOK_PATH_SEGMENT`: 22 characters of `[A-Za-z0-9_-]` carry more than 128
/// random bits (`openssl rand -hex 16` gives 32).
pub const MIN_FACEBOOK_PATH_SEGMENT_CHARS: usize = 22;
/// Default `SECRET_TTL_SECONDS`.
pub const DEFAULT_SECRET_TTL_SECONDS: i64 = 300;

impl Config {
    /// Load from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Load from any key → value lookup (tests, the local runner).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader::new(&lookup);
        let table_name = r.required(env::TABLE_NAME);
        let send_queue_url = r.required(env::SEND_QUEUE_URL);
        let schedule_group = r.required(env::SCHEDULE_GROUP);
        let scheduler_role_arn = r.required(env::SCHEDULER_ROLE_ARN);
        let deadline_function_arn = r.required(env::DEADLINE_FUNCTION_ARN);
        let scheduler_dlq_arn = r.optional(env::SCHEDULER_DLQ_ARN);
        let alert_topic_arn = r.required(env::ALERT_TOPIC_ARN);
        let secret_id = r.required(env::SECRET_ID);
        let page_token_secret_id = r.optional(env::PAGE_TOKEN_SECRET_ID);
        let fb_app_id = r.required(env::FB_APP_ID);
        let fb_page_id = r.required(env::FB_PAGE_ID);
        for (name, value) in [(env::FB_APP_ID, &fb_app_id), (env::FB_PAGE_ID, &fb_page_id)] {
            if !value.is_empty() && !value.bytes().all(|b| b.is_ascii_digit()) {
                r.problem(format!("{name} must be a numeric Facebook id"));
            }
        }
        let graph_api_version = r.with_default(env::GRAPH_API_VERSION, DEFAULT_GRAPH_API_VERSION);
        let version_ok = graph_api_version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            });
        if !version_ok {
            r.problem(format!(
                "GRAPH_API_VERSION must look like v25.0 (got {graph_api_version:?})"
            ));
        }
        let graph = r.with_default(env::GRAPH_API_BASE_URL, DEFAULT_GRAPH_API_BASE_URL);
        let graph_api_base_url = r.url(env::GRAPH_API_BASE_URL, graph);
        let web = r.with_default(env::FACEBOOK_WEB_BASE_URL, DEFAULT_FACEBOOK_WEB_BASE_URL);
        let facebook_web_base_url = r.url(env::FACEBOOK_WEB_BASE_URL, web);
        let public_base_url = r
            .optional(env::PUBLIC_BASE_URL)
            .map(|u| r.url(env::PUBLIC_BASE_URL, u));
        let initial_message_text =
            r.with_default(env::INITIAL_MESSAGE_TEXT, DEFAULT_INITIAL_MESSAGE_TEXT);
        // With {first_name}, the text as sent is checked below, once the fallback is known.
        if !needs_first_name(&initial_message_text)
            && initial_message_text.chars().count() > MAX_MESSAGE_TEXT_CHARS
        {
            r.problem(format!(
                "INITIAL_MESSAGE_TEXT is longer than {MAX_MESSAGE_TEXT_CHARS} characters (Graph takes less than 2000)"
            ));
        }
        let messaging_type = match r.with_default(env::MESSAGING_TYPE, "UPDATE").as_str() {
            "UPDATE" => MessagingType::Update,
            "RESPONSE" => MessagingType::Response,
            other => {
                r.problem(format!(
                    "MESSAGING_TYPE must be UPDATE or RESPONSE (got {other:?}; Message Tags are never allowed for the initial message)"
                ));
                MessagingType::Update
            }
        };
        let alert_lead_minutes = r.number(env::ALERT_LEAD_MINUTES, 120, 0, 24 * 60);
        // Sub-minute leads for local runs and tests with a short OPTIN_WINDOW_SECONDS; when set it
        // replaces ALERT_LEAD_MINUTES.
        let alert_lead_seconds = r
            .optional(env::ALERT_LEAD_SECONDS)
            .map(|_| r.number(env::ALERT_LEAD_SECONDS, 0, 0, 86_400));
        let optin_window_seconds = r.number(env::OPTIN_WINDOW_SECONDS, 86_400, 10, 86_400);
        let send_lease_seconds = r.number(env::SEND_LEASE_SECONDS, 60, 5, 900);
        let graph_timeout_ms = r.number(env::GRAPH_TIMEOUT_MS, 10_000, 100, 60_000);
        let stop_keywords: Vec<String> = match r.list(env::STOP_KEYWORDS) {
            Some(list) => list.iter().map(|k| k.to_lowercase()).collect(),
            None => DEFAULT_STOP_KEYWORDS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
        };
        let orphan_login_minutes =
            r.number(env::ORPHAN_LOGIN_ALERT_AFTER_MINUTES, 60, 1, 7 * 24 * 60);
        let login = LoginConfig::from_reader(&mut r);
        // What is sent when the name is unknown (or too long to fit) must fit too.
        if let Some(problem) =
            rendered_length_problem(&initial_message_text, &login.first_name_fallback)
        {
            r.problem(problem);
        }
        let send = SendTuning::from_reader(&mut r);
        let facebook_path_segment = r.optional(env::FACEBOOK_PATH_SEGMENT);
        if let Some(segment) = &facebook_path_segment
            && (segment.len() < MIN_FACEBOOK_PATH_SEGMENT_CHARS
                || segment.len() > 128
                || !segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            // The value is a credential of sorts: name the rule, not the value.
            r.problem(format!(
                "FACEBOOK_PATH_SEGMENT must be {MIN_FACEBOOK_PATH_SEGMENT_CHARS} to 128 characters of A-Z, a-z, 0-9, - and _ (e.g. `openssl rand -hex 16`)"
            ));
        }
        let secret_ttl_seconds =
            r.number(env::SECRET_TTL_SECONDS, DEFAULT_SECRET_TTL_SECONDS, 0, 3600);
        let events = crate::config::events::EventsConfig::from_reader(&mut r);
        let human_agent_tag = r.flag(env::HUMAN_AGENT_TAG, false);

        r.finish(Config {
            table_name,
            send_queue_url,
            schedule_group,
            scheduler_role_arn,
            deadline_function_arn,
            scheduler_dlq_arn,
            alert_topic_arn,
            secret_id,
            page_token_secret_id,
            fb_app_id,
            fb_page_id,
            graph_api_version,
            graph_api_base_url,
            facebook_web_base_url,
            public_base_url,
            initial_message_text,
            messaging_type,
            alert_lead_ms: alert_lead_seconds.map_or(alert_lead_minutes * 60_000, |s| s * 1000),
            optin_window_ms: optin_window_seconds * 1000,
            send_lease_ms: send_lease_seconds * 1000,
            graph_timeout_ms: graph_timeout_ms as u64,
            stop_keywords,
            login,
            send,
            orphan_login_alert_after_ms: orphan_login_minutes * 60_000,
            facebook_path_segment,
            secret_ttl_ms: secret_ttl_seconds * 1000,
            events,
            human_agent_tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("TABLE_NAME", "t"),
            ("SEND_QUEUE_URL", "http://q"),
            ("SCHEDULE_GROUP", "g"),
            ("SCHEDULER_ROLE_ARN", "arn:aws:iam::1:role/r"),
            (
                "DEADLINE_FUNCTION_ARN",
                "arn:aws:lambda:us-east-1:1:function:f",
            ),
            ("ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t"),
            ("SECRET_ID", "s"),
            ("FB_APP_ID", "123"),
            ("FB_PAGE_ID", "456"),
        ])
    }

    fn load(env: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| env.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_apply() {
        let c = load(&base()).unwrap();
        assert_eq!(c.graph_api_version, "v27.0");
        assert_eq!(c.graph_api_base_url, "https://graph.facebook.com");
        assert_eq!(c.messaging_type, MessagingType::Update);
        assert_eq!(c.alert_lead_ms, 120 * 60_000);
        assert_eq!(c.optin_window_ms, 86_400_000);
        assert_eq!(c.public_base_url, None);
        assert!(c.stop_keywords.contains(&"stop".to_string()));
    }

    #[test]
    fn human_agent_tag_is_off_unless_set_to_true() {
        assert!(!load(&base()).unwrap().human_agent_tag);
        let mut env = base();
        env.insert("HUMAN_AGENT_TAG", "true");
        assert!(load(&env).unwrap().human_agent_tag);
        env.insert("HUMAN_AGENT_TAG", "yes");
        let e = load(&env).unwrap_err().to_string();
        assert!(e.contains("HUMAN_AGENT_TAG must be true or false"), "{e}");
    }

    #[test]
    fn stop_keywords_are_configurable() {
        let mut env = base();
        env.insert("STOP_KEYWORDS", " Halt, ENOUGH ,,");
        assert_eq!(load(&env).unwrap().stop_keywords, ["halt", "enough"]);
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let mut env = base();
        env.remove("TABLE_NAME");
        env.remove("SECRET_ID");
        env.insert("FB_PAGE_ID", "not-a-number");
        env.insert("ALERT_LEAD_MINUTES", "soon");
        env.insert("GRAPH_API_VERSION", "25");
        env.insert("GRAPH_API_BASE_URL", "ftp://x");
        env.insert("MESSAGING_TYPE", "MESSAGE_TAG");
        let e = load(&env).unwrap_err();
        let all = e.to_string();
        for needle in [
            "TABLE_NAME is missing",
            "SECRET_ID is missing",
            "FB_PAGE_ID must be a numeric",
            "ALERT_LEAD_MINUTES must be",
            "GRAPH_API_VERSION must look like",
            "GRAPH_API_BASE_URL must be an http(s) URL",
            "MESSAGING_TYPE must be UPDATE or RESPONSE",
        ] {
            assert!(all.contains(needle), "{needle} not in {all}");
        }
        assert_eq!(e.problems.len(), 7);
    }

    #[test]
    fn overrides_are_read_and_trailing_slashes_trimmed() {
        let mut env = base();
        env.insert("GRAPH_API_BASE_URL", "http://127.0.0.1:9000/");
        env.insert("OPTIN_WINDOW_SECONDS", "60");
        env.insert("MESSAGING_TYPE", "RESPONSE");
        let c = load(&env).unwrap();
        assert_eq!(c.graph_api_base_url, "http://127.0.0.1:9000");
        assert_eq!(c.optin_window_ms, 60_000);
        assert_eq!(c.messaging_type, MessagingType::Response);
    }

    #[test]
    fn alert_lead_seconds_replaces_the_minutes_for_short_local_windows() {
        let mut env = base();
        env.insert("ALERT_LEAD_MINUTES", "5");
        assert_eq!(load(&env).unwrap().alert_lead_ms, 300_000);
        env.insert("ALERT_LEAD_SECONDS", "20");
        assert_eq!(load(&env).unwrap().alert_lead_ms, 20_000);
        env.insert("ALERT_LEAD_SECONDS", "-1");
        assert!(
            load(&env)
                .unwrap_err()
                .to_string()
                .contains("ALERT_LEAD_SECONDS must be")
        );
    }

    #[test]
    fn long_message_text_is_refused() {
        let text: &'static str = Box::leak("x".repeat(2001).into_boxed_str());
        let mut env = base();
        env.insert("INITIAL_MESSAGE_TEXT", text);
        assert!(
            load(&env)
                .unwrap_err()
                .to_string()
                .contains("INITIAL_MESSAGE_TEXT")
        );
    }

    /// Graph takes "less than 2000" characters: 2000 is refused, 1999 accepted; and the text as
    /// rendered with the first-name fallback must fit too.
    #[test]
    fn message_text_must_be_less_than_2000_characters() {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let mut env = base();
        env.insert("INITIAL_MESSAGE_TEXT", leak("x".repeat(2000)));
        let e = load(&env).unwrap_err().to_string();
        assert!(e.contains("INITIAL_MESSAGE_TEXT"), "{e}");
        env.insert("INITIAL_MESSAGE_TEXT", leak("x".repeat(1999)));
        assert!(load(&env).is_ok());
        // 1990 + "{first_name}" is 2002 characters as configured but 1995 as sent ("there").
        env.insert(
            "INITIAL_MESSAGE_TEXT",
            leak(format!("{}{{first_name}}", "x".repeat(1990))),
        );
        assert!(load(&env).is_ok());
        // With a 20-character fallback it would be 2010 as sent: refused.
        env.insert("FIRST_NAME_FALLBACK", leak("f".repeat(20)));
        let e = load(&env).unwrap_err().to_string();
        assert!(e.contains("FIRST_NAME_FALLBACK"), "{e}");
    }

    #[test]
    fn the_facebook_path_segment_must_be_unguessable() {
        let mut env = base();
        assert_eq!(load(&env).unwrap().facebook_path_segment, None);
        env.insert("FACEBOOK_PATH_SEGMENT", "0123456789abcdef0123456789abcdef");
        assert_eq!(
            load(&env).unwrap().facebook_path_segment.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        for bad in [
            "short",
            "has/a/slash-0123456789abcdef",
            "spaces are not ok 0123456789",
        ] {
            env.insert("FACEBOOK_PATH_SEGMENT", bad);
            let e = load(&env).unwrap_err().to_string();
            assert!(e.contains("FACEBOOK_PATH_SEGMENT must be"), "{e}");
            assert!(!e.contains(bad), "the value is not echoed: {e}");
        }
    }

    #[test]
    fn the_secret_ttl_defaults_to_five_minutes_and_is_configurable() {
        let mut env = base();
        assert_eq!(load(&env).unwrap().secret_ttl_ms, 300_000);
        env.insert("SECRET_TTL_SECONDS", "60");
        assert_eq!(load(&env).unwrap().secret_ttl_ms, 60_000);
        env.insert("SECRET_TTL_SECONDS", "7200");
        assert!(
            load(&env)
                .unwrap_err()
                .to_string()
                .contains("SECRET_TTL_SECONDS")
        );
    }
}
