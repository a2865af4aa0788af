//! Standard Webhooks signing (standardwebhooks.com): the event sender's secret
//! (`events_signing_secret`, `whsec_<base64 of ≥ 24 random bytes>` or the bare base64 value that
//! CloudFormation's `GenerateSecretString` makes) and the `webhook-signature` of a delivery:
//! `v1,` + base64(HMAC-SHA256(decoded secret, `{id}.{timestamp}.{body}`)).
//!
//! The signature itself is the reference crate's (`standardwebhooks`, by the specification's
//! authors), so what a receiver's library checks is what we compute; this file only checks the key.
//!
//! Rotation: the secret may hold two keys (or more), separated by a space, new first; each signs,
//! and `webhook-signature` carries every signature, space-separated, as the specification allows,
//! so a receiver verifying with either key accepts the delivery (docs/events.md).

use base64::Engine;
use serde::Deserialize;
use shared::config::reader::{ConfigError, done};
use shared::config::secrets::{SecretString, SecretView};

/// Shortest accepted key (decoded): the specification asks for 24 to 64 random bytes.
pub const MIN_KEY_BYTES: usize = 24;
/// The secret's prefix in the Standard Webhooks form.
pub const SECRET_PREFIX: &str = "whsec_";

/// The event sender's view of its own secret (`EventsSigningSecret` in template.yaml).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EventsSecrets {
    pub events_signing_secret: SecretString,
}

impl SecretView for EventsSecrets {
    fn from_json(json: &str) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            events_signing_secret: SecretString,
        }
        let raw: Raw = serde_json::from_str(json).map_err(|_| ConfigError {
            problems: vec!["the events signing secret is not a JSON object".to_owned()],
        })?;
        let secrets = EventsSecrets {
            events_signing_secret: raw.events_signing_secret,
        };
        let problems = Signer::new(&secrets.events_signing_secret)
            .err()
            .map(|problem| vec![problem])
            .unwrap_or_default();
        done(secrets, problems)
    }
}

/// Signs deliveries with the secret's key(s).
pub struct Signer(Vec<standardwebhooks::Webhook>);

impl Signer {
    /// The keys of `secret` (each `whsec_…` or bare base64, separated by spaces). The error names
    /// the field and the rule, never the value.
    pub fn new(secret: &SecretString) -> Result<Self, String> {
        let keys = secret
            .expose()
            .split_whitespace()
            .map(Self::key)
            .collect::<Result<Vec<_>, String>>()?;
        if keys.is_empty() {
            return Err(format!(
                "the secret's events_signing_secret is empty ({})",
                Self::rule()
            ));
        }
        Ok(Self(keys))
    }

    fn rule() -> String {
        format!(
            "the secret's events_signing_secret must be {SECRET_PREFIX} followed by the base64 of at least {MIN_KEY_BYTES} random bytes"
        )
    }

    /// One key (`whsec_…` or bare base64) of at least [`MIN_KEY_BYTES`].
    fn key(value: &str) -> Result<standardwebhooks::Webhook, String> {
        let encoded = value.strip_prefix(SECRET_PREFIX).unwrap_or(value);
        if encoded.is_empty() {
            return Err(format!(
                "the secret's events_signing_secret is empty ({})",
                Self::rule()
            ));
        }
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| format!("{} (it is not base64)", Self::rule()))?;
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "{} (it decodes to {} bytes)",
                Self::rule(),
                key.len()
            ));
        }
        standardwebhooks::Webhook::from_bytes(key).map_err(|_| Self::rule())
    }

    /// The `webhook-signature` header of `body` sent as `id` at `timestamp` (Unix seconds): one
    /// `v1,…` per key, space-separated.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let signatures: Vec<String> = self
            .0
            .iter()
            // `sign` fails only on a payload that is not UTF-8, which a `&str` never is.
            .filter_map(|key| key.sign(id, timestamp, body.as_bytes()).ok())
            .collect();
        signatures.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks specification's reference libraries (the same
    /// secret, id, timestamp and payload give this signature in Python, JavaScript and Rust).
    #[test]
    fn the_signature_matches_the_specifications_test_vector() {
        let signer = Signer::new(&SecretString::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
            .expect("the vector's secret is 24 bytes");
        assert_eq!(
            signer.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_bare_base64_secret_is_the_same_key() {
        // CloudFormation's GenerateSecretString: 32 alphanumeric characters = 24 bytes of base64.
        let bare = "C2FVsBQIhrscChlQIMV9b5sSYspob7oD";
        let a = Signer::new(&SecretString::new(bare)).unwrap();
        let b = Signer::new(&SecretString::new(format!("whsec_{bare}"))).unwrap();
        assert_eq!(a.sign("id", 1, "{}"), b.sign("id", 1, "{}"));
    }

    /// Rotation: with the new key and the old one in the secret, a receiver that still verifies
    /// with the old key and one that already has the new key both accept the delivery.
    #[test]
    fn two_keys_sign_twice_so_either_verifies_during_a_rotation() {
        let (new, old) = (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "C2FVsBQIhrscChlQIMV9b5sSYspob7oD",
        );
        let signer = Signer::new(&SecretString::new(format!(" {new}  {old} "))).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let body = r#"{"type":"optin.expired"}"#;
        let header = signer.sign("evt_1", now, body);
        assert_eq!(header.split(' ').count(), 2, "{header}");
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "evt_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        headers.insert("webhook-signature", header.parse().unwrap());
        for key in [new.to_owned(), format!("whsec_{old}")] {
            let verifier = standardwebhooks::Webhook::new(&key).unwrap();
            verifier
                .verify(body.as_bytes(), &headers)
                .expect("verifies");
        }
        let other = standardwebhooks::Webhook::new(
            "whsec_bG9jYWwtZXZlbnRzLXNpZ25pbmcta2V5LW5vdC1zZWNyZXQh",
        )
        .unwrap();
        assert!(other.verify(body.as_bytes(), &headers).is_err());
        // One bad key among good ones refuses the whole secret.
        assert!(Signer::new(&SecretString::new(format!("{new} whsec_c2hvcnQ="))).is_err());
    }

    #[test]
    fn short_or_malformed_secrets_are_refused_without_echoing_them() {
        for (value, why) in [
            ("", "is empty"),
            ("whsec_", "is empty"),
            ("whsec_c2hvcnQ=", "decodes to 5 bytes"),
            ("whsec_not base64!!", "not base64"),
        ] {
            let e = Signer::new(&SecretString::new(value)).err().expect(value);
            assert!(
                e.contains("events_signing_secret") && e.contains(why),
                "{e}"
            );
            if value.len() > 6 {
                assert!(!e.contains(&value[6..]), "{e} echoes the value");
            }
        }
        let e = EventsSecrets::from_json(r#"{"events_signing_secret":"whsec_c2hvcnQ="}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 24 random bytes"), "{e}");
        let e = EventsSecrets::from_json(r#"{}"#).unwrap_err().to_string();
        assert!(e.contains("events_signing_secret is empty"), "{e}");
        assert!(
            EventsSecrets::from_json(
                r#"{"events_signing_secret":"C2FVsBQIhrscChlQIMV9b5sSYspob7oD"}"#
            )
            .is_ok()
        );
    }
}
