//! The one DynamoDB table: its layout ([`table`]), one codec and helpers ([`codec`]), and one file
//! per port the table serves.

pub mod codec;
pub mod conversations;
pub mod drift;
pub mod erasure;
pub mod follow_ups;
pub mod handle;
pub mod logins;
pub mod opt_ins;
pub mod pages;
pub mod report;
pub mod table;
