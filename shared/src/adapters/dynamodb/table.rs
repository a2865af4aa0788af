//! The DynamoDB table layout, in one place. Every module that reads or writes the table uses these
//! names; template.yaml declares the same keys, index and TTL attribute (the local runner creates
//! the table from the template, so a mismatch fails the tests).
//!
//! | item          | pk                               | sk      |
//! |---------------|----------------------------------|---------|
//! | opt-in        | `OPTIN#{page_id}#{login_id}`     | `OPTIN` |
//! | PSID link     | `PSID#{page_id}#{psid}`          | `PSID`  |
//! | pending stop  | `STOP#{page_id}#{psid}`          | `STOP`  |
//! | erased opt-in | `ERASED#{keyed hash of the key}` | `ERASED` |
//! | deletion      | `DELETION#{confirmation code}`   | `DELETION` |
//! | login         | `LOGIN#{page_id}#{asid}`         | `LOGIN` |
//! | login link    | `LOGINID#{page_id}#{login_id}`   | `LOGINID` |
//! | login state   | `LOGINSTATE#{sha256 hex of state}` | `LOGINSTATE` |
//!
//! Login items ([`crate::domain::login`]): the LOGIN holds the serde fields of [`crate::domain::login::Login`]; the
//! link item (written in the same transaction, only when the expected login_id is known) holds
//! `asid`, `first_name`, `last_login_at`, so an opt-in finds its person with one consistent read; a
//! login state holds `return_to`, `created_at`, `expires_at_ms`. All three carry `expires_at`
//! (TTL): [`LOGIN_RETENTION_MS`] after the last login for LOGIN and link, the state's own expiry
//! for a state. No index is needed: every lookup is by key.
//! | Page state    | `PAGE#{page_id}`                 | `STATE` |
//! | drift day     | `PAGE#{page_id}`                 | `DRIFT#DAY` |
//! | drift status  | `PAGE#{page_id}`                 | `DRIFT#{check}` |
//!
//! A PSID link holds `page_id`, `login_id`, `expires_at`; it is written only in the transaction
//! that updates its opt-in under `attribute_exists` (so nothing re-links an erased opt-in). A
//! pending stop ([`crate::ports::conversations::PendingStop`]) is a stop request from a PSID no opt-in is linked
//! to yet: `page_id`, `psid`, `source`, `received_at`, `expires_at` ([`PENDING_STOP_RETENTION_MS`]);
//! put with `attribute_not_exists` (the first one is kept), applied and deleted when the PSID is
//! linked.
//!
//! Opt-in attributes are the serde names of [`crate::domain::opt_in::OptIn`] (timestamps in epoch ms), plus:
//! - `due_shard` (S): present only while the opt-in is unsent, not terminal, and **nothing else
//!   watches it** (no send job or deadline schedule does: [`crate::domain::attention`] has the
//!   invariant); the partition key of the sparse [`DUE_INDEX`], spread over [`DUE_SHARDS`] values
//!   so no partition runs hot. A recorded opt-in has none (no index write while the sender
//!   finishes it); `OptInStore::watch_from`, a PAUSED write and a park set it with `due_at`;
//!   every terminal write removes both;
//! - `due_at` (N): the sort key of [`DUE_INDEX`]: when the sweep must next look at the opt-in
//!   ([`crate::domain::attention`]); a sweep at `now` queries `due_at <= now` in every shard;
//! - `expires_at` (N, epoch **seconds**): DynamoDB TTL, [`RETENTION_AFTER_DEADLINE_MS`] after the deadline.
//!
//! Opt-in generations: the item keeps one key per (Page, login_id) for life. A new consent after
//! an opt-out ([`crate::domain::opt_in::is_new_consent`]) replaces the item with the next `generation` (N,
//! absent for the first), and the earlier generations travel on it in `previous_generations` (L of
//! M, oldest first): the evidence stays with the person's item, so a deletion erases it too.
//!
//! LOGIN items waiting for their opt-in share the sparse [`DUE_INDEX`] under their own partition
//! values ([`login_wait_shard`], `LOGINWAIT#0..7`, never queried by the opt-in sweep): a LOGIN with
//! permission granted and an expected login_id carries `due_shard` and `due_at` (N: when the
//! permission was first granted since the last check). The sweep queries
//! `due_at <= now − ORPHAN_LOGIN_ALERT_AFTER_MINUTES` in each of those shards, and removes both
//! attributes once the LOGIN is settled: its opt-in exists, or it was alerted (then
//! [`ORPHAN_ALERTED_AT`] records when, so a later login of the same person is not alerted again).
//! A declined login removes them too. No new index: the due index already has the right shape.
//!
//! Page state attributes are the serde names of [`crate::domain::page::PageState`]; the item has no
//! `due_shard` (it is not in the due index) and no TTL (it lives as long as the Page).

use crate::domain::opt_in::{Millis, OptInKey};

/// Follow-up messages (issue 12 §2), [`crate::adapters::dynamodb::follow_ups`]:
///
/// | item            | pk                                   | sk            |
/// |-----------------|--------------------------------------|---------------|
/// | follow-up       | `FOLLOWUP#{page_id}#{asid}`          | `FOLLOWUP#{id}` |
/// | idempotency key | `IDEMPOTENCY#{sha256 of page + key}` | `IDEMPOTENCY` |
///
/// A follow-up holds the serde fields of [`crate::domain::follow_up::FollowUp`] (the message as a
/// map) and `expires_at` ([`crate::domain::follow_up::FOLLOW_UP_RETENTION_MS`] after its
/// creation); an idempotency record those of [`crate::domain::follow_up::IdempotencyRecord`] and
/// `expires_at` 24 hours after its creation (readers also check `created_at`: the TTL deletes late).
/// A person's follow-ups share one partition, so a data deletion can find them with one `Query`.
pub const FOLLOW_UP_SK_PREFIX: &str = "FOLLOWUP#";
pub const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";

pub fn follow_up_pk(page_id: &str, asid: &str) -> String {
    format!("FOLLOWUP#{page_id}#{asid}")
}

pub fn follow_up_sk(id: &str) -> String {
    format!("{FOLLOW_UP_SK_PREFIX}{id}")
}

pub fn idempotency_pk(key_hash: &str) -> String {
    format!("IDEMPOTENCY#{key_hash}")
}

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const OPTIN_SK: &str = "OPTIN";
pub const DUE_INDEX: &str = "due-index";
pub const DUE_SHARD: &str = "due_shard";
pub const ALERT_AT: &str = "alert_at";
pub const DUE_AT: &str = "due_at";
pub const EXPIRES_AT: &str = "expires_at";
pub const DUE_SHARDS: u32 = 8;
/// Evidence is kept this long after the deadline, then DynamoDB's TTL removes the item.
pub const RETENTION_AFTER_DEADLINE_MS: Millis = 180 * 24 * 3_600_000;

pub const PSID_SK: &str = "PSID";
pub const ERASED_SK: &str = "ERASED";
pub const DELETION_SK: &str = "DELETION";

pub fn erased_pk(marker: &str) -> String {
    format!("ERASED#{marker}")
}

pub fn deletion_pk(code: &str) -> String {
    format!("DELETION#{code}")
}

pub fn psid_pk(page_id: &str, psid: &str) -> String {
    format!("PSID#{page_id}#{psid}")
}

pub const PENDING_STOP_SK: &str = "STOP";
/// A pending stop is kept this long: long after any opt-in it could concern has passed its
/// deadline (24 h, plus Meta's 36 h redelivery), short enough not to hoard PSIDs.
pub const PENDING_STOP_RETENTION_MS: Millis = 7 * 24 * 3_600_000;

pub fn pending_stop_pk(page_id: &str, psid: &str) -> String {
    format!("STOP#{page_id}#{psid}")
}

pub const LOGIN_SK: &str = "LOGIN";
pub const LOGIN_LINK_SK: &str = "LOGINID";
pub const LOGIN_STATE_SK: &str = "LOGINSTATE";
/// LOGIN and link items are kept this long after the person's last login.
pub const LOGIN_RETENTION_MS: Millis = 181 * 24 * 3_600_000;

pub fn login_pk(page_id: &str, asid: &str) -> String {
    format!("LOGIN#{page_id}#{asid}")
}

pub fn login_link_pk(key: &OptInKey) -> String {
    format!("LOGINID#{}#{}", key.page_id, key.login_id)
}

pub fn login_state_pk(state_hash: &str) -> String {
    format!("LOGINSTATE#{state_hash}")
}

pub const PAGE_STATE_SK: &str = "STATE";

/// The drift check's day claim (`day`, `claimed_at`): the sweep enqueues one check per day.
pub const DRIFT_DAY_SK: &str = "DRIFT#DAY";

/// The sort key of a drift check's last-known status (`failing` BOOL, `failing_since`,
/// `recovered_at`), in the Page's partition ([`crate::domain::drift::DriftCheck::as_str`]).
pub fn drift_sk(check: &str) -> String {
    format!("DRIFT#{check}")
}

/// The partition key of a Page's state item (whether the sender may send for it).
pub fn page_pk(page_id: &str) -> String {
    format!("PAGE#{page_id}")
}

pub fn opt_in_pk(key: &OptInKey) -> String {
    format!("OPTIN#{}#{}", key.page_id, key.login_id)
}

/// The due-index shard of an opt-in: stable, spread by a hash of the login_id.
pub fn due_shard(key: &OptInKey) -> String {
    // FNV-1a: tiny, stable across builds and platforms (std's hasher is not).
    let mut h: u32 = 0x811c_9dc5;
    for b in key.login_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("DUE#{}", h % DUE_SHARDS)
}

pub fn all_due_shards() -> impl Iterator<Item = String> {
    (0..DUE_SHARDS).map(|n| format!("DUE#{n}"))
}

/// When the orphan-login sweep alerted about a LOGIN (N, epoch ms).
pub const ORPHAN_ALERTED_AT: &str = "orphan_alerted_at";

/// The due-index partition of a LOGIN waiting for its opt-in: stable, spread by the asid.
pub fn login_wait_shard(asid: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in asid.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("LOGINWAIT#{}", h % DUE_SHARDS)
}

pub fn all_login_wait_shards() -> impl Iterator<Item = String> {
    (0..DUE_SHARDS).map(|n| format!("LOGINWAIT#{n}"))
}

pub fn expires_at_seconds(deadline_at: Millis) -> i64 {
    (deadline_at + RETENTION_AFTER_DEADLINE_MS) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let s = due_shard(&OptInKey::new("p", format!("login-{i}")));
            assert!(all_due_shards().any(|x| x == s));
            seen.insert(s);
        }
        assert_eq!(seen.len(), DUE_SHARDS as usize);
        assert_eq!(
            due_shard(&OptInKey::new("p", "x")),
            due_shard(&OptInKey::new("q", "x"))
        );
    }

    #[test]
    fn keys_and_ttl() {
        assert_eq!(opt_in_pk(&OptInKey::new("1", "ab")), "OPTIN#1#ab");
        assert_eq!(page_pk("1"), "PAGE#1");
        assert_eq!(expires_at_seconds(0), RETENTION_AFTER_DEADLINE_MS / 1000);
        assert_eq!(login_pk("1", "42"), "LOGIN#1#42");
        assert_eq!(login_link_pk(&OptInKey::new("1", "ab")), "LOGINID#1#ab");
        assert_eq!(login_state_pk("ff"), "LOGINSTATE#ff");
        assert_eq!(pending_stop_pk("1", "9"), "STOP#1#9");
    }

    #[test]
    fn login_wait_shards_never_meet_the_opt_in_shards() {
        for i in 0..50 {
            let shard = login_wait_shard(&format!("asid-{i}"));
            assert!(all_login_wait_shards().any(|s| s == shard));
            assert!(!all_due_shards().any(|s| s == shard));
        }
    }
}
