//! The compliance report's reads over DynamoDB ([`OptInHistory`]).

use crate::adapters::aws::port_error;
use crate::adapters::dynamodb::codec::SERVICE;
use crate::adapters::dynamodb::opt_ins::DynamoOptInStore;
use crate::adapters::dynamodb::table;
use crate::domain::opt_in::{Millis, OptIn};
use crate::ports::error::{PortError, PortResult};
use crate::ports::history::OptInHistory;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

#[async_trait]
impl OptInHistory for DynamoOptInStore {
    /// A paginated Scan of the table filtered on the opt-in items of the range. A report is rare and
    /// reads everything once, so a Scan (billed per item scanned) is acceptable here; the hot paths
    /// never scan.
    async fn opt_ins_between(&self, since: Millis, until: Millis) -> PortResult<Vec<OptIn>> {
        let mut found = Vec::new();
        if until <= since {
            return Ok(found);
        }
        let mut pages = self
            .client()
            .scan()
            .table_name(self.table_name())
            .filter_expression("#sk = :sk AND #opted_in_at BETWEEN :since AND :last")
            .expression_attribute_names("#sk", table::SK)
            .expression_attribute_names("#opted_in_at", "opted_in_at")
            .expression_attribute_values(":sk", AttributeValue::S(table::OPTIN_SK.to_owned()))
            .expression_attribute_values(":since", AttributeValue::N(since.to_string()))
            .expression_attribute_values(":last", AttributeValue::N((until - 1).to_string()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error(SERVICE, "Scan", &e))?;
            for item in page.items.unwrap_or_default() {
                let opt_in: OptIn = serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
                    .map_err(|e| PortError::new(SERVICE, format!("not an opt-in: {e}")))?;
                found.push(opt_in);
            }
        }
        Ok(found)
    }
}
