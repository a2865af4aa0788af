//! Adapters: one per port and backing service, plus the in-memory twins.

pub mod dynamodb;
pub mod dynamodb_erasure;
pub mod dynamodb_login;
pub mod dynamodb_pages;
pub mod graph;
pub mod memory;
pub mod memory_login;
pub mod memory_send;
pub mod scheduler;
pub mod secrets;
pub mod sns;
pub mod sqs;
pub mod sqs_retry;
