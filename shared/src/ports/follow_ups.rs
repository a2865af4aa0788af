//! The follow-up store (issue 12 §2): FOLLOWUP items and `Idempotency-Key` records. Every change
//! is a conditional write: a follow-up is created only once (with its key record, in the same
//! write), claimed only while queued and unleased, and finished only by its lease owner.

use crate::domain::follow_up::{FollowUp, FollowUpKey, FollowUpOutcome, IdempotencyRecord};
use crate::domain::opt_in::Millis;
use crate::ports::error::PortResult;
use async_trait::async_trait;

/// What creating a follow-up did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreatedFollowUp {
    /// Stored (with its key record, when it came with one).
    Created,
    /// The `Idempotency-Key` is already taken by a live record (returned when it could be read):
    /// nothing was written.
    KeyTaken(Option<IdempotencyRecord>),
}

/// What a conditional change of a follow-up did: the item after it, or the refusal with the item
/// as it is (`None`: there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpChange {
    Done(Box<FollowUp>),
    Refused(Option<Box<FollowUp>>),
}

#[async_trait]
pub trait FollowUpStore: Send + Sync {
    /// Store a new queued follow-up and, when given, its idempotency record, in one write: both or
    /// neither. A live record of the same key refuses it ([`CreatedFollowUp::KeyTaken`]).
    async fn create_follow_up(
        &self,
        follow_up: &FollowUp,
        idempotency: Option<&IdempotencyRecord>,
        now: Millis,
    ) -> PortResult<CreatedFollowUp>;

    /// The live record of an `Idempotency-Key` hash, if any.
    async fn idempotency_record(
        &self,
        key_hash: &str,
        now: Millis,
    ) -> PortResult<Option<IdempotencyRecord>>;

    async fn get_follow_up(&self, key: &FollowUpKey) -> PortResult<Option<FollowUp>>;

    /// Take the follow-up for one send attempt: only while queued and unleased (or its lease
    /// expired); counts the attempt.
    async fn claim_follow_up(
        &self,
        key: &FollowUpKey,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<FollowUpChange>;

    /// End the claim with `outcome`: only while queued and leased by `owner`.
    async fn finish_follow_up(
        &self,
        key: &FollowUpKey,
        owner: &str,
        outcome: &FollowUpOutcome,
        now: Millis,
    ) -> PortResult<FollowUpChange>;

    /// Data deletion: delete every follow-up of the person (they hold the asid and the text).
    /// Idempotent. Returns how many were deleted.
    async fn erase_person(&self, page_id: &str, asid: &str) -> PortResult<u32>;
}
