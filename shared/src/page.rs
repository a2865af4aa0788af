//! Whether the sender may send for a Page: pure types, no I/O.
//!
//! When Graph says our token or permissions are wrong, or that the Page is restricted, every send
//! for that Page would fail the same way. The sender then *pauses the Page*: it stops claiming its
//! opt-ins (they wait in `PAUSED`), alerts once, and every [`PageState::probe_at`] lets one send
//! through as a probe. The first probe Graph accepts resumes the Page and re-queues its paused
//! opt-ins that are still before their deadline. See docs/sender.md.

use crate::domain::{LastError, Millis};
use crate::facebook::ErrorClass;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PageStatus {
    Active,
    Paused,
}

/// Why a Page is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    /// Our token, permissions, review status, `appsecret_proof` or request are wrong.
    Configuration,
    /// Meta restricted the Page from sending messages (10/1893063).
    PageRestricted,
    /// Meta warned that the Page's messages may be considered bothersome or abusive (613/2018338).
    AbuseWarning,
    /// Meta blocked the Page (`messaging_policy_enforcement` `block`): no probe is sent (a probe is
    /// a real message); the `unblock` webhook resumes the Page.
    PolicyBlock,
}

impl PauseCause {
    /// The pause an error class calls for, if any.
    pub fn for_class(class: ErrorClass) -> Option<Self> {
        match class {
            ErrorClass::Configuration => Some(PauseCause::Configuration),
            ErrorClass::PageRestricted => Some(PauseCause::PageRestricted),
            ErrorClass::AbuseWarning => Some(PauseCause::AbuseWarning),
            _ => None,
        }
    }
}

/// The Page state item. A Page without one is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageState {
    pub page_id: String,
    pub status: PageStatus,
    /// When the current (or last) pause began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<PauseCause>,
    /// The Graph error that paused the Page (code, subcode, fbtrace_id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<LastError>,
    /// While paused: the earliest time a sender may send one probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_at: Option<Millis>,
    /// Probes taken during the current pause.
    #[serde(default)]
    pub probes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<Millis>,
    #[serde(default)]
    pub updated_at: Millis,
}

impl PageState {
    pub fn is_paused(&self) -> bool {
        self.status == PageStatus::Paused
    }

    /// Whether a probe may be taken at `now`.
    pub fn probe_due(&self, now: Millis) -> bool {
        self.is_paused() && self.probe_at.is_none_or(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configuration_and_restriction_pause_a_page() {
        assert_eq!(
            PauseCause::for_class(ErrorClass::Configuration),
            Some(PauseCause::Configuration)
        );
        assert_eq!(
            PauseCause::for_class(ErrorClass::PageRestricted),
            Some(PauseCause::PageRestricted)
        );
        assert_eq!(
            PauseCause::for_class(ErrorClass::AbuseWarning),
            Some(PauseCause::AbuseWarning)
        );
        for class in [
            ErrorClass::Retry,
            ErrorClass::RetryBounded,
            ErrorClass::Unreachable,
            ErrorClass::Window,
            ErrorClass::Unknown,
        ] {
            assert_eq!(PauseCause::for_class(class), None, "{class:?}");
        }
    }

    #[test]
    fn probes_are_due_only_while_paused_and_after_probe_at() {
        let mut p = PageState {
            page_id: "1".into(),
            status: PageStatus::Paused,
            paused_at: Some(0),
            cause: Some(PauseCause::Configuration),
            reason: None,
            probe_at: Some(100),
            probes: 0,
            resumed_at: None,
            updated_at: 0,
        };
        assert!(!p.probe_due(99));
        assert!(p.probe_due(100));
        p.status = PageStatus::Active;
        assert!(!p.probe_due(1_000));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["status"], "ACTIVE");
        assert_eq!(json["cause"], "configuration");
    }
}
