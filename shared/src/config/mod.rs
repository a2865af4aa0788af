//! Configuration: one typed [`settings::Config`] loaded once at cold start through one
//! [`reader::Reader`], the setting groups (login, send), the secrets, and the name of every
//! environment variable ([`mod@env`]).

pub mod env;
pub mod events;
pub mod login;
pub mod reader;
pub mod secrets;
pub mod send;
pub mod settings;
