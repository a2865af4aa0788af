//! Operator alerts: what each kind says and which fields it carries (docs/alerts.md).

use crate::domain::opt_in::{LastError, Millis, OptIn, State, login_id_prefix, utc};
use serde::{Deserialize, Serialize};

/// An operator alert: about one opt-in, one expected login, or the Page as a whole. Carries no
/// personal data beyond the opaque login_id prefix. Each kind carries only the fields it has (see
/// docs/alerts.md): a Page-wide alert has no opt-in, state or deadline, and those are left out of
/// the JSON rather than sent empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub page_id: String,
    /// The login_id, shortened: enough to find it, not enough to message the person. `None` for a
    /// Page-wide alert.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub login_id_prefix: Option<String>,
    /// The opt-in's state; for a Page-wide alert `PAUSED` when the Page's sends are stopped, else
    /// `None`. `None` for [`AlertKind::LoginWithoutOptIn`] (there is no opt-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// The opt-in's deadline; `None` when the alert is not about an opt-in.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_zero_millis"
    )]
    pub deadline_at: Option<Millis>,
    /// The deadline for people: RFC 3339, UTC.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub deadline_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// When the sender gave up ([`AlertKind::GaveUpBeforeDeadline`]), and the same in RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gave_up_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gave_up_utc: String,
    pub detail: String,
}

/// Alerts published before these fields were optional carried `""` and `0` for "none".
fn non_empty_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn non_zero_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
    Ok(Option::<Millis>::deserialize(d)?.filter(|m| *m != 0))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Still unsent, close to the deadline.
    DeadlineAtRisk,
    /// The deadline passed without a message.
    DeadlineMissed,
    /// The deadline has not passed yet, but no attempt can land before it any more: the sender
    /// gave up (the opt-in is EXPIRED; no `deadline_missed` follows for it).
    GaveUpBeforeDeadline,
    /// Graph refused the send because of our configuration.
    ConfigurationError,
    /// Graph says the window is closed although our clock says it is open.
    WindowRejected,
    /// Meta's `messaging_policy_enforcement` webhook (block, warning, unblock) for the Page.
    PolicyEnforcement,
    /// A stop request from a PSID no opt-in is linked to yet: kept, and applied when the PSID is
    /// linked, but an opt-in that arrives without that link is not covered by it.
    UnmatchedStop,
    /// A person granted `user_messenger_contact` at login but no opt-in with the expected
    /// login_id arrived in time: the login_id derivation may be wrong for this app.
    LoginWithoutOptIn,
    /// A function started without a usable secret (a fresh stack's empty placeholders, a missing
    /// field, access denied): it answers "not configured" until the secret is filled.
    NotConfigured,
    /// The daily drift check (issue 13 §2) found a new problem on Meta's side (the Page token,
    /// a webhook subscription, the Graph version): once per problem, with doctor's fix.
    MetaSetupDrift,
    /// A problem the drift check alerted about is gone.
    MetaSetupRecovered,
}

impl Alert {
    /// An alert about the Page as a whole (no opt-in, no deadline): `state` is `PAUSED` when sends
    /// are stopped, absent otherwise.
    pub fn for_page(
        page_id: &str,
        kind: AlertKind,
        paused: bool,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            page_id: page_id.to_owned(),
            login_id_prefix: None,
            state: paused.then_some(State::Paused),
            deadline_at: None,
            deadline_utc: None,
            last_error: None,
            gave_up_at: None,
            gave_up_utc: String::new(),
            detail: detail.into(),
        }
    }

    /// A granted login whose expected opt-in (`expected_login_id`) never arrived. Carries the
    /// login_id prefix only (never the asid or the name); no state or deadline: there is no opt-in.
    pub fn login_without_opt_in(
        page_id: &str,
        expected_login_id: &str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            login_id_prefix: Some(login_id_prefix(expected_login_id)),
            ..Self::for_page(page_id, AlertKind::LoginWithoutOptIn, false, detail)
        }
    }

    /// A function that cannot work until its secret is filled: `problem` names the fields (never
    /// a value), `meanwhile` says what the function does until then.
    pub fn not_configured(page_id: &str, function: &str, problem: &str, meanwhile: &str) -> Self {
        Self::for_page(
            page_id,
            AlertKind::NotConfigured,
            false,
            format!(
                "the {function} function started without a usable secret ({problem}); until the \
                 secret is filled it {meanwhile}. Fill it with `aws secretsmanager \
                 put-secret-value` (README, \"Deploying with SAM\"); the function reads it again \
                 at its next invocation (at most every 30 s), without a redeploy"
            ),
        )
    }

    pub fn about(opt_in: &OptIn, kind: AlertKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            page_id: opt_in.page_id.clone(),
            login_id_prefix: Some(login_id_prefix(&opt_in.login_id)),
            state: Some(opt_in.state),
            deadline_at: Some(opt_in.deadline_at),
            deadline_utc: Some(utc(opt_in.deadline_at)),
            last_error: opt_in.last_error.clone(),
            gave_up_at: None,
            gave_up_utc: String::new(),
            detail: detail.into(),
        }
    }

    /// The sender gave up on `opt_in` at `at`, before its deadline: no attempt could land in time.
    pub fn gave_up(opt_in: &OptIn, at: Millis, detail: impl Into<String>) -> Self {
        Self {
            gave_up_at: Some(at),
            gave_up_utc: utc(at),
            ..Self::about(opt_in, AlertKind::GaveUpBeforeDeadline, detail)
        }
    }

    pub fn subject(&self) -> String {
        let what = match self.kind {
            AlertKind::DeadlineAtRisk => "Opt-in close to its 24-hour deadline",
            AlertKind::DeadlineMissed => "Opt-in missed its 24-hour deadline",
            AlertKind::GaveUpBeforeDeadline => "Opt-in given up before its 24-hour deadline",
            AlertKind::ConfigurationError => "Messenger configuration error",
            AlertKind::WindowRejected => "Messenger refused a send as outside the window",
            AlertKind::PolicyEnforcement => "Messenger policy enforcement",
            AlertKind::UnmatchedStop => "Stop request from a person not yet linked to an opt-in",
            AlertKind::LoginWithoutOptIn => "A granted login received no matching opt-in",
            AlertKind::NotConfigured => "A function is not configured: fill its secret",
            AlertKind::MetaSetupDrift => "Meta's side of the integration drifted",
            AlertKind::MetaSetupRecovered => "Meta's side of the integration recovered",
        };
        format!("{what} (Page {})", self.page_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::opt_in::OptInKey;

    #[test]
    fn a_gave_up_alert_says_when_it_gave_up_and_is_not_a_missed_deadline() {
        let o = OptIn::new(
            OptInKey::new("p", "abcdef0123456789"),
            Some(0),
            0,
            60_000,
            0,
        );
        let a = Alert::gave_up(&o, 30_000, "gave up");
        assert_eq!(a.kind, AlertKind::GaveUpBeforeDeadline);
        assert_eq!(
            (a.gave_up_at, a.gave_up_utc.as_str()),
            (Some(30_000), "1970-01-01T00:00:30Z")
        );
        assert_eq!(a.deadline_utc.as_deref(), Some("1970-01-01T00:01:00Z"));
        assert!(!a.subject().contains("missed"), "{}", a.subject());
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["kind"], "gave_up_before_deadline");
        assert_eq!(json["gave_up_utc"], "1970-01-01T00:00:30Z");
        // Other alerts do not carry the fields.
        let other = serde_json::to_value(Alert::about(&o, AlertKind::DeadlineMissed, "x")).unwrap();
        assert!(other.get("gave_up_at").is_none() && other.get("gave_up_utc").is_none());
    }

    #[test]
    fn alerts_carry_only_a_login_id_prefix() {
        let o = OptIn::new(OptInKey::new("p", "abcdef0123456789"), Some(0), 0, 10, 0);
        let a = Alert::about(&o, AlertKind::DeadlineAtRisk, "x");
        assert_eq!(a.login_id_prefix.as_deref(), Some("abcdef01"));
        assert_eq!(a.deadline_utc.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert!(
            !serde_json::to_string(&a)
                .unwrap()
                .contains("abcdef0123456789")
        );
        assert!(a.subject().contains("Page p"));
    }
}
