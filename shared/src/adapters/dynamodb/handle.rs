//! The one handle on the product's one DynamoDB table: the client and the table name every store
//! ([`crate::adapters::dynamodb::opt_ins`], `logins`, `erasure`) holds, and the conditional create
//! they all make.

use crate::adapters::aws::port_error;
use crate::adapters::dynamodb::codec::Expr;
use crate::adapters::dynamodb::codec::{Item, SERVICE, s};
use crate::adapters::dynamodb::table;
use crate::ports::error::PortError;
use crate::ports::error::PortResult;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

/// The table: one client (a cheap clone sharing the connection pool) and its name.
#[derive(Debug, Clone)]
pub struct Table {
    pub client: Client,
    pub name: String,
}

/// What a conditional create did.
#[derive(Debug, Clone, PartialEq)]
pub enum PutNew {
    /// No item had the key; this one is stored.
    Stored,
    /// An item with the key exists (returned with the refusal when DynamoDB sent it).
    Exists(Option<Item>),
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    /// The item at `key` (consistent read). `op` names the call in errors.
    pub async fn get(&self, key: Item, op: &str) -> PortResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, op, &e))?;
        Ok(out.item)
    }

    /// Put `item` unless an item with its key exists (`attribute_not_exists(pk)`), reading the
    /// existing item in the same round trip. `op` names the call in errors.
    pub async fn put_new(&self, item: Item, op: &str) -> PortResult<PutNew> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", table::PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutNew::Stored),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                    Ok(PutNew::Exists(refused.item.clone()))
                }
                _ => Err(port_error(SERVICE, op, &err)),
            },
        }
    }
}

/// What a conditional update did: the item after it, or the refusal with the item as it was
/// (`None` when DynamoDB did not send it: the item is missing, or the caller reads it).
pub type Updated = Result<Item, Option<Item>>;

impl Table {
    /// One conditional `UpdateItem` of `expr` at `key`, returning the new item, or the refused
    /// one in the same round trip. `op` names the call in errors.
    /// One conditional `UpdateItem` (as [`Table::update`]): `true` when the condition held and the
    /// item was written, `false` when DynamoDB refused it on the condition.
    pub async fn update_if(&self, key: Item, expr: Expr, op: &str) -> PortResult<bool> {
        Ok(self.update(key, expr, op).await?.is_ok())
    }

    pub async fn update(&self, key: Item, expr: Expr, op: &str) -> PortResult<Updated> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .update_expression(expr.update)
            .condition_expression(expr.condition)
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes.map(Ok).ok_or_else(|| {
                PortError::new(SERVICE, format!("{op}: UpdateItem returned no attributes"))
            }),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    Ok(Err(refused.item.clone()))
                }
                _ => Err(port_error(SERVICE, op, &err)),
            },
        }
    }
}

/// A query of one shard of the sparse due index, `#shard` and `:shard` bound: the sweep's due
/// reads and the Page's re-queue of paused opt-ins add their key condition, filter and paging.
pub fn due_shard_query(client: &Client, table_name: &str, shard: &str) -> QueryFluentBuilder {
    client
        .query()
        .table_name(table_name)
        .index_name(table::DUE_INDEX)
        .expression_attribute_names("#shard", table::DUE_SHARD)
        .expression_attribute_values(":shard", s(shard))
}
