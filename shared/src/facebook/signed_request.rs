//! Facebook's `signed_request` (Deauthorize and Data Deletion callbacks):
//! `base64url(signature) + "." + base64url(payload JSON)`, where
//! `signature = HMAC-SHA256(key = app secret, message = the payload part exactly as sent)`.
//!
//! The signature is checked (in constant time) before the payload is even decoded, so unsigned
//! input never reaches the JSON parser.
//!
//! A valid signature is not enough: the JavaScript SDK's `authResponse.signedRequest` is signed
//! with the same app secret and carries `code` (or `oauth_token`), so any logged-in person could
//! post their own as a "deletion request". Such payloads are refused, and so are expired ones, ones
//! issued more than an hour ago and user ids that are not numeric.

use crate::domain::login::is_valid_asid;
use crate::facebook::crypto::{hmac_sha256, hmac_sha256_verify};
use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

/// Padded and unpadded base64url are both accepted.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest `signed_request` accepted (real ones are a few hundred bytes).
pub const MAX_SIGNED_REQUEST_BYTES: usize = 8 * 1024;
/// `issued_at` may be at most this old (Meta calls the callbacks at once; an older request is a
/// replay)…
pub const MAX_AGE_SECONDS: i64 = 3600;
/// …and at most this far in the future (clock skew).
pub const MAX_SKEW_SECONDS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    #[error("signed_request is missing")]
    Missing,
    #[error("signed_request is larger than {MAX_SIGNED_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error("signed_request is not of the form signature.payload")]
    Malformed,
    #[error("signed_request's signature is not valid base64url")]
    BadSignatureEncoding,
    #[error("signed_request's signature does not match")]
    BadSignature,
    #[error("signed_request's payload is not base64url-encoded JSON")]
    BadPayload,
    #[error("signed_request's algorithm is not HMAC-SHA256")]
    UnsupportedAlgorithm,
    #[error("signed_request's issued_at is missing, too old or in the future")]
    BadIssuedAt,
    #[error("signed_request has expired")]
    Expired,
    #[error("signed_request has no user_id")]
    MissingUserId,
    #[error("signed_request's user_id is not a numeric Facebook id")]
    BadUserId,
    #[error(
        "signed_request carries code or oauth_token: it is a login response (JavaScript SDK), not a callback from Meta"
    )]
    LoginResponse,
}

/// The verified payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The app-scoped user id (ASID).
    pub user_id: String,
    pub issued_at: i64,
    pub expires: Option<i64>,
}

#[derive(Deserialize)]
struct Payload {
    algorithm: Option<String>,
    issued_at: Option<i64>,
    expires: Option<i64>,
    user_id: Option<serde_json::Value>,
}

/// Fields of the JavaScript SDK's login response, never in Meta's callbacks.
const LOGIN_RESPONSE_FIELDS: [&str; 2] = ["code", "oauth_token"];

/// Verify and decode a `signed_request` at time `now_seconds`.
pub fn parse_signed_request(
    app_secret: &[u8],
    signed_request: &str,
    now_seconds: i64,
) -> Result<SignedRequest, SignedRequestError> {
    let signed_request = signed_request.trim();
    if signed_request.is_empty() {
        return Err(SignedRequestError::Missing);
    }
    if signed_request.len() > MAX_SIGNED_REQUEST_BYTES {
        return Err(SignedRequestError::TooLarge);
    }
    let (signature, payload) = signed_request
        .split_once('.')
        .ok_or(SignedRequestError::Malformed)?;
    if signature.is_empty() || payload.is_empty() || payload.contains('.') {
        return Err(SignedRequestError::Malformed);
    }
    let signature = BASE64URL
        .decode(signature)
        .map_err(|_| SignedRequestError::BadSignatureEncoding)?;
    if !hmac_sha256_verify(app_secret, payload.as_bytes(), &signature) {
        return Err(SignedRequestError::BadSignature);
    }

    let json = BASE64URL
        .decode(payload)
        .map_err(|_| SignedRequestError::BadPayload)?;
    let json: serde_json::Value =
        serde_json::from_slice(&json).map_err(|_| SignedRequestError::BadPayload)?;
    // Present at all (even `null`): the login response's shape.
    let login_response = LOGIN_RESPONSE_FIELDS
        .iter()
        .any(|field| json.get(field).is_some());
    let payload: Payload =
        serde_json::from_value(json).map_err(|_| SignedRequestError::BadPayload)?;
    if !payload
        .algorithm
        .is_some_and(|a| a.eq_ignore_ascii_case("HMAC-SHA256"))
    {
        return Err(SignedRequestError::UnsupportedAlgorithm);
    }
    if login_response {
        return Err(SignedRequestError::LoginResponse);
    }
    let issued_at = payload.issued_at.ok_or(SignedRequestError::BadIssuedAt)?;
    if issued_at > now_seconds.saturating_add(MAX_SKEW_SECONDS)
        || issued_at < now_seconds.saturating_sub(MAX_AGE_SECONDS)
    {
        return Err(SignedRequestError::BadIssuedAt);
    }
    // `expires: 0` is Facebook's old "does not expire": `issued_at` above still bounds its age.
    if payload
        .expires
        .is_some_and(|expires| expires != 0 && expires < now_seconds)
    {
        return Err(SignedRequestError::Expired);
    }
    let user_id = match payload.user_id {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err(SignedRequestError::MissingUserId),
    };
    // An ASID is digits only; anything else would end up in keys and paths.
    if !is_valid_asid(&user_id) {
        return Err(SignedRequestError::BadUserId);
    }
    Ok(SignedRequest {
        user_id,
        issued_at,
        expires: payload.expires,
    })
}

/// Build a `signed_request` (what Facebook sends; used by the sandbox and tests).
pub fn sign_request(app_secret: &[u8], payload: &serde_json::Value) -> String {
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(hmac_sha256(app_secret, payload.as_bytes()));
    format!("{signature}.{payload}")
}

/// The `signed_request` field of an `application/x-www-form-urlencoded` body.
pub fn signed_request_from_form(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "signed_request")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"test-app-secret";

    fn deauth_payload(issued_at: i64) -> serde_json::Value {
        // The reference deauthorize payload (shared/reference/messenger.md §2.7, §7.6 #20).
        serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":issued_at,
            "user":{"country":"jp","locale":"ja_JP"},"user_id":"999999999"})
    }

    fn deletion_payload(issued_at: i64) -> serde_json::Value {
        serde_json::json!({"user_id":"218471","algorithm":"HMAC-SHA256",
            "issued_at":issued_at,"expires":issued_at + 3600})
    }

    #[test]
    fn reference_payloads_verify() {
        let now = 1_340_590_300;
        let r = parse_signed_request(
            SECRET,
            &sign_request(SECRET, &deauth_payload(1_340_590_260)),
            now,
        )
        .unwrap();
        assert_eq!(r.user_id, "999999999");
        let r = parse_signed_request(
            SECRET,
            &sign_request(SECRET, &deletion_payload(1_291_836_800)),
            1_291_836_900,
        )
        .unwrap();
        assert_eq!(
            (r.user_id.as_str(), r.expires),
            ("218471", Some(1_291_840_400))
        );
    }

    #[test]
    fn expires_zero_means_no_expiry_and_the_age_still_bounds_it() {
        let now = 1_291_836_900;
        let fresh = serde_json::json!({"user_id":"218471","algorithm":"HMAC-SHA256",
            "issued_at":now - 60,"expires":0});
        assert!(parse_signed_request(SECRET, &sign_request(SECRET, &fresh), now).is_ok());
        let old = serde_json::json!({"user_id":"218471","algorithm":"HMAC-SHA256",
            "issued_at":now - 7_200,"expires":0});
        assert_eq!(
            parse_signed_request(SECRET, &sign_request(SECRET, &old), now).err(),
            Some(SignedRequestError::BadIssuedAt)
        );
    }

    #[test]
    fn padded_base64url_is_accepted() {
        let now = 1_291_836_900;
        let unpadded = sign_request(SECRET, &deletion_payload(1_291_836_800));
        let (sig, payload) = unpadded.split_once('.').unwrap();
        // The signature is 32 bytes: 43 chars unpadded, one '=' when padded. The payload part is
        // signed as sent, so only the signature's padding can vary here.
        let padded = format!("{sig}=.{payload}");
        assert_eq!(
            parse_signed_request(SECRET, &padded, now).unwrap().user_id,
            "218471"
        );
    }

    #[test]
    fn refusals() {
        use SignedRequestError::*;
        let now = 1_291_836_900;
        let good = sign_request(SECRET, &deletion_payload(1_291_836_800));
        let (sig, payload) = good.split_once('.').unwrap();
        let cases: Vec<(String, SignedRequestError)> = vec![
            (String::new(), Missing),
            ("x".repeat(MAX_SIGNED_REQUEST_BYTES + 1), TooLarge),
            ("nodot".into(), Malformed),
            (format!(".{payload}"), Malformed),
            (format!("{sig}."), Malformed),
            (format!("{sig}.{payload}.extra"), Malformed),
            (format!("!!!.{payload}"), BadSignatureEncoding),
            (format!("{sig}.{payload}A"), BadSignature),
            (
                sign_request(b"other-secret", &deletion_payload(1_291_836_800)),
                BadSignature,
            ),
            (good[..good.len() - 3].to_owned(), BadSignature),
            (
                sign_request(
                    SECRET,
                    &serde_json::json!({"algorithm":"HMAC-SHA1","issued_at":1_291_836_800,"user_id":"1"}),
                ),
                UnsupportedAlgorithm,
            ),
            (
                sign_request(
                    SECRET,
                    &serde_json::json!({"issued_at":1_291_836_800,"user_id":"1"}),
                ),
                UnsupportedAlgorithm,
            ),
            (
                sign_request(SECRET, &deletion_payload(now - MAX_AGE_SECONDS - 1)),
                BadIssuedAt,
            ),
            (
                sign_request(SECRET, &deletion_payload(now + MAX_SKEW_SECONDS + 1)),
                BadIssuedAt,
            ),
            (
                sign_request(
                    SECRET,
                    &serde_json::json!({"algorithm":"HMAC-SHA256","user_id":"1"}),
                ),
                BadIssuedAt,
            ),
            (
                sign_request(
                    SECRET,
                    &serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now}),
                ),
                MissingUserId,
            ),
            (
                sign_request(
                    SECRET,
                    &serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now,"user_id":""}),
                ),
                MissingUserId,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_signed_request(SECRET, &input, now),
                Err(expected),
                "{input:.60}"
            );
        }
    }

    /// The probe's three requests (issue 10, "signed_request too lenient"), and their neighbours.
    #[test]
    fn signed_request_too_lenient_expired_old_non_numeric_and_sdk_shapes_are_refused() {
        use SignedRequestError::*;
        let now = 1_795_536_000;
        let sign = |payload: serde_json::Value| sign_request(SECRET, &payload);
        let cases: Vec<(&str, serde_json::Value, Result<&str, SignedRequestError>)> = vec![
            (
                "6 days old, expires in the past",
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now - 6 * 86_400,
                    "expires":now - 6 * 86_400 + 3600,"user_id":"218471"}),
                Err(BadIssuedAt),
            ),
            (
                "issued 61 minutes ago",
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now - 3660,"user_id":"218471"}),
                Err(BadIssuedAt),
            ),
            (
                "issued 59 minutes ago",
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now - 3540,"user_id":"218471"}),
                Ok("218471"),
            ),
            (
                "expired a second ago",
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now - 60,
                    "expires":now - 1,"user_id":"218471"}),
                Err(Expired),
            ),
            (
                "expires now",
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now - 60,
                    "expires":now,"user_id":"218471"}),
                Ok("218471"),
            ),
            (
                "path-like user_id",
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now,"user_id":"../../x#y"}),
                Err(BadUserId),
            ),
            (
                "user_id with a space",
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now,"user_id":"12 34"}),
                Err(BadUserId),
            ),
            (
                "negative user_id",
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now,"user_id":-5}),
                Err(BadUserId),
            ),
            (
                "numeric user_id as a number",
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":now,"user_id":218_471}),
                Ok("218471"),
            ),
            (
                "the JavaScript SDK's shape (code)",
                serde_json::json!({"algorithm":"HMAC-SHA256","code":"AQB-x","issued_at":now,"user_id":"218471"}),
                Err(LoginResponse),
            ),
            (
                "oauth_token",
                serde_json::json!({"algorithm":"HMAC-SHA256","oauth_token":"EAAB","issued_at":now,"user_id":"218471"}),
                Err(LoginResponse),
            ),
            (
                "code: null is still the login shape",
                serde_json::json!({"algorithm":"HMAC-SHA256","code":null,"issued_at":now,"user_id":"218471"}),
                Err(LoginResponse),
            ),
        ];
        for (name, payload, expected) in cases {
            let got = parse_signed_request(SECRET, &sign(payload), now);
            match expected {
                Ok(user) => assert_eq!(got.map(|r| r.user_id).as_deref(), Ok(user), "{name}"),
                Err(e) => assert_eq!(got, Err(e), "{name}"),
            }
        }
        // The messages say what is wrong.
        assert!(Expired.to_string().contains("expired"));
        assert!(BadUserId.to_string().contains("numeric"));
        assert!(LoginResponse.to_string().contains("code or oauth_token"));
    }

    #[test]
    fn a_signed_non_json_payload_is_bad_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("not json");
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(hmac_sha256(SECRET, payload.as_bytes()));
        assert_eq!(
            parse_signed_request(SECRET, &format!("{sig}.{payload}"), 0),
            Err(SignedRequestError::BadPayload)
        );
    }

    #[test]
    fn form_field_is_found_and_decoded() {
        assert_eq!(
            signed_request_from_form(b"a=1&signed_request=ab-_.cd%3D").as_deref(),
            Some("ab-_.cd=")
        );
        assert_eq!(signed_request_from_form(b"other=1"), None);
    }

    proptest! {
        #[test]
        fn random_input_never_panics(input in ".{0,400}", now in any::<i64>()) {
            let _ = parse_signed_request(SECRET, &input, now);
        }

        #[test]
        fn random_bytes_around_a_dot_never_panic(a in proptest::collection::vec(any::<u8>(), 0..200),
                                                  b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = format!("{}.{}", String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
            prop_assert!(parse_signed_request(SECRET, &s, 0).is_err());
        }

        #[test]
        fn every_signed_payload_round_trips(user in "[0-9]{1,20}", issued in 0i64..4_000_000_000) {
            let sr = sign_request(SECRET, &serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":issued,"user_id":user}));
            let parsed = parse_signed_request(SECRET, &sr, issued).unwrap();
            prop_assert_eq!(parsed.user_id, user);
        }
    }
}
