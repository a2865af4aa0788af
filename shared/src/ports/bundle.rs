//! The port bundle: every capability a function or a use case may need, as trait objects. One
//! wiring path: production fills it with AWS and Graph adapters (`bootstrap::AwsPorts`), the local
//! runner with the same over moto, tests with the in-memory twins; each function's
//! `Deps::from_ports` takes what it uses from it.

use crate::ports::alerts::Alerts;
use crate::ports::clock::Clock;
use crate::ports::conversations::ConversationStore;
use crate::ports::erasure::ErasureStore;
use crate::ports::events::EventPublisher;
use crate::ports::follow_ups::FollowUpStore;
use crate::ports::logins::{FacebookLogin, LoginStore};
use crate::ports::messenger::Messenger;
use crate::ports::metrics::Metrics;
use crate::ports::opt_ins::OptInStore;
use crate::ports::pages::PageStateStore;
use crate::ports::queue::RetryQueue;
use crate::ports::queue::SendQueue;
use crate::ports::scheduler::DeadlineScheduler;
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
    /// Events to the website backend (the events queue; `EventsOff` without `EVENTS_URL`).
    pub events: Arc<dyn EventPublisher>,
    /// Operator alerts (SNS).
    pub alerts: Arc<dyn Alerts>,
    pub metrics: Arc<dyn Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Facebook Login's Graph calls (code exchange, token inspection, permissions).
    pub facebook: Arc<dyn FacebookLogin>,
    /// The Send API (only the sender's adapter holds a Page token).
    pub messenger: Arc<dyn Messenger>,
    /// FOLLOWUP items and their `Idempotency-Key` records (issue 12 §2).
    pub follow_ups: Arc<dyn FollowUpStore>,
}
