//! The product's one Secrets Manager secret and each function's view of it ([`SecretView`]):
//! secrets redact their `Debug`, and parse errors name the field, never the value.

use crate::config::reader::{ConfigError, done};
use serde::Deserialize;
use std::fmt;

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(***)")
    }
}

/// A typed view of the product's secret (a JSON object). Each function parses only the fields it
/// uses (least privilege in code: the http-api never holds the Page token, deadline-alerts reads no
/// secret at all), so a field one function does not use can neither leak from it nor, when
/// malformed, stop it.
pub trait SecretView: Sized + Send + Sync + 'static {
    /// Parse the secret's JSON, naming missing or empty fields without echoing any value.
    fn from_json(json: &str) -> Result<Self, ConfigError>;
}

/// serde into `T`, with a message that names the problem's place, never a value.
fn parse_secret_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ConfigError> {
    serde_json::from_str(json).map_err(|e| ConfigError {
        // serde's message names the field, never the value, for missing fields; we keep only
        // its position and category anyway.
        problems: vec![format!(
            "the secret is not the expected JSON object (line {}, column {}: {})",
            e.line(),
            e.column(),
            match e.classify() {
                serde_json::error::Category::Data => "a field is missing or has the wrong type",
                _ => "not valid JSON",
            }
        )],
    })
}

fn require_non_empty(fields: &[(&str, &SecretString)], problems: &mut Vec<String>) {
    for (name, v) in fields {
        if v.expose().is_empty() {
            problems.push(format!("the secret's {name} is empty"));
        }
    }
}

fn check_api_key_hashes(hashes: &[String], problems: &mut Vec<String>) {
    if hashes
        .iter()
        .any(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        problems.push(
            "the secret's api_key_hashes must each be the 64-character hex SHA-256 of an API key"
                .to_owned(),
        );
    }
}

/// The whole secret document, every field: what an operator writes and the local stack seeds.
/// Functions use the narrower views ([`HttpApiSecrets`], [`SenderSecrets`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Secrets {
    pub app_secret: SecretString,
    pub page_access_token: SecretString,
    #[serde(default)]
    pub client_token: SecretString,
    pub verify_token: SecretString,
    /// SHA-256 hex digests of the API keys website backends use (several, for rotation).
    #[serde(default)]
    pub api_key_hashes: Vec<String>,
}

impl Secrets {
    /// Parse the secret's JSON, naming the missing fields without echoing any value.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let secrets: Secrets = parse_secret_json(json)?;
        let mut problems = Vec::new();
        require_non_empty(
            &[
                ("app_secret", &secrets.app_secret),
                ("page_access_token", &secrets.page_access_token),
                ("verify_token", &secrets.verify_token),
            ],
            &mut problems,
        );
        check_api_key_hashes(&secrets.api_key_hashes, &mut problems);
        done(secrets, problems)
    }
}

impl SecretView for Secrets {
    fn from_json(json: &str) -> Result<Self, ConfigError> {
        Secrets::from_json(json)
    }
}

/// What the http-api uses: webhook signatures, cookies and signed_request (`app_secret`), the
/// login_id derivation (`client_token`), the webhook handshake (`verify_token`) and the website
/// API keys. Not the Page token: the http-api never sends a message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HttpApiSecrets {
    pub app_secret: SecretString,
    #[serde(default)]
    pub client_token: SecretString,
    pub verify_token: SecretString,
    /// SHA-256 hex digests of the API keys website backends use (several, for rotation).
    #[serde(default)]
    pub api_key_hashes: Vec<String>,
}

impl SecretView for HttpApiSecrets {
    fn from_json(json: &str) -> Result<Self, ConfigError> {
        let secrets: HttpApiSecrets = parse_secret_json(json)?;
        let mut problems = Vec::new();
        require_non_empty(
            &[
                ("app_secret", &secrets.app_secret),
                ("verify_token", &secrets.verify_token),
            ],
            &mut problems,
        );
        check_api_key_hashes(&secrets.api_key_hashes, &mut problems);
        done(secrets, problems)
    }
}

impl From<&Secrets> for HttpApiSecrets {
    fn from(s: &Secrets) -> Self {
        Self {
            app_secret: s.app_secret.clone(),
            client_token: s.client_token.clone(),
            verify_token: s.verify_token.clone(),
            api_key_hashes: s.api_key_hashes.clone(),
        }
    }
}

impl From<Secrets> for HttpApiSecrets {
    fn from(s: Secrets) -> Self {
        Self::from(&s)
    }
}

/// What the sender uses: the Page token and the app secret (`appsecret_proof` on every Graph call).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SenderSecrets {
    pub app_secret: SecretString,
    pub page_access_token: SecretString,
}

impl SecretView for SenderSecrets {
    fn from_json(json: &str) -> Result<Self, ConfigError> {
        let secrets: SenderSecrets = parse_secret_json(json)?;
        let mut problems = Vec::new();
        require_non_empty(
            &[
                ("app_secret", &secrets.app_secret),
                ("page_access_token", &secrets.page_access_token),
            ],
            &mut problems,
        );
        done(secrets, problems)
    }
}

/// The app secret alone: the sender's part of the main secret when the Page token lives in its own
/// secret (`PAGE_TOKEN_SECRET_ID`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AppSecretOnly {
    pub app_secret: SecretString,
}

impl SecretView for AppSecretOnly {
    fn from_json(json: &str) -> Result<Self, ConfigError> {
        let secrets: AppSecretOnly = parse_secret_json(json)?;
        let mut problems = Vec::new();
        require_non_empty(&[("app_secret", &secrets.app_secret)], &mut problems);
        done(secrets, problems)
    }
}

/// The Page token secret (`{"page_access_token": …}`), readable by the sender only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PageTokenSecret {
    pub page_access_token: SecretString,
}

impl SecretView for PageTokenSecret {
    fn from_json(json: &str) -> Result<Self, ConfigError> {
        let secrets: PageTokenSecret = parse_secret_json(json)?;
        let mut problems = Vec::new();
        require_non_empty(
            &[("page_access_token", &secrets.page_access_token)],
            &mut problems,
        );
        done(secrets, problems)
    }
}

impl From<&Secrets> for SenderSecrets {
    fn from(s: &Secrets) -> Self {
        Self {
            app_secret: s.app_secret.clone(),
            page_access_token: s.page_access_token.clone(),
        }
    }
}

impl From<&SenderSecrets> for SenderSecrets {
    fn from(s: &SenderSecrets) -> Self {
        s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_without_leaking_values() {
        let s = Secrets::from_json(
            r#"{"app_secret":"a","page_access_token":"p","client_token":"c","verify_token":"v"}"#,
        )
        .unwrap();
        assert_eq!(s.app_secret.expose(), "a");
        assert!(!format!("{s:?}").contains("\"a\""));
        let e = Secrets::from_json(r#"{"app_secret":"topsecret"}"#).unwrap_err();
        assert!(!e.to_string().contains("topsecret"));
        let e =
            Secrets::from_json(r#"{"app_secret":"","page_access_token":"p","verify_token":"v"}"#)
                .unwrap_err();
        assert!(e.to_string().contains("app_secret is empty"));
    }

    #[test]
    fn each_function_parses_only_the_fields_it_uses() {
        // A secret whose Page token is broken (wrong type) and whose verify token is missing:
        // the http-api needs neither of the first and refuses the second; the sender is the
        // opposite; neither view keeps a field it does not use.
        let for_http =
            r#"{"app_secret":"a","page_access_token":42,"verify_token":"v","api_key_hashes":[]}"#;
        let http = HttpApiSecrets::from_json(for_http).unwrap();
        assert_eq!(http.app_secret.expose(), "a");
        assert!(!format!("{http:?}").contains("page_access_token"));
        assert!(Secrets::from_json(for_http).is_err());

        let for_sender = r#"{"app_secret":"a","page_access_token":"p","api_key_hashes":["zz"]}"#;
        let sender = SenderSecrets::from_json(for_sender).unwrap();
        assert_eq!(sender.page_access_token.expose(), "p");
        let e = HttpApiSecrets::from_json(for_sender)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a field is missing"), "{e}");

        let e = SenderSecrets::from_json(r#"{"app_secret":"a","page_access_token":""}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("page_access_token is empty"), "{e}");
        let e = HttpApiSecrets::from_json(
            r#"{"app_secret":"a","verify_token":"v","api_key_hashes":["zz"]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("api_key_hashes"), "{e}");
    }

    #[test]
    fn the_page_token_secret_and_the_app_secret_parse_apart() {
        let page = PageTokenSecret::from_json(r#"{"page_access_token":"p"}"#).unwrap();
        assert_eq!(page.page_access_token.expose(), "p");
        let e = PageTokenSecret::from_json(r#"{"page_access_token":""}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("page_access_token is empty"), "{e}");
        // The main secret without a Page token is enough for the sender's app secret.
        let app = AppSecretOnly::from_json(r#"{"app_secret":"a","verify_token":"v"}"#).unwrap();
        assert_eq!(app.app_secret.expose(), "a");
    }

    #[test]
    fn the_views_of_a_whole_secret_agree_with_it() {
        let s = Secrets::from_json(
            r#"{"app_secret":"a","page_access_token":"p","client_token":"c","verify_token":"v"}"#,
        )
        .unwrap();
        let http = HttpApiSecrets::from(&s);
        assert_eq!(
            (
                http.app_secret.expose(),
                http.client_token.expose(),
                http.verify_token.expose()
            ),
            ("a", "c", "v")
        );
        let sender = SenderSecrets::from(&s);
        assert_eq!(sender.page_access_token.expose(), "p");
    }
}
