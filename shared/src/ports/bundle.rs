//! The port bundle: every capability a function or a use case may need, as trait objects. One
//! wiring path: production fills it with AWS and Graph adapters (`bootstrap::AwsPorts`), the local
//! runner with the same over moto, tests with the in-memory twins; each function's
//! `Deps::from_ports` takes what it uses from it.

use crate::erasure::ErasureStore;
use crate::login::{FacebookLogin, LoginStore};
use crate::metrics::Metrics;
use crate::ports::send::{PageStateStore, RetryQueue};
use crate::ports::{
    Alerts, Clock, ConversationStore, DeadlineScheduler, Messenger, OptInStore, SendQueue,
};
use std::sync::Arc;

/// Every port, each an `Arc` so a bundle is cheap to clone and to override field by field in tests
/// (`Ports { clock: …, ..ports }`).
#[derive(Clone)]
pub struct Ports {
    /// OPTIN items and the state machine.
    pub opt_ins: Arc<dyn OptInStore>,
    /// PSID links and pending stops (the same table).
    pub conversations: Arc<dyn ConversationStore>,
    /// The Page state item (pause, block, resume).
    pub pages: Arc<dyn PageStateStore>,
    /// Deletion requests and the erasure marker.
    pub erasure: Arc<dyn ErasureStore>,
    /// LOGIN items and the login state.
    pub logins: Arc<dyn LoginStore>,
    /// The send queue (new jobs).
    pub queue: Arc<dyn SendQueue>,
    /// The send queue's retries (visibility changes, delayed hand-overs).
    pub retry: Arc<dyn RetryQueue>,
    /// Deadline checks (EventBridge Scheduler).
    pub scheduler: Arc<dyn DeadlineScheduler>,
    /// Operator alerts (SNS).
    pub alerts: Arc<dyn Alerts>,
    pub metrics: Arc<dyn Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Facebook Login's Graph calls (code exchange, token inspection, permissions).
    pub facebook: Arc<dyn FacebookLogin>,
    /// The Send API (only the sender's adapter holds a Page token).
    pub messenger: Arc<dyn Messenger>,
}
