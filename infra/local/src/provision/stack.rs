//! The entry point ([`provision`]), what it returns ([`Provisioned`]), and the provisioner: the
//! resources of each supported type in order, their resolved properties, and the result read by
//! the logical IDs of the template contract.

use super::template::{Context, Created, Template, scalar_string};
use aws_config::SdkConfig;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// What was created, by the logical IDs of the template contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub table_name: String,
    pub send_queue_url: String,
    pub send_queue_arn: String,
    pub send_dlq_url: String,
    pub scheduler_dlq_arn: String,
    pub scheduler_dlq_url: String,
    pub schedule_group: String,
    pub alert_topic_arn: String,
    pub secret_id: String,
    /// The sender-only Page token secret (`PageTokenSecret`), when the template has one. Every
    /// secret is seeded with the same JSON, so it holds the `page_access_token` too.
    pub page_token_secret_id: Option<String>,
    /// The default of the `SweepRate` parameter, if the template has one.
    pub sweep_rate: Option<String>,
    /// The sweep's recurring schedule in the default group (`ops doctor` checks it is ENABLED).
    pub sweep_schedule: Option<String>,
    pub send_queue_visibility_timeout_s: i32,
    pub max_receive_count: i32,
    /// `SenderFunction.Timeout`: the local SQS event source ends an invocation after it, as Lambda does.
    pub sender_timeout_s: u64,
    /// The events queue, its dead-letter queue and the signing key's secret (`EventsQueue`,
    /// `EventsDeadLetterQueue`, `EventsSigningSecret`), when the template has them.
    pub events: Option<ProvisionedEvents>,
}

/// The events resources of the template (issue 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedEvents {
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub signing_secret_id: String,
    /// `EventSenderFunction.Timeout`.
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
pub(super) const OPT_IN_TABLE: &str = "OptInTable";
pub(super) const SEND_QUEUE: &str = "SendQueue";
pub(super) const SEND_DLQ: &str = "SendDeadLetterQueue";
pub(super) const SENDER_FUNCTION: &str = "SenderFunction";
/// Lambda's default function timeout.
pub(super) const DEFAULT_FUNCTION_TIMEOUT_S: u64 = 3;
pub(super) const SCHEDULER_DLQ: &str = "SchedulerDeadLetterQueue";
pub(super) const SCHEDULE_GROUP: &str = "DeadlineScheduleGroup";
pub(super) const ALERT_TOPIC: &str = "AlertTopic";
pub(super) const APP_SECRET: &str = "AppSecret";
pub(super) const PAGE_TOKEN_SECRET: &str = "PageTokenSecret";
pub(super) const EVENTS_QUEUE: &str = "EventsQueue";
pub(super) const EVENTS_DLQ: &str = "EventsDeadLetterQueue";
pub(super) const EVENTS_SIGNING_SECRET: &str = "EventsSigningSecret";
pub(super) const EVENT_SENDER_FUNCTION: &str = "EventSenderFunction";
/// The function whose `ScheduleV2` event `Sweep` is the recurring sweep.
pub(super) const SWEEP_FUNCTION: &str = "DeadlineAlertsFunction";
pub(super) const SWEEP_EVENT: &str = "Sweep";

pub(super) const TABLE: &str = "AWS::DynamoDB::Table";
pub(super) const QUEUE: &str = "AWS::SQS::Queue";
pub(super) const GROUP: &str = "AWS::Scheduler::ScheduleGroup";
pub(super) const TOPIC: &str = "AWS::SNS::Topic";
pub(super) const SECRET: &str = "AWS::SecretsManager::Secret";

/// SQS's default visibility timeout, when the template does not set one.
pub(super) const DEFAULT_VISIBILITY_TIMEOUT_S: i32 = 30;

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
        sweep_schedule: None,
    };
    p.create_all().await?;
    p.provisioned()
}

pub(super) struct Provisioner {
    pub(super) template: Template,
    pub(super) ctx: Context,
    pub(super) dynamodb: aws_sdk_dynamodb::Client,
    pub(super) sqs: aws_sdk_sqs::Client,
    pub(super) scheduler: aws_sdk_scheduler::Client,
    pub(super) sns: aws_sdk_sns::Client,
    pub(super) secrets: aws_sdk_secretsmanager::Client,
    pub(super) secret_json: String,
    pub(super) sweep_schedule: Option<String>,
}

pub(super) fn aws_error<E>(resource: &str, operation: &'static str, err: E) -> ProvisionError
where
    E: std::error::Error + 'static,
{
    ProvisionError::Aws {
        resource: resource.to_owned(),
        operation,
        message: aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string(),
    }
}

pub(super) fn invalid(resource: &str, message: impl Into<String>) -> ProvisionError {
    ProvisionError::Invalid {
        resource: resource.to_owned(),
        message: message.into(),
    }
}

impl Provisioner {
    pub(super) fn physical_name(&self, id: &str) -> String {
        format!("{}-{id}", self.ctx.stack_name)
    }

    /// Logical IDs of the resources of `kind` that this stack would create.
    pub(super) fn of_type(&self, kind: &str) -> Result<Vec<String>, ProvisionError> {
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
    pub(super) fn property(&self, id: &str, name: &str) -> Result<Option<Value>, ProvisionError> {
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

    pub(super) fn string_property(
        &self,
        id: &str,
        name: &str,
    ) -> Result<Option<String>, ProvisionError> {
        self.property(id, name)?
            .map(|v| {
                scalar_string(&v).ok_or_else(|| invalid(id, format!("{name} is not a scalar")))
            })
            .transpose()
    }

    pub(super) async fn create_all(&mut self) -> Result<(), ProvisionError> {
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
        self.sweep_schedule = self.create_sweep_schedule().await?;
        for (id, def) in &self.template.resources {
            if !self.ctx.created.contains_key(id) {
                let kind = def.get("Type").and_then(Value::as_str).unwrap_or("?");
                tracing::debug!(resource = %id, kind, "not created locally");
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ result

    /// Remember a created resource: what `!Ref` gives and its `!GetAtt` attributes.
    pub(super) fn remember<const N: usize>(
        &mut self,
        id: &str,
        reference: String,
        attributes: [(&'static str, String); N],
    ) {
        let attributes = BTreeMap::from(attributes);
        self.ctx.created.insert(
            id.to_owned(),
            Created {
                reference,
                attributes,
            },
        );
    }

    pub(super) fn created(
        &self,
        id: &str,
        expected: &'static str,
    ) -> Result<&Created, ProvisionError> {
        self.ctx
            .created
            .get(id)
            .ok_or_else(|| ProvisionError::Missing {
                resource: id.to_owned(),
                expected,
            })
    }

    pub(super) fn provisioned(&self) -> Result<Provisioned, ProvisionError> {
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
        let sender_timeout_s = self.function_timeout(SENDER_FUNCTION)?;
        Ok(Provisioned {
            table_name: self.created(OPT_IN_TABLE, TABLE)?.reference.clone(),
            send_queue_url: send_queue.reference.clone(),
            send_queue_arn: attr(SEND_QUEUE, QUEUE, "Arn")?,
            send_dlq_url: self.created(SEND_DLQ, QUEUE)?.reference.clone(),
            scheduler_dlq_arn: attr(SCHEDULER_DLQ, QUEUE, "Arn")?,
            scheduler_dlq_url: self.created(SCHEDULER_DLQ, QUEUE)?.reference.clone(),
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
            sweep_schedule: self.sweep_schedule.clone(),
            send_queue_visibility_timeout_s: visibility,
            max_receive_count,
            sender_timeout_s,
            events: self.provisioned_events()?,
        })
    }

    /// `Timeout` of the function `id` (Lambda's default when absent or undeclared).
    fn function_timeout(&self, id: &str) -> Result<u64, ProvisionError> {
        let declared = self.template.resource(id).is_some();
        let timeout = if declared {
            self.string_property(id, "Timeout")?
        } else {
            None
        };
        match timeout {
            None => Ok(DEFAULT_FUNCTION_TIMEOUT_S),
            Some(v) => v
                .parse()
                .map_err(|_| invalid(id, format!("Timeout {v:?} is not a number"))),
        }
    }

    /// The events resources, when the template declares the events queue.
    fn provisioned_events(&self) -> Result<Option<ProvisionedEvents>, ProvisionError> {
        if self.template.resource(EVENTS_QUEUE).is_none() {
            return Ok(None);
        }
        let queue = self.created(EVENTS_QUEUE, QUEUE)?;
        Ok(Some(ProvisionedEvents {
            queue_url: queue.reference.clone(),
            queue_arn: queue
                .attributes
                .get("Arn")
                .cloned()
                .ok_or_else(|| invalid(EVENTS_QUEUE, "no Arn"))?,
            dlq_url: self.created(EVENTS_DLQ, QUEUE)?.reference.clone(),
            signing_secret_id: self
                .created(EVENTS_SIGNING_SECRET, SECRET)?
                .reference
                .clone(),
            sender_timeout_s: self.function_timeout(EVENT_SENDER_FUNCTION)?,
        }))
    }
}
