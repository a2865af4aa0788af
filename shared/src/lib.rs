//! Everything that is not wiring, in layers: `domain` (pure types and rules), `facebook` (Meta's
//! wire formats and crypto), `ports` (traits), `use_cases` (one place per promise), `config`,
//! `adapters` (AWS, Graph, and the in-memory twins behind the `testing` feature) and `bootstrap`
//! (cold-start loading and the AWS wiring), `logging` (the functions' log format).

pub mod adapters;
pub mod bootstrap;
pub mod config;
pub mod domain;
pub mod facebook;
pub mod logging;
pub mod ports;
pub mod use_cases;
