//! Ids, Graph version strings and the clock: the small helpers every other module needs, kept at
//! the bottom so no module has to import a route module (or the state) just for them.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::distr::Alphanumeric;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `len` random ASCII letters and digits.
pub(crate) fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A fresh `login_id`: 64 lowercase hex characters, like the ones Facebook sends.
pub(crate) fn random_login_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A random app-scoped user id (16 digits, no leading zero).
pub(crate) fn random_asid() -> String {
    let n: u64 = rand::random_range(1_000_000_000_000_000..10_000_000_000_000_000);
    n.to_string()
}

/// `v25.0` and the like.
pub(crate) fn is_graph_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.split('.');
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if all_digits(a) && all_digits(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_have_the_expected_shape() {
        let id = random_login_id();
        assert_eq!(id.len(), 64);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_ne!(id, random_login_id());
        let s = random_alphanumeric(23);
        assert_eq!(s.len(), 23);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn graph_versions() {
        for ok in ["v25.0", "v2.12", "v100.1"] {
            assert!(is_graph_version(ok), "{ok}");
        }
        for bad in [
            "25.0", "v25", "v25.", "v.0", "v25.0.1", "vx.0", "_sandbox", "",
        ] {
            assert!(!is_graph_version(bad), "{bad}");
        }
    }
}
