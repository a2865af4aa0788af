//! The `facebook-api-version` response header, and a switch to answer with another version.
//!
//! Graph names the version that served each call in `facebook-api-version`: the version in the
//! path, unless that version has expired, in which case Graph serves the call with the oldest live
//! version and says so. The sandbox sends the path's version by default; the switch makes every
//! versioned answer name another one, so tests can prove the app notices (its
//! `GraphApiVersionMismatch` metric).
//!
//! - `GET /_sandbox/api_version` — `{"serve": null}` (the asked version) or `{"serve": "v26.0"}`.
//! - `PUT /_sandbox/api_version` with `{"serve": "v26.0"}` answers every versioned call as v26.0;
//!   `{"serve": null}` (or `DELETE`) goes back to the asked version. `POST /_sandbox/reset` too.

//!
//! This module is the switch itself; its endpoint is in `controls`, the stamping middleware in
//! `gate`.

use std::sync::RwLock;

/// The header Graph names the serving version in.
pub const API_VERSION_HEADER: &str = "facebook-api-version";

/// The version every versioned answer names instead of the asked one, if set.
#[derive(Default)]
pub(crate) struct ServedVersion(RwLock<Option<String>>);

impl ServedVersion {
    pub fn get(&self) -> Option<String> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, version: Option<String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = version;
    }
}
