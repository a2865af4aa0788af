//! API keys of website backends: `Authorization: Bearer <key>`.
//!
//! The secret holds only SHA-256 digests (`api_key_hashes`), several at once so keys rotate without
//! downtime. The presented key's digest is compared with every configured digest in constant time
//! (no early exit), so timing reveals neither which key nor how much of it matched.

use lambda_http::Request;
use lambda_http::http::header;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Longest API key accepted (longer values are refused without hashing).
const MAX_KEY_LEN: usize = 512;

/// The bearer token of the request, if it has one.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= MAX_KEY_LEN)
        .then_some(token)
}

/// Whether the request carries one of the configured API keys.
pub fn authorized(request: &Request, key_hashes: &[String]) -> bool {
    let Some(key) = bearer(request) else {
        return false;
    };
    let digest = Sha256::digest(key.as_bytes());
    let mut matched = Choice::from(0);
    for configured in key_hashes {
        if let Ok(bytes) = hex::decode(configured.trim())
            && bytes.len() == digest.len()
        {
            matched |= digest.as_slice().ct_eq(&bytes);
        }
    }
    matched.into()
}

/// `hex(SHA-256(key))`: what goes into the secret's `api_key_hashes` for `key`.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: Option<&str>) -> Request {
        let mut builder = lambda_http::http::Request::builder().uri("/v1/users/1");
        if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        builder.body(lambda_http::Body::Empty).unwrap()
    }

    #[test]
    fn any_configured_key_is_accepted_and_nothing_else() {
        let hashes = vec![key_hash("old-key"), key_hash("new-key"), "zz".into()];
        assert!(authorized(&request(Some("Bearer old-key")), &hashes));
        assert!(authorized(&request(Some("bearer  new-key ")), &hashes));
        for bad in [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic new-key"),
            Some("Bearer other"),
            Some("new-key"),
            Some("Bearer zz"),
        ] {
            assert!(!authorized(&request(bad), &hashes), "{bad:?}");
        }
        assert!(!authorized(&request(Some("Bearer new-key")), &[]));
        let long = format!("Bearer {}", "k".repeat(MAX_KEY_LEN + 1));
        assert!(!authorized(
            &request(Some(&long)),
            &[key_hash(&"k".repeat(MAX_KEY_LEN + 1))]
        ));
    }
}
