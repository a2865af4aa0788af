//! Creates, in the local AWS emulator (moto), the resources template.yaml declares — read from the
//! template's own definitions, so the local stack and the cloud stack cannot drift apart.
//!
//! A generic reader: every resource of a supported type is created with its literal properties
//! (CloudFormation intrinsics `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join` are resolved, in short
//! `!Tag` or long `Fn::` form, against the parameters' defaults, pseudo parameters and the
//! resources already created). Supported types, created in this order:
//!
//! | type                            | local physical name           | what is read                         |
//! |---------------------------------|-------------------------------|--------------------------------------|
//! | `AWS::DynamoDB::Table`          | `{stack}-{LogicalId}`         | attribute definitions, key schema, GSIs/LSIs, billing mode, provisioned throughput, TTL |
//! | `AWS::SQS::Queue`               | `{stack}-{LogicalId}`         | VisibilityTimeout, MessageRetentionPeriod, DelaySeconds, MaximumMessageSize, ReceiveMessageWaitTimeSeconds, FifoQueue, ContentBasedDeduplication, RedrivePolicy |
//! | `AWS::Scheduler::ScheduleGroup` | its `Name` (resolved), else `{stack}-{LogicalId}` | Name |
//! | `AWS::SNS::Topic`               | `{stack}-{LogicalId}`         | FifoTopic                            |
//! | `AWS::SecretsManager::Secret`   | `{stack}-{LogicalId}`         | the `secret_json` given to [`provision`] |
//!
//! Other types (functions, roles, alarms, policies, …) are skipped. Resources with a `Condition`
//! are created only when the condition holds for the parameters' defaults. Running twice against
//! the same emulator reuses what exists (and rewrites queue attributes and the secret's value).

use aws_config::SdkConfig;
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Moto's (and the AWS docs') default account.
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// What was created, by the logical IDs of the template contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub table_name: String,
    pub send_queue_url: String,
    pub send_queue_arn: String,
    pub send_dlq_url: String,
    pub scheduler_dlq_arn: String,
    pub schedule_group: String,
    pub alert_topic_arn: String,
    pub secret_id: String,
    /// The sender-only Page token secret (`PageTokenSecret`), when the template has one. Every
    /// secret is seeded with the same JSON, so it holds the `page_access_token` too.
    pub page_token_secret_id: Option<String>,
    /// The default of the `SweepRate` parameter, if the template has one.
    pub sweep_rate: Option<String>,
    pub send_queue_visibility_timeout_s: i32,
    pub max_receive_count: i32,
    /// `SenderFunction.Timeout`: the local SQS event source ends an invocation after it, as Lambda does.
    pub sender_timeout_s: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot read the template {path}: {message}")]
    Template { path: String, message: String },
    #[error("template resource {resource}: {message}")]
    Invalid { resource: String, message: String },
    #[error("template resource {resource} ({expected}) is missing")]
    Missing {
        resource: String,
        expected: &'static str,
    },
    #[error("creating {resource}: {operation} failed: {message}")]
    Aws {
        resource: String,
        operation: &'static str,
        message: String,
    },
}

// Logical IDs of the template contract.
const OPT_IN_TABLE: &str = "OptInTable";
const SEND_QUEUE: &str = "SendQueue";
const SEND_DLQ: &str = "SendDeadLetterQueue";
const SENDER_FUNCTION: &str = "SenderFunction";
/// Lambda's default function timeout.
const DEFAULT_FUNCTION_TIMEOUT_S: u64 = 3;
const SCHEDULER_DLQ: &str = "SchedulerDeadLetterQueue";
const SCHEDULE_GROUP: &str = "DeadlineScheduleGroup";
const ALERT_TOPIC: &str = "AlertTopic";
const APP_SECRET: &str = "AppSecret";
const PAGE_TOKEN_SECRET: &str = "PageTokenSecret";

const TABLE: &str = "AWS::DynamoDB::Table";
const QUEUE: &str = "AWS::SQS::Queue";
const GROUP: &str = "AWS::Scheduler::ScheduleGroup";
const TOPIC: &str = "AWS::SNS::Topic";
const SECRET: &str = "AWS::SecretsManager::Secret";

/// SQS's default visibility timeout, when the template does not set one.
const DEFAULT_VISIBILITY_TIMEOUT_S: i32 = 30;

/// Create every supported resource of `template_path` in the emulator `sdk` points at.
/// `secret_json` becomes the value of the template's secret(s).
pub async fn provision(
    template_path: &Path,
    sdk: &SdkConfig,
    stack_name: &str,
    secret_json: &str,
) -> Result<Provisioned, ProvisionError> {
    let template_error = |message: String| ProvisionError::Template {
        path: template_path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(template_path).map_err(|e| template_error(e.to_string()))?;
    let template: Value =
        serde_yaml_ng::from_str(&text).map_err(|e| template_error(e.to_string()))?;
    let template = Template::parse(&template).map_err(template_error)?;
    let region = sdk
        .region()
        .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
    let mut p = Provisioner {
        template,
        ctx: Context {
            stack_name: stack_name.to_owned(),
            region,
            created: BTreeMap::new(),
        },
        dynamodb: aws_sdk_dynamodb::Client::new(sdk),
        sqs: aws_sdk_sqs::Client::new(sdk),
        scheduler: aws_sdk_scheduler::Client::new(sdk),
        sns: aws_sdk_sns::Client::new(sdk),
        secrets: aws_sdk_secretsmanager::Client::new(sdk),
        secret_json: secret_json.to_owned(),
    };
    p.create_all().await?;
    p.provisioned()
}

/// The parts of the template we read.
#[derive(Debug)]
struct Template {
    parameters: Mapping,
    conditions: Mapping,
    /// (logical id, resource definition) in template order.
    resources: Vec<(String, Value)>,
}

impl Template {
    fn parse(root: &Value) -> Result<Self, String> {
        let section = |name: &str| -> Result<Mapping, String> {
            match root.get(name) {
                None | Some(Value::Null) => Ok(Mapping::new()),
                Some(Value::Mapping(m)) => Ok(m.clone()),
                Some(_) => Err(format!("{name} is not a mapping")),
            }
        };
        let resources = section("Resources")?
            .into_iter()
            .map(|(k, v)| match k {
                Value::String(id) => Ok((id, v)),
                other => Err(format!("resource id {other:?} is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if resources.is_empty() {
            return Err("the template declares no Resources".into());
        }
        Ok(Self {
            parameters: section("Parameters")?,
            conditions: section("Conditions")?,
            resources,
        })
    }

    fn resource(&self, id: &str) -> Option<&Value> {
        self.resources.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }

    fn parameter_default(&self, name: &str) -> Option<&Value> {
        self.parameters.get(name)?.get("Default")
    }
}

/// A created resource: what `!Ref` gives and its `!GetAtt` attributes.
#[derive(Debug, Clone)]
struct Created {
    reference: String,
    attributes: BTreeMap<&'static str, String>,
}

/// The values intrinsics resolve against.
struct Context {
    stack_name: String,
    region: String,
    created: BTreeMap<String, Created>,
}

/// An intrinsic function call, from `!Tag arg` or `{Fn::Tag: arg}` / `{Ref: arg}`.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let name = if name == "Ref" || name == "Condition" {
                name.to_owned()
            } else {
                format!("Fn::{name}")
            };
            Some((name, &t.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then(|| (k.to_owned(), arg))
        }
        _ => None,
    }
}

/// A scalar as the string CloudFormation would pass on.
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Context {
    fn pseudo(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => LOCAL_ACCOUNT_ID.to_owned(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            "AWS::StackId" => format!(
                "arn:aws:cloudformation:{}:{LOCAL_ACCOUNT_ID}:stack/{}/local",
                self.region, self.stack_name
            ),
            _ => return None,
        })
    }

    fn reference(&self, template: &Template, name: &str) -> Result<Value, String> {
        if let Some(v) = self.pseudo(name) {
            return Ok(Value::String(v));
        }
        if template.parameters.contains_key(name) {
            return template
                .parameter_default(name)
                .cloned()
                .ok_or_else(|| format!("parameter {name} has no Default"));
        }
        match self.created.get(name) {
            Some(c) => Ok(Value::String(c.reference.clone())),
            None => Err(format!(
                "!Ref {name}: not a parameter nor a resource created locally"
            )),
        }
    }

    fn attribute(&self, id: &str, attr: &str) -> Result<String, String> {
        self.created
            .get(id)
            .and_then(|c| c.attributes.get(attr).cloned())
            .ok_or_else(|| format!("!GetAtt {id}.{attr}: not available locally"))
    }

    fn sub(&self, template: &Template, text: &str, vars: &Mapping) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("!Sub {text:?}: unclosed ${{"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                let v = self.resolve(template, v)?;
                out.push_str(
                    &scalar_string(&v).ok_or_else(|| format!("!Sub ${{{name}}}: not a scalar"))?,
                );
            } else if let Some((id, attr)) = name.split_once('.') {
                out.push_str(&self.attribute(id, attr)?);
            } else {
                let v = self.reference(template, name)?;
                out.push_str(
                    &scalar_string(&v).ok_or_else(|| format!("!Sub ${{{name}}}: not a scalar"))?,
                );
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `v` with every supported intrinsic replaced by its value.
    fn resolve(&self, template: &Template, v: &Value) -> Result<Value, String> {
        if let Some((name, arg)) = intrinsic(v)
            && name != "Condition"
        {
            return match name.as_str() {
                "Ref" => {
                    let target = arg.as_str().ok_or("!Ref needs a name")?;
                    self.reference(template, target)
                }
                "Fn::GetAtt" => {
                    let (id, attr) = match arg {
                        Value::String(s) => {
                            s.split_once('.').ok_or("!GetAtt needs Id.Attribute")?
                        }
                        Value::Sequence(seq) if seq.len() == 2 => (
                            seq[0].as_str().ok_or("!GetAtt id is not a string")?,
                            seq[1].as_str().ok_or("!GetAtt attribute is not a string")?,
                        ),
                        _ => return Err("!GetAtt needs Id.Attribute".into()),
                    };
                    self.attribute(id, attr).map(Value::String)
                }
                "Fn::Sub" => match arg {
                    Value::String(s) => self.sub(template, s, &Mapping::new()).map(Value::String),
                    Value::Sequence(seq) if seq.len() == 2 => {
                        let text = seq[0].as_str().ok_or("!Sub text is not a string")?;
                        let vars = seq[1]
                            .as_mapping()
                            .ok_or("!Sub variables are not a mapping")?;
                        self.sub(template, text, vars).map(Value::String)
                    }
                    _ => Err("!Sub needs a string or [string, variables]".into()),
                },
                "Fn::Join" => {
                    let seq = arg
                        .as_sequence()
                        .filter(|s| s.len() == 2)
                        .ok_or("!Join needs [sep, list]")?;
                    let sep = seq[0].as_str().ok_or("!Join separator is not a string")?;
                    let list = self.resolve(template, &seq[1])?;
                    let parts = list
                        .as_sequence()
                        .ok_or("!Join list is not a list")?
                        .iter()
                        .map(|p| scalar_string(p).ok_or("!Join item is not a scalar"))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Value::String(parts.join(sep)))
                }
                other => Err(format!("intrinsic {other} is not supported locally")),
            };
        }
        match v {
            Value::Sequence(seq) => seq
                .iter()
                .map(|x| self.resolve(template, x))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Sequence),
            Value::Mapping(m) => {
                let mut out = Mapping::new();
                for (k, x) in m {
                    out.insert(k.clone(), self.resolve(template, x)?);
                }
                Ok(Value::Mapping(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// Evaluate a condition (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`) with the
    /// parameters' defaults.
    fn condition(&self, template: &Template, v: &Value, depth: u8) -> Result<bool, String> {
        if depth > 20 {
            return Err("conditions nest too deeply".into());
        }
        if let Value::Bool(b) = v {
            return Ok(*b);
        }
        let (name, arg) = intrinsic(v).ok_or("a condition must be an intrinsic function")?;
        let list = || {
            arg.as_sequence()
                .ok_or_else(|| format!("{name} needs a list"))
        };
        match name.as_str() {
            "Condition" => {
                let id = arg.as_str().ok_or("Condition needs a name")?;
                self.named_condition(template, id, depth + 1)
            }
            "Fn::Equals" => {
                let l = list()?;
                if l.len() != 2 {
                    return Err("Fn::Equals needs two values".into());
                }
                let a = scalar_string(&self.resolve(template, &l[0])?);
                let b = scalar_string(&self.resolve(template, &l[1])?);
                Ok(a == b)
            }
            "Fn::Not" => {
                let l = list()?;
                let inner = l.first().ok_or("Fn::Not needs one condition")?;
                Ok(!self.condition(template, inner, depth + 1)?)
            }
            "Fn::And" | "Fn::Or" => {
                let values = list()?
                    .iter()
                    .map(|c| self.condition(template, c, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if name == "Fn::And" {
                    values.iter().all(|b| *b)
                } else {
                    values.iter().any(|b| *b)
                })
            }
            other => Err(format!("{other} is not a condition function")),
        }
    }

    fn named_condition(&self, template: &Template, id: &str, depth: u8) -> Result<bool, String> {
        let v = template
            .conditions
            .get(id)
            .ok_or_else(|| format!("condition {id} is not declared"))?;
        self.condition(template, v, depth)
    }
}

struct Provisioner {
    template: Template,
    ctx: Context,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    scheduler: aws_sdk_scheduler::Client,
    sns: aws_sdk_sns::Client,
    secrets: aws_sdk_secretsmanager::Client,
    secret_json: String,
}

fn aws_error<E>(resource: &str, operation: &'static str, err: E) -> ProvisionError
where
    E: std::error::Error + 'static,
{
    ProvisionError::Aws {
        resource: resource.to_owned(),
        operation,
        message: aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string(),
    }
}

fn invalid(resource: &str, message: impl Into<String>) -> ProvisionError {
    ProvisionError::Invalid {
        resource: resource.to_owned(),
        message: message.into(),
    }
}

impl Provisioner {
    fn physical_name(&self, id: &str) -> String {
        format!("{}-{id}", self.ctx.stack_name)
    }

    /// Logical IDs of the resources of `kind` that this stack would create.
    fn of_type(&self, kind: &str) -> Result<Vec<String>, ProvisionError> {
        let mut ids = Vec::new();
        for (id, def) in &self.template.resources {
            if def.get("Type").and_then(Value::as_str) != Some(kind) {
                continue;
            }
            if let Some(cond) = def.get("Condition") {
                let name = cond
                    .as_str()
                    .ok_or_else(|| invalid(id, "Condition is not a name"))?;
                let holds = self
                    .ctx
                    .named_condition(&self.template, name, 0)
                    .map_err(|m| invalid(id, m))?;
                if !holds {
                    tracing::debug!(resource = %id, condition = %name, "condition is false: skipped");
                    continue;
                }
            }
            ids.push(id.clone());
        }
        Ok(ids)
    }

    /// The resolved `Properties.{name}` of resource `id` (None when absent).
    fn property(&self, id: &str, name: &str) -> Result<Option<Value>, ProvisionError> {
        let def = self
            .template
            .resource(id)
            .ok_or_else(|| invalid(id, "not declared"))?;
        match def.get("Properties").and_then(|p| p.get(name)) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => self
                .ctx
                .resolve(&self.template, v)
                .map(Some)
                .map_err(|m| invalid(id, format!("{name}: {m}"))),
        }
    }

    fn string_property(&self, id: &str, name: &str) -> Result<Option<String>, ProvisionError> {
        self.property(id, name)?
            .map(|v| {
                scalar_string(&v).ok_or_else(|| invalid(id, format!("{name} is not a scalar")))
            })
            .transpose()
    }

    async fn create_all(&mut self) -> Result<(), ProvisionError> {
        for id in self.of_type(TABLE)? {
            self.create_table(&id).await?;
        }
        let queues = self.of_type(QUEUE)?;
        for id in &queues {
            self.create_queue(id).await?;
        }
        // Attributes after every queue exists: a redrive policy may name any of them.
        for id in &queues {
            self.set_queue_attributes(id).await?;
        }
        for id in self.of_type(GROUP)? {
            self.create_schedule_group(&id).await?;
        }
        for id in self.of_type(TOPIC)? {
            self.create_topic(&id).await?;
        }
        for id in self.of_type(SECRET)? {
            self.create_secret(&id).await?;
        }
        for (id, def) in &self.template.resources {
            if !self.ctx.created.contains_key(id) {
                let kind = def.get("Type").and_then(Value::as_str).unwrap_or("?");
                tracing::debug!(resource = %id, kind, "not created locally");
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ DynamoDB

    async fn create_table(&mut self, id: &str) -> Result<(), ProvisionError> {
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
        self.ctx.created.insert(
            id.to_owned(),
            Created {
                reference: name,
                attributes: BTreeMap::from([("Arn", arn)]),
            },
        );
        Ok(())
    }

    // ------------------------------------------------------------------ SQS

    fn queue_name(&self, id: &str) -> Result<(String, bool), ProvisionError> {
        let fifo = self
            .string_property(id, "FifoQueue")?
            .is_some_and(|f| f == "true");
        let base = self.physical_name(id);
        Ok(if fifo {
            (format!("{base}.fifo"), true)
        } else {
            (base, false)
        })
    }

    async fn create_queue(&mut self, id: &str) -> Result<(), ProvisionError> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let (name, fifo) = self.queue_name(id)?;
        let mut create = self.sqs.create_queue().queue_name(&name);
        if fifo {
            create = create.attributes(QueueAttributeName::FifoQueue, "true");
        }
        let url = match create.send().await {
            Ok(out) => out.queue_url.unwrap_or_default(),
            Err(e) => {
                tracing::debug!(queue = %name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "CreateQueue refused: looking it up");
                self.sqs
                    .get_queue_url()
                    .queue_name(&name)
                    .send()
                    .await
                    .map_err(|_| aws_error(id, "CreateQueue", e))?
                    .queue_url
                    .unwrap_or_default()
            }
        };
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| aws_error(id, "GetQueueAttributes", e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| invalid(id, "the queue has no QueueArn"))?;
        self.ctx.created.insert(
            id.to_owned(),
            Created {
                reference: url.clone(),
                attributes: BTreeMap::from([("Arn", arn), ("QueueName", name), ("QueueUrl", url)]),
            },
        );
        Ok(())
    }

    async fn set_queue_attributes(&self, id: &str) -> Result<(), ProvisionError> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let mut attributes = std::collections::HashMap::new();
        for prop in [
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
            "ContentBasedDeduplication",
        ] {
            if let Some(v) = self.string_property(id, prop)? {
                attributes.insert(QueueAttributeName::from(prop), v);
            }
        }
        for prop in ["RedrivePolicy", "RedriveAllowPolicy"] {
            if let Some(v) = self.property(id, prop)? {
                let json = match &v {
                    Value::String(s) => s.clone(),
                    other => serde_json::to_string(other)
                        .map_err(|e| invalid(id, format!("{prop}: {e}")))?,
                };
                attributes.insert(QueueAttributeName::from(prop), json);
            }
        }
        if attributes.is_empty() {
            return Ok(());
        }
        let url = &self.ctx.created[id].reference;
        self.sqs
            .set_queue_attributes()
            .queue_url(url)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| aws_error(id, "SetQueueAttributes", e))?;
        Ok(())
    }

    // ------------------------------------------------------------------ Scheduler

    async fn create_schedule_group(&mut self, id: &str) -> Result<(), ProvisionError> {
        use aws_sdk_scheduler::operation::create_schedule_group::CreateScheduleGroupError;
        let name = match self.string_property(id, "Name")? {
            Some(n) => n,
            None => self.physical_name(id),
        };
        let arn = match self
            .scheduler
            .create_schedule_group()
            .name(&name)
            .send()
            .await
        {
            Ok(out) => out.schedule_group_arn,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateScheduleGroupError::ConflictException(_))
                ) =>
            {
                self.scheduler
                    .get_schedule_group()
                    .name(&name)
                    .send()
                    .await
                    .map_err(|e| aws_error(id, "GetScheduleGroup", e))?
                    .arn
                    .unwrap_or_default()
            }
            Err(e) => return Err(aws_error(id, "CreateScheduleGroup", e)),
        };
        self.ctx.created.insert(
            id.to_owned(),
            Created {
                reference: name,
                attributes: BTreeMap::from([("Arn", arn)]),
            },
        );
        Ok(())
    }

    // ------------------------------------------------------------------ SNS

    async fn create_topic(&mut self, id: &str) -> Result<(), ProvisionError> {
        let fifo = self
            .string_property(id, "FifoTopic")?
            .is_some_and(|f| f == "true");
        let mut name = self.physical_name(id);
        let mut create = self.sns.create_topic();
        if fifo {
            name.push_str(".fifo");
            create = create.attributes("FifoTopic", "true");
        }
        let arn = create
            .name(&name)
            .send()
            .await
            .map_err(|e| aws_error(id, "CreateTopic", e))?
            .topic_arn
            .ok_or_else(|| invalid(id, "CreateTopic returned no ARN"))?;
        self.ctx.created.insert(
            id.to_owned(),
            Created {
                reference: arn.clone(),
                attributes: BTreeMap::from([("TopicArn", arn), ("TopicName", name)]),
            },
        );
        Ok(())
    }

    // ------------------------------------------------------------------ Secrets Manager

    async fn create_secret(&mut self, id: &str) -> Result<(), ProvisionError> {
        use aws_sdk_secretsmanager::operation::create_secret::CreateSecretError;
        let name = self.physical_name(id);
        let result = self
            .secrets
            .create_secret()
            .name(&name)
            .secret_string(&self.secret_json)
            .send()
            .await;
        let arn = match result {
            Ok(out) => out.arn,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateSecretError::ResourceExistsException(_))
                ) =>
            {
                self.secrets
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(&self.secret_json)
                    .send()
                    .await
                    .map_err(|e| aws_error(id, "PutSecretValue", e))?
                    .arn
            }
            Err(e) => return Err(aws_error(id, "CreateSecret", e)),
        };
        let arn = arn.ok_or_else(|| invalid(id, "Secrets Manager returned no ARN"))?;
        self.ctx.created.insert(
            id.to_owned(),
            Created {
                reference: arn.clone(),
                attributes: BTreeMap::from([("Id", arn), ("Name", name)]),
            },
        );
        Ok(())
    }

    // ------------------------------------------------------------------ result

    fn created(&self, id: &str, expected: &'static str) -> Result<&Created, ProvisionError> {
        self.ctx
            .created
            .get(id)
            .ok_or_else(|| ProvisionError::Missing {
                resource: id.to_owned(),
                expected,
            })
    }

    fn provisioned(&self) -> Result<Provisioned, ProvisionError> {
        let attr =
            |id: &str, expected: &'static str, attr: &str| -> Result<String, ProvisionError> {
                self.created(id, expected)?
                    .attributes
                    .get(attr)
                    .cloned()
                    .ok_or_else(|| invalid(id, format!("no {attr}")))
            };
        let send_queue = self.created(SEND_QUEUE, QUEUE)?;
        let visibility = match self.string_property(SEND_QUEUE, "VisibilityTimeout")? {
            None => DEFAULT_VISIBILITY_TIMEOUT_S,
            Some(v) => v.parse().map_err(|_| {
                invalid(
                    SEND_QUEUE,
                    format!("VisibilityTimeout {v:?} is not a number"),
                )
            })?,
        };
        let max_receive_count = self
            .property(SEND_QUEUE, "RedrivePolicy")?
            .and_then(|p| p.get("maxReceiveCount").and_then(scalar_string))
            .ok_or_else(|| invalid(SEND_QUEUE, "RedrivePolicy.maxReceiveCount is missing"))?;
        let max_receive_count = max_receive_count
            .parse()
            .map_err(|_| invalid(SEND_QUEUE, "RedrivePolicy.maxReceiveCount is not a number"))?;
        let declared = self.template.resource(SENDER_FUNCTION).is_some();
        let timeout = if declared {
            self.string_property(SENDER_FUNCTION, "Timeout")?
        } else {
            None
        };
        let sender_timeout_s = match timeout {
            None => DEFAULT_FUNCTION_TIMEOUT_S,
            Some(v) => v
                .parse()
                .map_err(|_| invalid(SENDER_FUNCTION, format!("Timeout {v:?} is not a number")))?,
        };
        Ok(Provisioned {
            table_name: self.created(OPT_IN_TABLE, TABLE)?.reference.clone(),
            send_queue_url: send_queue.reference.clone(),
            send_queue_arn: attr(SEND_QUEUE, QUEUE, "Arn")?,
            send_dlq_url: self.created(SEND_DLQ, QUEUE)?.reference.clone(),
            scheduler_dlq_arn: attr(SCHEDULER_DLQ, QUEUE, "Arn")?,
            schedule_group: self.created(SCHEDULE_GROUP, GROUP)?.reference.clone(),
            alert_topic_arn: self.created(ALERT_TOPIC, TOPIC)?.reference.clone(),
            secret_id: self.created(APP_SECRET, SECRET)?.reference.clone(),
            page_token_secret_id: self
                .template
                .resource(PAGE_TOKEN_SECRET)
                .is_some()
                .then(|| self.created(PAGE_TOKEN_SECRET, SECRET))
                .transpose()?
                .map(|c| c.reference.clone()),
            sweep_rate: self
                .template
                .parameter_default("SweepRate")
                .and_then(scalar_string),
            send_queue_visibility_timeout_s: visibility,
            max_receive_count,
            sender_timeout_s,
        })
    }
}

// ---------------------------------------------------------------------- DynamoDB property readers

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

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        let mut created = BTreeMap::new();
        created.insert(
            "Q".to_owned(),
            Created {
                reference: "http://q".into(),
                attributes: BTreeMap::from([("Arn", "arn:aws:sqs:us-east-1:1:q".to_owned())]),
            },
        );
        Context {
            stack_name: "st".into(),
            region: "us-east-1".into(),
            created,
        }
    }

    fn template(yaml: &str) -> Template {
        Template::parse(&serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    const YAML: &str = r#"
Parameters:
  Rate: { Type: String, Default: rate(5 minutes) }
  Email: { Type: String, Default: "" }
  NoDefault: { Type: String }
Conditions:
  HasEmail: !Not [!Equals [!Ref Email, ""]]
  NoEmail: { "Fn::Equals": [{ Ref: Email }, ""] }
  Both: !And [!Condition HasEmail, !Condition NoEmail]
Resources:
  R: { Type: AWS::SNS::Topic }
"#;

    #[test]
    fn short_and_long_intrinsics_resolve() {
        let t = template(YAML);
        let c = ctx();
        let v = |s: &str| c.resolve(&t, &serde_yaml_ng::from_str(s).unwrap());
        assert_eq!(
            v("!Ref Rate").unwrap(),
            Value::String("rate(5 minutes)".into())
        );
        assert_eq!(v("{Ref: Q}").unwrap(), Value::String("http://q".into()));
        assert_eq!(
            v("!GetAtt Q.Arn").unwrap(),
            Value::String("arn:aws:sqs:us-east-1:1:q".into())
        );
        assert_eq!(
            v("{\"Fn::GetAtt\": [Q, Arn]}").unwrap(),
            Value::String("arn:aws:sqs:us-east-1:1:q".into())
        );
        assert_eq!(
            v("!Sub \"${AWS::StackName}-deadlines-${Q.Arn}-${!Literal}-${AWS::Region}\"").unwrap(),
            Value::String("st-deadlines-arn:aws:sqs:us-east-1:1:q-${Literal}-us-east-1".into())
        );
        assert_eq!(
            v("!Sub [\"${X}-${AWS::AccountId}\", {X: !Ref Rate}]").unwrap(),
            Value::String("rate(5 minutes)-123456789012".into())
        );
        assert_eq!(
            v("!Join [\"/\", [a, !Ref Q]]").unwrap(),
            Value::String("a/http://q".into())
        );
        let nested = v("{a: [1, !Ref Rate]}").unwrap();
        assert_eq!(nested["a"][1], Value::String("rate(5 minutes)".into()));
        assert!(v("!Ref NoDefault").unwrap_err().contains("NoDefault"));
        assert!(v("!Ref Missing").unwrap_err().contains("Missing"));
        assert!(v("!GetAtt Q.Nope").unwrap_err().contains("Q.Nope"));
        assert!(v("!If [c, a, b]").unwrap_err().contains("Fn::If"));
    }

    #[test]
    fn conditions_evaluate_with_parameter_defaults() {
        let t = template(YAML);
        let c = ctx();
        assert!(!c.named_condition(&t, "HasEmail", 0).unwrap());
        assert!(c.named_condition(&t, "NoEmail", 0).unwrap());
        assert!(!c.named_condition(&t, "Both", 0).unwrap());
        assert!(c.named_condition(&t, "Nope", 0).is_err());
    }

    #[test]
    fn templates_without_resources_are_refused() {
        let v: Value = serde_yaml_ng::from_str("Parameters: {}").unwrap();
        assert!(Template::parse(&v).unwrap_err().contains("no Resources"));
    }
}
