//! Whether the sender may send for a Page, and every change of the Page state item: pure types
//! and rules, no I/O.
//!
//! When Graph says our token or permissions are wrong, or that the Page is restricted, every send
//! for that Page would fail the same way. The sender then *pauses the Page*: it stops claiming its
//! opt-ins (they wait in `PAUSED`), alerts once, and every [`PageState::probe_at`] lets one send
//! through as a probe. The first probe Graph accepts resumes the Page and re-queues its paused
//! opt-ins that are still before their deadline. See docs/sender.md.
//!
//! Meta's own `block` (promise 3) is stronger than any pause of ours: it is recorded whatever the
//! Page's state, it stops probes (a probe is a real message), and only Meta's `unblock` lifts it.
//! Each change is a [`PageEvent`] whose [`PageGuard`] is the one statement of when it may happen:
//! the DynamoDB adapter turns the guard into a condition expression, the in-memory twin evaluates
//! it with [`PageGuard::holds`], and [`PageChange::apply`] says what the item becomes.

use crate::domain::opt_in::{LastError, Millis, OptIn, State};
use crate::facebook::graph_error::ErrorClass;
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

/// How late a live probe chain may take its slot: the probe's own send (at most the Graph
/// timeout) and the queue's delivery, with room to spare. See [`PageState::probe_chain_broken`].
pub const PROBE_CHAIN_SLACK_MS: Millis = 60_000;

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

    /// Paused by Meta's `block`: nothing of ours (probe, resume) may send or lift it.
    pub fn is_blocked(&self) -> bool {
        self.is_paused() && self.cause == Some(PauseCause::PolicyBlock)
    }

    /// Whether a probe may be taken at `now` (the guard of [`PageEvent::TakeProbe`]).
    pub fn probe_due(&self, now: Millis) -> bool {
        PageEvent::TakeProbe.guard().holds(Some(self), now)
    }

    /// Whether the Page's probe chain is broken at `now`: paused by us (a blocked Page has no
    /// probe) and its probe time passed more than one probe interval (`interval_ms`) plus
    /// [`PROBE_CHAIN_SLACK_MS`] ago. A live chain takes the slot within the slack of its time (the
    /// next probe job is queued one interval after the last probe's send), so a probe this
    /// overdue has no job coming: its prober crashed, or could not queue the next probe.
    pub fn probe_chain_broken(&self, now: Millis, interval_ms: Millis) -> bool {
        self.is_paused()
            && !self.is_blocked()
            && self.probe_at.is_some_and(|at| {
                now.saturating_sub(at) > interval_ms.saturating_add(PROBE_CHAIN_SLACK_MS)
            })
    }

    /// Whether `opt_in` is a PAUSED opt-in this Page left behind when it last resumed: the Page is
    /// active again and the opt-in was parked at or before that resume, so the resume's re-queue
    /// should have sent it on (it failed, or the process stopped in between). An opt-in paused
    /// after the resume (a send that exhausted its bounded retries) is not: it waits for the
    /// Page's next resume, as its alert says, so the sweep never loops on it.
    pub fn left_behind(&self, opt_in: &OptIn) -> bool {
        !self.is_paused()
            && opt_in.state == State::Paused
            && opt_in.page_id == self.page_id
            && self.resumed_at.is_some_and(|at| opt_in.updated_at <= at)
    }

    /// Whether some opt-in may still be [`Self::left_behind`] and sendable at `now`: an opt-in parked
    /// before the resume was recorded before it, so its deadline is at most one opt-in window
    /// (`window_ms`) after the resume. Past that, nothing needs looking for.
    pub fn may_have_left_behind(&self, now: Millis, window_ms: Millis) -> bool {
        !self.is_paused()
            && self
                .resumed_at
                .is_some_and(|at| now < at.saturating_add(window_ms))
    }
}

/// A change of the Page state item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageEvent {
    /// A send error of ours (configuration, restriction) pauses the Page: only an active Page, so
    /// a pause never overwrites a block or an earlier pause (and alerts once).
    Pause,
    /// Meta's `block`: from any state except an existing block (a block during a configuration
    /// pause replaces it), with no probe.
    Block,
    /// Meta's `unblock`: lifts a block and nothing else.
    Unblock,
    /// One sender takes the probe slot: paused by us (never blocked) and the probe time has come.
    TakeProbe,
    /// A probe was accepted: resume a Page paused by us (never a blocked one).
    ProbeAccepted,
}

impl PageEvent {
    pub const ALL: [PageEvent; 5] = [
        PageEvent::Pause,
        PageEvent::Block,
        PageEvent::Unblock,
        PageEvent::TakeProbe,
        PageEvent::ProbeAccepted,
    ];

    /// When the event may happen: the one definition both stores enforce.
    pub fn guard(self) -> PageGuard {
        let any = PageGuard {
            paused: None,
            blocked: None,
            probe_due: false,
        };
        match self {
            PageEvent::Pause => PageGuard {
                paused: Some(false),
                ..any
            },
            PageEvent::Block => PageGuard {
                blocked: Some(false),
                ..any
            },
            PageEvent::Unblock => PageGuard {
                blocked: Some(true),
                ..any
            },
            PageEvent::TakeProbe => PageGuard {
                paused: Some(true),
                blocked: Some(false),
                probe_due: true,
            },
            PageEvent::ProbeAccepted => PageGuard {
                paused: Some(true),
                blocked: Some(false),
                ..any
            },
        }
    }
}

/// What a [`PageEvent`] requires of the Page item, as data. A missing item is an active Page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageGuard {
    /// `Some(true)`: PAUSED; `Some(false)`: ACTIVE (or no item); `None`: either.
    pub paused: Option<bool>,
    /// `Some(true)`: blocked by Meta ([`PageState::is_blocked`]); `Some(false)`: anything else.
    pub blocked: Option<bool>,
    /// `probe_at` is set and at or before now.
    pub probe_due: bool,
}

impl PageGuard {
    pub fn holds(&self, page: Option<&PageState>, now: Millis) -> bool {
        let paused = page.is_some_and(PageState::is_paused);
        let blocked = page.is_some_and(PageState::is_blocked);
        self.paused.is_none_or(|want| want == paused)
            && self.blocked.is_none_or(|want| want == blocked)
            && (!self.probe_due || page.and_then(|p| p.probe_at).is_some_and(|at| at <= now))
    }
}

/// A change of the Page item with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageChange {
    Pause {
        cause: PauseCause,
        reason: LastError,
        probe_at: Millis,
    },
    Block {
        reason: LastError,
    },
    Unblock,
    TakeProbe {
        next_probe_at: Millis,
    },
    ProbeAccepted,
}

impl PageChange {
    /// A pause for `cause`; a [`PauseCause::PolicyBlock`] is a [`PageChange::Block`].
    pub fn pause(cause: PauseCause, reason: &LastError, probe_at: Millis) -> Self {
        match cause {
            PauseCause::PolicyBlock => PageChange::Block {
                reason: reason.clone(),
            },
            cause => PageChange::Pause {
                cause,
                reason: reason.clone(),
                probe_at,
            },
        }
    }

    pub fn event(&self) -> PageEvent {
        match self {
            PageChange::Pause { .. } => PageEvent::Pause,
            PageChange::Block { .. } => PageEvent::Block,
            PageChange::Unblock => PageEvent::Unblock,
            PageChange::TakeProbe { .. } => PageEvent::TakeProbe,
            PageChange::ProbeAccepted => PageEvent::ProbeAccepted,
        }
    }

    /// The item after the change at `now`, or `None` when the event's guard refuses `current`.
    pub fn apply(
        &self,
        page_id: &str,
        current: Option<&PageState>,
        now: Millis,
    ) -> Option<PageState> {
        if !self.event().guard().holds(current, now) {
            return None;
        }
        let mut page = current.cloned().unwrap_or_else(|| PageState {
            page_id: page_id.to_owned(),
            status: PageStatus::Active,
            paused_at: None,
            cause: None,
            reason: None,
            probe_at: None,
            probes: 0,
            resumed_at: None,
            updated_at: now,
        });
        page.updated_at = now;
        match self {
            PageChange::Pause {
                cause,
                reason,
                probe_at,
            } => {
                page.status = PageStatus::Paused;
                page.paused_at = Some(now);
                page.cause = Some(*cause);
                page.reason = Some(reason.clone());
                page.probe_at = Some(*probe_at);
                page.probes = 0;
            }
            PageChange::Block { reason } => {
                page.status = PageStatus::Paused;
                page.paused_at = Some(now);
                page.cause = Some(PauseCause::PolicyBlock);
                page.reason = Some(reason.clone());
                page.probe_at = None;
                page.probes = 0;
            }
            PageChange::TakeProbe { next_probe_at } => {
                page.probe_at = Some(*next_probe_at);
                page.probes += 1;
            }
            PageChange::Unblock | PageChange::ProbeAccepted => {
                page.status = PageStatus::Active;
                page.resumed_at = Some(now);
                page.probe_at = None;
            }
        }
        Some(page)
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

    #[test]
    fn a_probe_chain_is_broken_only_past_an_interval_and_the_slack_and_never_when_blocked() {
        let interval = 300_000;
        let p = paused(PauseCause::Configuration, Some(100));
        let limit = 100 + interval + PROBE_CHAIN_SLACK_MS;
        assert!(!p.probe_chain_broken(limit, interval), "a late chain job");
        assert!(p.probe_chain_broken(limit + 1, interval));
        assert!(
            !paused(PauseCause::PolicyBlock, Some(100)).probe_chain_broken(limit + 1, interval)
        );
        assert!(!paused(PauseCause::Configuration, None).probe_chain_broken(limit + 1, interval));
        let mut resumed = p;
        resumed.status = PageStatus::Active;
        assert!(!resumed.probe_chain_broken(limit + 1, interval));
    }

    fn paused(cause: PauseCause, probe_at: Option<Millis>) -> PageState {
        PageState {
            page_id: "1".into(),
            status: PageStatus::Paused,
            paused_at: Some(0),
            cause: Some(cause),
            reason: None,
            probe_at,
            probes: 0,
            resumed_at: None,
            updated_at: 0,
        }
    }

    /// Every kind of Page item a store can hold, with a name for failure messages.
    fn page_grid() -> Vec<(&'static str, Option<PageState>)> {
        let mut lifted = paused(PauseCause::PolicyBlock, None);
        lifted.status = PageStatus::Active;
        lifted.resumed_at = Some(5);
        let mut resumed = paused(PauseCause::Configuration, None);
        resumed.status = PageStatus::Active;
        resumed.resumed_at = Some(5);
        vec![
            ("no item", None),
            ("active after a configuration pause", Some(resumed)),
            ("active after a lifted block", Some(lifted)),
            (
                "configuration pause, probe due",
                Some(paused(PauseCause::Configuration, Some(100))),
            ),
            (
                "configuration pause, probe not due",
                Some(paused(PauseCause::Configuration, Some(101))),
            ),
            (
                "restriction, probe due",
                Some(paused(PauseCause::PageRestricted, Some(0))),
            ),
            ("blocked", Some(paused(PauseCause::PolicyBlock, None))),
            (
                "blocked, as stored before (probe_at = MAX)",
                Some(paused(PauseCause::PolicyBlock, Some(Millis::MAX))),
            ),
            (
                "blocked with a probe time come",
                Some(paused(PauseCause::PolicyBlock, Some(0))),
            ),
        ]
    }

    /// The table the adapters must agree with: which event each kind of item allows at `now = 100`.
    fn expected(event: PageEvent, name: &str) -> bool {
        let active = name == "no item" || name.starts_with("active");
        let blocked = name.starts_with("blocked");
        match event {
            PageEvent::Pause => active,
            PageEvent::Block => !blocked,
            PageEvent::Unblock => blocked,
            PageEvent::TakeProbe => !active && !blocked && name.ends_with("probe due"),
            PageEvent::ProbeAccepted => !active && !blocked,
        }
    }

    #[test]
    fn each_page_event_is_allowed_exactly_where_the_table_says() {
        for event in PageEvent::ALL {
            for (name, page) in page_grid() {
                assert_eq!(
                    event.guard().holds(page.as_ref(), 100),
                    expected(event, name),
                    "{event:?} on {name}"
                );
            }
        }
    }

    #[test]
    fn block_during_a_configuration_pause_is_recorded_and_stops_probes() {
        let reason = LastError {
            message: "policy enforcement block: spam".into(),
            ..LastError::default()
        };
        let config = paused(PauseCause::Configuration, Some(100));
        let blocked = PageChange::Block {
            reason: reason.clone(),
        }
        .apply("1", Some(&config), 50)
        .expect("a block is recorded during a configuration pause");
        assert!(blocked.is_blocked());
        assert_eq!(blocked.cause, Some(PauseCause::PolicyBlock));
        assert_eq!(blocked.reason, Some(reason.clone()));
        assert_eq!((blocked.probe_at, blocked.paused_at), (None, Some(50)));
        // The probe time passes: no probe is due, none can be taken, none resumes the Page.
        assert!(!blocked.probe_due(Millis::MAX));
        let later = 1_000_000;
        assert_eq!(
            PageChange::TakeProbe {
                next_probe_at: later + 1
            }
            .apply("1", Some(&blocked), later),
            None
        );
        assert_eq!(
            PageChange::ProbeAccepted.apply("1", Some(&blocked), later),
            None
        );
        // A send error of ours does not overwrite the block, nor does a repeated block re-alert.
        let again = PageChange::pause(PauseCause::Configuration, &reason, later);
        assert_eq!(again.apply("1", Some(&blocked), later), None);
        assert_eq!(
            PageChange::pause(PauseCause::PolicyBlock, &reason, 0).apply(
                "1",
                Some(&blocked),
                later
            ),
            None
        );
        // Only the unblock lifts it.
        let lifted = PageChange::Unblock
            .apply("1", Some(&blocked), later)
            .expect("unblock lifts a block");
        assert!(!lifted.is_paused());
        assert_eq!((lifted.resumed_at, lifted.probe_at), (Some(later), None));
    }

    #[test]
    fn unblock_clears_only_a_block() {
        let config = paused(PauseCause::Configuration, Some(100));
        assert_eq!(PageChange::Unblock.apply("1", Some(&config), 200), None);
        assert_eq!(PageChange::Unblock.apply("1", None, 200), None);
        // A block on a Page never paused creates its item.
        let blocked = PageChange::Block {
            reason: LastError::default(),
        }
        .apply("1", None, 7)
        .unwrap();
        assert_eq!(
            (blocked.page_id.as_str(), blocked.status, blocked.updated_at),
            ("1", PageStatus::Paused, 7)
        );
    }

    #[test]
    fn a_probe_slot_is_taken_and_a_probe_resumes_a_page_paused_by_us() {
        let config = paused(PauseCause::Configuration, Some(100));
        let taken = PageChange::TakeProbe { next_probe_at: 400 }
            .apply("1", Some(&config), 100)
            .unwrap();
        assert_eq!((taken.probe_at, taken.probes), (Some(400), 1));
        let resumed = PageChange::ProbeAccepted
            .apply("1", Some(&taken), 150)
            .unwrap();
        assert_eq!(
            (resumed.status, resumed.resumed_at, resumed.probe_at),
            (PageStatus::Active, Some(150), None)
        );
        let paused_again =
            PageChange::pause(PauseCause::PageRestricted, &LastError::default(), 900)
                .apply("1", Some(&resumed), 200)
                .unwrap();
        assert_eq!(
            (
                paused_again.probe_at,
                paused_again.probes,
                paused_again.resumed_at
            ),
            (Some(900), 0, Some(150))
        );
    }

    #[test]
    fn left_behind_means_parked_before_the_last_resume_of_an_active_page() {
        use crate::domain::opt_in::{HOUR_MS, OptInKey};
        let mut page = paused(PauseCause::PolicyBlock, None);
        let mut o = OptIn::new(OptInKey::new("1", "l"), Some(0), 0, 24 * HOUR_MS, 0);
        o.state = State::Paused;
        o.updated_at = 10;
        assert!(!page.left_behind(&o), "still blocked");
        page.status = PageStatus::Active;
        page.resumed_at = Some(10);
        assert!(page.left_behind(&o));
        o.updated_at = 11;
        assert!(
            !page.left_behind(&o),
            "paused after the resume (bounded retries exhausted): waits for the next resume"
        );
        o.updated_at = 10;
        o.state = State::Retrying;
        assert!(!page.left_behind(&o));
        o.state = State::Paused;
        o.page_id = "2".into();
        assert!(!page.left_behind(&o));
        assert!(page.may_have_left_behind(10 + 24 * HOUR_MS - 1, 24 * HOUR_MS));
        assert!(!page.may_have_left_behind(10 + 24 * HOUR_MS, 24 * HOUR_MS));
        page.resumed_at = None;
        assert!(!page.may_have_left_behind(0, 24 * HOUR_MS));
    }
}
