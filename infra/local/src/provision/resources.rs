//! Queues (with their redrive policies), schedule groups, topics, secrets and the sweep's schedule.

use super::stack::{ProvisionError, Provisioner, SWEEP_EVENT, SWEEP_FUNCTION, aws_error, invalid};
use serde_yaml_ng::Value;

impl Provisioner {
    // ------------------------------------------------------------------ SQS

    pub(super) fn queue_name(&self, id: &str) -> Result<(String, bool), ProvisionError> {
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

    pub(super) async fn create_queue(&mut self, id: &str) -> Result<(), ProvisionError> {
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
        self.remember(
            id,
            url.clone(),
            [("Arn", arn), ("QueueName", name), ("QueueUrl", url)],
        );
        Ok(())
    }

    pub(super) async fn set_queue_attributes(&self, id: &str) -> Result<(), ProvisionError> {
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

    pub(super) async fn create_schedule_group(&mut self, id: &str) -> Result<(), ProvisionError> {
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
        self.remember(id, name, [("Arn", arn)]);
        Ok(())
    }

    // ------------------------------------------------------------------ SNS

    pub(super) async fn create_topic(&mut self, id: &str) -> Result<(), ProvisionError> {
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
        self.remember(id, arn.clone(), [("TopicArn", arn), ("TopicName", name)]);
        Ok(())
    }

    // ------------------------------------------------------------------ Secrets Manager

    pub(super) async fn create_secret(&mut self, id: &str) -> Result<(), ProvisionError> {
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
        self.remember(id, arn.clone(), [("Id", arn), ("Name", name)]);
        Ok(())
    }

    // ------------------------------------------------------------------ the sweep's schedule

    /// The recurring sweep, as SAM's `ScheduleV2` event of the alerts function creates it (in the
    /// default group), so that `ops doctor` reads its state locally as in AWS. The local runner's
    /// own timer still drives the sweep (`event_sources::run_scheduler`). Returns its name.
    pub(super) async fn create_sweep_schedule(&mut self) -> Result<Option<String>, ProvisionError> {
        use aws_sdk_scheduler::types::{
            FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Target,
        };
        let Some(function) = self.template.resource(SWEEP_FUNCTION) else {
            return Ok(None);
        };
        let Some(event) = function
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(|e| e.get(SWEEP_EVENT))
            .and_then(|e| e.get("Properties"))
            .cloned()
        else {
            return Ok(None);
        };
        let id = format!("{SWEEP_FUNCTION}{SWEEP_EVENT}");
        let expression = match event.get("ScheduleExpression") {
            Some(v) => self
                .ctx
                .resolve(&self.template, v)
                .ok()
                .as_ref()
                .and_then(super::template::scalar_string),
            None => None,
        }
        .ok_or_else(|| invalid(&id, "ScheduleExpression does not resolve"))?;
        let input = event
            .get("Input")
            .and_then(super::template::scalar_string)
            .unwrap_or_default();
        let (stack, region) = (&self.ctx.stack_name, &self.ctx.region);
        let name = format!("{stack}-{id}");
        let target = Target::builder()
            .arn(format!(
                "arn:aws:lambda:{region}:123456789012:function:{stack}-deadline-alerts"
            ))
            .role_arn(format!("arn:aws:iam::123456789012:role/{stack}-scheduler"))
            .input(input)
            .build()
            .map_err(|e| invalid(&id, e.to_string()))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| invalid(&id, e.to_string()))?;
        let created = self
            .scheduler
            .create_schedule()
            .name(&name)
            .schedule_expression(expression)
            .state(ScheduleState::Enabled)
            .flexible_time_window(window)
            .target(target)
            .send()
            .await;
        if let Err(e) = created {
            use aws_sdk_scheduler::operation::create_schedule::CreateScheduleError;
            // Already there: a second `make run` on the same emulator.
            if !matches!(
                e.as_service_error(),
                Some(CreateScheduleError::ConflictException(_))
            ) {
                return Err(aws_error(&id, "CreateSchedule", e));
            }
        }
        Ok(Some(name))
    }
}
