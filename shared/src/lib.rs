//! Everything that is not wiring: the opt-in domain and state machine, the ports the handlers use,
//! their adapters (AWS SDK, Graph over reqwest, in-memory twins), Facebook facts and configuration.

pub mod actions;
pub mod adapters;
pub mod attention;
pub mod aws;
pub mod bootstrap;
pub mod config;
pub mod domain;
pub mod erasure;
pub mod facebook;
pub mod login;
pub mod metrics;
pub mod page;
pub mod ports;
pub mod report;
pub mod send_tuning;
pub mod signed_request;
pub mod table;
pub mod use_cases;
