//! `/webhooks/messenger`: Meta's subscription handshake (`verify`) and the signed events
//! (`dispatch`, which checks the signature and the Page once, then hands each messaging item to
//! `opt_in`, `conversation` or `policy`).

pub mod conversation;
pub mod dispatch;
pub mod opt_in;
pub mod outcome;
pub mod policy;
pub mod verify;
