//! Doctor's AWS reads, with the operator's credentials (or the emulator's): the secrets, the
//! alert topic's subscriptions, the dead-letter queues' depth, the stack's alarms and the sweep
//! schedule. Only the ops CLI makes these calls (no function needs them), so they live here,
//! not in `shared::adapters`.

use super::Facts;
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::error::SdkError;
use shared::config::secrets::SecretString;
use shared::domain::preflight::{self, Check, DeadLetterQueue, Target, TopicSubscription};

/// A short, value-free description of an SDK error: its code and message, or its kind.
pub fn describe<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(_) => match (err.code(), err.message()) {
            (Some(code), Some(m)) => format!("{code}: {}", m.chars().take(200).collect::<String>()),
            (Some(code), None) => code.to_owned(),
            _ => "service error".to_owned(),
        },
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(_) => "could not reach the service".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        _ => "request not sent".to_owned(),
    }
}

/// The secret's and the Page token secret's JSON, as read.
pub struct SecretDocs {
    pub main: Result<String, String>,
    /// `None` when the stack keeps the Page token in the main secret.
    pub page: Option<Result<String, String>>,
}

async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
) -> Result<String, String> {
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    out.secret_string
        .ok_or_else(|| "the secret has no string value".to_owned())
}

pub async fn read_secrets(sdk: &aws_config::SdkConfig, facts: &Facts) -> SecretDocs {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let main = secret_string(&client, &facts.secret_id).await;
    let page = match &facts.page_token_secret_id {
        Some(id) => Some(secret_string(&client, id).await),
        None => None,
    };
    SecretDocs { main, page }
}

impl SecretDocs {
    pub fn check(&self, target: &Target) -> Check {
        let main = match &self.main {
            Ok(m) => m,
            Err(e) => {
                return Check::fail(
                    format!("the secret {} could not be read ({e})", target.secret_id),
                    "run doctor with AWS credentials allowed to secretsmanager:GetSecretValue (and kms:Decrypt) on the stack's secrets",
                );
            }
        };
        match &self.page {
            Some(Err(e)) => Check::fail(
                format!("the Page token secret could not be read ({e})"),
                "run doctor with AWS credentials allowed to secretsmanager:GetSecretValue on PageTokenSecretArn",
            ),
            Some(Ok(page)) => preflight::secret(target, main, Some(page)),
            None => preflight::secret(target, main, None),
        }
    }

    fn field(json: &Result<String, String>, name: &str) -> Option<SecretString> {
        let doc: serde_json::Value = serde_json::from_str(json.as_ref().ok()?).ok()?;
        doc.get(name)
            .and_then(|v| v.as_str())
            .filter(|v| !v.trim().is_empty())
            .map(SecretString::new)
    }

    pub fn app_secret(&self) -> Option<SecretString> {
        Self::field(&self.main, "app_secret")
    }

    pub fn verify_token(&self) -> Option<SecretString> {
        Self::field(&self.main, "verify_token")
    }

    pub fn page_token(&self) -> Option<SecretString> {
        Self::field(
            self.page.as_ref().unwrap_or(&self.main),
            "page_access_token",
        )
    }
}

/// The AWS side: alert topic, the dead-letter queues (send, scheduler, events), alarms, the sweep
/// schedule.
pub async fn checks(sdk: &aws_config::SdkConfig, facts: &Facts) -> Vec<Check> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut checks = vec![
        alert_topic(sdk, facts).await,
        dead_letter_queue(&sqs, DeadLetterQueue::Send, &facts.send_dlq_url).await,
        dead_letter_queue(&sqs, DeadLetterQueue::Scheduler, &facts.scheduler_dlq_url).await,
    ];
    if let Some(url) = &facts.events_dlq_url {
        checks.push(dead_letter_queue(&sqs, DeadLetterQueue::Events, url).await);
    }
    checks.push(alarms(sdk, facts).await);
    checks.push(sweep_schedule(sdk, facts).await);
    checks
}

async fn alert_topic(sdk: &aws_config::SdkConfig, facts: &Facts) -> Check {
    let sns = aws_sdk_sns::Client::new(sdk);
    let mut subscriptions = Vec::new();
    let mut pages = sns
        .list_subscriptions_by_topic()
        .topic_arn(&facts.alert_topic_arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(out) => subscriptions.extend(out.subscriptions().iter().map(|s| {
                TopicSubscription {
                    protocol: s.protocol().unwrap_or("unknown").to_owned(),
                    // Until confirmed, the ARN is the literal "PendingConfirmation".
                    confirmed: s
                        .subscription_arn()
                        .is_some_and(|arn| arn.starts_with("arn:")),
                }
            })),
            Err(e) => return preflight::alert_topic(&facts.alert_topic_arn, Err(&describe(&e))),
        }
    }
    preflight::alert_topic(&facts.alert_topic_arn, Ok(&subscriptions))
}

async fn dead_letter_queue(sqs: &aws_sdk_sqs::Client, kind: DeadLetterQueue, url: &str) -> Check {
    use aws_sdk_sqs::types::QueueAttributeName;
    let count = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| describe(&e))
        .and_then(|out| {
            out.attributes()
                .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| "no ApproximateNumberOfMessages".to_owned())
        });
    preflight::dead_letter_queue(kind, url, count.as_ref().copied().map_err(String::as_str))
}

async fn alarms(sdk: &aws_config::SdkConfig, facts: &Facts) -> Check {
    let cloudwatch = aws_sdk_cloudwatch::Client::new(sdk);
    let mut request = cloudwatch.describe_alarms();
    request = match &facts.alarm_names {
        Some(names) => request.set_alarm_names(Some(names.clone())),
        None => request.alarm_name_prefix(format!("{}-", facts.stack_name)),
    };
    let mut found = Vec::new();
    let mut pages = request.into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(out) => found.extend(out.metric_alarms().iter().map(|a| {
                (
                    a.alarm_name().unwrap_or_default().to_owned(),
                    a.state_value()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })),
            // moto (the local emulator) does not speak CloudWatch's CBOR protocol, which the
            // Rust SDK uses: say so rather than fail the local checklist.
            Err(e) if facts.aws_endpoint_url.is_some() => {
                return Check::not_checked(
                    "the stack's alarms are not in ALARM",
                    format!(
                        "the local emulator does not answer CloudWatch DescribeAlarms in the SDK's protocol ({}); checked against AWS",
                        describe(&e)
                    ),
                );
            }
            Err(e) => return preflight::alarms(Err(&describe(&e))),
        }
    }
    preflight::alarms(Ok(&found))
}

async fn sweep_schedule(sdk: &aws_config::SdkConfig, facts: &Facts) -> Check {
    use aws_sdk_scheduler::operation::get_schedule::GetScheduleError;
    let Some(name) = &facts.sweep_schedule else {
        return preflight::sweep_schedule("(sweep)", Ok(None));
    };
    let scheduler = aws_sdk_scheduler::Client::new(sdk);
    match scheduler.get_schedule().name(name).send().await {
        Ok(out) => preflight::sweep_schedule(name, Ok(out.state().map(|s| s.as_str()))),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetScheduleError::ResourceNotFoundException(_))
            ) =>
        {
            preflight::sweep_schedule(name, Ok(None))
        }
        Err(e) => preflight::sweep_schedule(name, Err(&describe(&e))),
    }
}
