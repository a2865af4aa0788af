//! The domain: pure types and rules, no SDK, no configuration, no I/O.

pub mod alert;
pub mod attention;
pub mod drift;
pub mod erasure;
pub mod events;
pub mod follow_up;
pub mod jobs;
pub mod login;
pub mod message;
pub mod metrics;
pub mod opt_in;
pub mod page;
pub mod preflight;
pub mod report;
pub mod report_html;
