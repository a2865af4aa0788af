//! The login flow's settings: return_to origins, extra scopes, login_id derivation, first-name
//! fallback.

use crate::config::env;
use crate::config::reader::Reader;
use crate::domain::login::{BASE_SCOPES, normalise_origin};
use crate::domain::message::MAX_FIRST_NAME_CHARS;

/// The login flow's settings (part of [`crate::config::settings::Config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    /// Origins `return_to` may point at (`ALLOWED_RETURN_ORIGINS`, comma-separated), normalised.
    pub allowed_return_origins: Vec<String>,
    /// Scopes asked for besides `public_profile,user_messenger_contact` (`LOGIN_EXTRA_SCOPES`).
    pub extra_scopes: Vec<String>,
    /// Derive the expected login_id at login time (`DERIVE_LOGIN_ID`, default true).
    pub derive_login_id: bool,
    /// What replaces `{first_name}` when the first name is unknown (`FIRST_NAME_FALLBACK`).
    pub first_name_fallback: String,
    /// Create the opt-in (and queue the send) when a login grants the permission, with the derived
    /// login_id, instead of waiting for the `messaging_optins` webhook (`START_AT_LOGIN`, default
    /// false: Meta's login_id derivation is unverified live).
    pub start_at_login: bool,
}

pub const DEFAULT_FIRST_NAME_FALLBACK: &str = "there";

impl LoginConfig {
    /// Read the login settings, adding every problem found to `problems`.
    pub fn read(lookup: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Self {
        let mut r = Reader::new(lookup);
        let config = Self::from_reader(&mut r);
        problems.extend(r.take_problems());
        config
    }

    /// Read the login settings through the configuration's one [`Reader`].
    pub fn from_reader(r: &mut Reader<'_>) -> Self {
        let mut allowed_return_origins = Vec::new();
        for raw in r.list(env::ALLOWED_RETURN_ORIGINS).unwrap_or_default() {
            match normalise_origin(&raw) {
                Ok(origin) => allowed_return_origins.push(origin),
                Err(e) => r.problem(format!("{}: {e}", env::ALLOWED_RETURN_ORIGINS)),
            }
        }
        let mut extra_scopes: Vec<String> = Vec::new();
        for scope in r.list(env::LOGIN_EXTRA_SCOPES).unwrap_or_default() {
            let valid = scope.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            if !valid {
                r.problem(format!(
                    "{}: {scope:?} is not a permission name (a-z and _)",
                    env::LOGIN_EXTRA_SCOPES
                ));
            } else if !BASE_SCOPES.contains(&scope.as_str()) && !extra_scopes.contains(&scope) {
                extra_scopes.push(scope);
            }
        }
        let derive_login_id = r.flag(env::DERIVE_LOGIN_ID, true);
        let start_at_login = r.flag(env::START_AT_LOGIN, false);
        if start_at_login && !derive_login_id {
            r.problem(format!(
                "{}=true needs {}=true (the opt-in is keyed by the derived login_id)",
                env::START_AT_LOGIN,
                env::DERIVE_LOGIN_ID
            ));
        }
        // An explicitly empty fallback is allowed ("Hi{first_name}!" → "Hi!").
        let first_name_fallback = r
            .raw(env::FIRST_NAME_FALLBACK)
            .unwrap_or_else(|| DEFAULT_FIRST_NAME_FALLBACK.to_owned());
        if first_name_fallback.chars().count() > MAX_FIRST_NAME_CHARS {
            r.problem(format!(
                "{} is longer than {MAX_FIRST_NAME_CHARS} characters",
                env::FIRST_NAME_FALLBACK
            ));
        }
        Self {
            allowed_return_origins,
            extra_scopes,
            derive_login_id,
            first_name_fallback,
            start_at_login,
        }
    }

    /// The dialog's `scope`: the base scopes, then the extra ones.
    pub fn scope(&self) -> String {
        BASE_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .chain(self.extra_scopes.iter().cloned())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_config_reads_and_reports() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let mut problems = Vec::new();
        let c = LoginConfig::read(&env(&[]), &mut problems);
        assert!(problems.is_empty());
        assert!(c.derive_login_id && c.allowed_return_origins.is_empty());
        assert_eq!(c.first_name_fallback, "there");
        assert_eq!(c.scope(), "public_profile,user_messenger_contact");

        let c = LoginConfig::read(
            &env(&[
                (
                    "ALLOWED_RETURN_ORIGINS",
                    "https://Shop.example, http://127.0.0.1:8080/",
                ),
                ("LOGIN_EXTRA_SCOPES", "email, public_profile,email"),
                ("DERIVE_LOGIN_ID", "false"),
                ("FIRST_NAME_FALLBACK", ""),
            ]),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            c.allowed_return_origins,
            ["https://shop.example", "http://127.0.0.1:8080"]
        );
        assert_eq!(c.scope(), "public_profile,user_messenger_contact,email");
        assert!(!c.derive_login_id);
        assert_eq!(c.first_name_fallback, "");

        LoginConfig::read(
            &env(&[
                ("ALLOWED_RETURN_ORIGINS", "https://shop.example/path,evil"),
                ("LOGIN_EXTRA_SCOPES", "email;drop"),
                ("DERIVE_LOGIN_ID", "yes"),
            ]),
            &mut problems,
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn start_at_login_is_off_unless_set_and_a_bad_value_is_named() {
        let env = |v: Option<&'static str>| {
            move |k: &str| {
                (k == "START_AT_LOGIN")
                    .then_some(v)
                    .flatten()
                    .map(str::to_owned)
            }
        };
        let mut problems = Vec::new();
        assert!(!LoginConfig::read(&env(None), &mut problems).start_at_login);
        assert!(LoginConfig::read(&env(Some("true")), &mut problems).start_at_login);
        assert!(problems.is_empty(), "{problems:?}");
        LoginConfig::read(&env(Some("sometimes")), &mut problems);
        assert!(
            problems.len() == 1 && problems[0].contains("START_AT_LOGIN"),
            "{problems:?}"
        );
        let without_derivation = |k: &str| match k {
            "START_AT_LOGIN" => Some("true".to_owned()),
            "DERIVE_LOGIN_ID" => Some("false".to_owned()),
            _ => None,
        };
        LoginConfig::read(&without_derivation, &mut problems);
        assert!(
            problems.len() == 2 && problems[1].contains("needs DERIVE_LOGIN_ID=true"),
            "{problems:?}"
        );
    }
}
