//! The Messenger sandbox's tests, one binary (each file a module, as they were separate binaries
//! before): the sandbox and its HTTP stack link once instead of three times.

mod controls;
mod oauth;
mod page_setup;
mod psid;
mod traffic;
