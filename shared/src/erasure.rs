//! Data deletion (Meta's Data Deletion callback): erase every item that holds a person's ids or
//! name, keep only non-identifying records — an erasure marker (a keyed hash of the opt-in key, so
//! an old webhook redelivered later cannot bring the opt-in back) and the deletion status record
//! the status URL shows. The record says `partial`, with why, when the person's opt-in could not
//! be found (promise 4: erase everything, or say truthfully that it could not); the orchestration
//! is [`crate::use_cases::deletion`].

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
    /// Why the deletion is [`STATUS_PARTIAL`]: what could not be found or erased (for the person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_reason: Option<String>,
}

/// Every item identifying the person was erased.
pub const STATUS_COMPLETED: &str = "completed";
/// Some items could not be found (see [`DeletionRecord::partial_reason`]).
pub const STATUS_PARTIAL: &str = "partial";

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

/// One opt-in of the person, as found through one of the product's links, with the marker
/// written in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownOptIn {
    pub key: OptInKey,
    pub marker: String,
}

/// The person's items to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonItems {
    pub page_id: String,
    pub asid: String,
    /// Every opt-in key the product links to the person (the LOGIN's recorded login_id, the
    /// derived one); empty when none is known.
    pub opt_ins: Vec<KnownOptIn>,
}

#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Delete the LOGIN and, for every known opt-in, its erasure marker first, then the opt-in,
    /// its PSID link and pending stop (found from the deleted opt-in itself, not a separate read)
    /// and its login link item. Idempotent. Returns how many items were deleted.
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
