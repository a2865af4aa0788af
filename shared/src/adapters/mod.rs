//! Adapters: one per port and backing service (AWS SDK, Graph over reqwest, EMF on stdout), the
//! DynamoDB stores of the one table, and the in-memory twins (feature `testing`).

pub mod aws;
pub mod clock;
pub mod dynamodb;
pub mod emf;
pub mod graph;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod scheduler;
pub mod secrets;
pub mod sns;
pub mod sqs;

// MOVE-COMPAT: removed after the import rewrite (/work/rewrite_imports.py).
#[doc(hidden)]
pub mod dynamodb_erasure {
    pub use crate::adapters::dynamodb::erasure::*;
}
#[doc(hidden)]
pub mod dynamodb_login {
    pub use crate::adapters::dynamodb::logins::*;
}
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod memory_login {
    pub use crate::adapters::memory::logins::*;
}
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod memory_send {
    pub use crate::adapters::memory::queue::MemoryRetryQueue;
}
// MOVE-COMPAT end
