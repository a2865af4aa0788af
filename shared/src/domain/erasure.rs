//! Data deletion (Meta's Data Deletion callback): erase every item that holds a person's ids or
//! name, keep only non-identifying records — an erasure marker (a keyed hash of the opt-in key, so
//! an old webhook redelivered later cannot bring the opt-in back) and the deletion status record
//! the status URL shows. The record says `partial`, with why, when the person's opt-in could not
//! be found (promise 4: erase everything, or say truthfully that it could not); the orchestration
//! is [`crate::use_cases::deletion`], the store
//! [`crate::ports::erasure::ErasureStore`].

use crate::domain::opt_in::{Millis, OptIn, OptInKey, State};
use crate::facebook::crypto::hmac_sha256_hex;
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

/// Whether a person's erasure at `erased_at` (their marker; `None`: never erased) covers a consent
/// given at `opted_in_at`: a consent from before or at the deletion is erased, a later one is new.
pub fn erases(erased_at: Option<Millis>, opted_in_at: Millis) -> bool {
    erased_at.is_some_and(|erased_at| opted_in_at <= erased_at)
}

/// Whether a stored opt-in may never have passed its erasure check. The first generation is
/// written before its marker is read (`OptInStore::record_opt_in`), so a writer that stopped in
/// between (its webhook unanswered, so Meta redelivers it) leaves one still OPTED_IN, unclaimed.
/// Later generations are written in one transaction with the check, and a claim needs a send job,
/// queued only after a check: neither needs another.
pub fn may_be_unchecked(stored: &OptIn) -> bool {
    stored.generation == 0 && stored.state == State::OptedIn && stored.attempts == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erasure_covers_consents_up_to_its_time_and_only_unclaimed_first_generations_need_a_check()
    {
        assert!(erases(Some(5), 5) && erases(Some(5), 4));
        assert!(!erases(Some(5), 6) && !erases(None, 0));
        let o = OptIn::new(OptInKey::new("p", "l"), Some(1), 1, 10, 0);
        assert!(may_be_unchecked(&o));
        let claimed = OptIn {
            attempts: 1,
            ..o.clone()
        };
        let renewed = OptIn {
            generation: 1,
            ..o.clone()
        };
        let out = OptIn {
            state: State::OptedOut,
            ..o
        };
        assert!(
            !may_be_unchecked(&claimed) && !may_be_unchecked(&renewed) && !may_be_unchecked(&out)
        );
    }

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
