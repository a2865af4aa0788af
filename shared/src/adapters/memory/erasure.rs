//! In-memory twin of the erasure store, over the in-memory opt-in and login stores.

use crate::adapters::memory::logins::MemoryLoginStore;
use crate::adapters::memory::opt_ins::MemoryOptInStore;
use crate::adapters::memory::sync::lock;
use crate::domain::erasure::{DeletionRecord, PersonItems};
use crate::domain::opt_in::Millis;
use crate::ports::erasure::ErasureStore;
use crate::ports::error::PortResult;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// In-memory [`ErasureStore`] over the in-memory opt-in and login stores.
pub struct MemoryErasure {
    pub opt_ins: Arc<MemoryOptInStore>,
    pub logins: Arc<MemoryLoginStore>,
    records: Mutex<HashMap<String, DeletionRecord>>,
}

impl MemoryErasure {
    pub fn new(opt_ins: Arc<MemoryOptInStore>, logins: Arc<MemoryLoginStore>) -> Self {
        Self {
            opt_ins,
            logins,
            records: Mutex::default(),
        }
    }
}

#[async_trait]
impl ErasureStore for MemoryErasure {
    async fn erase(&self, person: &PersonItems, now: Millis) -> PortResult<u32> {
        self.opt_ins.check()?;
        let mut n = self
            .logins
            .remove_person(&person.page_id, &person.asid, None);
        for known in &person.opt_ins {
            lock(&self.opt_ins.erased).insert(known.marker.clone(), now);
            n += self.opt_ins.remove(&known.key);
            n += self
                .logins
                .remove_person(&person.page_id, &person.asid, Some(&known.key));
        }
        Ok(n)
    }

    async fn erased_at(&self, marker: &str) -> PortResult<Option<Millis>> {
        self.opt_ins.check()?;
        Ok(lock(&self.opt_ins.erased).get(marker).copied())
    }

    async fn put_deletion_record(&self, record: &DeletionRecord) -> PortResult<DeletionRecord> {
        self.opt_ins.check()?;
        Ok(lock(&self.records)
            .entry(record.confirmation_code.clone())
            .or_insert_with(|| record.clone())
            .clone())
    }

    async fn get_deletion_record(&self, code: &str) -> PortResult<Option<DeletionRecord>> {
        self.opt_ins.check()?;
        Ok(lock(&self.records).get(code).cloned())
    }
}
