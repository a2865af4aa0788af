//! Data deletion (Meta's Data Deletion callback): erase every item that holds a person's ids or
//! name, keep only non-identifying records — an erasure marker (a keyed hash of the opt-in key, so
//! an old webhook redelivered later cannot bring the opt-in back) and the deletion status record
//! the status URL shows.

use crate::domain::{Millis, OptInKey};
use crate::facebook::hmac_sha256_hex;
use crate::ports::PortResult;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What the status URL shows. Holds no identifier of the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionRecord {
    pub confirmation_code: String,
    pub status: String,
    pub requested_at: Millis,
    pub completed_at: Millis,
    /// How many stored items were erased.
    pub items_erased: u32,
}

/// The non-identifying marker of an erased opt-in: HMAC of the key with the app secret.
pub fn erasure_marker(app_secret: &str, key: &OptInKey) -> String {
    hmac_sha256_hex(
        app_secret.as_bytes(),
        format!("erased#{}#{}", key.page_id, key.login_id).as_bytes(),
    )
}

/// The confirmation code of a deletion request: derived from the signed request, so the same
/// request always gets the same code (a repeated request is harmless), and not reversible.
pub fn deletion_code(app_secret: &str, signed_request: &str) -> String {
    let digest = hmac_sha256_hex(
        app_secret.as_bytes(),
        format!("deletion#{signed_request}").as_bytes(),
    );
    digest[..24].to_owned()
}

/// The person's items to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonItems {
    pub page_id: String,
    pub asid: String,
    /// Their opt-in, when known (from the LOGIN or derived).
    pub opt_in: Option<OptInKey>,
    /// The marker written in place of the opt-in.
    pub marker: Option<String>,
}

#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Delete the LOGIN, its link item, the opt-in and its PSID lookup; write the erasure marker.
    /// Idempotent. Returns how many items were deleted.
    async fn erase(&self, person: &PersonItems, now: Millis) -> PortResult<u32>;
    /// When the opt-in behind `marker` was erased, if it was.
    async fn erased_at(&self, marker: &str) -> PortResult<Option<Millis>>;
    /// Store the status record (the first one for a code wins; a repeat keeps it).
    async fn put_deletion_record(&self, record: &DeletionRecord) -> PortResult<DeletionRecord>;
    async fn get_deletion_record(&self, code: &str) -> PortResult<Option<DeletionRecord>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_codes_are_stable_keyed_and_opaque() {
        let k = OptInKey::new("1", "login-abc");
        let m = erasure_marker("s", &k);
        assert_eq!(m, erasure_marker("s", &k));
        assert_ne!(m, erasure_marker("t", &k));
        assert!(!m.contains("login-abc"));
        let c = deletion_code("s", "sig.payload");
        assert_eq!(c, deletion_code("s", "sig.payload"));
        assert_ne!(c, deletion_code("s", "sig.other"));
        assert_eq!(c.len(), 24);
        assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
