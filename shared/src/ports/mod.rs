//! One trait per capability. Handlers and use cases depend on these, never on AWS SDK or HTTP
//! client types. Each has a real adapter in [`crate::adapters`] and an in-memory twin in
//! `crate::adapters::memory` (feature `testing`).

pub mod alerts;
pub mod bundle;
pub mod clock;
pub mod conversations;
pub mod erasure;
pub mod error;
pub mod history;
pub mod logins;
pub mod messenger;
pub mod metrics;
pub mod opt_ins;
pub mod pages;
pub mod queue;
pub mod scheduler;

// MOVE-COMPAT: removed after the import rewrite (/work/rewrite_imports.py).
#[doc(hidden)]
pub use self::{
    alerts::*, clock::*, conversations::*, error::*, messenger::*, opt_ins::*, queue::SendQueue,
    scheduler::*,
};
#[doc(hidden)]
pub use crate::{adapters::clock::SystemClock, domain::opt_in::SendOutcome};
#[doc(hidden)]
pub mod send {
    pub use crate::ports::pages::*;
    pub use crate::ports::queue::{MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS, RetryQueue};
}
// MOVE-COMPAT end
