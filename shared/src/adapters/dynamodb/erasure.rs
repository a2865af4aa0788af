//! [`ErasureStore`] on DynamoDB: deletes by key (idempotent; the PSID link and pending stop are
//! found from the deleted opt-in itself), markers and records with conditions.

use crate::adapters::aws::port_error;
use crate::adapters::dynamodb::codec::{Item, SERVICE, key, s};
use crate::adapters::dynamodb::handle::{PutNew, Table};
use crate::adapters::dynamodb::table;
use crate::domain::erasure::{DeletionRecord, KnownOptIn, PersonItems};
use crate::domain::opt_in::Millis;
use crate::ports::erasure::ErasureStore;
use crate::ports::error::{PortError, PortResult};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

#[derive(Debug, Clone)]
pub struct DynamoErasureStore {
    pub(super) db: Table,
}

impl DynamoErasureStore {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            db: Table::new(client, table_name),
        }
    }

    /// Delete one item; the item as it was (None when it did not exist).
    async fn delete(&self, pk: String, sk: &str) -> PortResult<Option<Item>> {
        let out = self
            .db
            .client
            .delete_item()
            .table_name(&self.db.name)
            .key(table::PK, s(pk))
            .key(table::SK, s(sk))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "erase", &e))?;
        Ok(out.attributes)
    }

    async fn deleted(&self, pk: String, sk: &str) -> PortResult<u32> {
        Ok(u32::from(self.delete(pk, sk).await?.is_some()))
    }

    /// Erase what is keyed by the PSID of a deleted opt-in item `old` (its PSID link and pending
    /// stop); how many existed. Also used by `record_opt_in` when it deletes its own write.
    pub(super) async fn erase_psid_items(
        &self,
        page_id: &str,
        old: Option<&Item>,
    ) -> PortResult<u32> {
        let Some(AttributeValue::S(psid)) = old.and_then(|i| i.get("psid")) else {
            return Ok(0);
        };
        Ok(self
            .deleted(table::psid_pk(page_id, psid), table::PSID_SK)
            .await?
            + self
                .deleted(
                    table::pending_stop_pk(page_id, psid),
                    table::PENDING_STOP_SK,
                )
                .await?)
    }

    /// Erase one opt-in and everything keyed by it; how many items existed.
    async fn erase_opt_in(&self, known: &KnownOptIn, now: Millis) -> PortResult<u32> {
        let key = &known.key;
        // The marker first: from now on an old webhook cannot recreate the opt-in.
        // `record_opt_in` relies on this order (marker, then the opt-in): see its doc comment.
        self.db
            .client
            .put_item()
            .table_name(&self.db.name)
            .item(table::PK, s(table::erased_pk(&known.marker)))
            .item(table::SK, s(table::ERASED_SK))
            .item("erased_at", AttributeValue::N(now.to_string()))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "erase", &e))?;
        // The PSID comes from the deleted item itself: once it is gone, no PSID link can be
        // written for it (link_psid requires the opt-in in the same transaction).
        let old = self.delete(table::opt_in_pk(key), table::OPTIN_SK).await?;
        let mut deleted = u32::from(old.is_some());
        deleted += self.erase_psid_items(&key.page_id, old.as_ref()).await?;
        deleted += self
            .deleted(table::login_link_pk(key), table::LOGIN_LINK_SK)
            .await?;
        Ok(deleted)
    }
}

#[async_trait]
impl ErasureStore for DynamoErasureStore {
    async fn erase(&self, person: &PersonItems, now: Millis) -> PortResult<u32> {
        let mut deleted = 0;
        for known in &person.opt_ins {
            deleted += self.erase_opt_in(known, now).await?;
        }
        deleted += self
            .deleted(
                table::login_pk(&person.page_id, &person.asid),
                table::LOGIN_SK,
            )
            .await?;
        Ok(deleted)
    }

    async fn erased_at(&self, marker: &str) -> PortResult<Option<Millis>> {
        let stored = self
            .db
            .get(key(table::erased_pk(marker), table::ERASED_SK), "erased_at")
            .await?;
        Ok(stored.and_then(|i| match i.get("erased_at") {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        }))
    }

    async fn put_deletion_record(&self, record: &DeletionRecord) -> PortResult<DeletionRecord> {
        let mut item = dynamo::to_item(record)
            .map_err(|e| PortError::new(SERVICE, format!("cannot encode the record: {e}")))?;
        item.insert(
            table::PK.into(),
            s(table::deletion_pk(&record.confirmation_code)),
        );
        item.insert(table::SK.into(), s(table::DELETION_SK));
        match self.db.put_new(item, "put_deletion_record").await? {
            PutNew::Stored => Ok(record.clone()),
            PutNew::Exists(_) => self
                .get_deletion_record(&record.confirmation_code)
                .await?
                .ok_or_else(|| PortError::new(SERVICE, "deletion record vanished")),
        }
    }

    async fn get_deletion_record(&self, code: &str) -> PortResult<Option<DeletionRecord>> {
        let stored = self
            .db
            .get(
                key(table::deletion_pk(code), table::DELETION_SK),
                "get_deletion_record",
            )
            .await?;
        match stored {
            Some(item) => dynamo::from_item(item)
                .map(Some)
                .map_err(|e| PortError::new(SERVICE, format!("bad deletion record: {e}"))),
            None => Ok(None),
        }
    }
}
