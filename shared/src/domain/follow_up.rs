//! Follow-up messages (issue 12 §2): what the website backend asks the Page to send a person after
//! the initial message, the policy guard that decides whether it may go, and the stored message.
//!
//! The guard is Meta's standard messaging window: a message may go to a person's PSID with
//! `messaging_type: RESPONSE` only within 24 hours of the person's last message to the Page. An
//! operator with Meta's approval for the `HUMAN_AGENT` tag may extend that to 7 days
//! (`HUMAN_AGENT_TAG=true`): only the messages past the first 24 hours then carry the tag. The
//! guard runs when the request is accepted and again just before the send, so an opt-out or a
//! closed window in between stops the message. Pure: no I/O, no clock.

use crate::domain::message::MAX_MESSAGE_TEXT_CHARS;
use crate::domain::opt_in::{HOUR_MS, Millis, OptIn};
use serde::{Deserialize, Serialize};

/// Meta's standard messaging window: 24 hours after the person's last message.
pub const STANDARD_WINDOW_MS: Millis = 24 * HOUR_MS;
/// The `HUMAN_AGENT` tag's window: 7 days after the person's last message.
pub const HUMAN_AGENT_WINDOW_MS: Millis = 7 * 24 * HOUR_MS;
/// Meta's limit on quick replies per message.
pub const MAX_QUICK_REPLIES: usize = 13;
/// Meta's limit on a quick reply's title (characters).
pub const MAX_QUICK_REPLY_TITLE_CHARS: usize = 20;
/// Meta's limit on a quick reply's payload (characters).
pub const MAX_QUICK_REPLY_PAYLOAD_CHARS: usize = 1000;
/// A follow-up item is kept this long, then DynamoDB's TTL removes it (it holds the text).
pub const FOLLOW_UP_RETENTION_MS: Millis = 30 * 24 * HOUR_MS;
/// An `Idempotency-Key` is remembered this long.
pub const IDEMPOTENCY_WINDOW_MS: Millis = 24 * HOUR_MS;
/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// How a follow-up goes out: the Send API's `messaging_type`, and a tag only past 24 hours with
/// `HUMAN_AGENT_TAG=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// `messaging_type: RESPONSE`, no tag: inside the standard 24-hour window.
    Response,
    /// `messaging_type: MESSAGE_TAG`, `tag: HUMAN_AGENT`: past 24 hours, within 7 days.
    HumanAgent,
}

impl Delivery {
    pub fn messaging_type(self) -> &'static str {
        match self {
            Delivery::Response => "RESPONSE",
            Delivery::HumanAgent => "MESSAGE_TAG",
        }
    }

    pub fn tag(self) -> Option<&'static str> {
        match self {
            Delivery::Response => None,
            Delivery::HumanAgent => Some("HUMAN_AGENT"),
        }
    }
}

/// Why the guard refuses a follow-up (the API's 409 codes and a failed follow-up's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The person opted out (whatever state their opt-in is in).
    OptedOut,
    /// No PSID is known: the person never wrote to the Page.
    NoConversation,
    /// The window closed at `window_ended_at`.
    OutsideWindow { window_ended_at: Millis },
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::OptedOut => "opted_out",
            Refusal::NoConversation => "no_conversation",
            Refusal::OutsideWindow { .. } => "outside_window",
        }
    }
}

/// The guard let the follow-up through: send to `psid` with `delivery` before `window_ends_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub psid: String,
    pub delivery: Delivery,
    pub window_ends_at: Millis,
}

/// The policy guard: may a follow-up go to the person with this opt-in (`None`: none recorded) at
/// `now`? Checked in this order: opted out, no conversation, outside the window.
///
/// The window runs from the person's last message; a time in the future (a skewed clock) counts as
/// `now`, so it can never open a window that ends later than `now` + the window.
pub fn guard(
    opt_in: Option<&OptIn>,
    now: Millis,
    human_agent_tag: bool,
) -> Result<Allowed, Refusal> {
    let Some(opt_in) = opt_in else {
        return Err(Refusal::NoConversation);
    };
    if opt_in.has_opted_out() {
        return Err(Refusal::OptedOut);
    }
    let (Some(psid), Some(last)) = (opt_in.psid.as_deref(), opt_in.last_user_message_at) else {
        return Err(Refusal::NoConversation);
    };
    let start = last.min(now);
    let standard_end = start.saturating_add(STANDARD_WINDOW_MS);
    let (delivery, window_ends_at) = if now < standard_end {
        (Delivery::Response, standard_end)
    } else if human_agent_tag {
        (
            Delivery::HumanAgent,
            start.saturating_add(HUMAN_AGENT_WINDOW_MS),
        )
    } else {
        return Err(Refusal::OutsideWindow {
            window_ended_at: standard_end,
        });
    };
    if now >= window_ends_at {
        return Err(Refusal::OutsideWindow {
            window_ended_at: window_ends_at,
        });
    }
    Ok(Allowed {
        psid: psid.to_owned(),
        delivery,
        window_ends_at,
    })
}

/// One quick reply, in Meta's shape (`content_type: text` only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickReply {
    pub content_type: String,
    pub title: String,
    pub payload: String,
}

/// The message of a follow-up: its text and quick replies, as the API received them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpMessage {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<QuickReply>,
}

impl FollowUpMessage {
    /// Meta's limits, checked before anything is written: the first problem, for a 400.
    pub fn check(&self) -> Result<(), String> {
        let chars = self.text.chars().count();
        if self.text.trim().is_empty() || chars > MAX_MESSAGE_TEXT_CHARS {
            return Err(format!(
                "text must be 1 to {MAX_MESSAGE_TEXT_CHARS} characters (got {chars})"
            ));
        }
        if self.quick_replies.len() > MAX_QUICK_REPLIES {
            return Err(format!(
                "at most {MAX_QUICK_REPLIES} quick_replies (got {})",
                self.quick_replies.len()
            ));
        }
        for (i, reply) in self.quick_replies.iter().enumerate() {
            if reply.content_type != "text" {
                return Err(format!("quick_replies[{i}].content_type must be \"text\""));
            }
            let title = reply.title.chars().count();
            if reply.title.trim().is_empty() || title > MAX_QUICK_REPLY_TITLE_CHARS {
                return Err(format!(
                    "quick_replies[{i}].title must be 1 to {MAX_QUICK_REPLY_TITLE_CHARS} characters"
                ));
            }
            let payload = reply.payload.chars().count();
            if reply.payload.is_empty() || payload > MAX_QUICK_REPLY_PAYLOAD_CHARS {
                return Err(format!(
                    "quick_replies[{i}].payload must be 1 to {MAX_QUICK_REPLY_PAYLOAD_CHARS} characters"
                ));
            }
        }
        Ok(())
    }

    /// The Send API's `message` object.
    pub fn to_graph(&self) -> serde_json::Value {
        let mut message = serde_json::json!({ "text": self.text });
        if !self.quick_replies.is_empty() {
            message["quick_replies"] = serde_json::json!(self.quick_replies);
        }
        message
    }
}

/// Where a follow-up is: `queued` until the sender sends it (`sent`) or gives up (`failed`).
/// Only a queued follow-up changes, and only by its lease owner (the stores' conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpState {
    Queued,
    Sent,
    Failed,
}

impl FollowUpState {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpState::Queued => "queued",
            FollowUpState::Sent => "sent",
            FollowUpState::Failed => "failed",
        }
    }
}

/// Identifies one follow-up: the Page, the person's asid, the follow-up's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FollowUpKey {
    pub page_id: String,
    pub asid: String,
    pub id: String,
}

/// One follow-up, as stored. Timestamps are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    pub page_id: String,
    pub asid: String,
    pub id: String,
    pub message: FollowUpMessage,
    pub state: FollowUpState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Why it failed: a guard refusal's code, or the Graph error's class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Millis>,
    /// Send attempts so far (transient failures leave it queued).
    #[serde(default)]
    pub attempts: u32,
    /// The sender holding the follow-up for one attempt, and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<Millis>,
    pub updated_at: Millis,
}

impl FollowUp {
    /// A new queued follow-up (`id`: fresh and unguessable, chosen by the caller).
    pub fn queued(
        page_id: &str,
        asid: &str,
        id: &str,
        message: FollowUpMessage,
        now: Millis,
    ) -> Self {
        Self {
            page_id: page_id.to_owned(),
            asid: asid.to_owned(),
            id: id.to_owned(),
            message,
            state: FollowUpState::Queued,
            message_id: None,
            reason: None,
            created_at: now,
            sent_at: None,
            failed_at: None,
            attempts: 0,
            lease_owner: None,
            lease_until: None,
            updated_at: now,
        }
    }

    pub fn key(&self) -> FollowUpKey {
        FollowUpKey {
            page_id: self.page_id.clone(),
            asid: self.asid.clone(),
            id: self.id.clone(),
        }
    }

    /// Whether a sender may claim it at `now`: queued, and no live lease.
    pub fn claimable(&self, now: Millis) -> bool {
        self.state == FollowUpState::Queued && self.lease_until.is_none_or(|until| until <= now)
    }
}

/// How a sender leaves its claim on a follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpOutcome {
    /// Graph accepted it.
    Sent { message_id: String },
    /// It will not be sent (`reason`: a guard refusal's code or the Graph error's class).
    Failed { reason: String },
    /// A transient failure: it stays queued, its lease released, for the next attempt.
    Retry,
}

impl FollowUpOutcome {
    /// The follow-up after this outcome at `now` (what both stores write, from queued only).
    pub fn apply(&self, mut item: FollowUp, now: Millis) -> FollowUp {
        match self {
            FollowUpOutcome::Sent { message_id } => {
                item.state = FollowUpState::Sent;
                item.message_id = Some(message_id.clone());
                item.sent_at = Some(now);
            }
            FollowUpOutcome::Failed { reason } => {
                item.state = FollowUpState::Failed;
                item.reason = Some(reason.clone());
                item.failed_at = Some(now);
            }
            FollowUpOutcome::Retry => {}
        }
        item.lease_owner = None;
        item.lease_until = None;
        item.updated_at = now;
        item
    }
}

/// An `Idempotency-Key` as it is remembered: the hash of the key (per Page) and of the request it
/// came with, and the follow-up it created. No asid in clear (the request hash binds it): a data
/// deletion, which finds the person's items by asid, leaves nothing here that names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub key_hash: String,
    pub request_hash: String,
    pub follow_up_id: String,
    pub created_at: Millis,
}

impl IdempotencyRecord {
    /// Whether the record still counts at `now` (DynamoDB's TTL deletes late, so readers check).
    pub fn live(&self, now: Millis) -> bool {
        now < self.created_at.saturating_add(IDEMPOTENCY_WINDOW_MS)
    }
}

/// Whether `key` is an acceptable `Idempotency-Key`: 1 to 255 printable ASCII characters.
pub fn is_valid_idempotency_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_CHARS
        && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

/// The stored hash of an `Idempotency-Key` (the key itself is the caller's and is not kept).
pub fn idempotency_key_hash(page_id: &str, key: &str) -> String {
    sha256_hex(&format!("{page_id}\u{1f}{key}"))
}

/// The hash of a request: the person and the message, so the same key for another person or
/// another body is a mismatch.
pub fn request_hash(asid: &str, message: &FollowUpMessage) -> String {
    let body = serde_json::to_string(message).unwrap_or_default();
    sha256_hex(&format!("{asid}\u{1f}{body}"))
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::opt_in::{OptInKey, State};
    use proptest::prelude::*;

    const T0: Millis = 1_795_536_000_000;

    fn person(last: Option<Millis>) -> OptIn {
        let mut o = OptIn::new(OptInKey::new("p", "l"), Some(T0), T0, 24 * HOUR_MS, 0);
        o.state = State::Sent;
        o.psid = last.map(|_| "psid-1".to_owned());
        o.last_user_message_at = last;
        o
    }

    #[test]
    fn the_guard_refuses_in_order_opted_out_no_conversation_outside_window() {
        assert_eq!(guard(None, T0, false), Err(Refusal::NoConversation));
        assert_eq!(
            guard(Some(&person(None)), T0, false),
            Err(Refusal::NoConversation)
        );
        let mut out = person(Some(T0));
        out.opted_out_at = Some(T0 + 1);
        assert_eq!(guard(Some(&out), T0 + 2, false), Err(Refusal::OptedOut));
        // An opted-out opt-in without a PSID is still opted_out (checked first).
        let mut placeholder = person(None);
        placeholder.state = State::OptedOut;
        assert_eq!(guard(Some(&placeholder), T0, true), Err(Refusal::OptedOut));
        let late = T0 + 25 * HOUR_MS;
        assert_eq!(
            guard(Some(&person(Some(T0))), late, false),
            Err(Refusal::OutsideWindow {
                window_ended_at: T0 + STANDARD_WINDOW_MS
            })
        );
        assert_eq!(Refusal::OptedOut.code(), "opted_out");
        assert_eq!(Refusal::NoConversation.code(), "no_conversation");
        assert_eq!(
            Refusal::OutsideWindow { window_ended_at: 0 }.code(),
            "outside_window"
        );
    }

    #[test]
    fn exactly_24_hours_after_the_last_message_the_window_is_closed() {
        let p = person(Some(T0));
        let edge = T0 + STANDARD_WINDOW_MS;
        let inside = guard(Some(&p), edge - 1, false).unwrap();
        assert_eq!(inside.delivery, Delivery::Response);
        assert_eq!(inside.window_ends_at, edge);
        assert_eq!(inside.psid, "psid-1");
        assert_eq!(
            guard(Some(&p), edge, false),
            Err(Refusal::OutsideWindow {
                window_ended_at: edge
            })
        );
    }

    #[test]
    fn human_agent_tag_extends_to_7_days_and_tags_only_past_24_hours() {
        let p = person(Some(T0));
        let early = guard(Some(&p), T0 + HOUR_MS, true).unwrap();
        assert_eq!(early.delivery, Delivery::Response);
        assert_eq!(early.delivery.tag(), None);
        let later = guard(Some(&p), T0 + STANDARD_WINDOW_MS, true).unwrap();
        assert_eq!(later.delivery, Delivery::HumanAgent);
        assert_eq!(later.delivery.messaging_type(), "MESSAGE_TAG");
        assert_eq!(later.delivery.tag(), Some("HUMAN_AGENT"));
        assert_eq!(later.window_ends_at, T0 + HUMAN_AGENT_WINDOW_MS);
        assert_eq!(
            guard(Some(&p), T0 + HUMAN_AGENT_WINDOW_MS, true),
            Err(Refusal::OutsideWindow {
                window_ended_at: T0 + HUMAN_AGENT_WINDOW_MS
            })
        );
    }

    #[test]
    fn messages_are_checked_against_meta_s_limits() {
        let reply = |title: &str, payload: &str| QuickReply {
            content_type: "text".into(),
            title: title.into(),
            payload: payload.into(),
        };
        let ok = FollowUpMessage {
            text: "x".repeat(MAX_MESSAGE_TEXT_CHARS),
            quick_replies: vec![reply(&"t".repeat(20), &"p".repeat(1000)); 13],
        };
        assert_eq!(ok.check(), Ok(()));
        let bad = [
            FollowUpMessage {
                text: "x".repeat(2000),
                quick_replies: vec![],
            },
            FollowUpMessage {
                text: " ".into(),
                quick_replies: vec![],
            },
            FollowUpMessage {
                quick_replies: vec![reply("t", "p"); 14],
                ..ok.clone()
            },
            FollowUpMessage {
                quick_replies: vec![reply(&"t".repeat(21), "p")],
                ..ok.clone()
            },
            FollowUpMessage {
                quick_replies: vec![reply("t", &"p".repeat(1001))],
                ..ok.clone()
            },
            FollowUpMessage {
                quick_replies: vec![QuickReply {
                    content_type: "user_email".into(),
                    ..reply("t", "p")
                }],
                ..ok.clone()
            },
        ];
        for message in bad {
            assert!(message.check().is_err(), "{message:?}");
        }
        assert_eq!(
            ok.to_graph()["quick_replies"][0]["content_type"],
            serde_json::json!("text")
        );
        assert!(
            FollowUpMessage {
                text: "hi".into(),
                quick_replies: vec![]
            }
            .to_graph()
            .get("quick_replies")
            .is_none()
        );
    }

    #[test]
    fn idempotency_keys_and_request_hashes() {
        assert!(is_valid_idempotency_key("order-42 retry"));
        assert!(!is_valid_idempotency_key(""));
        assert!(!is_valid_idempotency_key(&"k".repeat(256)));
        assert!(!is_valid_idempotency_key("tab\there"));
        assert!(!is_valid_idempotency_key("é"));
        let m = FollowUpMessage {
            text: "hi".into(),
            quick_replies: vec![],
        };
        let other = FollowUpMessage {
            text: "hello".into(),
            quick_replies: vec![],
        };
        assert_eq!(request_hash("1", &m), request_hash("1", &m));
        assert_ne!(request_hash("1", &m), request_hash("2", &m));
        assert_ne!(request_hash("1", &m), request_hash("1", &other));
        assert_ne!(
            idempotency_key_hash("p", "k"),
            idempotency_key_hash("q", "k")
        );
    }

    #[test]
    fn outcomes_end_the_lease_and_record_what_happened() {
        let mut f = FollowUp::queued(
            "p",
            "1",
            "fu_1",
            FollowUpMessage {
                text: "hi".into(),
                quick_replies: vec![],
            },
            T0,
        );
        f.lease_owner = Some("me".into());
        f.lease_until = Some(T0 + 10);
        assert!(!f.claimable(T0 + 5));
        assert!(f.claimable(T0 + 10));
        let sent = FollowUpOutcome::Sent {
            message_id: "m1".into(),
        }
        .apply(f.clone(), T0 + 6);
        assert_eq!(
            (sent.state, sent.message_id.as_deref(), sent.sent_at),
            (FollowUpState::Sent, Some("m1"), Some(T0 + 6))
        );
        assert!(sent.lease_owner.is_none() && !sent.claimable(T0 + 100));
        let retry = FollowUpOutcome::Retry.apply(f.clone(), T0 + 6);
        assert!(retry.claimable(T0 + 6));
        let failed = FollowUpOutcome::Failed {
            reason: "opted_out".into(),
        }
        .apply(f, T0 + 7);
        assert_eq!(failed.reason.as_deref(), Some("opted_out"));
        assert_eq!(failed.state.as_str(), "failed");
    }

    proptest! {
        /// The window's boundary, for any last message and any clock skew: allowed exactly when
        /// `now` is before the end; the end never lies beyond `now` + the window (a future
        /// timestamp cannot stretch it) nor beyond the last message + the window.
        #[test]
        fn the_window_boundary_holds_for_any_time_and_skew(
            last in 0i64..4_000_000_000_000,
            offset in -10 * HOUR_MS..10 * 24 * HOUR_MS,
            tag in any::<bool>(),
        ) {
            let now = last + offset;
            let window = if tag { HUMAN_AGENT_WINDOW_MS } else { STANDARD_WINDOW_MS };
            let result = guard(Some(&person(Some(last))), now, tag);
            let start = last.min(now);
            match result {
                Ok(allowed) => {
                    prop_assert!(now < allowed.window_ends_at);
                    prop_assert!(allowed.window_ends_at <= now + window);
                    prop_assert!(allowed.window_ends_at <= last + window);
                    let tagged = allowed.delivery == Delivery::HumanAgent;
                    prop_assert_eq!(tagged, now >= start + STANDARD_WINDOW_MS);
                    prop_assert!(tag || !tagged);
                }
                Err(Refusal::OutsideWindow { window_ended_at }) => {
                    prop_assert!(now >= start + window);
                    prop_assert_eq!(window_ended_at, start + window);
                }
                Err(other) => prop_assert!(false, "unexpected refusal {:?}", other),
            }
        }
    }
}
