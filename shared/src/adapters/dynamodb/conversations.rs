//! [`ConversationStore`] on DynamoDB: PSID links and pending stops, in the opt-in table.

use crate::adapters::aws::port_error;
use crate::adapters::dynamodb::codec::{Item, SERVICE, key, n, refused_by_condition, s};
use crate::adapters::dynamodb::handle::PutNew;
use crate::adapters::dynamodb::opt_ins::DynamoOptInStore;
use crate::adapters::dynamodb::table;
use crate::domain::opt_in::{Millis, OptInKey};
use crate::ports::conversations::{ConversationStore, PendingStop};
use crate::ports::error::{PortError, PortResult};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

#[async_trait]
impl ConversationStore for DynamoOptInStore {
    async fn link_psid(&self, key: &OptInKey, psid: &str, at: Millis) -> PortResult<bool> {
        // One transaction: the opt-in's update requires it to exist, and the PSID link (the lookup
        // later messages use) is written only with it, so a link never outlives an erased opt-in.
        let update = Update::builder()
            .table_name(&self.db.name)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #psid = :psid, #last = :at, #updated = :at")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#psid", "psid")
            .expression_attribute_names("#last", "last_user_message_at")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#pk", table::PK)
            .expression_attribute_values(":psid", s(psid))
            .expression_attribute_values(":at", n(at))
            .build()
            .map_err(|e| PortError::new(SERVICE, format!("link_psid: {e}")))?;
        let link = Put::builder()
            .table_name(&self.db.name)
            .item(table::PK, s(table::psid_pk(&key.page_id, psid)))
            .item(table::SK, s(table::PSID_SK))
            .item("page_id", s(&key.page_id))
            .item("login_id", s(&key.login_id))
            .item(
                table::EXPIRES_AT,
                n((at + table::RETENTION_AFTER_DEADLINE_MS) / 1000),
            )
            .build()
            .map_err(|e| PortError::new(SERVICE, format!("link_psid: {e}")))?;
        let result = self
            .db
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(link).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                    if refused_by_condition(cancelled) =>
                {
                    Ok(false)
                }
                _ => Err(port_error(SERVICE, "link_psid", &err)),
            },
        }
    }

    async fn keep_pending_stop(&self, stop: &PendingStop) -> PortResult<bool> {
        let mut item: Item = dynamo::to_item(stop)
            .map_err(|e| PortError::new(SERVICE, format!("cannot encode the stop: {e}")))?;
        item.insert(
            table::PK.to_owned(),
            s(table::pending_stop_pk(&stop.page_id, &stop.psid)),
        );
        item.insert(table::SK.to_owned(), s(table::PENDING_STOP_SK));
        item.insert(
            table::EXPIRES_AT.to_owned(),
            n((stop.received_at + table::PENDING_STOP_RETENTION_MS) / 1000),
        );
        let put = self.db.put_new(item, "keep_pending_stop").await?;
        Ok(put == PutNew::Stored)
    }

    async fn pending_stop(&self, page_id: &str, psid: &str) -> PortResult<Option<PendingStop>> {
        let stored = self
            .db
            .get(
                key(
                    table::pending_stop_pk(page_id, psid),
                    table::PENDING_STOP_SK,
                ),
                "pending_stop",
            )
            .await?;
        stored
            .map(|item| {
                dynamo::from_item(item)
                    .map_err(|e| PortError::new(SERVICE, format!("bad pending stop: {e}")))
            })
            .transpose()
    }

    async fn clear_pending_stop(&self, page_id: &str, psid: &str) -> PortResult<()> {
        self.db
            .client
            .delete_item()
            .table_name(&self.db.name)
            .key(table::PK, s(table::pending_stop_pk(page_id, psid)))
            .key(table::SK, s(table::PENDING_STOP_SK))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "clear_pending_stop", &e))?;
        Ok(())
    }

    async fn opt_in_for_psid(&self, page_id: &str, psid: &str) -> PortResult<Option<OptInKey>> {
        let stored = self
            .db
            .get(
                key(table::psid_pk(page_id, psid), table::PSID_SK),
                "opt_in_for_psid",
            )
            .await?;
        Ok(stored.and_then(|item| match item.get("login_id") {
            Some(AttributeValue::S(login_id)) => Some(OptInKey::new(page_id, login_id)),
            _ => None,
        }))
    }
}
