//! Meta's wire formats and crypto, pure: webhook payloads and signatures, Graph errors,
//! `signed_request`, the login dialog URL, and the one HMAC helper every signature goes through.

pub mod crypto;
pub mod dialog;
pub mod graph_error;
pub mod page_setup;
pub mod signed_request;
pub mod webhook;
