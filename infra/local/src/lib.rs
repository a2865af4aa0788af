//! Local runner (being written).
pub mod provision;
