//! The http-api's tests, one binary (each file a module, as they were separate binaries before):
//! linking the handler and its twins once instead of five times is most of their build time.

mod api;
mod common;
mod events;
mod facebook_callbacks;
mod login;
mod messages;
mod not_configured;
mod pages;
mod security;
mod start_at_login;
mod user_ref;
mod webhook;
