//! [`Alerts`] on SNS: one message per alert on the alert topic (which also receives the alarms).
//! The message is the alert's JSON (fields a kind does not have are left out, see docs/alerts.md);
//! [`alert_text`] is how people read it (the local alert inbox prints it).

use crate::adapters::aws::port_error;
use crate::domain::alert::Alert;
use crate::ports::alerts::Alerts;
use crate::ports::error::{PortError, PortResult};
use async_trait::async_trait;
use aws_sdk_sns::Client;

const SERVICE: &str = "sns";
/// SNS refuses longer subjects.
pub const MAX_SUBJECT_CHARS: usize = 100;

/// The SNS alert topic.
#[derive(Debug, Clone)]
pub struct SnsAlerts {
    client: crate::adapters::aws::LazyClient<Client>,
    topic_arn: String,
}

impl SnsAlerts {
    pub fn new(
        client: impl Into<crate::adapters::aws::LazyClient<Client>>,
        topic_arn: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
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

/// The alert for people, one field a line, showing only the fields its kind has: a Page-wide
/// alert has no opt-in, state or deadline line (it says when the Page's sends are stopped).
pub fn alert_text(alert: &Alert) -> String {
    let mut lines = Vec::new();
    match (&alert.login_id_prefix, alert.state, &alert.deadline_utc) {
        (Some(prefix), Some(state), _) => {
            lines.push(format!(
                "opt-in      {prefix} (login_id prefix), state {state}"
            ));
        }
        (Some(prefix), None, _) => {
            lines.push(format!("login       {prefix} (login_id prefix; no opt-in)"));
        }
        (None, Some(state), None) => {
            lines.push(format!("Page        sending {state} for the whole Page"));
        }
        (None, Some(state), Some(_)) => lines.push(format!("state       {state}")),
        (None, None, _) => {}
    }
    if let Some(deadline) = &alert.deadline_utc {
        lines.push(format!("deadline    {deadline}"));
    }
    if !alert.gave_up_utc.is_empty() {
        lines.push(format!("gave up     {}", alert.gave_up_utc));
    }
    lines.push(format!("detail      {}", alert.detail));
    if let Some(e) = &alert.last_error {
        let code = match e.subcode {
            Some(sub) => format!("{}/{sub}", e.code),
            None => e.code.to_string(),
        };
        lines.push(format!("last error  {code} {}", e.message));
    }
    lines
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[async_trait]
impl Alerts for SnsAlerts {
    async fn publish(&self, alert: &Alert) -> PortResult<()> {
        let message = serde_json::to_string_pretty(alert)
            .map_err(|e| PortError::new(SERVICE, format!("cannot encode the alert: {e}")))?;
        self.client
            .get()
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
    use crate::domain::alert::AlertKind;
    use crate::domain::opt_in::{LastError, OptIn, OptInKey};

    fn opt_in() -> OptIn {
        let mut o = OptIn::new(
            OptInKey::new("200", "abcdefgh12345678"),
            Some(1_000),
            1_000,
            60_000,
            0,
        );
        o.last_error = Some(LastError {
            code: 1200,
            subcode: Some(2_018_024),
            fbtrace_id: None,
            message: "Temporary send message failure".into(),
        });
        o
    }

    /// Issue 14: a Page-wide alert printed an empty opt-in, "state OPTED_IN" and an empty deadline.
    #[test]
    fn a_page_wide_alert_shows_no_opt_in_state_or_deadline() {
        for paused in [false, true] {
            let a = Alert::for_page("200", AlertKind::PolicyEnforcement, paused, "Meta warned.");
            let text = alert_text(&a);
            assert!(!text.contains("OPTED_IN"), "{text}");
            assert!(!text.contains("opt-in"), "{text}");
            assert!(!text.contains("deadline"), "{text}");
            assert!(text.contains("detail      Meta warned."), "{text}");
            assert_eq!(
                text.contains("sending PAUSED for the whole Page"),
                paused,
                "{text}"
            );
            let json = serde_json::to_value(&a).unwrap();
            for absent in ["login_id_prefix", "deadline_at", "deadline_utc"] {
                assert!(json.get(absent).is_none(), "{absent}: {json}");
            }
            assert_eq!(json.get("state").is_some(), paused, "{json}");
        }
        let a = Alert::login_without_opt_in("200", "abcdefgh12345678", "no opt-in");
        let text = alert_text(&a);
        assert!(
            text.contains("login       abcdefgh (login_id prefix; no opt-in)"),
            "{text}"
        );
        assert!(
            !text.contains("OPTED_IN") && !text.contains("deadline"),
            "{text}"
        );
        assert!(!text.contains("abcdefgh12345678"), "{text}");
    }

    #[test]
    fn an_opt_in_alert_shows_its_opt_in_state_and_deadline() {
        let a = Alert::about(&opt_in(), AlertKind::DeadlineAtRisk, "still unsent");
        let text = alert_text(&a);
        assert!(
            text.contains("opt-in      abcdefgh (login_id prefix), state OPTED_IN"),
            "{text}"
        );
        assert!(text.contains("deadline    1970-01-01T00:01:01Z"), "{text}");
        assert!(
            text.contains("last error  1200/2018024 Temporary"),
            "{text}"
        );
        assert!(
            !text.contains("gave up") && !text.contains("abcdefgh12345678"),
            "{text}"
        );
        let gave_up = alert_text(&Alert::gave_up(&opt_in(), 30_000, "gave up"));
        assert!(
            gave_up.contains("gave up     1970-01-01T00:00:30Z"),
            "{gave_up}"
        );
    }

    /// Alerts published before the fields were optional carried `""`, `0` and `OPTED_IN`.
    #[test]
    fn alerts_in_the_old_shape_still_parse() {
        let old = r#"{"kind":"policy_enforcement","page_id":"200","login_id_prefix":"",
            "state":"PAUSED","deadline_at":0,"deadline_utc":"","detail":"d"}"#;
        let a: Alert = serde_json::from_str(old).unwrap();
        assert_eq!(
            a,
            Alert::for_page("200", AlertKind::PolicyEnforcement, true, "d")
        );
        let o = Alert::about(&opt_in(), AlertKind::DeadlineMissed, "x");
        let back: Alert = serde_json::from_value(serde_json::to_value(&o).unwrap()).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn subjects_are_truncated_and_ascii() {
        assert_eq!(sns_subject("ok (Page 1)"), "ok (Page 1)");
        assert_eq!(sns_subject(&"x".repeat(150)).len(), MAX_SUBJECT_CHARS);
        assert_eq!(sns_subject("a\nb—c"), "a?b?c");
    }
}
