//! The domain: pure types and rules, no SDK, no configuration, no I/O.

pub mod alert;
pub mod attention;
pub mod erasure;
pub mod jobs;
pub mod login;
pub mod message;
pub mod metrics;
pub mod opt_in;
pub mod page;
pub mod report;

// MOVE-COMPAT: removed after the import rewrite (/work/rewrite_imports.py).
#[doc(hidden)]
pub use self::{alert::*, jobs::*, message::*, opt_in::*};
// MOVE-COMPAT end
