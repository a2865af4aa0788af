//! In-memory twin of the follow-up store: the same conditions as the DynamoDB adapter (created
//! once with its key record, claimed while queued and unleased, finished by the lease owner), under
//! one lock so that concurrent calls behave like conditional writes.

use crate::adapters::memory::sync::lock;
use crate::domain::follow_up::{FollowUp, FollowUpKey, FollowUpOutcome, IdempotencyRecord};
use crate::domain::opt_in::Millis;
use crate::ports::error::{PortError, PortResult};
use crate::ports::follow_ups::{CreatedFollowUp, FollowUpChange, FollowUpStore};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
struct Items {
    follow_ups: HashMap<FollowUpKey, FollowUp>,
    keys: HashMap<String, IdempotencyRecord>,
}

/// In-memory [`FollowUpStore`]; `fail` makes every call fail.
#[derive(Default)]
pub struct MemoryFollowUps {
    items: Mutex<Items>,
    pub fail: AtomicBool,
}

impl MemoryFollowUps {
    /// Every follow-up stored, in no particular order.
    pub fn all(&self) -> Vec<FollowUp> {
        lock(&self.items).follow_ups.values().cloned().collect()
    }

    /// How many idempotency records are stored.
    pub fn key_count(&self) -> usize {
        lock(&self.items).keys.len()
    }

    /// Change a stored follow-up as a test needs (e.g. age its lease).
    pub fn edit(&self, key: &FollowUpKey, f: impl FnOnce(&mut FollowUp)) {
        if let Some(item) = lock(&self.items).follow_ups.get_mut(key) {
            f(item);
        }
    }

    fn check(&self) -> PortResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(PortError::new("memory-follow-ups", "injected failure"))
        } else {
            Ok(())
        }
    }

    /// Apply `change` to the follow-up at `key` when `allowed` holds, as a conditional write.
    fn change(
        &self,
        key: &FollowUpKey,
        allowed: impl FnOnce(&FollowUp) -> bool,
        change: impl FnOnce(FollowUp) -> FollowUp,
    ) -> PortResult<FollowUpChange> {
        self.check()?;
        let mut items = lock(&self.items);
        let Some(item) = items.follow_ups.get_mut(key) else {
            return Ok(FollowUpChange::Refused(None));
        };
        if !allowed(item) {
            return Ok(FollowUpChange::Refused(Some(Box::new(item.clone()))));
        }
        *item = change(item.clone());
        Ok(FollowUpChange::Done(Box::new(item.clone())))
    }
}

#[async_trait]
impl FollowUpStore for MemoryFollowUps {
    async fn erase_person(&self, page_id: &str, asid: &str) -> PortResult<u32> {
        self.check()?;
        let mut items = lock(&self.items);
        let before = items.follow_ups.len();
        items
            .follow_ups
            .retain(|k, _| !(k.page_id == page_id && k.asid == asid));
        Ok(u32::try_from(before - items.follow_ups.len()).unwrap_or(u32::MAX))
    }

    async fn create_follow_up(
        &self,
        follow_up: &FollowUp,
        idempotency: Option<&IdempotencyRecord>,
        now: Millis,
    ) -> PortResult<CreatedFollowUp> {
        self.check()?;
        let mut items = lock(&self.items);
        if let Some(record) = idempotency
            && let Some(existing) = items.keys.get(&record.key_hash)
            && existing.live(now)
        {
            return Ok(CreatedFollowUp::KeyTaken(Some(existing.clone())));
        }
        if items.follow_ups.contains_key(&follow_up.key()) {
            return Err(PortError::new("memory-follow-ups", "follow-up id taken"));
        }
        if let Some(record) = idempotency {
            items.keys.insert(record.key_hash.clone(), record.clone());
        }
        items.follow_ups.insert(follow_up.key(), follow_up.clone());
        Ok(CreatedFollowUp::Created)
    }

    async fn idempotency_record(
        &self,
        key_hash: &str,
        now: Millis,
    ) -> PortResult<Option<IdempotencyRecord>> {
        self.check()?;
        Ok(lock(&self.items)
            .keys
            .get(key_hash)
            .filter(|r| r.live(now))
            .cloned())
    }

    async fn get_follow_up(&self, key: &FollowUpKey) -> PortResult<Option<FollowUp>> {
        self.check()?;
        Ok(lock(&self.items).follow_ups.get(key).cloned())
    }

    async fn claim_follow_up(
        &self,
        key: &FollowUpKey,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<FollowUpChange> {
        self.change(
            key,
            |item| item.claimable(now),
            |mut item| {
                item.lease_owner = Some(owner.to_owned());
                item.lease_until = Some(lease_until);
                item.attempts = item.attempts.saturating_add(1);
                item.updated_at = now;
                item
            },
        )
    }

    async fn finish_follow_up(
        &self,
        key: &FollowUpKey,
        owner: &str,
        outcome: &FollowUpOutcome,
        now: Millis,
    ) -> PortResult<FollowUpChange> {
        self.change(
            key,
            |item| {
                item.state == crate::domain::follow_up::FollowUpState::Queued
                    && item.lease_owner.as_deref() == Some(owner)
            },
            |item| outcome.apply(item, now),
        )
    }
}
