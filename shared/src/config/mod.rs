//! Configuration: one typed [`settings::Config`] loaded once at cold start through one
//! [`reader::Reader`], the setting groups (login, send), the secrets, and the name of every
//! environment variable ([`mod@env`]).

pub mod env;
pub mod login;
pub mod reader;
pub mod secrets;
pub mod send;
pub mod settings;

// MOVE-COMPAT: removed after the import rewrite (/work/rewrite_imports.py).
#[doc(hidden)]
pub use self::{reader::ConfigError, secrets::*, settings::*};
#[doc(hidden)]
pub use crate::domain::message::MAX_MESSAGE_TEXT_CHARS;
// MOVE-COMPAT end
