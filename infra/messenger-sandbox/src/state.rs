//! The shared state of a running sandbox: configuration, webhook target, the links to the app around
//! it, the records (opt-ins, the inbox, what people did, the Page's policy) and the switches (rate
//! limit, faults, served version, holds), each switch defined in its own module.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SandboxConfig;
use crate::api_version::ServedVersion;
use crate::faults::Faults;
use crate::hold::Holds;
use crate::rate_limit::RateLimiter;
use crate::setup::MetaSetup;

/// How long one webhook delivery may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// One message the app sent through the Send API.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InboxMessage {
    pub message_id: String,
    pub page_id: String,
    pub login_id: String,
    pub text: String,
    pub messaging_type: String,
    pub received_at_ms: i64,
    pub opted_in_at_ms: i64,
}

/// An opt-in the sandbox knows about (a `login_id` the app may message once the webhook fired).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OptIn {
    pub opted_in_at_ms: i64,
}

/// What a person did after opting in, as the sandbox sent it to the app (the inbox page shows it
/// beside the Page's messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PersonAct {
    /// Wrote to the Page (`POST /_sandbox/message`).
    Wrote(String),
    /// Changed their notification status (`POST /_sandbox/notification-status`).
    NotificationStatus(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PersonEvent {
    pub login_id: String,
    pub at_ms: i64,
    pub act: PersonAct,
}

/// A person who wrote to the Page: who they are and when they last wrote (the messaging window
/// for messages to their PSID runs from there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conversation {
    pub login_id: String,
    pub last_message_at_ms: i64,
}

/// Everything the sandbox saw, for the pages: opt-ins, messages both ways, the Page's policy.
#[derive(Clone, Debug, Default)]
pub(crate) struct Records {
    pub optins: HashMap<String, OptIn>,
    pub inbox: Vec<InboxMessage>,
    pub person_events: Vec<PersonEvent>,
    /// The last policy enforcement sent (`block`, `unblock`, `warning`), if any.
    pub policy: Option<String>,
    /// The people who wrote to the Page, by PSID.
    pub conversations: HashMap<String, Conversation>,
}

pub(crate) struct AppState {
    /// Fixed at start; `config.webhook_url` is only the initial value, see `webhook_url`.
    pub config: SandboxConfig,
    webhook_url: RwLock<Option<String>>,
    records: Mutex<Records>,
    /// One client for every webhook delivery.
    pub http: reqwest::Client,
    /// The Send API's per-Page rate limit.
    pub rate_limiter: RateLimiter,
    /// Added latency, fault rules and Send API counters.
    pub faults: Faults,
    /// The version answers name instead of the asked one (`facebook-api-version`), if set.
    pub api_version: ServedVersion,
    /// Send API calls held until released (`POST /_sandbox/hold`).
    pub holds: Holds,
    /// The Page token's state and the webhook subscriptions (`/_sandbox/page_token`, `/_sandbox/subscriptions`).
    pub setup: MetaSetup,
    /// Links to the app around the sandbox (its API, docs, website), named by whoever started it.
    links: RwLock<Vec<(String, String)>>,
}

impl AppState {
    pub fn new(config: SandboxConfig) -> std::io::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            rate_limiter: RateLimiter::new(config.rate_limit_per_second),
            faults: Faults::new(config.latency_ms),
            webhook_url: RwLock::new(config.webhook_url.clone()),
            config,
            records: Mutex::new(Records::default()),
            http,
            api_version: Default::default(),
            holds: Default::default(),
            setup: Default::default(),
            links: Default::default(),
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

    pub fn links(&self) -> Vec<(String, String)> {
        self.links
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn set_links(&self, links: Vec<(String, String)>) {
        *self
            .links
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = links;
    }

    /// A copy of everything recorded (for the pages).
    pub fn snapshot(&self) -> Records {
        self.records().clone()
    }

    pub fn push_person_event(&self, event: PersonEvent) {
        self.records().person_events.push(event);
    }

    pub fn set_policy(&self, action: &str) {
        self.records().policy = Some(action.to_owned());
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

    /// The person behind `psid` wrote to the Page at `at_ms`.
    pub fn record_person_message(&self, psid: &str, login_id: &str, at_ms: i64) {
        self.records().conversations.insert(
            psid.to_owned(),
            Conversation {
                login_id: login_id.to_owned(),
                last_message_at_ms: at_ms,
            },
        );
    }

    /// The conversation of `psid`, if the person ever wrote to the Page.
    pub fn conversation(&self, psid: &str) -> Option<Conversation> {
        self.records().conversations.get(psid).cloned()
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

    /// Forget every opt-in and message, fault rule, rate window, counter, version switch and hold,
    /// and restore the Page token and the webhook subscriptions.
    pub fn reset(&self) {
        *self.records() = Records::default();
        self.setup.reset();
        self.holds.release(None);
        self.api_version.set(None);
        self.faults.clear();
        self.rate_limiter.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
