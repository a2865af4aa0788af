//! The shared state of a running sandbox: configuration, opt-ins, inbox, webhook target.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::SandboxConfig;
use crate::inbox::InboxMessage;

/// How long one webhook delivery may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// An opt-in the sandbox knows about (a `login_id` the app may message once the webhook fired).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OptIn {
    pub opted_in_at_ms: i64,
}

#[derive(Default)]
struct Records {
    optins: HashMap<String, OptIn>,
    inbox: Vec<InboxMessage>,
}

pub(crate) struct AppState {
    /// Fixed at start; `config.webhook_url` is only the initial value, see `webhook_url`.
    pub config: SandboxConfig,
    webhook_url: RwLock<Option<String>>,
    records: Mutex<Records>,
    /// One client for every webhook delivery.
    pub http: reqwest::Client,
    /// The Send API's per-Page rate limit.
    pub rate_limiter: crate::rate_limit::RateLimiter,
    /// Added latency, fault rules and Send API counters.
    pub faults: crate::faults::Faults,
    /// The version answers name instead of the asked one (`facebook-api-version`), if set.
    pub api_version: crate::api_version::ServedVersion,
    /// Send API calls held until released (`POST /_sandbox/hold`).
    pub holds: crate::hold::Holds,
}

impl AppState {
    pub fn new(config: SandboxConfig) -> std::io::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            rate_limiter: crate::rate_limit::RateLimiter::new(config.rate_limit_per_second),
            faults: crate::faults::Faults::new(config.latency_ms),
            webhook_url: RwLock::new(config.webhook_url.clone()),
            config,
            records: Mutex::new(Records::default()),
            http,
            api_version: Default::default(),
            holds: Default::default(),
        })
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        // A panic while holding the lock cannot leave the records half-updated in a way that
        // matters for a test double; keep serving.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn webhook_url(&self) -> Option<String> {
        self.webhook_url
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn set_webhook_url(&self, url: Option<String>) {
        *self
            .webhook_url
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = url;
    }

    /// Record (or refresh) an opt-in.
    pub fn record_optin(&self, login_id: &str, opted_in_at_ms: i64) {
        self.records()
            .optins
            .insert(login_id.to_owned(), OptIn { opted_in_at_ms });
    }

    pub fn optin(&self, login_id: &str) -> Option<OptIn> {
        self.records().optins.get(login_id).cloned()
    }

    pub fn push_message(&self, message: InboxMessage) {
        self.records().inbox.push(message);
    }

    /// Messages in arrival order, optionally only those sent to one `login_id`.
    pub fn inbox(&self, login_id: Option<&str>) -> Vec<InboxMessage> {
        self.records()
            .inbox
            .iter()
            .filter(|m| login_id.is_none_or(|id| m.login_id == id))
            .cloned()
            .collect()
    }

    /// Forget every opt-in and message, fault rule, rate window, counter, version switch and hold.
    pub fn reset(&self) {
        *self.records() = Records::default();
        self.holds.release(None);
        self.api_version.set(None);
        self.faults.clear();
        self.rate_limiter.clear();
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `len` random ASCII letters and digits.
pub(crate) fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A fresh `login_id`: 64 lowercase hex characters, like the ones Facebook sends.
pub(crate) fn random_login_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_have_the_expected_shape() {
        let id = random_login_id();
        assert_eq!(id.len(), 64);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_ne!(id, random_login_id());
        let s = random_alphanumeric(23);
        assert_eq!(s.len(), 23);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn records_are_filtered_and_reset() {
        let state = AppState::new(SandboxConfig::default()).unwrap();
        state.record_optin("a", 1);
        assert_eq!(state.optin("a"), Some(OptIn { opted_in_at_ms: 1 }));
        assert_eq!(state.optin("b"), None);
        for (i, login_id) in ["a", "b", "a"].into_iter().enumerate() {
            state.push_message(InboxMessage {
                message_id: format!("m_{i}"),
                page_id: "p".into(),
                login_id: login_id.into(),
                text: "t".into(),
                messaging_type: "UPDATE".into(),
                received_at_ms: 0,
                opted_in_at_ms: 0,
            });
        }
        let ids: Vec<_> = state
            .inbox(Some("a"))
            .into_iter()
            .map(|m| m.message_id)
            .collect();
        assert_eq!(ids, ["m_0", "m_2"]);
        assert_eq!(state.inbox(None).len(), 3);
        state.reset();
        assert!(state.inbox(None).is_empty());
        assert_eq!(state.optin("a"), None);
    }
}
