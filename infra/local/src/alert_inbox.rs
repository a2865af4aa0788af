//! A local stand-in for the operators' e-mail: an SQS queue subscribed to the alert topic, so a
//! person running `make run` sees every alert printed, and tests can read exactly what was published.

use aws_sdk_sqs::types::QueueAttributeName;
use shared::domain::alert::Alert;
use std::time::Duration;

/// One message received from the alert topic.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedAlert {
    pub subject: String,
    /// The alert, when the message is one of ours (alarm notifications are other JSON).
    pub alert: Option<Alert>,
    /// The SNS `Message` as published.
    pub message: String,
}

pub struct AlertInbox {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl AlertInbox {
    /// Create the queue `queue_name` and subscribe it to `topic_arn`.
    pub async fn subscribe(
        sdk: &aws_config::SdkConfig,
        topic_arn: &str,
        queue_name: &str,
    ) -> Result<Self, String> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let err = |what: &str, e: &dyn std::fmt::Display| format!("alert inbox: {what}: {e}");
        let queue_url = sqs
            .create_queue()
            .queue_name(queue_name)
            .send()
            .await
            .map_err(|e| err("CreateQueue", &aws_sdk_sqs::error::DisplayErrorContext(&e)))?
            .queue_url
            .ok_or_else(|| "alert inbox: CreateQueue returned no URL".to_owned())?;
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| {
                err(
                    "GetQueueAttributes",
                    &aws_sdk_sqs::error::DisplayErrorContext(&e),
                )
            })?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| "alert inbox: the queue has no ARN".to_owned())?;
        aws_sdk_sns::Client::new(sdk)
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .map_err(|e| err("Subscribe", &aws_sdk_sns::error::DisplayErrorContext(&e)))?;
        Ok(Self { sqs, queue_url })
    }

    /// Receive (and delete) what arrived, waiting up to `wait` for the first message.
    pub async fn receive(&self, wait: Duration) -> Result<Vec<ReceivedAlert>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).min(20))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "alert inbox: ReceiveMessage: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            })?;
        let mut received = Vec::new();
        for m in out.messages.unwrap_or_default() {
            if let Some(body) = m.body() {
                received.push(parse_envelope(body));
            }
            if let Some(handle) = m.receipt_handle() {
                let _ = self
                    .sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
        Ok(received)
    }

    /// Everything that arrives until the queue stays empty for `quiet`.
    pub async fn drain(&self, quiet: Duration) -> Result<Vec<ReceivedAlert>, String> {
        let mut all = Vec::new();
        loop {
            let got = self.receive(quiet).await?;
            if got.is_empty() {
                return Ok(all);
            }
            all.extend(got);
        }
    }
}

/// The SNS → SQS envelope (`{"Type":"Notification","Subject":…,"Message":…}`).
pub fn parse_envelope(body: &str) -> ReceivedAlert {
    let envelope: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let subject = envelope["Subject"].as_str().unwrap_or_default().to_owned();
    let message = envelope["Message"].as_str().unwrap_or(body).to_owned();
    ReceivedAlert {
        subject,
        alert: serde_json::from_str(&message).ok(),
        message,
    }
}

/// How `make run` shows an alert.
pub fn render(alert: &ReceivedAlert) -> String {
    match &alert.alert {
        Some(a) => format!(
            "ALERT  {}\n{}",
            alert.subject,
            shared::adapters::sns::alert_text(a)
        ),
        None => format!("ALERT  {}\n    {}", alert.subject, alert.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::alert::AlertKind;
    use shared::domain::opt_in::{LastError, OptIn, OptInKey};

    #[test]
    fn envelopes_parse_and_render_without_the_full_login_id() {
        let mut o = OptIn::new(
            OptInKey::new("200", "abcdefgh12345678"),
            Some(1_000),
            1_000,
            60_000,
            0,
        );
        o.last_error = Some(LastError {
            code: 190,
            subcode: Some(460),
            fbtrace_id: None,
            message: "Invalid OAuth access token.".into(),
        });
        let alert = Alert::about(&o, AlertKind::DeadlineAtRisk, "still unsent");
        let body = serde_json::json!({
            "Type": "Notification",
            "Subject": alert.subject(),
            "Message": serde_json::to_string(&alert).unwrap(),
        })
        .to_string();
        let got = parse_envelope(&body);
        assert_eq!(got.alert.as_ref(), Some(&alert));
        let text = render(&got);
        assert!(text.contains("abcdefgh (login_id prefix), state OPTED_IN"));
        assert!(text.contains("190/460 Invalid OAuth access token."));
        assert!(text.contains("1970-01-01T00:01:01Z"));
        assert!(!text.contains("abcdefgh12345678"));
        let alarm = parse_envelope(r#"{"Subject":"ALARM: x","Message":"{\"AlarmName\":\"x\"}"}"#);
        assert_eq!(alarm.alert, None);
        assert!(render(&alarm).contains("ALARM: x"));
    }
}
