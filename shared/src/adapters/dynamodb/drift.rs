//! [`DriftStatusStore`] on the DynamoDB table: the drift day claim (`PAGE#{page_id}` /
//! `DRIFT#DAY`) and each check's last-known status (`PAGE#{page_id}` / `DRIFT#{check}`, see
//! [`crate::adapters::dynamodb::table`]). Each change is one conditional `UpdateItem`; nothing is
//! read first, so two sweeps (or two senders) racing make the change once between them.

use crate::adapters::dynamodb::codec::{Expr, key, n, s};
use crate::adapters::dynamodb::opt_ins::DynamoOptInStore;
use crate::adapters::dynamodb::table;
use crate::domain::opt_in::Millis;
use crate::ports::drift::{DriftStatusStore, StatusChange};
use crate::ports::error::PortResult;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

#[async_trait]
impl DriftStatusStore for DynamoOptInStore {
    async fn claim_drift_day(&self, page_id: &str, day: &str, now: Millis) -> PortResult<bool> {
        let mut e = Expr::default();
        let day_name = e.name("day");
        let day_value = e.value("day", s(day));
        let claimed_at = e.name("claimed_at");
        let now_value = e.value("now", n(now));
        e.update = format!("SET {day_name} = {day_value}, {claimed_at} = {now_value}");
        // Days are `YYYY-MM-DD`: their string order is their time order.
        e.condition = format!("attribute_not_exists({day_name}) OR {day_name} < {day_value}");
        let item = key(table::page_pk(page_id), table::DRIFT_DAY_SK);
        self.db.update_if(item, e, "UpdateItem (drift day)").await
    }

    async fn record_drift_status(
        &self,
        page_id: &str,
        check: &str,
        failing: bool,
        now: Millis,
    ) -> PortResult<StatusChange> {
        let mut e = Expr::default();
        let flag = e.name("failing");
        let yes = e.value("yes", AttributeValue::Bool(true));
        let now_value = e.value("now", n(now));
        let (when, change) = if failing {
            let no = e.value("no", AttributeValue::Bool(false));
            e.condition = format!("attribute_not_exists({flag}) OR {flag} = {no}");
            e.update = format!("SET {flag} = {yes}, ");
            ("failing_since", StatusChange::NewProblem)
        } else {
            // Never recorded is ok already: the condition fails and nothing is written.
            let no = e.value("no", AttributeValue::Bool(false));
            e.condition = format!("{flag} = {yes}");
            e.update = format!("SET {flag} = {no}, ");
            ("recovered_at", StatusChange::Recovered)
        };
        let when = e.name(when);
        e.update.push_str(&format!("{when} = {now_value}"));
        let item = key(table::page_pk(page_id), &table::drift_sk(check));
        let changed = self
            .db
            .update_if(item, e, "UpdateItem (drift status)")
            .await?;
        Ok(if changed {
            change
        } else {
            StatusChange::Unchanged
        })
    }
}
