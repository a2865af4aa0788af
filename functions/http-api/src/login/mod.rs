//! Facebook Login: the redirect flow (`start`, `callback`, with the browser-binding helpers in
//! `browser`) and the token verification it shares with `POST /v1/logins` (`verify`), which with
//! `START_AT_LOGIN` also starts the opt-in (`start_at_login`).
//!
//! The `state` is 256 random bits, stored (by its SHA-256) for 10 minutes and consumed by one
//! conditional delete, and bound to the browser by a `Secure; HttpOnly; SameSite=Lax` cookie that
//! holds HMAC(key derived from the app secret, state), compared in constant time.

pub mod browser;
pub mod callback;
pub mod start;
pub mod start_at_login;
pub mod verify;
