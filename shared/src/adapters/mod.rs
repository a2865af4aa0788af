//! Adapters: one per port and backing service, plus the in-memory twins.

pub mod memory;
