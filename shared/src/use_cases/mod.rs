//! One place per promise: the use cases every entry point (webhook, website API, Facebook
//! callbacks, sender, sweep) calls instead of writing its own copy. Each file owns one promise of
//! docs/decisions.md "Promises and where they are enforced".

pub mod alert;
pub mod bundle;
pub mod deletion;
pub mod events;
pub mod expire;
pub mod opt_in;
pub mod opt_out;
pub mod page;
