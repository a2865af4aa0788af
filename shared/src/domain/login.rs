//! Facebook Login, server side: the LOGIN record, the short-lived login `state` (CSRF), the checks
//! on `return_to`, and the types of the two ports the login flow uses
//! ([`crate::ports::logins::LoginStore`], [`crate::ports::logins::FacebookLogin`]).
//!
//! A LOGIN is keyed by the person's app-scoped user id (asid). When login_id derivation is on it
//! also stores the `login_id` Facebook will put in the opt-in webhook
//! ([`crate::facebook::crypto::derive_login_id`]), and a small link item keyed by that login_id lets the
//! sender and the website API find one from the other, whichever arrived first.

use crate::domain::opt_in::{Millis, OptInKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The Messenger permission of Login Connect.
pub const MESSENGER_PERMISSION: &str = "user_messenger_contact";
/// Scopes every login dialog asks for.
pub const BASE_SCOPES: [&str; 2] = ["public_profile", MESSENGER_PERMISSION];
/// A login `state` is valid this long after `/login/start`.
pub const STATE_TTL_MS: Millis = 10 * 60_000;

/// Whether the person let the Page contact them (`user_messenger_contact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Granted,
    Declined,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Granted => "granted",
            Permission::Declined => "declined",
        }
    }
}

/// How the LOGIN reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginSource {
    /// The server-side redirect flow (`/login/callback`).
    Callback,
    /// A website backend (`POST /v1/logins`, JavaScript SDK logins).
    Api,
}

impl LoginSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginSource::Callback => "callback",
            LoginSource::Api => "api",
        }
    }
}

/// One person's Facebook Login for this Page, as stored. Timestamps are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub page_id: String,
    pub asid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    pub permission: Permission,
    /// The login_id the opt-in webhook is expected to carry (None when derivation is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_login_id: Option<String>,
    /// The first login.
    pub login_at: Millis,
    /// The latest login (this one, for a LOGIN about to be recorded).
    pub last_login_at: Millis,
    pub source: LoginSource,
    /// The website's own reference for this person (`/login/start?user_ref=…` or
    /// `POST /v1/logins`), echoed back to it; kept from an earlier login when this one has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_ref: Option<String>,
}

impl Login {
    /// Whether an opt-in webhook should follow this login: the person granted
    /// `user_messenger_contact` and the login_id the webhook will carry is known. The deadline
    /// sweep alerts when none arrives in time (the derivation may be wrong for the app).
    pub fn awaits_opt_in(&self) -> bool {
        self.permission == Permission::Granted && self.expected_login_id.is_some()
    }

    /// The opt-in this LOGIN links to, when its login_id is known.
    pub fn opt_in_key(&self) -> Option<OptInKey> {
        self.expected_login_id
            .as_ref()
            .map(|l| OptInKey::new(&self.page_id, l))
    }
}

/// What the link item keyed by login_id tells about the person behind an opt-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginLink {
    pub asid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    pub last_login_at: Millis,
}

/// What recording a LOGIN did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRecorded {
    /// Stored (created, or merged into the person's earlier LOGIN); the item as it is now.
    Done(Box<Login>),
    /// A newer login of the same person is already stored; it is returned, unchanged.
    Stale(Box<Login>),
}

impl LoginRecorded {
    pub fn login(&self) -> &Login {
        match self {
            LoginRecorded::Done(l) | LoginRecorded::Stale(l) => l,
        }
    }
}

/// A login `state` between `/login/start` and `/login/callback`. Stored by the SHA-256 of the
/// state value, never the value itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    pub state_hash: String,
    /// Where the browser goes back to (already checked against the allowed origins).
    pub return_to: String,
    /// The `redirect_uri` the dialog was given (the code exchange must repeat it byte for byte).
    pub redirect_uri: String,
    pub created_at: Millis,
    pub expires_at_ms: Millis,
    /// The website's reference given at `/login/start`, for the LOGIN the callback records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_ref: Option<String>,
}

/// What consuming a login `state` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateConsumed {
    /// It existed and was valid; it is gone now (single use).
    Consumed(LoginState),
    /// It exists but is past its lifetime (left for TTL).
    Expired,
    /// Never issued, or already used.
    Unknown,
}

/// A person's user access token. Lives only for one request; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct UserToken(String);

impl UserToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserToken(***)")
    }
}

/// The parts of `debug_token`'s answer we check.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct TokenInfo {
    #[serde(default)]
    pub is_valid: bool,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default, rename = "type")]
    pub token_type: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `/me?fields=id,first_name`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    pub id: String,
    #[serde(default)]
    pub first_name: Option<String>,
}

/// One row of `/me/permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PermissionRow {
    pub permission: String,
    pub status: String,
}

/// Whether `/me/permissions` shows `user_messenger_contact` granted.
pub fn messenger_permission(rows: &[PermissionRow]) -> Permission {
    let granted = rows
        .iter()
        .any(|r| r.permission == MESSENGER_PERMISSION && r.status == "granted");
    if granted {
        Permission::Granted
    } else {
        Permission::Declined
    }
}

// ---------------------------------------------------------------------------------------------
// State values, cookies, return_to
// ---------------------------------------------------------------------------------------------

/// How a stored state is named: hex SHA-256 of the value (a leaked table holds no usable state).
pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// The key of the browser-binding cookie, derived from the app secret (never the secret itself).
pub fn cookie_key(app_secret: &str) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(b"login-connect/state-cookie/v1");
    mac.finalize().into_bytes().into()
}

/// The cookie value that binds `state` to the browser that started the login: base64url of
/// HMAC-SHA256(cookie key, state).
pub fn state_cookie_value(key: &[u8; 32], state: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(state.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether `cookie` is the binding of `state`, compared in constant time.
pub fn state_cookie_matches(key: &[u8; 32], state: &str, cookie: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = state_cookie_value(key, state);
    bool::from(expected.as_bytes().ct_eq(cookie.as_bytes()))
}

/// Why a `return_to` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReturnToError {
    #[error("return_to is missing")]
    Missing,
    #[error("return_to must be an absolute http(s) URL")]
    NotAbsolute,
    #[error("return_to must not contain a user name or password")]
    UserInfo,
    #[error("return_to is not on an allowed origin")]
    ForeignOrigin,
    #[error("return_to is too long")]
    TooLong,
}

/// Longest `return_to` accepted.
pub const MAX_RETURN_TO_LEN: usize = 2048;

/// Longest `user_ref` a website may give.
pub const MAX_USER_REF_LEN: usize = 64;

/// A website's reference for a person: 1–64 characters of `[A-Za-z0-9_-]`, opaque to us (never a
/// place for personal data: it is echoed in answers and stored with the LOGIN).
pub fn check_user_ref(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() || raw.len() > MAX_USER_REF_LEN {
        return Err("user_ref must be 1 to 64 characters");
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("user_ref may only hold letters, digits, '_' and '-'");
    }
    Ok(raw.to_owned())
}

/// Check `return_to` against the allowed origins (exact origin match after parsing) and return it
/// normalised. Relative and scheme-relative URLs (`//evil`), other schemes, user info and
/// look-alike hosts (`https://allowed.example.evil`) are refused.
pub fn check_return_to(raw: Option<&str>, allowed: &[String]) -> Result<url::Url, ReturnToError> {
    let raw = raw.map(str::trim).filter(|r| !r.is_empty());
    let raw = raw.ok_or(ReturnToError::Missing)?;
    if raw.len() > MAX_RETURN_TO_LEN {
        return Err(ReturnToError::TooLong);
    }
    let url = url::Url::parse(raw).map_err(|_| ReturnToError::NotAbsolute)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ReturnToError::NotAbsolute);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ReturnToError::UserInfo);
    }
    let origin = url.origin().ascii_serialization();
    if allowed.contains(&origin) {
        Ok(url)
    } else {
        Err(ReturnToError::ForeignOrigin)
    }
}

/// Normalise a configured origin (`https://shop.example` or `https://shop.example:8443`), or say
/// why it is not one.
pub fn normalise_origin(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|_| format!("{raw:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{raw:?} is not an http(s) origin"));
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "{raw:?} must be an origin only (scheme://host[:port])"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// `return_to` with `messenger={outcome}` set (any earlier `messenger` parameter replaced).
pub fn with_outcome(return_to: &str, outcome: &str) -> String {
    match url::Url::parse(return_to) {
        Ok(mut url) => {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "messenger")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.set_query(None);
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in &kept {
                    q.append_pair(k, v);
                }
                q.append_pair("messenger", outcome);
            }
            url.into()
        }
        // Stored values were parsed before; keep them usable anyway.
        Err(_) => return_to.to_owned(),
    }
}

/// An app-scoped user id as Graph gives them: digits only.
pub fn is_valid_asid(asid: &str) -> bool {
    !asid.is_empty() && asid.len() <= 32 && asid.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec![
            "https://shop.example".to_owned(),
            "http://127.0.0.1:8080".to_owned(),
        ]
    }

    #[test]
    fn return_to_accepts_only_allowed_origins() {
        let ok = check_return_to(Some("https://shop.example/after?x=1#top"), &allowed()).unwrap();
        assert_eq!(ok.as_str(), "https://shop.example/after?x=1#top");
        assert!(check_return_to(Some("https://SHOP.example:443/"), &allowed()).is_ok());
        assert!(check_return_to(Some("http://127.0.0.1:8080/welcome"), &allowed()).is_ok());
        let refused: &[(&str, ReturnToError)] = &[
            ("//evil.example/x", ReturnToError::NotAbsolute),
            ("/relative", ReturnToError::NotAbsolute),
            ("shop.example", ReturnToError::NotAbsolute),
            ("javascript:alert(1)", ReturnToError::NotAbsolute),
            ("data:text/html,hi", ReturnToError::NotAbsolute),
            ("ftp://shop.example/", ReturnToError::NotAbsolute),
            ("https://shop.example.evil/", ReturnToError::ForeignOrigin),
            (
                "https://evil.example/?https://shop.example",
                ReturnToError::ForeignOrigin,
            ),
            (
                "https://shop.example@evil.example/",
                ReturnToError::UserInfo,
            ),
            ("https://user:pw@shop.example/", ReturnToError::UserInfo),
            (
                "https://evil.example\\@shop.example/",
                ReturnToError::ForeignOrigin,
            ),
            (
                "https://evil.example\\.shop.example/",
                ReturnToError::ForeignOrigin,
            ),
            ("http://shop.example/", ReturnToError::ForeignOrigin),
            ("https://shop.example:8443/", ReturnToError::ForeignOrigin),
            ("http://127.0.0.1:8081/", ReturnToError::ForeignOrigin),
            ("http://localhost:8080/", ReturnToError::ForeignOrigin),
            ("  ", ReturnToError::Missing),
        ];
        for (raw, why) in refused {
            assert_eq!(
                check_return_to(Some(raw), &allowed()).map(|u| u.to_string()),
                Err(*why),
                "{raw}"
            );
        }
        assert_eq!(
            check_return_to(None, &allowed()).unwrap_err(),
            ReturnToError::Missing
        );
        let long = format!("https://shop.example/{}", "a".repeat(MAX_RETURN_TO_LEN));
        assert_eq!(
            check_return_to(Some(&long), &allowed()).unwrap_err(),
            ReturnToError::TooLong
        );
        assert!(check_return_to(Some("https://shop.example/"), &[]).is_err());
    }

    #[test]
    fn origins_are_normalised_or_refused() {
        assert_eq!(
            normalise_origin("https://Shop.Example:443").unwrap(),
            "https://shop.example"
        );
        assert_eq!(
            normalise_origin("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "shop.example",
            "https://shop.example/path",
            "https://u@shop.example",
            "ftp://shop.example",
            "https://shop.example/?q",
        ] {
            assert!(normalise_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn outcome_replaces_an_earlier_messenger_parameter() {
        assert_eq!(
            with_outcome("https://shop.example/a?x=1&messenger=evil#f", "granted"),
            "https://shop.example/a?x=1&messenger=granted#f"
        );
        assert_eq!(
            with_outcome("https://shop.example/", "cancelled"),
            "https://shop.example/?messenger=cancelled"
        );
    }

    #[test]
    fn state_cookie_binds_and_differs_per_state_and_key() {
        let key = cookie_key("secret");
        let v = state_cookie_value(&key, "s1");
        assert!(state_cookie_matches(&key, "s1", &v));
        assert!(!state_cookie_matches(&key, "s2", &v));
        assert!(!state_cookie_matches(&cookie_key("other"), "s1", &v));
        assert!(!state_cookie_matches(&key, "s1", ""));
        assert!(!v.contains("s1"));
        assert_ne!(key.as_slice(), b"secret".as_slice());
        assert_eq!(state_hash("abc").len(), 64);
    }

    #[test]
    fn permission_rows() {
        let rows = |status: &str| {
            vec![
                PermissionRow {
                    permission: "public_profile".into(),
                    status: "granted".into(),
                },
                PermissionRow {
                    permission: MESSENGER_PERMISSION.into(),
                    status: status.into(),
                },
            ]
        };
        assert_eq!(messenger_permission(&rows("granted")), Permission::Granted);
        assert_eq!(
            messenger_permission(&rows("declined")),
            Permission::Declined
        );
        assert_eq!(messenger_permission(&[]), Permission::Declined);
    }

    #[test]
    fn asids() {
        assert!(is_valid_asid("1234567890"));
        for bad in ["", "12a", "../x", &"1".repeat(33)] {
            assert!(!is_valid_asid(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_are_not_printed() {
        assert_eq!(format!("{:?}", UserToken::new("EAAB")), "UserToken(***)");
    }

    #[test]
    fn a_user_ref_is_1_to_64_of_letters_digits_underscore_and_dash() {
        assert_eq!(check_user_ref("Ab9_-").as_deref(), Ok("Ab9_-"));
        assert!(check_user_ref(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "é", "a.b", "a/b", "<x>"] {
            assert!(check_user_ref(bad).is_err(), "{bad:?}");
        }
        assert!(check_user_ref(&"a".repeat(65)).is_err());
    }
}
