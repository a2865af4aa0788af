//! The opt-in store: durable opt-in records, every state change a conditional write, and the
//! outcomes of those writes as values (refusals included, with the refused item read in the same
//! round trip).

use crate::domain::opt_in::{Millis, OptIn, OptInKey, SendOutcome};
use crate::ports::error::PortResult;
use async_trait::async_trait;
use std::sync::Arc;

/// What creating an opt-in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The opt-in is new and stored.
    New,
    /// It already existed (a redelivered webhook); the stored copy is returned, unchanged.
    AlreadyExists(Box<OptIn>),
}

/// What recording an opt-in webhook must check, besides "no opt-in exists for the key".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentGuard {
    /// The person's erasure marker ([`crate::domain::erasure::erasure_marker`]): the opt-in is refused
    /// when the marker says the person's data was erased at or after the opt-in's time.
    pub erasure_marker: String,
    /// The webhook's own event time, when it carried one: only then can it be a new consent
    /// after an opt-out ([`crate::domain::opt_in::is_new_consent`]).
    pub event_at: Option<Millis>,
}

/// What recording an opt-in webhook did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// No opt-in existed: the first generation is stored.
    New,
    /// An opted-out one existed and this webhook is a new consent: the next generation is stored
    /// (the item as it now is, with the previous generation kept as evidence).
    Renewed(Box<OptIn>),
    /// One exists and this webhook does not replace it (a redelivery, or within the redelivery
    /// horizon of an opt-out); the stored copy, unchanged.
    AlreadyExists(Box<OptIn>),
    /// The person's data was erased at or after this opt-in's time: nothing is left written.
    Erased,
}

/// The outcome of a conditional state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transitioned {
    /// The condition held; the item as it is now.
    Done(Box<OptIn>),
    /// The condition was refused; the item as it is (None when it does not exist).
    Refused(Option<Box<OptIn>>),
}

impl Transitioned {
    pub fn is_done(&self) -> bool {
        matches!(self, Transitioned::Done(_))
    }
}

/// Durable opt-in records. Every state change is a conditional write.
#[async_trait]
pub trait OptInStore: Send + Sync {
    /// Store a new opt-in unless one exists for the same key.
    async fn create_opt_in(&self, opt_in: &OptIn) -> PortResult<Created>;

    /// Record an opt-in webhook, checking the person's erasure marker (`guard`), so a webhook racing
    /// a data deletion can never recreate the person's data (DynamoDB: the write, then the check,
    /// deleting its own write when erased; docs/decisions.md). When an
    /// opted-out opt-in exists and the webhook is a new consent
    /// ([`crate::domain::opt_in::is_new_consent`]), the next generation replaces it, conditional on the
    /// stored item still being that opted-out generation.
    async fn record_opt_in(&self, opt_in: &OptIn, guard: &ConsentGuard) -> PortResult<Recorded>;

    async fn get_opt_in(&self, key: &OptInKey) -> PortResult<Option<OptIn>>;

    /// OPTED_IN | RETRYING | SENDING-with-expired-lease → SENDING, only before the deadline.
    /// Increments `attempts` and sets the lease.
    async fn claim_for_send(
        &self,
        key: &OptInKey,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<Transitioned>;

    /// [`OptInStore::claim_for_send`], only when the stored opt-in is the incarnation recorded at
    /// `created_at` (the one the send job was queued for, [`crate::domain::jobs::SendJob::created_at`]).
    async fn claim_incarnation_for_send(
        &self,
        key: &OptInKey,
        created_at: Millis,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<Transitioned>;

    /// SENDING → the outcome's state, only by the lease owner. `SENT` records `message_id` and `sent_at`.
    async fn finish_send(
        &self,
        key: &OptInKey,
        owner: &str,
        outcome: &SendOutcome,
        now: Millis,
    ) -> PortResult<Transitioned>;

    /// Graph accepted a message whose `SENT` write was refused because the opt-in was opted out
    /// meanwhile (a send in flight): record `message_id`, `sent_at` and `sent_after_opt_out` on the
    /// OPTED_OUT item, so the send is evidence, never hidden. Not a state change. Conditional:
    /// `OPTED_OUT`, no message recorded yet, and `attempts` still equal to `attempt`, the count
    /// the sender's claim set (the opt-out removes the lease owner; an unchanged count proves no
    /// later claim, so the item was opted out while SENDING under this claim).
    async fn record_send_after_opt_out(
        &self,
        key: &OptInKey,
        attempt: u32,
        message_id: &str,
        sent_at: Millis,
    ) -> PortResult<Transitioned>;

    /// OPTED_IN | RETRYING | PAUSED | SENDING-with-expired-lease → EXPIRED, only at or after the deadline.
    async fn expire(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned>;

    /// Any non-terminal state → OPTED_OUT.
    async fn opt_out(&self, key: &OptInKey, source: &str, now: Millis) -> PortResult<Transitioned>;

    /// SENT | UNREACHABLE | EXPIRED, with no opt-out recorded yet → the same state, with
    /// `opted_out_at`, `opt_out_source` and `opted_out_from` set ([`crate::domain::opt_in::Event::OptOutAfterEnd`]):
    /// an opt-out after the opt-in ended is recorded once, and its evidence (`message_id`,
    /// `sent_at`) is kept.
    /// (`by`: the opt-out's source; `at`: when.)
    async fn opt_out_late(&self, key: &OptInKey, by: &str, at: Millis) -> PortResult<Transitioned>;

    /// Set `alerted_at` once (the condition makes concurrent alerters agree on one winner).
    async fn mark_alerted(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned>;

    /// Unsent opt-ins the sweep must look at by `due_by` (their next attention time, see
    /// [`crate::domain::attention`], is at or before it), from the sparse due index, most overdue first.
    async fn due_for_attention(&self, due_by: Millis, limit: usize) -> PortResult<Vec<OptIn>>;

    /// Watch this opt-in by the due index from `at`: put it in the index (or move its place) so
    /// the sweep looks at it then, only while it is not terminal. The one write that enters the
    /// index: a recorded opt-in is not in it ([`crate::domain::attention`] says when it must be).
    async fn watch_from(&self, key: &OptInKey, at: Millis) -> PortResult<Transitioned>;
}

/// Shared handles to the ports, as the handlers receive them.
pub type Store = Arc<dyn OptInStore>;
