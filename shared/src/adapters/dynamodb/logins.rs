//! [`LoginStore`] on DynamoDB: LOGIN items, their login_id link items and login states, in the
//! same table as the opt-ins (layout in [`crate::adapters::dynamodb::table`]). Semantics match
//! [`crate::adapters::memory::logins::MemoryLoginStore`].
//!
//! - A LOGIN and its link item are written in one `TransactWriteItems`, each conditional on no
//!   newer login being stored (`attribute_not_exists(pk) OR last_login_at <= :now`).
//! - A login state is created with `attribute_not_exists(pk)` and consumed with a conditional
//!   `DeleteItem` (`attribute_exists(pk) AND expires_at_ms > :now`): single use by construction.

use crate::adapters::aws::port_error;
use crate::adapters::dynamodb::codec::{Item, SERVICE, decode, key, n, refused_by_condition, s};
use crate::adapters::dynamodb::handle::{PutNew, Table};
use crate::adapters::dynamodb::table;
use crate::domain::login::{Login, LoginLink, LoginRecorded, LoginState, StateConsumed};
use crate::domain::opt_in::{Millis, OptInKey};
use crate::ports::error::{PortError, PortResult};
use crate::ports::logins::LoginStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;
use std::collections::HashMap;

/// The DynamoDB login store.
#[derive(Debug, Clone)]
pub struct DynamoLoginStore {
    pub(super) db: Table,
}

/// The TTL (epoch seconds) of LOGIN and link items.
fn login_expires_at(last_login_at: Millis) -> i64 {
    (last_login_at + table::LOGIN_RETENTION_MS) / 1000
}

/// One conditional `Update` of a transaction: `SET` the given attributes (`login_at` and `due_at`
/// only if absent: the first login, the first grant still waiting for its opt-in), `REMOVE`
/// `remove`, unless a newer login is stored.
fn login_update(
    item_key: Item,
    table_name: &str,
    set: &[(&str, AttributeValue)],
    remove: &[&str],
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
        if *attr == "login_at" || *attr == table::DUE_AT {
            clauses.push(format!("#{attr} = if_not_exists(#{attr}, :{attr})"));
        } else {
            clauses.push(format!("#{attr} = :{attr}"));
        }
    }
    let mut update = format!("SET {}", clauses.join(", "));
    if !remove.is_empty() {
        let names_removed: Vec<String> = remove
            .iter()
            .map(|attr| {
                names.insert(format!("#{attr}"), (*attr).to_owned());
                format!("#{attr}")
            })
            .collect();
        update.push_str(&format!(" REMOVE {}", names_removed.join(", ")));
    }
    Update::builder()
        .table_name(table_name)
        .set_key(Some(item_key))
        .update_expression(update)
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
            db: Table::new(client, table_name),
        }
    }

    /// Over one SDK config (clients are cheap and share the connection pool).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), table_name)
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
        if let Some(user_ref) = &login.user_ref {
            set.push(("user_ref", s(user_ref.as_str())));
        }
        // A granted login with a known login_id waits for its opt-in (sparse due-index entry);
        // a declined one does not.
        let mut remove: Vec<&str> = Vec::new();
        if login.awaits_opt_in() {
            set.push((table::DUE_SHARD, s(table::login_wait_shard(&login.asid))));
            set.push((table::DUE_AT, n(now)));
        } else if login.permission == crate::domain::login::Permission::Declined {
            remove.extend([table::DUE_SHARD, table::DUE_AT]);
        }
        let mut items = vec![
            TransactWriteItem::builder()
                .update(login_update(
                    key(
                        table::login_pk(&login.page_id, &login.asid),
                        table::LOGIN_SK,
                    ),
                    &self.db.name,
                    &set,
                    &remove,
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
                        &self.db.name,
                        &link,
                        &[],
                        now,
                    )?)
                    .build(),
            );
        }
        let result = self
            .db
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
                    if refused_by_condition(cancelled) =>
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
        self.db
            .get(
                key(table::login_pk(page_id, asid), table::LOGIN_SK),
                "GetItem login",
            )
            .await?
            .map(|item| decode(item, "LOGIN"))
            .transpose()
    }

    async fn link_for(&self, opt_in: &OptInKey) -> PortResult<Option<LoginLink>> {
        self.db
            .get(
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
        match self.db.put_new(item, "PutItem login state").await? {
            PutNew::Stored => Ok(()),
            PutNew::Exists(_) => Err(PortError::new(
                SERVICE,
                "PutItem login state: a state with this hash already exists",
            )),
        }
    }

    async fn waiting_for_opt_in(&self, granted_by: Millis, limit: usize) -> PortResult<Vec<Login>> {
        let mut found: Vec<(Millis, Login)> = Vec::new();
        for shard in table::all_login_wait_shards() {
            let mut start: Option<Item> = None;
            loop {
                let out = self
                    .db
                    .client
                    .query()
                    .table_name(&self.db.name)
                    .index_name(table::DUE_INDEX)
                    .key_condition_expression("#shard = :shard AND #due_at <= :granted_by")
                    .expression_attribute_names("#shard", table::DUE_SHARD)
                    .expression_attribute_names("#due_at", table::DUE_AT)
                    .expression_attribute_values(":shard", s(shard.as_str()))
                    .expression_attribute_values(":granted_by", n(granted_by))
                    .scan_index_forward(true)
                    .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| port_error(SERVICE, "Query waiting logins", &e))?;
                for item in out.items.unwrap_or_default() {
                    let due_at = match item.get(table::DUE_AT) {
                        Some(AttributeValue::N(v)) => v.parse().unwrap_or(granted_by),
                        _ => granted_by,
                    };
                    found.push((due_at, decode(item, "LOGIN")?));
                }
                match out.last_evaluated_key {
                    Some(k) if !k.is_empty() && found.len() < limit => start = Some(k),
                    _ => break,
                }
            }
        }
        found.sort_by(|(a, la), (b, lb)| (a, &la.asid).cmp(&(b, &lb.asid)));
        found.truncate(limit);
        Ok(found.into_iter().map(|(_, l)| l).collect())
    }

    async fn stop_waiting_for_opt_in(
        &self,
        page_id: &str,
        asid: &str,
        alerted_at: Option<Millis>,
    ) -> PortResult<bool> {
        let request = self
            .db
            .client
            .update_item()
            .table_name(&self.db.name)
            .set_key(Some(key(table::login_pk(page_id, asid), table::LOGIN_SK)))
            .expression_attribute_names("#shard", table::DUE_SHARD)
            .expression_attribute_names("#due_at", table::DUE_AT);
        let request = match alerted_at {
            Some(at) => request
                .update_expression("SET #alerted = :at REMOVE #shard, #due_at")
                .condition_expression("attribute_exists(#shard) AND attribute_not_exists(#alerted)")
                .expression_attribute_names("#alerted", table::ORPHAN_ALERTED_AT)
                .expression_attribute_values(":at", n(at)),
            None => request
                .update_expression("REMOVE #shard, #due_at")
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", table::PK),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(port_error(SERVICE, "UpdateItem waiting login", &err)),
            },
        }
    }

    async fn consume_state(&self, state_hash: &str, now: Millis) -> PortResult<StateConsumed> {
        let item_key = key(table::login_state_pk(state_hash), table::LOGIN_STATE_SK);
        let result = self
            .db
            .client
            .delete_item()
            .table_name(&self.db.name)
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
                        None => self
                            .db
                            .get(item_key, "GetItem login state")
                            .await?
                            .is_some(),
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
            &[],
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
