//! In-memory twins of every port, mirroring [`crate::adapters::dynamodb`] and the other adapters,
//! plus test configuration. Behind the `testing` feature: they are not part of the product's API.

pub mod alerts;
pub mod clock;
pub mod config;
pub mod conversations;
pub mod drift;
pub mod erasure;
pub mod events;
pub mod follow_ups;
pub mod logins;
pub mod messenger;
pub mod metrics;
pub mod opt_ins;
pub mod pages;
pub mod queue;
pub mod scheduler;
pub mod sync;
