//! Adapters: one per port and backing service (AWS SDK, Graph over reqwest, EMF on stdout), the
//! DynamoDB stores of the one table, and the in-memory twins (feature `testing`).

pub mod aws;
pub mod clock;
pub mod dynamodb;
pub mod emf;
pub mod events;
pub mod graph;
pub mod graph_admin;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod scheduler;
pub mod secrets;
pub mod sns;
pub mod sqs;
pub mod tls;
