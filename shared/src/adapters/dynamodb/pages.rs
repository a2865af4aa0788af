//! [`PageStateStore`] on the DynamoDB table: the Page state item (`PAGE#{page_id}` / `STATE`, see
//! [`crate::adapters::dynamodb::table`]) and the opt-in transitions of a Page pause. Every write is one conditional
//! `UpdateItem`: a Page change's condition is its [`PageEvent`]'s guard ([`guard_condition`]), the
//! opt-in conditions come from [`Event::sources`] like every other transition.

use crate::adapters::aws::port_error;
use crate::adapters::dynamodb::codec::{
    Expr, Item, SERVICE, from_item, key, last_error_value, n, s,
};
use crate::adapters::dynamodb::handle::due_shard_query;
use crate::adapters::dynamodb::opt_ins::{DynamoOptInStore, watch_set};
use crate::adapters::dynamodb::table;
use crate::domain::opt_in::{Event, Millis, OptIn, OptInKey, State};
use crate::domain::page::{PageChange, PageEvent, PageGuard, PageState, PageStatus, PauseCause};
use crate::ports::error::{PortError, PortResult};
use crate::ports::opt_ins::Transitioned;
use crate::ports::pages::PageStateStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

fn page_key(page_id: &str) -> Item {
    key(table::page_pk(page_id), table::PAGE_STATE_SK)
}

fn status_value(status: PageStatus) -> AttributeValue {
    s(match status {
        PageStatus::Active => "ACTIVE",
        PageStatus::Paused => "PAUSED",
    })
}

fn cause_value(cause: PauseCause) -> PortResult<AttributeValue> {
    dynamo::to_attribute_value(cause)
        .map_err(|err| PortError::new(SERVICE, format!("cannot encode the cause: {err}")))
}

/// The condition expression of a [`PageGuard`]: the same rule [`PageGuard::holds`] evaluates in
/// the twin. A missing item is an active Page; `probe_at <= :now` is false when `probe_at` is
/// absent. Every comparison that may meet a missing attribute is paired with
/// `attribute_not_exists`, so nothing depends on how a missing attribute compares.
fn guard_condition(e: &mut Expr, guard: PageGuard, now: Millis) -> PortResult<String> {
    // Placeholders are declared only when used: DynamoDB refuses unused ones.
    let mut parts = Vec::new();
    match guard.paused {
        Some(true) => {
            let status = e.name("status");
            let paused = e.value("paused", status_value(PageStatus::Paused));
            parts.push(format!("{status} = {paused}"));
        }
        Some(false) => {
            let pk = e.name(table::PK);
            let status = e.name("status");
            let active = e.value("active", status_value(PageStatus::Active));
            parts.push(format!(
                "(attribute_not_exists({pk}) OR {status} = {active})"
            ));
        }
        None => {}
    }
    if let Some(blocked) = guard.blocked {
        let status = e.name("status");
        let paused = e.value("paused", status_value(PageStatus::Paused));
        let cause = e.name("cause");
        let block = e.value("block", cause_value(PauseCause::PolicyBlock)?);
        parts.push(if blocked {
            format!("({status} = {paused} AND {cause} = {block})")
        } else {
            format!(
                "(attribute_not_exists({status}) OR {status} <> {paused} OR attribute_not_exists({cause}) OR {cause} <> {block})"
            )
        });
    }
    if guard.probe_due {
        let probe_at = e.name("probe_at");
        let now_v = e.value("now", n(now));
        parts.push(format!("{probe_at} <= {now_v}"));
    }
    if parts.is_empty() {
        // No requirement: any item, or none.
        let pk = e.name(table::PK);
        parts.push(format!(
            "(attribute_not_exists({pk}) OR attribute_exists({pk}))"
        ));
    }
    Ok(parts.join(" AND "))
}

fn page_from_item(item: Item) -> PortResult<PageState> {
    dynamo::from_item(item)
        .map_err(|e| PortError::new(SERVICE, format!("stored item is not a Page state: {e}")))
}

impl DynamoOptInStore {
    /// One conditional update of the Page item: `true` when the condition held.
    async fn update_page(&self, page_id: &str, op: &str, expr: Expr) -> PortResult<bool> {
        self.db.update_if(page_key(page_id), expr, op).await
    }
}

#[async_trait]
impl PageStateStore for DynamoOptInStore {
    async fn get_page(&self, page_id: &str) -> PortResult<Option<PageState>> {
        let stored = self.db.get(page_key(page_id), "GetItem page").await?;
        stored.map(page_from_item).transpose()
    }

    async fn change_page(
        &self,
        page_id: &str,
        change: &PageChange,
        now: Millis,
    ) -> PortResult<bool> {
        let mut e = Expr::default();
        e.condition = guard_condition(&mut e, change.event().guard(), now)?;
        match change {
            PageChange::Pause {
                cause,
                reason,
                probe_at,
            } => e.set_update(
                &[
                    ("page_id", s(page_id)),
                    ("status", status_value(PageStatus::Paused)),
                    ("paused_at", n(now)),
                    ("cause", cause_value(*cause)?),
                    ("reason", last_error_value(reason)?),
                    ("probe_at", n(*probe_at)),
                    ("probes", n(0)),
                    ("updated_at", n(now)),
                ],
                &[],
                "",
            ),
            PageChange::Block { reason } => e.set_update(
                &[
                    ("page_id", s(page_id)),
                    ("status", status_value(PageStatus::Paused)),
                    ("paused_at", n(now)),
                    ("cause", cause_value(PauseCause::PolicyBlock)?),
                    ("reason", last_error_value(reason)?),
                    ("probes", n(0)),
                    ("updated_at", n(now)),
                ],
                &["probe_at"],
                "",
            ),
            PageChange::TakeProbe { next_probe_at } => {
                let probes = e.name("probes");
                let one = e.value("one", n(1));
                e.set_update(
                    &[("probe_at", n(*next_probe_at)), ("updated_at", n(now))],
                    &[],
                    &format!("ADD {probes} {one}"),
                );
            }
            PageChange::Unblock | PageChange::ProbeAccepted => e.set_update(
                &[
                    ("status", status_value(PageStatus::Active)),
                    ("resumed_at", n(now)),
                    ("updated_at", n(now)),
                ],
                &["probe_at"],
                "",
            ),
        }
        let op = match change.event() {
            PageEvent::Pause => "pause_page",
            PageEvent::Block => "block_page",
            PageEvent::Unblock => "unblock_page",
            PageEvent::TakeProbe => "take_probe",
            PageEvent::ProbeAccepted => "resume_page",
        };
        self.update_page(page_id, op, e).await
    }

    async fn park_opt_in(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned> {
        // Watched from now on: the Page's resume finds PAUSED opt-ins in the due index.
        let e = Expr::transition(Event::PagePaused, now, None, &watch_set(key, now), &[]);
        self.update(key, "park_opt_in", e).await
    }

    async fn resume_opt_in(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned> {
        let e = Expr::transition(Event::Resume, now, Some(">"), &[], &[]);
        self.update(key, "resume_opt_in", e).await
    }

    async fn paused_opt_ins(&self, page_id: &str, limit: usize) -> PortResult<Vec<OptIn>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut shards = tokio::task::JoinSet::new();
        for shard in table::all_due_shards() {
            shards.spawn(query_paused(
                self.db.client.clone(),
                self.db.name.clone(),
                shard,
                page_id.to_owned(),
            ));
        }
        let mut found = Vec::new();
        while let Some(joined) = shards.join_next().await {
            found.extend(joined.map_err(|e| {
                PortError::new(SERVICE, format!("due-index query task failed: {e}"))
            })??);
        }
        found.sort_by(|a, b| (a.deadline_at, &a.login_id).cmp(&(b.deadline_at, &b.login_id)));
        found.truncate(limit);
        Ok(found)
    }
}

/// Every PAUSED opt-in of `page_id` in one due shard (the due index holds only unsent opt-ins, so
/// this reads little more than what it returns).
async fn query_paused(
    client: aws_sdk_dynamodb::Client,
    table_name: String,
    shard: String,
    page_id: String,
) -> PortResult<Vec<OptIn>> {
    let mut found = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = due_shard_query(&client, &table_name, &shard)
            .key_condition_expression("#shard = :shard")
            .filter_expression("#state = :paused AND #page_id = :page")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#page_id", "page_id")
            .expression_attribute_values(":paused", s(State::Paused.as_str()))
            .expression_attribute_values(":page", s(page_id.as_str()))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "Query due-index (paused)", &e))?;
        for item in out.items.unwrap_or_default() {
            let opt_in = from_item(item)?;
            if opt_in.state == State::Paused {
                found.push(opt_in);
            }
        }
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    Ok(found)
}
