//! `shared::facebook::signed_request` (Deauthorize and Data Deletion callbacks).
//!
//! - Arbitrary bytes, as a form body (`signed_request_from_form`) and as a `signed_request`
//!   (`parse_signed_request`), never panic.
//! - A request `sign_request` builds from fuzzed fields (user_id as string or number, issued_at,
//!   expires, the algorithm's case, an extra field, the clock) verifies exactly when the fields are
//!   acceptable (issued within the hour, not expired, a numeric user_id, no `code`/`oauth_token`),
//!   and gives them back.
//! - With one byte of it changed, or with another secret of the same length, it never verifies.
//! - Arbitrary payload bytes signed with the right secret (so they pass the HMAC and reach the
//!   JSON reading) never panic, and are accepted only with a valid algorithm, issued_at and user_id.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use shared::domain::login::is_valid_asid;
use shared::facebook::crypto::hmac_sha256_hex;
use shared::facebook::signed_request::{
    MAX_AGE_SECONDS, MAX_SIGNED_REQUEST_BYTES, MAX_SKEW_SECONDS, SignedRequest, SignedRequestError,
    parse_signed_request, sign_request, signed_request_from_form,
};

/// The secret and clock the seeds (fuzz/seeds/signed_request) are signed for.
const SECRET: &[u8] = b"fuzz-app-secret";
const NOW: i64 = 1_795_478_400; // 2026-11-24T00:00:00Z

#[derive(Debug, Arbitrary)]
enum UserId {
    Text(String),
    Unsigned(u64),
    Signed(i64),
}

#[derive(Debug, Arbitrary)]
struct Fields {
    secret: Vec<u8>,
    user_id: Option<UserId>,
    issued_at: Option<i64>,
    /// now = issued_at + age
    age: i64,
    expires: Option<i64>,
    /// Which letters of "HMAC-SHA256" are lower-cased.
    algorithm_case: u16,
    extra: Option<(String, String)>,
    flip_at: usize,
    flip_mask: u8,
    raw_payload: Vec<u8>,
}

fn check_accepted(r: &SignedRequest, now: i64) {
    assert!(
        is_valid_asid(&r.user_id),
        "user_id {:?} accepted",
        r.user_id
    );
    assert!(
        r.expires.is_none_or(|e| e >= now),
        "expired request accepted"
    );
    let age = i128::from(now) - i128::from(r.issued_at);
    assert!(
        (-i128::from(MAX_SKEW_SECONDS)..=i128::from(MAX_AGE_SECONDS)).contains(&age),
        "issued_at {} accepted at {now}",
        r.issued_at
    );
}

fn round_trip(f: &Fields) {
    let algorithm: String = "HMAC-SHA256"
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if f.algorithm_case & (1 << i) != 0 {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
        .collect();
    let mut payload = serde_json::Map::new();
    if let Some((k, v)) = &f.extra {
        payload.insert(k.clone(), json!(v));
    }
    payload.insert("algorithm".into(), json!(algorithm));
    match f.issued_at {
        Some(t) => payload.insert("issued_at".into(), json!(t)),
        None => payload.remove("issued_at"),
    };
    match f.expires {
        Some(t) => payload.insert("expires".into(), json!(t)),
        None => payload.remove("expires"),
    };
    let expected_user = match &f.user_id {
        Some(UserId::Text(s)) => {
            payload.insert("user_id".into(), json!(s));
            Some(s.clone()).filter(|s| !s.is_empty())
        }
        Some(UserId::Unsigned(n)) => {
            payload.insert("user_id".into(), json!(n));
            Some(n.to_string())
        }
        Some(UserId::Signed(n)) => {
            payload.insert("user_id".into(), json!(n));
            Some(n.to_string())
        }
        None => {
            payload.remove("user_id");
            None
        }
    };
    let issued_at = f.issued_at.unwrap_or(NOW);
    let Some(now) = issued_at.checked_add(f.age) else {
        return;
    };
    let request = sign_request(&f.secret, &Value::Object(payload));
    let result = parse_signed_request(&f.secret, &request, now);

    let in_window = (-MAX_SKEW_SECONDS..=MAX_AGE_SECONDS).contains(&f.age);
    let login_response = f
        .extra
        .as_ref()
        .is_some_and(|(k, _)| k == "code" || k == "oauth_token");
    let expected = if request.len() > MAX_SIGNED_REQUEST_BYTES {
        Err(SignedRequestError::TooLarge)
    } else if login_response {
        Err(SignedRequestError::LoginResponse)
    } else if f.issued_at.is_none() || !in_window {
        Err(SignedRequestError::BadIssuedAt)
    } else if f.expires.is_some_and(|e| e < now) {
        Err(SignedRequestError::Expired)
    } else if let Some(user_id) = expected_user {
        if is_valid_asid(&user_id) {
            Ok(SignedRequest {
                user_id,
                issued_at,
                expires: f.expires,
            })
        } else {
            Err(SignedRequestError::BadUserId)
        }
    } else {
        Err(SignedRequestError::MissingUserId)
    };
    assert_eq!(result, expected, "{request}");

    // One byte changed (staying ASCII): never verifies.
    let at = f.flip_at % request.len();
    let mut tampered = request.clone().into_bytes();
    tampered[at] ^= f.flip_mask % 127 + 1;
    let tampered = String::from_utf8(tampered).expect("ASCII stays ASCII");
    assert!(
        parse_signed_request(&f.secret, &tampered, now).is_err(),
        "tampered at {at}: {tampered}"
    );

    // Another secret of the same length: never verifies.
    if !f.secret.is_empty() && request.len() <= MAX_SIGNED_REQUEST_BYTES {
        let mut other = f.secret.clone();
        other[f.flip_at % f.secret.len()] ^= f.flip_mask | 1;
        assert_eq!(
            parse_signed_request(&other, &request, now),
            Err(SignedRequestError::BadSignature)
        );
    }
}

/// Arbitrary payload bytes, signed with the right secret: they reach the JSON reading.
fn signed_raw_payload(raw: &[u8], now: i64) {
    let payload = URL_SAFE_NO_PAD.encode(raw);
    let mac = hex::decode(hmac_sha256_hex(SECRET, payload.as_bytes())).expect("hex");
    let request = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(mac));
    match parse_signed_request(SECRET, &request, now) {
        Ok(r) => {
            check_accepted(&r, now);
            let json: Value = serde_json::from_slice(raw).expect("accepted payload is JSON");
            assert!(
                json.get("code").is_none() && json.get("oauth_token").is_none(),
                "a login response accepted"
            );
            assert!(
                json.get("algorithm")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.eq_ignore_ascii_case("HMAC-SHA256"))
            );
        }
        Err(e) => {
            use SignedRequestError::*;
            let too_large = request.len() > MAX_SIGNED_REQUEST_BYTES;
            assert!(
                matches!(
                    (e, too_large, raw.is_empty()),
                    (TooLarge, true, _)
                        | (Malformed, false, true)
                        | (
                            BadPayload
                                | UnsupportedAlgorithm
                                | BadIssuedAt
                                | Expired
                                | MissingUserId
                                | BadUserId
                                | LoginResponse,
                            false,
                            false
                        )
                ),
                "a correctly signed request refused as {e:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The raw bytes: a form body, and a signed_request.
    if let Some(field) = signed_request_from_form(data)
        && let Ok(r) = parse_signed_request(SECRET, &field, NOW)
    {
        check_accepted(&r, NOW);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for now in [NOW, 0, i64::MIN, i64::MAX] {
            if let Ok(r) = parse_signed_request(SECRET, text, now) {
                check_accepted(&r, now);
            }
        }
    }

    // The same bytes read as fields.
    let mut u = Unstructured::new(data);
    if let Ok(fields) = Fields::arbitrary(&mut u) {
        round_trip(&fields);
        signed_raw_payload(&fields.raw_payload, NOW);
    }
});
