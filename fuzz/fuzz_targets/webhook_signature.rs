//! `shared::facebook::webhook::verify_webhook_signature` (X-Hub-Signature-256).
//!
//! Arbitrary secrets, bodies and header values never panic and give the answer of a plain
//! (non-constant-time) model; the header `sign_webhook` makes verifies its body, and no longer
//! does once one byte of it, one byte of the secret, or the body is changed.
#![no_main]

use arbitrary::Arbitrary;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use shared::facebook::webhook::{SignatureError, sign_webhook, verify_webhook_signature};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    secret: &'a [u8],
    header: Option<&'a str>,
    other_body: &'a [u8],
    flip_at: usize,
    flip_mask: u8,
    /// The rest of the input.
    body: &'a [u8],
}

/// What the check must answer, written plainly with the `hmac` crate.
fn model(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let given = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    if given == mac.finalize().into_bytes().as_slice() {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fuzz_target!(|input: Input<'_>| {
    let Input {
        secret,
        header,
        other_body,
        flip_at,
        flip_mask,
        body,
    } = input;

    // Any header: no panic, and the model's answer.
    assert_eq!(
        verify_webhook_signature(secret, body, header),
        model(secret, body, header),
        "header {header:?}"
    );

    // What we sign verifies.
    let signed = sign_webhook(secret, body);
    assert!(signed.len() == 7 + 64 && signed.starts_with("sha256="));
    assert_eq!(
        verify_webhook_signature(secret, body, Some(&signed)),
        Ok(())
    );

    // One byte of the header changed (staying ASCII): refused, except an equivalent header (a hex
    // digit's case: `hex::decode` reads `A` as `a`).
    let at = flip_at % signed.len();
    let mut tampered = signed.clone().into_bytes();
    tampered[at] ^= flip_mask % 127 + 1;
    let tampered = String::from_utf8(tampered).expect("ASCII stays ASCII");
    if verify_webhook_signature(secret, body, Some(&tampered)).is_ok() {
        assert!(
            at >= 7 && tampered.eq_ignore_ascii_case(&signed),
            "a tampered header verifies: {tampered:?} for {signed:?}"
        );
    }

    // Another body: refused.
    if other_body != body {
        assert_eq!(
            verify_webhook_signature(secret, other_body, Some(&signed)),
            Err(SignatureError::Mismatch)
        );
    }

    // Another secret of the same length (one byte changed): refused.
    if !secret.is_empty() {
        let mut other_secret = secret.to_vec();
        other_secret[flip_at % secret.len()] ^= flip_mask | 1;
        assert_eq!(
            verify_webhook_signature(&other_secret, body, Some(&signed)),
            Err(SignatureError::Mismatch)
        );
    }
});
