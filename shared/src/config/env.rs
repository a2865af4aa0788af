//! The name of every environment variable the product reads, grouped by what uses it. The loaders
//! here, `test_config`, the local runner and the tests name variables through these constants, so
//! a renamed variable is renamed everywhere (template.yaml spells them out for Lambda).

// Where things are (every function).
pub const TABLE_NAME: &str = "TABLE_NAME";
pub const SEND_QUEUE_URL: &str = "SEND_QUEUE_URL";
pub const SCHEDULE_GROUP: &str = "SCHEDULE_GROUP";
pub const SCHEDULER_ROLE_ARN: &str = "SCHEDULER_ROLE_ARN";
pub const DEADLINE_FUNCTION_ARN: &str = "DEADLINE_FUNCTION_ARN";
pub const SCHEDULER_DLQ_ARN: &str = "SCHEDULER_DLQ_ARN";
pub const ALERT_TOPIC_ARN: &str = "ALERT_TOPIC_ARN";
pub const SECRET_ID: &str = "SECRET_ID";
pub const PAGE_TOKEN_SECRET_ID: &str = "PAGE_TOKEN_SECRET_ID";
/// How long the http-api trusts its copy of the secret (seconds).
pub const SECRET_TTL_SECONDS: &str = "SECRET_TTL_SECONDS";

// The Facebook app, Page and Graph.
pub const FB_APP_ID: &str = "FB_APP_ID";
pub const FB_PAGE_ID: &str = "FB_PAGE_ID";
pub const GRAPH_API_VERSION: &str = "GRAPH_API_VERSION";
pub const GRAPH_API_BASE_URL: &str = "GRAPH_API_BASE_URL";
pub const FACEBOOK_WEB_BASE_URL: &str = "FACEBOOK_WEB_BASE_URL";
pub const GRAPH_TIMEOUT_MS: &str = "GRAPH_TIMEOUT_MS";
pub const PUBLIC_BASE_URL: &str = "PUBLIC_BASE_URL";
pub const FACEBOOK_PATH_SEGMENT: &str = "FACEBOOK_PATH_SEGMENT";

// The opt-in and its message.
pub const INITIAL_MESSAGE_TEXT: &str = "INITIAL_MESSAGE_TEXT";
pub const MESSAGING_TYPE: &str = "MESSAGING_TYPE";
pub const OPTIN_WINDOW_SECONDS: &str = "OPTIN_WINDOW_SECONDS";
pub const STOP_KEYWORDS: &str = "STOP_KEYWORDS";
/// Follow-ups past 24 hours (up to 7 days) with the `HUMAN_AGENT` tag: needs Meta's approval.
pub const HUMAN_AGENT_TAG: &str = "HUMAN_AGENT_TAG";

// Alerts (deadline-alerts).
pub const ALERT_LEAD_MINUTES: &str = "ALERT_LEAD_MINUTES";
/// Sub-minute alert leads for local runs; replaces `ALERT_LEAD_MINUTES` when set.
pub const ALERT_LEAD_SECONDS: &str = "ALERT_LEAD_SECONDS";
pub const ORPHAN_LOGIN_ALERT_AFTER_MINUTES: &str = "ORPHAN_LOGIN_ALERT_AFTER_MINUTES";

// The sender ([`crate::config::send::SendTuning`] and the lease).
pub const SEND_LEASE_SECONDS: &str = "SEND_LEASE_SECONDS";
pub const SEND_RATE_PER_SECOND: &str = "SEND_RATE_PER_SECOND";
pub const SENDER_MAX_CONCURRENCY: &str = "SENDER_MAX_CONCURRENCY";
pub const SENDER_MAX_IN_FLIGHT: &str = "SENDER_MAX_IN_FLIGHT";
pub const RETRY_BASE_SECONDS: &str = "RETRY_BASE_SECONDS";
pub const RETRY_MAX_SECONDS: &str = "RETRY_MAX_SECONDS";
pub const PAUSE_PROBE_SECONDS: &str = "PAUSE_PROBE_SECONDS";

// Facebook Login ([`crate::config::login::LoginConfig`]).
pub const ALLOWED_RETURN_ORIGINS: &str = "ALLOWED_RETURN_ORIGINS";
pub const LOGIN_EXTRA_SCOPES: &str = "LOGIN_EXTRA_SCOPES";
pub const DERIVE_LOGIN_ID: &str = "DERIVE_LOGIN_ID";
pub const FIRST_NAME_FALLBACK: &str = "FIRST_NAME_FALLBACK";
/// Create the opt-in at the login callback instead of waiting for the webhook (default false).
pub const START_AT_LOGIN: &str = "START_AT_LOGIN";

// Logging (checked by `bootstrap::check_log_levels_from_env`).
pub const RUST_LOG: &str = "RUST_LOG";
pub const AWS_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";

// Events to the website backend ([`crate::config::events::EventsConfig`]).
/// Where events are POSTed (template parameter `EventsUrl`); empty = events off.
pub const EVENTS_URL: &str = "EVENTS_URL";
/// The events queue every emitting function publishes to.
pub const EVENTS_QUEUE_URL: &str = "EVENTS_QUEUE_URL";
/// The events dead-letter queue (the event sender moves an unreadable record there at once).
pub const EVENTS_DLQ_URL: &str = "EVENTS_DLQ_URL";
/// The event sender's own secret (`{"events_signing_secret": "whsec_…"}`).
pub const EVENTS_SIGNING_SECRET_ID: &str = "EVENTS_SIGNING_SECRET_ID";
/// First retry delay of a failed delivery, doubling per attempt (default 30). For tests only:
/// `0` retries at once, so a test can walk a record through every receive without waiting.
pub const EVENTS_RETRY_BASE_SECONDS: &str = "EVENTS_RETRY_BASE_SECONDS";
