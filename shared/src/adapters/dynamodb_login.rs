//! [`LoginStore`] on DynamoDB: LOGIN items, their login_id link items and login states, in the
//! same table as the opt-ins (layout in [`crate::table`]). Semantics match
//! [`crate::adapters::memory_login::MemoryLoginStore`].
//!
//! - A LOGIN and its link item are written in one `TransactWriteItems`, each conditional on no
//!   newer login being stored (`attribute_not_exists(pk) OR last_login_at <= :now`).
//! - A login state is created with `attribute_not_exists(pk)` and consumed with a conditional
//!   `DeleteItem` (`attribute_exists(pk) AND expires_at_ms > :now`): single use by construction.

use crate::aws::port_error;
use crate::domain::{Millis, OptInKey};
use crate::login::{Login, LoginLink, LoginRecorded, LoginState, LoginStore, StateConsumed};
use crate::ports::{PortError, PortResult};
use crate::table;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;
use std::collections::HashMap;

const SERVICE: &str = "dynamodb";

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB login store.
#[derive(Debug, Clone)]
pub struct DynamoLoginStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(table::PK.to_owned(), s(pk)), (table::SK.to_owned(), s(sk))])
}

fn decode<T: serde::de::DeserializeOwned>(item: Item, what: &str) -> PortResult<T> {
    dynamo::from_item(item)
        .map_err(|e| PortError::new(SERVICE, format!("stored item is not a valid {what}: {e}")))
}

/// The TTL (epoch seconds) of LOGIN and link items.
fn login_expires_at(last_login_at: Millis) -> i64 {
    (last_login_at + table::LOGIN_RETENTION_MS) / 1000
}

/// One conditional `Update` of a transaction: `SET` the given attributes, `login_at` only if absent,
/// unless a newer login is stored.
fn login_update(
    item_key: Item,
    table_name: &str,
    set: &[(&str, AttributeValue)],
    now: Millis,
) -> PortResult<Update> {
    let mut names = HashMap::from([
        ("#pk".to_owned(), table::PK.to_owned()),
        ("#last_login_at".to_owned(), "last_login_at".to_owned()),
    ]);
    let mut values = HashMap::from([(":now".to_owned(), n(now))]);
    let mut clauses = vec!["#last_login_at = :now".to_owned()];
    for (attr, value) in set {
        names.insert(format!("#{attr}"), (*attr).to_owned());
        values.insert(format!(":{attr}"), value.clone());
        if *attr == "login_at" {
            clauses.push("#login_at = if_not_exists(#login_at, :login_at)".to_owned());
        } else {
            clauses.push(format!("#{attr} = :{attr}"));
        }
    }
    Update::builder()
        .table_name(table_name)
        .set_key(Some(item_key))
        .update_expression(format!("SET {}", clauses.join(", ")))
        .condition_expression("attribute_not_exists(#pk) OR #last_login_at <= :now")
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| PortError::new(SERVICE, format!("cannot build the login update: {e}")))
}

impl DynamoLoginStore {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table: table_name.into(),
        }
    }

    /// Over one SDK config (clients are cheap and share the connection pool).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), table_name)
    }

    async fn get(&self, item_key: Item, op: &str) -> PortResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, op, &e))?;
        Ok(out.item)
    }

    async fn current_login(&self, page_id: &str, asid: &str) -> PortResult<Login> {
        self.get_login(page_id, asid)
            .await?
            .ok_or_else(|| PortError::new(SERVICE, "the LOGIN written is not readable"))
    }
}

#[async_trait]
impl LoginStore for DynamoLoginStore {
    async fn record_login(&self, login: &Login) -> PortResult<LoginRecorded> {
        let now = login.last_login_at;
        let expires = n(login_expires_at(now));
        let mut set = vec![
            ("page_id", s(login.page_id.as_str())),
            ("asid", s(login.asid.as_str())),
            ("permission", s(login.permission.as_str())),
            ("source", s(login.source.as_str())),
            ("login_at", n(login.login_at)),
            (table::EXPIRES_AT, expires.clone()),
        ];
        if let Some(name) = &login.first_name {
            set.push(("first_name", s(name.as_str())));
        }
        if let Some(login_id) = &login.expected_login_id {
            set.push(("expected_login_id", s(login_id.as_str())));
        }
        let mut items = vec![
            TransactWriteItem::builder()
                .update(login_update(
                    key(
                        table::login_pk(&login.page_id, &login.asid),
                        table::LOGIN_SK,
                    ),
                    &self.table,
                    &set,
                    now,
                )?)
                .build(),
        ];
        if let Some(opt_in) = login.opt_in_key() {
            let mut link = vec![
                ("asid", s(login.asid.as_str())),
                (table::EXPIRES_AT, expires),
            ];
            if let Some(name) = &login.first_name {
                link.push(("first_name", s(name.as_str())));
            }
            items.push(
                TransactWriteItem::builder()
                    .update(login_update(
                        key(table::login_link_pk(&opt_in), table::LOGIN_LINK_SK),
                        &self.table,
                        &link,
                        now,
                    )?)
                    .build(),
            );
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(LoginRecorded::Done(Box::new(
                self.current_login(&login.page_id, &login.asid).await?,
            ))),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                    if cancelled
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Ok(LoginRecorded::Stale(Box::new(
                        self.current_login(&login.page_id, &login.asid).await?,
                    )))
                }
                _ => Err(port_error(SERVICE, "TransactWriteItems login", &err)),
            },
        }
    }

    async fn get_login(&self, page_id: &str, asid: &str) -> PortResult<Option<Login>> {
        self.get(
            key(table::login_pk(page_id, asid), table::LOGIN_SK),
            "GetItem login",
        )
        .await?
        .map(|item| decode(item, "LOGIN"))
        .transpose()
    }

    async fn link_for(&self, opt_in: &OptInKey) -> PortResult<Option<LoginLink>> {
        self.get(
            key(table::login_link_pk(opt_in), table::LOGIN_LINK_SK),
            "GetItem login link",
        )
        .await?
        .map(|item| decode(item, "login link"))
        .transpose()
    }

    async fn put_state(&self, state: &LoginState) -> PortResult<()> {
        let mut item: Item = dynamo::to_item(state)
            .map_err(|e| PortError::new(SERVICE, format!("cannot encode the login state: {e}")))?;
        item.extend(key(
            table::login_state_pk(&state.state_hash),
            table::LOGIN_STATE_SK,
        ));
        // TTL rounds up so the item outlives its validity.
        item.insert(
            table::EXPIRES_AT.to_owned(),
            n((state.expires_at_ms + 999) / 1000),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", table::PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Err(PortError::new(
                    SERVICE,
                    "PutItem login state: a state with this hash already exists",
                )),
                _ => Err(port_error(SERVICE, "PutItem login state", &err)),
            },
        }
    }

    async fn consume_state(&self, state_hash: &str, now: Millis) -> PortResult<StateConsumed> {
        let item_key = key(table::login_state_pk(state_hash), table::LOGIN_STATE_SK);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item_key.clone()))
            .condition_expression("attribute_exists(#pk) AND #expires_at_ms > :now")
            .expression_attribute_names("#pk", table::PK)
            .expression_attribute_names("#expires_at_ms", "expires_at_ms")
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes {
                Some(item) if !item.is_empty() => {
                    Ok(StateConsumed::Consumed(decode(item, "login state")?))
                }
                _ => Err(PortError::new(
                    SERVICE,
                    "DeleteItem login state returned no attributes",
                )),
            },
            Err(err) => match err.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(refused)) => {
                    let exists = match &refused.item {
                        Some(item) => !item.is_empty(),
                        None => self.get(item_key, "GetItem login state").await?.is_some(),
                    };
                    Ok(if exists {
                        StateConsumed::Expired
                    } else {
                        StateConsumed::Unknown
                    })
                }
                _ => Err(port_error(SERVICE, "DeleteItem login state", &err)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_updates_keep_the_first_login_and_refuse_going_back_in_time() {
        let update = login_update(
            key("LOGIN#p#1".into(), table::LOGIN_SK),
            "t",
            &[("asid", s("1")), ("login_at", n(5))],
            5,
        )
        .unwrap();
        assert_eq!(
            update.update_expression(),
            "SET #last_login_at = :now, #asid = :asid, #login_at = if_not_exists(#login_at, :login_at)"
        );
        assert_eq!(
            update.condition_expression(),
            Some("attribute_not_exists(#pk) OR #last_login_at <= :now")
        );
        assert_eq!(login_expires_at(0), table::LOGIN_RETENTION_MS / 1000);
    }
}
