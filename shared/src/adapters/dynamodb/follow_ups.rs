//! [`FollowUpStore`] on DynamoDB: FOLLOWUP items and `Idempotency-Key` records in the one table
//! (layout in [`crate::adapters::dynamodb::table`]). Semantics match
//! [`crate::adapters::memory::follow_ups::MemoryFollowUps`]:
//!
//! - a person's follow-ups share one partition (`FOLLOWUP#{page}#{asid}`), one item per id;
//! - a follow-up and its key record are one `TransactWriteItems` of two conditional puts (the
//!   follow-up `attribute_not_exists(pk)`, the record the same or older than 24 hours), so two
//!   concurrent requests with one key create one follow-up;
//! - the claim is `state = queued AND` no live lease; the finish is `state = queued AND
//!   lease_owner = :owner`: queued → sent | failed only from queued, only by the lease owner.

use crate::adapters::aws::port_error;
use crate::adapters::dynamodb::codec::{Expr, Item, SERVICE, decode, key, n, s};
use crate::adapters::dynamodb::handle::{PutNew, Table};
use crate::adapters::dynamodb::table;
use crate::domain::follow_up::{
    FOLLOW_UP_RETENTION_MS, FollowUp, FollowUpKey, FollowUpOutcome, FollowUpState,
    IDEMPOTENCY_WINDOW_MS, IdempotencyRecord,
};
use crate::domain::opt_in::Millis;
use crate::ports::error::{PortError, PortResult};
use crate::ports::follow_ups::{CreatedFollowUp, FollowUpChange, FollowUpStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

/// The DynamoDB follow-up store.
#[derive(Debug, Clone)]
pub struct DynamoFollowUpStore {
    db: Table,
}

fn follow_up_key(k: &FollowUpKey) -> Item {
    key(
        table::follow_up_pk(&k.page_id, &k.asid),
        &table::follow_up_sk(&k.id),
    )
}

fn encode<T: serde::Serialize>(value: &T, what: &str) -> PortResult<Item> {
    dynamo::to_item(value)
        .map_err(|e| PortError::new(SERVICE, format!("cannot encode {what}: {e}")))
}

fn follow_up_item(follow_up: &FollowUp) -> PortResult<Item> {
    let mut item = encode(follow_up, "the follow-up")?;
    item.extend(follow_up_key(&follow_up.key()));
    item.insert(
        table::EXPIRES_AT.to_owned(),
        n((follow_up.created_at + FOLLOW_UP_RETENTION_MS) / 1000),
    );
    Ok(item)
}

fn idempotency_item(record: &IdempotencyRecord) -> PortResult<Item> {
    let mut item = encode(record, "the idempotency record")?;
    item.extend(key(
        table::idempotency_pk(&record.key_hash),
        table::IDEMPOTENCY_SK,
    ));
    item.insert(
        table::EXPIRES_AT.to_owned(),
        n((record.created_at + IDEMPOTENCY_WINDOW_MS) / 1000),
    );
    Ok(item)
}

fn build_error(op: &str, e: impl std::fmt::Display) -> PortError {
    PortError::new(SERVICE, format!("{op}: {e}"))
}

impl DynamoFollowUpStore {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            db: Table::new(client, table_name),
        }
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), table_name)
    }

    /// One conditional update of a follow-up: `Done(new item)` or `Refused(current item)`.
    async fn update(&self, k: &FollowUpKey, op: &str, expr: Expr) -> PortResult<FollowUpChange> {
        match self.db.update(follow_up_key(k), expr, op).await? {
            Ok(item) => Ok(FollowUpChange::Done(Box::new(decode(item, "follow-up")?))),
            Err(refused) => {
                let current = match refused {
                    Some(item) => Some(decode(item, "follow-up")?),
                    None => self.get_follow_up(k).await?,
                };
                Ok(FollowUpChange::Refused(current.map(Box::new)))
            }
        }
    }
}

/// `#state = :queued` and, with `owner`, `#lease_owner = :owner`, else no live lease at `now`.
fn queued_condition(e: &mut Expr, owner: Option<&str>, now: Millis) -> String {
    let state = e.name("state");
    let queued = e.value("queued", s(FollowUpState::Queued.as_str()));
    let lease = match owner {
        Some(owner) => {
            let lo = e.name("lease_owner");
            let who = e.value("owner", s(owner));
            format!("{lo} = {who}")
        }
        None => {
            let lu = e.name("lease_until");
            let now = e.value("now", n(now));
            format!("(attribute_not_exists({lu}) OR {lu} <= {now})")
        }
    };
    format!("{state} = {queued} AND {lease}")
}

#[async_trait]
impl FollowUpStore for DynamoFollowUpStore {
    async fn erase_person(&self, page_id: &str, asid: &str) -> PortResult<u32> {
        let pk = table::follow_up_pk(page_id, asid);
        let mut deleted = 0;
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .db
                .client
                .query()
                .table_name(&self.db.name)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", table::PK)
                .expression_attribute_values(":pk", s(pk.clone()))
                .projection_expression("#pk, #sk")
                .expression_attribute_names("#sk", table::SK)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_error(SERVICE, "erase_person (query)", &e))?;
            for item in page.items() {
                self.db
                    .client
                    .delete_item()
                    .table_name(&self.db.name)
                    .set_key(Some(item.clone()))
                    .send()
                    .await
                    .map_err(|e| port_error(SERVICE, "erase_person (delete)", &e))?;
                deleted += 1;
            }
            match page.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => return Ok(deleted),
            }
        }
    }

    async fn create_follow_up(
        &self,
        follow_up: &FollowUp,
        idempotency: Option<&IdempotencyRecord>,
        now: Millis,
    ) -> PortResult<CreatedFollowUp> {
        let op = "create_follow_up";
        let item = follow_up_item(follow_up)?;
        let Some(record) = idempotency else {
            return match self.db.put_new(item, op).await? {
                PutNew::Stored => Ok(CreatedFollowUp::Created),
                PutNew::Exists(_) => Err(build_error(op, "the follow-up id is taken")),
            };
        };
        let put_follow_up = Put::builder()
            .table_name(&self.db.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", table::PK)
            .build()
            .map_err(|e| build_error(op, e))?;
        // A record older than the window counts as absent (the TTL deletes it late).
        let put_key = Put::builder()
            .table_name(&self.db.name)
            .set_item(Some(idempotency_item(record)?))
            .condition_expression("attribute_not_exists(#pk) OR #created_at <= :cutoff")
            .expression_attribute_names("#pk", table::PK)
            .expression_attribute_names("#created_at", "created_at")
            .expression_attribute_values(":cutoff", n(now - IDEMPOTENCY_WINDOW_MS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| build_error(op, e))?;
        let result = self
            .db
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_follow_up).build())
            .transact_items(TransactWriteItem::builder().put(put_key).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(CreatedFollowUp::Created),
            Err(err) => err,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        {
            let reasons = cancelled.cancellation_reasons();
            if let Some(refused) = reasons
                .get(1)
                .filter(|r| r.code() == Some("ConditionalCheckFailed"))
            {
                let current = match refused.item() {
                    Some(item) => Some(decode(item.clone(), "idempotency record")?),
                    None => self.idempotency_record(&record.key_hash, now).await?,
                };
                return Ok(CreatedFollowUp::KeyTaken(current));
            }
        }
        Err(port_error(SERVICE, op, &err))
    }

    async fn idempotency_record(
        &self,
        key_hash: &str,
        now: Millis,
    ) -> PortResult<Option<IdempotencyRecord>> {
        let stored = self
            .db
            .get(
                key(table::idempotency_pk(key_hash), table::IDEMPOTENCY_SK),
                "idempotency_record",
            )
            .await?;
        let record: Option<IdempotencyRecord> = stored
            .map(|item| decode(item, "idempotency record"))
            .transpose()?;
        Ok(record.filter(|r| r.live(now)))
    }

    async fn get_follow_up(&self, k: &FollowUpKey) -> PortResult<Option<FollowUp>> {
        let stored = self.db.get(follow_up_key(k), "get_follow_up").await?;
        stored.map(|item| decode(item, "follow-up")).transpose()
    }

    async fn claim_follow_up(
        &self,
        k: &FollowUpKey,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<FollowUpChange> {
        let mut e = Expr::default();
        e.condition = queued_condition(&mut e, None, now);
        // The attempt is counted with the claim, as for an opt-in.
        let add = format!("ADD {} {}", e.name("attempts"), e.value("one", n(1)));
        let lease = [
            ("lease_owner", s(owner)),
            ("lease_until", n(lease_until)),
            ("updated_at", n(now)),
        ];
        e.set_update(&lease, &[], &add);
        self.update(k, "claim_follow_up", e).await
    }

    async fn finish_follow_up(
        &self,
        k: &FollowUpKey,
        owner: &str,
        outcome: &FollowUpOutcome,
        now: Millis,
    ) -> PortResult<FollowUpChange> {
        let mut e = Expr::default();
        e.condition = queued_condition(&mut e, Some(owner), now);
        let mut set: Vec<(&str, AttributeValue)> = match outcome {
            FollowUpOutcome::Sent { message_id } => vec![
                ("state", s(FollowUpState::Sent.as_str())),
                ("message_id", s(message_id)),
                ("sent_at", n(now)),
            ],
            FollowUpOutcome::Failed { reason } => vec![
                ("state", s(FollowUpState::Failed.as_str())),
                ("reason", s(reason)),
                ("failed_at", n(now)),
            ],
            FollowUpOutcome::Retry => vec![],
        };
        set.push(("updated_at", n(now)));
        e.set_update(&set, &["lease_owner", "lease_until"], "");
        self.update(k, "finish_follow_up", e).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::follow_up::FollowUpMessage;

    #[test]
    fn items_carry_their_keys_and_ttl() {
        let f = FollowUp::queued(
            "p",
            "42",
            "fu_1",
            FollowUpMessage {
                text: "hi".into(),
                quick_replies: vec![],
            },
            1_000_000,
        );
        let item = follow_up_item(&f).unwrap();
        assert_eq!(item[table::PK], s("FOLLOWUP#p#42"));
        assert_eq!(item[table::SK], s("FOLLOWUP#fu_1"));
        assert_eq!(
            item[table::EXPIRES_AT],
            n((1_000_000 + FOLLOW_UP_RETENTION_MS) / 1000)
        );
        assert_eq!(decode::<FollowUp>(item, "follow-up").unwrap(), f);
    }

    #[test]
    fn the_finish_condition_needs_queued_and_the_owner() {
        let mut e = Expr::default();
        let c = queued_condition(&mut e, Some("me"), 5);
        assert_eq!(c, "#state = :queued AND #lease_owner = :owner");
        let mut e = Expr::default();
        let c = queued_condition(&mut e, None, 5);
        assert_eq!(
            c,
            "#state = :queued AND (attribute_not_exists(#lease_until) OR #lease_until <= :now)"
        );
    }
}
