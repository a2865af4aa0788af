//! [`OptInStore`] on DynamoDB.
//!
//! Every state change is one conditional `UpdateItem`/`PutItem`/`DeleteItem`. Recording an opt-in
//! webhook writes the first generation with a conditional `PutItem` and then reads the person's
//! erasure marker, deleting its own write when the marker erases it (why that is safe:
//! [`OptInStore::record_opt_in`] below); a new consent after an opt-out is one
//! `TransactWriteItems` that checks the marker and replaces the opted-out generation
//! conditionally. The conditions are derived from [`Event::sources`] and the lease rules of
//! [`Event`], so the state machine in [`crate::domain::opt_in`] is what the database enforces. The item layout (keys, sparse due index, TTL) is in
//! [`crate::adapters::dynamodb::table`]. Semantics match [`crate::adapters::memory::opt_ins::MemoryOptInStore`] exactly.
//!
//! A refused condition returns the item as it is, read in the same round trip with
//! `ReturnValuesOnConditionCheckFailure = ALL_OLD` (a consistent `GetItem` only when the write
//! returned no item, i.e. the item does not exist).

use crate::adapters::aws::port_error;
use crate::adapters::dynamodb::codec::{
    Expr, Item, LEASE, LEASE_AND_DUE, SERVICE, from_item, last_error_value, n, s, target_state,
};
use crate::adapters::dynamodb::erasure::DynamoErasureStore;
use crate::adapters::dynamodb::handle::{PutNew, Table, due_shard_query};
use crate::adapters::dynamodb::table;
use crate::domain::erasure::{erases, may_be_unchecked};
use crate::domain::opt_in::{
    Event, Millis, OptIn, OptInKey, REDELIVERY_HORIZON_MS, SendOutcome, State,
};
use crate::ports::erasure::ErasureStore;
use crate::ports::error::{PortError, PortResult};
use crate::ports::opt_ins::{ConsentGuard, Created, OptInStore, Recorded, Transitioned};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnConsumedCapacity, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

/// The DynamoDB opt-in store.
#[derive(Debug, Clone)]
pub struct DynamoOptInStore {
    pub(super) db: Table,
}

impl DynamoOptInStore {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            db: Table::new(client, table_name),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.db.name
    }

    pub(super) fn key(key: &OptInKey) -> Item {
        crate::adapters::dynamodb::codec::key(table::opt_in_pk(key), table::OPTIN_SK)
    }

    /// Run one conditional update: `Done(new item)` or `Refused(current item)`.
    pub(super) async fn update(
        &self,
        key: &OptInKey,
        op: &str,
        expr: Expr,
    ) -> PortResult<Transitioned> {
        match self.db.update(Self::key(key), expr, op).await? {
            Ok(item) => Ok(Transitioned::Done(Box::new(from_item(item)?))),
            Err(refused) => {
                let current = match refused {
                    Some(item) => Some(from_item(item)?),
                    None => self.get_opt_in(key).await?,
                };
                Ok(Transitioned::Refused(current.map(Box::new)))
            }
        }
    }
}

impl DynamoOptInStore {
    /// Whether the person's erasure marker (a strongly consistent read: it must see a marker
    /// written before it) erases the consent `opt_in`.
    async fn erased(&self, guard: &ConsentGuard, opt_in: &OptIn) -> PortResult<bool> {
        let erasure = DynamoErasureStore {
            db: self.db.clone(),
        };
        let erased_at = erasure.erased_at(&guard.erasure_marker).await?;
        Ok(erases(erased_at, opt_in.opted_in_at))
    }

    /// Delete the first generation `ours` of an erased person (and the PSID link and pending stop
    /// written for it meanwhile), whatever touched it since: the marker says this consent is
    /// erased. Conditional on it still being that generation (same `opted_in_at`, `created_at`,
    /// no `generation`): anything else is gone already or a later consent with its own check.
    async fn delete_erased(&self, ours: &OptIn) -> PortResult<()> {
        let result = self
            .db
            .client
            .delete_item()
            .table_name(&self.db.name)
            .set_key(Some(Self::key(&ours.key())))
            .condition_expression(
                "#opted_in_at = :opted_in_at AND #created_at = :created_at \
                 AND attribute_not_exists(#generation)",
            )
            .expression_attribute_names("#opted_in_at", "opted_in_at")
            .expression_attribute_names("#created_at", "created_at")
            .expression_attribute_names("#generation", "generation")
            .expression_attribute_values(":opted_in_at", n(ours.opted_in_at))
            .expression_attribute_values(":created_at", n(ours.created_at))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(out) => out.attributes,
            Err(err) => match err.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => return Ok(()),
                _ => return Err(port_error(SERVICE, "DeleteItem erased opt-in", &err)),
            },
        };
        let erasure = DynamoErasureStore {
            db: self.db.clone(),
        };
        erasure
            .erase_psid_items(&ours.page_id, old.as_ref())
            .await?;
        Ok(())
    }
}

/// The item of an opt-in as recorded: its serde fields plus keys and TTL, and no due-index
/// attributes: a new opt-in is watched by its send job and deadline schedule, and enters the due
/// index only when nothing else watches it ([`OptInStore::watch_from`], see
/// [`crate::domain::attention`]). A renewal replaces the whole item, so it leaves the index too.
fn to_item(opt_in: &OptIn) -> PortResult<Item> {
    let mut item: Item = dynamo::to_item(opt_in)
        .map_err(|e| PortError::new(SERVICE, format!("cannot encode the opt-in: {e}")))?;
    let key = opt_in.key();
    item.insert(table::PK.to_owned(), s(table::opt_in_pk(&key)));
    item.insert(table::SK.to_owned(), s(table::OPTIN_SK));
    item.insert(
        table::EXPIRES_AT.to_owned(),
        n(table::expires_at_seconds(opt_in.deadline_at)),
    );
    Ok(item)
}

/// The item of an opt-in watched by the due index from `due_at` (no due attributes when
/// terminal): what [`OptInStore::watch_from`] would leave, for tests and benchmarks that seed a
/// table in bulk (BatchWriteItem).
pub fn item_with_due_at(opt_in: &OptIn, due_at: Millis) -> PortResult<Item> {
    let mut item = to_item(opt_in)?;
    if !opt_in.state.is_terminal() {
        item.extend(watch_set(&opt_in.key(), due_at).map(|(k, v)| (k.to_owned(), v)));
    }
    Ok(item)
}

/// The attributes that put an opt-in in the sparse due index, looked at from `due_at`: its shard
/// (the index's partition key) and `due_at` (its sort key).
pub(super) fn watch_set(key: &OptInKey, due_at: Millis) -> [(&'static str, AttributeValue); 2] {
    [
        (table::DUE_SHARD, s(table::due_shard(key))),
        (table::DUE_AT, n(due_at)),
    ]
}

/// Rounds [`OptInStore::record_opt_in`] tries before giving up (the webhook then answers 503 and
/// Facebook redelivers).
const RECORD_ROUNDS: usize = 3;

/// The transaction item that refuses an opt-in dated at or before the person's erasure:
/// `attribute_not_exists(pk) OR erased_at < :opted_in_at` on the erasure marker.
fn erasure_check(
    table_name: &str,
    marker: &str,
    opted_in_at: Millis,
) -> PortResult<TransactWriteItem> {
    let check = ConditionCheck::builder()
        .table_name(table_name)
        .key(table::PK, s(table::erased_pk(marker)))
        .key(table::SK, s(table::ERASED_SK))
        .condition_expression("attribute_not_exists(#pk) OR #erased_at < :opted_in_at")
        .expression_attribute_names("#pk", table::PK)
        .expression_attribute_names("#erased_at", "erased_at")
        .expression_attribute_values(":opted_in_at", n(opted_in_at))
        .build()
        .map_err(|e| PortError::new(SERVICE, format!("cannot build the erasure check: {e}")))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// The next generation, replacing `previous` only while it is still that opted-out generation and
/// the opt-out is older than the redelivery horizon before `event_at` (the rule of
/// [`crate::domain::opt_in::is_new_consent`], enforced by the database), and unchanged since it was read
/// (`updated_at`), so nothing written meanwhile (a PSID link) is lost.
fn renewal_put(
    table_name: &str,
    renewed: &OptIn,
    previous: &OptIn,
    event_at: Option<Millis>,
) -> PortResult<TransactWriteItem> {
    let event_at = event_at.ok_or_else(|| PortError::new(SERVICE, "renewal without event time"))?;
    let cutoff = event_at.saturating_sub(REDELIVERY_HORIZON_MS);
    let generation = if previous.generation == 0 {
        "attribute_not_exists(#generation)"
    } else {
        "#generation = :generation"
    };
    let mut put = Put::builder()
        .table_name(table_name)
        .set_item(Some(to_item(renewed)?))
        // `opted_out_at` exists only once the person opted out (OPTED_OUT, or after the end).
        .condition_expression(format!(
            "#opted_out_at < :cutoff AND {generation} AND #updated_at = :updated_at"
        ))
        .expression_attribute_names("#opted_out_at", "opted_out_at")
        .expression_attribute_names("#generation", "generation")
        .expression_attribute_names("#updated_at", "updated_at")
        .expression_attribute_values(":cutoff", n(cutoff))
        .expression_attribute_values(":updated_at", n(previous.updated_at))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    if previous.generation != 0 {
        put = put.expression_attribute_values(":generation", n(previous.generation));
    }
    let put = put
        .build()
        .map_err(|e| PortError::new(SERVICE, format!("cannot build the renewal put: {e}")))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Record the state the opt-out found (SENDING: a send was in flight). First in the SET list:
/// every right-hand side reads the item as it was before this update.
fn record_opted_out_from(e: &mut Expr) {
    let from = e.name("opted_out_from");
    let state = e.name("state");
    e.update = e
        .update
        .replacen("SET ", &format!("SET {from} = {state}, "), 1);
}

fn finish_event(outcome: &SendOutcome) -> Event {
    match outcome {
        SendOutcome::Sent { .. } => Event::Accepted,
        SendOutcome::Retry { .. } => Event::TransientFailure,
        SendOutcome::Unreachable { .. } => Event::Unreachable,
        SendOutcome::WindowClosed { .. } => Event::WindowRejected,
        SendOutcome::Paused { .. } => Event::ConfigRejected,
    }
}

impl DynamoOptInStore {
    /// The claim, of any incarnation or only of the one recorded at `created_at`.
    async fn claim(
        &self,
        key: &OptInKey,
        created_at: Option<Millis>,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<Transitioned> {
        let event = Event::Claim;
        let mut e = Expr::default();
        let sources = e.source_condition(event, now, Some(owner));
        let deadline = e.name("deadline_at");
        let now_v = e.value("now", n(now));
        e.condition = format!("{sources} AND {deadline} > {now_v}");
        if let Some(created_at) = created_at {
            let created = e.name("created_at");
            let ours = e.value("created_at", n(created_at));
            e.condition = format!("{} AND {created} = {ours}", e.condition);
        }
        let attempts = e.name("attempts");
        let one = e.value("one", n(1));
        let mut set = target_state(event);
        set.extend([
            ("lease_owner", s(owner)),
            ("lease_until", n(lease_until)),
            ("updated_at", n(now)),
        ]);
        e.set_update(&set, &[], &format!("ADD {attempts} {one}"));
        self.update(key, "claim", e).await
    }
}

#[async_trait]
impl OptInStore for DynamoOptInStore {
    async fn create_opt_in(&self, opt_in: &OptIn) -> PortResult<Created> {
        match self.db.put_new(to_item(opt_in)?, "PutItem").await? {
            PutNew::Stored => Ok(Created::New),
            PutNew::Exists(item) => {
                let existing = match item {
                    Some(item) => from_item(item)?,
                    None => self.get_opt_in(&opt_in.key()).await?.ok_or_else(|| {
                        PortError::new(SERVICE, "PutItem: refused but the item is gone")
                    })?,
                };
                Ok(Created::AlreadyExists(Box::new(existing)))
            }
        }
    }

    /// Record an opt-in webhook. The first generation is a conditional `PutItem`, THEN a
    /// consistent read of the person's erasure marker: when it erases this consent, the call
    /// deletes what it wrote and answers [`Recorded::Erased`]. Safe without a transaction because
    /// a deletion writes the marker before it erases the opt-in
    /// ([`crate::adapters::dynamodb::erasure`]): if the read misses the marker, the marker (and
    /// so the erase) comes after the write, and the erase deletes the item; if it sees it, this
    /// call deletes it. Nothing acts on the item before the check: the use case enqueues its job
    /// only after this returns, and the sweep must not re-enqueue it either (new opt-ins enter the
    /// due index only in `follow_up`, after the check; before that change, the item's first
    /// attention time is its alert time, far later). A writer that stopped between its write and its check left an item still OPTED_IN
    /// and unclaimed ([`may_be_unchecked`]); its webhook went unanswered, so Meta redelivers it,
    /// and the duplicate runs the check in its place. A new consent after an opt-out (rare) stays
    /// one transaction with the check. docs/decisions.md, "Recording an opt-in: write, then check
    /// the erasure marker".
    async fn record_opt_in(&self, opt_in: &OptIn, guard: &ConsentGuard) -> PortResult<Recorded> {
        // What the previous round found stored (None: nothing, so try to create). A refused
        // renewal or a transaction conflict is decided again from the item as it then is.
        let mut stored: Option<OptIn> = None;
        for _ in 0..RECORD_ROUNDS {
            let current = match stored.take() {
                Some(current) => current,
                None => match self.db.put_new(to_item(opt_in)?, "PutItem opt-in").await? {
                    PutNew::Stored => {
                        if self.erased(guard, opt_in).await? {
                            self.delete_erased(opt_in).await?;
                            return Ok(Recorded::Erased);
                        }
                        return Ok(Recorded::New);
                    }
                    PutNew::Exists(Some(item)) => from_item(item)?,
                    // Refused, then gone (erased meanwhile): write again.
                    PutNew::Exists(None) => match self.get_opt_in(&opt_in.key()).await? {
                        Some(current) => current,
                        None => continue,
                    },
                },
            };
            if may_be_unchecked(&current) && self.erased(guard, &current).await? {
                self.delete_erased(&current).await?;
                return Ok(Recorded::Erased);
            }
            if opt_in.state != State::OptedIn
                || !crate::domain::opt_in::is_new_consent(&current, guard.event_at)
            {
                return Ok(Recorded::AlreadyExists(Box::new(current)));
            }
            let renewed = opt_in.clone().renewing(&current);
            let write = renewal_put(&self.db.name, &renewed, &current, guard.event_at)?;
            let check = erasure_check(&self.db.name, &guard.erasure_marker, opt_in.opted_in_at)?;
            let result = self
                .db
                .client
                .transact_write_items()
                .transact_items(check)
                .transact_items(write)
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Recorded::Renewed(Box::new(renewed))),
                Err(err) => err,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            else {
                return Err(port_error(SERVICE, "TransactWriteItems opt-in", &err));
            };
            let reasons = cancelled.cancellation_reasons();
            let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
            if code(0) == "ConditionalCheckFailed" {
                return Ok(Recorded::Erased);
            }
            match code(1) {
                "ConditionalCheckFailed" => {
                    stored = match reasons.get(1).and_then(|r| r.item()) {
                        Some(item) if !item.is_empty() => Some(from_item(item.clone())?),
                        _ => self.get_opt_in(&opt_in.key()).await?,
                    };
                }
                // A concurrent write to the same items (a duplicate delivery in the same batch):
                // decide again from what is stored now.
                "TransactionConflict" => stored = self.get_opt_in(&opt_in.key()).await?,
                _ => return Err(port_error(SERVICE, "TransactWriteItems opt-in", &err)),
            }
        }
        Err(PortError::new(
            SERVICE,
            "recording the opt-in kept racing with other writes; retry",
        ))
    }

    async fn get_opt_in(&self, key: &OptInKey) -> PortResult<Option<OptIn>> {
        let stored = self.db.get(Self::key(key), "GetItem").await?;
        stored.map(from_item).transpose()
    }

    async fn claim_for_send(
        &self,
        key: &OptInKey,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<Transitioned> {
        self.claim(key, None, owner, now, lease_until).await
    }

    async fn claim_incarnation_for_send(
        &self,
        key: &OptInKey,
        created_at: Millis,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<Transitioned> {
        self.claim(key, Some(created_at), owner, now, lease_until)
            .await
    }

    async fn finish_send(
        &self,
        key: &OptInKey,
        owner: &str,
        outcome: &SendOutcome,
        now: Millis,
    ) -> PortResult<Transitioned> {
        let event = finish_event(outcome);
        let mut e = Expr::default();
        e.condition = e.source_condition(event, now, Some(owner));
        let target = match event.target() {
            Some(target) => s(target.as_str()),
            None => return Err(PortError::new(SERVICE, "finish_send: no target state")),
        };
        match outcome {
            SendOutcome::Sent { message_id } => e.set_update(
                &[
                    ("state", target),
                    ("message_id", s(message_id.as_str())),
                    ("sent_at", n(now)),
                    ("terminal_at", n(now)),
                    ("updated_at", n(now)),
                ],
                &LEASE_AND_DUE,
                "",
            ),
            SendOutcome::Retry { error } | SendOutcome::Paused { error } => {
                let mut set = vec![
                    ("state", target),
                    ("last_error", last_error_value(error)?),
                    ("updated_at", n(now)),
                ];
                if matches!(outcome, SendOutcome::Paused { .. }) {
                    // Nothing else finds a PAUSED opt-in (the Page's resume queries the due
                    // index for them): it is watched from now on.
                    set.extend(watch_set(key, now));
                }
                e.set_update(&set, &LEASE, "")
            }
            SendOutcome::Unreachable { error } | SendOutcome::WindowClosed { error } => e
                .set_update(
                    &[
                        ("state", target),
                        ("last_error", last_error_value(error)?),
                        ("terminal_at", n(now)),
                        ("updated_at", n(now)),
                    ],
                    &LEASE_AND_DUE,
                    "",
                ),
        }
        self.update(key, "finish_send", e).await
    }

    async fn record_send_after_opt_out(
        &self,
        key: &OptInKey,
        attempt: u32,
        message_id: &str,
        sent_at: Millis,
    ) -> PortResult<Transitioned> {
        let mut e = Expr::default();
        let state = e.name("state");
        let out = e.state_value(State::OptedOut);
        let attempts = e.name("attempts");
        let ours = e.value("attempt", n(attempt));
        let recorded = e.name("message_id");
        e.condition =
            format!("{state} = {out} AND {attempts} = {ours} AND attribute_not_exists({recorded})");
        e.set_update(
            &[
                ("message_id", s(message_id)),
                ("sent_at", n(sent_at)),
                ("sent_after_opt_out", AttributeValue::Bool(true)),
                ("updated_at", n(sent_at)),
            ],
            &[],
            "",
        );
        self.update(key, "record_send_after_opt_out", e).await
    }

    async fn expire(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned> {
        let e = Expr::transition(
            Event::DeadlinePassed,
            now,
            Some("<="),
            &[("terminal_at", n(now))],
            &LEASE_AND_DUE,
        );
        self.update(key, "expire", e).await
    }

    async fn opt_out(&self, key: &OptInKey, source: &str, now: Millis) -> PortResult<Transitioned> {
        let mut e = Expr::transition(
            Event::OptOut,
            now,
            None,
            &[
                ("opted_out_at", n(now)),
                ("opt_out_source", s(source)),
                ("terminal_at", n(now)),
            ],
            &LEASE_AND_DUE,
        );
        record_opted_out_from(&mut e);
        self.update(key, "opt_out", e).await
    }

    async fn opt_out_late(&self, key: &OptInKey, by: &str, at: Millis) -> PortResult<Transitioned> {
        let mut e = Expr::transition(
            Event::OptOutAfterEnd,
            at,
            None,
            &[("opted_out_at", n(at)), ("opt_out_source", s(by))],
            &[],
        );
        // Once: an opt-out already recorded keeps its time and source.
        let out = e.name("opted_out_at");
        e.condition = format!("{} AND attribute_not_exists({out})", e.condition);
        record_opted_out_from(&mut e);
        self.update(key, "opt_out_late", e).await
    }

    async fn mark_alerted(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned> {
        let mut e = Expr::default();
        let pk = e.name(table::PK);
        let alerted = e.name("alerted_at");
        e.condition = format!("attribute_exists({pk}) AND attribute_not_exists({alerted})");
        e.set_update(&[("alerted_at", n(now))], &[], "");
        self.update(key, "mark_alerted", e).await
    }

    async fn due_for_attention(&self, due_by: Millis, limit: usize) -> PortResult<Vec<OptIn>> {
        let (due, cost) = self.due_for_attention_measured(due_by, limit).await?;
        if due.is_empty() {
            tracing::debug!(
                requests = cost.requests,
                consumed_rcu = cost.reported_rcu,
                "due-index queried: nothing due"
            );
        } else {
            tracing::info!(
                found = due.len(),
                requests = cost.requests,
                items_read = cost.items_read,
                consumed_rcu = cost.reported_rcu,
                "due-index queried"
            );
        }
        Ok(due)
    }

    async fn watch_from(&self, key: &OptInKey, at: Millis) -> PortResult<Transitioned> {
        let mut e = Expr::default();
        let state = e.name("state");
        let open: Vec<String> = State::ALL
            .into_iter()
            .filter(|st| !st.is_terminal())
            .map(|st| e.state_value(st))
            .collect();
        e.condition = format!("{state} IN ({})", open.join(", "));
        e.set_update(&watch_set(key, at), &[], "");
        self.update(key, "watch_from", e).await
    }
}

/// What one sweep query over the due index read: the figures `make bench` prints and the sweep logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DueQueryCost {
    /// Query requests sent: one per shard, more when a shard's page reaches 1 MB or the limit.
    pub requests: u32,
    /// Items DynamoDB read (`ScannedCount`), which is what a Query is billed for.
    pub items_read: u64,
    /// Approximate size of those items (DynamoDB's item-size rules).
    pub bytes_read: u64,
    /// Read capacity DynamoDB reported (`ReturnConsumedCapacity: TOTAL`). Moto reports a constant.
    pub reported_rcu: f64,
    /// Read capacity computed from the item sizes: per request, ceil(bytes / 4 KB) × 0.5
    /// (index queries are eventually consistent).
    pub estimated_rcu: f64,
}

impl DueQueryCost {
    fn add(&mut self, other: &DueQueryCost) {
        self.requests += other.requests;
        self.items_read += other.items_read;
        self.bytes_read += other.bytes_read;
        self.reported_rcu += other.reported_rcu;
        self.estimated_rcu += other.estimated_rcu;
    }
}

impl DynamoOptInStore {
    /// [`OptInStore::due_for_attention`] with what it cost: one Query per shard, run concurrently,
    /// `due_shard = DUE#n AND due_at <= due_by`, most overdue first. No scan, no filter: every item
    /// read is returned.
    pub async fn due_for_attention_measured(
        &self,
        due_by: Millis,
        limit: usize,
    ) -> PortResult<(Vec<OptIn>, DueQueryCost)> {
        let mut cost = DueQueryCost::default();
        if limit == 0 {
            return Ok((Vec::new(), cost));
        }
        let mut shards = tokio::task::JoinSet::new();
        for shard in table::all_due_shards() {
            let client = self.db.client.clone();
            let table_name = self.db.name.clone();
            shards.spawn(query_due_shard(client, table_name, shard, due_by, limit));
        }
        let mut due = Vec::new();
        while let Some(joined) = shards.join_next().await {
            let (items, shard_cost) = joined.map_err(|e| {
                PortError::new(SERVICE, format!("due-index query task failed: {e}"))
            })??;
            cost.add(&shard_cost);
            due.extend(items);
        }
        due.sort_by(|(a_due, a), (b_due, b)| {
            (a_due, &a.page_id, &a.login_id).cmp(&(b_due, &b.page_id, &b.login_id))
        });
        due.truncate(limit);
        Ok((due.into_iter().map(|(_, o)| o).collect(), cost))
    }

    pub fn client(&self) -> &Client {
        &self.db.client
    }
}

/// Up to `limit` non-terminal opt-ins of one due shard with `due_at <= due_by`, most overdue first,
/// each with its `due_at`.
async fn query_due_shard(
    client: Client,
    table_name: String,
    shard: String,
    due_by: Millis,
    limit: usize,
) -> PortResult<(Vec<(Millis, OptIn)>, DueQueryCost)> {
    let mut found = Vec::new();
    let mut cost = DueQueryCost::default();
    let mut start: Option<Item> = None;
    loop {
        let out = due_shard_query(&client, &table_name, &shard)
            .key_condition_expression("#shard = :shard AND #due_at <= :due_by")
            .expression_attribute_names("#due_at", table::DUE_AT)
            .expression_attribute_values(":due_by", n(due_by))
            .scan_index_forward(true)
            .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "Query due-index", &e))?;
        cost.requests += 1;
        cost.items_read += u64::try_from(out.scanned_count).unwrap_or(0);
        cost.reported_rcu += out
            .consumed_capacity
            .as_ref()
            .and_then(|c| c.capacity_units)
            .unwrap_or(0.0);
        let mut page_bytes = 0;
        for item in out.items.unwrap_or_default() {
            page_bytes += item_size(&item);
            let due_at = match item.get(table::DUE_AT) {
                Some(AttributeValue::N(v)) => v.parse().unwrap_or(due_by),
                _ => due_by,
            };
            let opt_in = from_item(item)?;
            // The index is sparse (due_shard is removed on every terminal write); this only guards
            // against items written otherwise.
            if !opt_in.state.is_terminal() {
                found.push((due_at, opt_in));
            }
        }
        cost.bytes_read += page_bytes;
        cost.estimated_rcu += page_bytes.div_ceil(4096).max(1) as f64 * 0.5;
        match out.last_evaluated_key {
            Some(key) if found.len() < limit && !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    Ok((found, cost))
}

/// The size DynamoDB assigns an item: attribute names plus values (numbers ~1 byte per 2 digits
/// plus 1; maps and lists 3 bytes plus 1 per element). Approximate, for cost estimates.
pub fn item_size(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> u64 {
    match value {
        AttributeValue::S(v) => v.len() as u64,
        AttributeValue::N(v) => (v.len() as u64).div_ceil(2) + 1,
        AttributeValue::B(v) => v.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(|x| x.len() as u64).sum(),
        AttributeValue::Ns(v) => v.iter().map(|x| (x.len() as u64).div_ceil(2) + 1).sum(),
        AttributeValue::Bs(v) => v.iter().map(|x| x.as_ref().len() as u64).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|x| 1 + value_size(x)).sum::<u64>(),
        AttributeValue::M(v) => {
            3 + v
                .iter()
                .map(|(k, x)| 1 + k.len() as u64 + value_size(x))
                .sum::<u64>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_opt_in_is_not_in_the_due_index_and_a_watched_one_is_while_not_terminal() {
        let mut o = OptIn::new(OptInKey::new("p", "l"), Some(1_000), 1_000, 10_000, 0);
        let item = to_item(&o).unwrap();
        assert_eq!(item[table::PK], s("OPTIN#p#l"));
        assert_eq!(item[table::SK], s(table::OPTIN_SK));
        // Recorded: watched by its send job and schedule, not by the index (no index write).
        assert!(!item.contains_key(table::DUE_SHARD));
        assert!(!item.contains_key(table::DUE_AT));
        assert_eq!(
            item[table::EXPIRES_AT],
            n(table::expires_at_seconds(11_000))
        );
        assert_eq!(from_item(item).unwrap(), o);
        let watched = item_with_due_at(&o, 11_000).unwrap();
        assert_eq!(watched[table::DUE_SHARD], s(table::due_shard(&o.key())));
        assert_eq!(watched[table::DUE_AT], n(11_000));
        assert_eq!(from_item(watched).unwrap(), o);
        o.state = State::Sent;
        let terminal = item_with_due_at(&o, 11_000).unwrap();
        assert!(!terminal.contains_key(table::DUE_SHARD));
        assert!(!terminal.contains_key(table::DUE_AT));
    }

    #[test]
    fn a_renewal_is_conditional_on_the_opt_out_being_older_than_the_redelivery_horizon() {
        let mut out = OptIn::new(OptInKey::new("p", "l"), Some(0), 0, 10_000, 0);
        out.state = State::OptedOut;
        out.opted_out_at = Some(5);
        out.updated_at = 5;
        let at = 5 + crate::domain::opt_in::REDELIVERY_HORIZON_MS + 1;
        let renewed = OptIn::new(out.key(), Some(at), at, 10_000, 0).renewing(&out);
        let item = renewal_put("t", &renewed, &out, Some(at)).unwrap();
        let put = item.put().unwrap();
        assert_eq!(
            put.condition_expression(),
            Some(
                "#opted_out_at < :cutoff AND \
                 attribute_not_exists(#generation) AND #updated_at = :updated_at"
            )
        );
        let values = put.expression_attribute_values().unwrap();
        assert_eq!(
            values[":cutoff"],
            n(at - crate::domain::opt_in::REDELIVERY_HORIZON_MS)
        );
        assert_eq!(put.item()["generation"], n(1));
        // A later generation must still be the one that was read.
        let mut second = renewed.clone();
        second.state = State::OptedOut;
        let item = renewal_put("t", &renewed, &second, Some(at)).unwrap();
        let put = item.put().unwrap();
        assert!(
            put.condition_expression()
                .unwrap()
                .contains("#generation = :generation")
        );
        assert_eq!(
            put.expression_attribute_values().unwrap()[":generation"],
            n(1)
        );
        assert!(
            renewal_put("t", &renewed, &out, None).is_err(),
            "no event time, no renewal"
        );
        let check = erasure_check("t", "m", 7).unwrap();
        let check = check.condition_check().unwrap();
        assert_eq!(
            check.condition_expression(),
            "attribute_not_exists(#pk) OR #erased_at < :opted_in_at"
        );
        assert_eq!(check.key()[table::PK], s("ERASED#m"));
    }
}
