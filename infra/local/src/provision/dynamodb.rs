//! Tables: `AWS::DynamoDB::Table` with its attribute definitions, key schema, indexes, billing
//! mode, provisioned throughput and TTL.

use super::stack::{ProvisionError, Provisioner, aws_error, invalid};
use super::template::scalar_string;
use serde_yaml_ng::Value;
use std::time::Duration;

impl Provisioner {
    pub(super) async fn create_table(&mut self, id: &str) -> Result<(), ProvisionError> {
        use aws_sdk_dynamodb::operation::create_table::CreateTableError;
        use aws_sdk_dynamodb::types::{BillingMode, TimeToLiveSpecification, TimeToLiveStatus};

        let name = self.physical_name(id);
        let list = |prop: &str| -> Result<Vec<Value>, ProvisionError> {
            match self.property(id, prop)? {
                None => Ok(Vec::new()),
                Some(Value::Sequence(s)) => Ok(s),
                Some(_) => Err(invalid(id, format!("{prop} is not a list"))),
            }
        };
        let attributes = list("AttributeDefinitions")?
            .iter()
            .map(|a| {
                attribute_definition(a)
                    .map_err(|m| invalid(id, format!("AttributeDefinitions: {m}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key_schema = key_schema(&self.property(id, "KeySchema")?.unwrap_or(Value::Null))
            .map_err(|m| invalid(id, format!("KeySchema: {m}")))?;
        let gsis = list("GlobalSecondaryIndexes")?
            .iter()
            .map(|g| {
                global_index(g).map_err(|m| invalid(id, format!("GlobalSecondaryIndexes: {m}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lsis = list("LocalSecondaryIndexes")?
            .iter()
            .map(|g| local_index(g).map_err(|m| invalid(id, format!("LocalSecondaryIndexes: {m}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let billing = self.string_property(id, "BillingMode")?;
        let throughput = self
            .property(id, "ProvisionedThroughput")?
            .map(|t| throughput(&t).map_err(|m| invalid(id, format!("ProvisionedThroughput: {m}"))))
            .transpose()?;

        let result = self
            .dynamodb
            .create_table()
            .table_name(&name)
            .set_attribute_definitions(Some(attributes))
            .set_key_schema(Some(key_schema))
            .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
            .set_local_secondary_indexes((!lsis.is_empty()).then_some(lsis))
            .set_billing_mode(billing.as_deref().map(BillingMode::from))
            .set_provisioned_throughput(throughput)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateTableError::ResourceInUseException(_))
                ) =>
            {
                tracing::debug!(table = %name, "table exists: reused");
            }
            Err(e) => return Err(aws_error(id, "CreateTable", e)),
        }

        // Wait until ACTIVE (moto is immediate; real DynamoDB takes seconds).
        let mut arn = None;
        for _ in 0..100 {
            let out = self
                .dynamodb
                .describe_table()
                .table_name(&name)
                .send()
                .await
                .map_err(|e| aws_error(id, "DescribeTable", e))?;
            let Some(table) = out.table else { break };
            if table
                .table_status
                .as_ref()
                .is_none_or(|s| s.as_str() == "ACTIVE")
            {
                arn = table.table_arn;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let arn = arn.ok_or_else(|| invalid(id, "the table did not become ACTIVE"))?;

        if let Some(ttl) = self.property(id, "TimeToLiveSpecification")? {
            let attr = ttl
                .get("AttributeName")
                .and_then(scalar_string)
                .ok_or_else(|| invalid(id, "TimeToLiveSpecification.AttributeName is missing"))?;
            let enabled = ttl
                .get("Enabled")
                .and_then(scalar_string)
                .is_some_and(|e| e == "true");
            let current = self
                .dynamodb
                .describe_time_to_live()
                .table_name(&name)
                .send()
                .await
                .map_err(|e| aws_error(id, "DescribeTimeToLive", e))?
                .time_to_live_description;
            let already = current.is_some_and(|d| {
                d.attribute_name.as_deref() == Some(attr.as_str())
                    && d.time_to_live_status == Some(TimeToLiveStatus::Enabled)
            });
            if enabled && !already {
                let spec = TimeToLiveSpecification::builder()
                    .attribute_name(attr)
                    .enabled(true)
                    .build()
                    .map_err(|e| invalid(id, format!("TimeToLiveSpecification: {e}")))?;
                self.dynamodb
                    .update_time_to_live()
                    .table_name(&name)
                    .time_to_live_specification(spec)
                    .send()
                    .await
                    .map_err(|e| aws_error(id, "UpdateTimeToLive", e))?;
            }
        }
        self.remember(id, name, [("Arn", arn)]);
        Ok(())
    }
}

fn field(v: &Value, name: &str) -> Result<String, String> {
    v.get(name)
        .and_then(scalar_string)
        .ok_or_else(|| format!("{name} is missing"))
}

fn attribute_definition(v: &Value) -> Result<aws_sdk_dynamodb::types::AttributeDefinition, String> {
    use aws_sdk_dynamodb::types::{AttributeDefinition, ScalarAttributeType};
    AttributeDefinition::builder()
        .attribute_name(field(v, "AttributeName")?)
        .attribute_type(ScalarAttributeType::from(
            field(v, "AttributeType")?.as_str(),
        ))
        .build()
        .map_err(|e| e.to_string())
}

fn key_schema(v: &Value) -> Result<Vec<aws_sdk_dynamodb::types::KeySchemaElement>, String> {
    use aws_sdk_dynamodb::types::{KeySchemaElement, KeyType};
    let seq = v
        .as_sequence()
        .ok_or("KeySchema is missing or not a list")?;
    seq.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(field(k, "AttributeName")?)
                .key_type(KeyType::from(field(k, "KeyType")?.as_str()))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn projection(v: &Value) -> Result<aws_sdk_dynamodb::types::Projection, String> {
    use aws_sdk_dynamodb::types::{Projection, ProjectionType};
    let p = v.get("Projection").ok_or("Projection is missing")?;
    let non_key = p
        .get("NonKeyAttributes")
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(scalar_string).collect());
    Ok(Projection::builder()
        .set_projection_type(
            p.get("ProjectionType")
                .and_then(scalar_string)
                .map(|t| ProjectionType::from(t.as_str())),
        )
        .set_non_key_attributes(non_key)
        .build())
}

fn throughput(v: &Value) -> Result<aws_sdk_dynamodb::types::ProvisionedThroughput, String> {
    let units = |name: &str| -> Result<i64, String> {
        field(v, name)?
            .parse()
            .map_err(|_| format!("{name} is not a number"))
    };
    aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
        .read_capacity_units(units("ReadCapacityUnits")?)
        .write_capacity_units(units("WriteCapacityUnits")?)
        .build()
        .map_err(|e| e.to_string())
}

fn global_index(v: &Value) -> Result<aws_sdk_dynamodb::types::GlobalSecondaryIndex, String> {
    let name = field(v, "IndexName")?;
    aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
        .index_name(&name)
        .set_key_schema(Some(key_schema(
            v.get("KeySchema").unwrap_or(&Value::Null),
        )?))
        .projection(projection(v)?)
        .set_provisioned_throughput(v.get("ProvisionedThroughput").map(throughput).transpose()?)
        .build()
        .map_err(|e| format!("{name}: {e}"))
}

fn local_index(v: &Value) -> Result<aws_sdk_dynamodb::types::LocalSecondaryIndex, String> {
    let name = field(v, "IndexName")?;
    aws_sdk_dynamodb::types::LocalSecondaryIndex::builder()
        .index_name(&name)
        .set_key_schema(Some(key_schema(
            v.get("KeySchema").unwrap_or(&Value::Null),
        )?))
        .projection(projection(v)?)
        .build()
        .map_err(|e| format!("{name}: {e}"))
}
