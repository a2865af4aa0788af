//! [`Alerts`] on SNS: one message per alert on the alert topic (which also receives the alarms).

use crate::aws::port_error;
use crate::domain::Alert;
use crate::ports::{Alerts, PortError, PortResult};
use async_trait::async_trait;
use aws_sdk_sns::Client;

const SERVICE: &str = "sns";
/// SNS refuses longer subjects.
pub const MAX_SUBJECT_CHARS: usize = 100;

/// The SNS alert topic.
#[derive(Debug, Clone)]
pub struct SnsAlerts {
    client: Client,
    topic_arn: String,
}

impl SnsAlerts {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

/// A subject SNS accepts: printable ASCII on one line, at most [`MAX_SUBJECT_CHARS`] characters.
pub fn sns_subject(subject: &str) -> String {
    subject
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .take(MAX_SUBJECT_CHARS)
        .collect()
}

#[async_trait]
impl Alerts for SnsAlerts {
    async fn publish(&self, alert: &Alert) -> PortResult<()> {
        let message = serde_json::to_string_pretty(alert)
            .map_err(|e| PortError::new(SERVICE, format!("cannot encode the alert: {e}")))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(sns_subject(&alert.subject()))
            .message(message)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, "Publish", &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_truncated_and_ascii() {
        assert_eq!(sns_subject("ok (Page 1)"), "ok (Page 1)");
        assert_eq!(sns_subject(&"x".repeat(150)).len(), MAX_SUBJECT_CHARS);
        assert_eq!(sns_subject("a\nb—c"), "a?b?c");
    }
}
