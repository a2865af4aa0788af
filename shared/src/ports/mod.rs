//! One trait per capability. Handlers and use cases depend on these, never on AWS SDK or HTTP
//! client types. Each has a real adapter in [`crate::adapters`] and an in-memory twin in
//! `crate::adapters::memory` (feature `testing`).

pub mod alerts;
pub mod bundle;
pub mod clock;
pub mod conversations;
pub mod drift;
pub mod erasure;
pub mod error;
pub mod events;
pub mod follow_ups;
pub mod history;
pub mod logins;
pub mod messenger;
pub mod metrics;
pub mod opt_ins;
pub mod pages;
pub mod queue;
pub mod scheduler;
