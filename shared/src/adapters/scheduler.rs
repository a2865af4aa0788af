//! [`DeadlineScheduler`] on EventBridge Scheduler: one one-time `at()` schedule per opt-in, named
//! by [`deadline_schedule_name`], in the stack's schedule group, deleted by Scheduler after it fires.
//!
//! The schedule's target input is the JSON of [`AlertInput::DeadlineCheck`] (versioned).
//! Creating a schedule that exists (`ConflictException`) and deleting one that does not
//! (`ResourceNotFoundException`) both count as success, so callers can retry freely.

use crate::adapters::aws::port_error;
use crate::domain::jobs::{AlertInput, DeadlineCheck, deadline_schedule_name};
use crate::domain::opt_in::{Millis, OptInKey};
use crate::ports::error::{PortError, PortResult};
use crate::ports::scheduler::DeadlineScheduler;
use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::operation::create_schedule::CreateScheduleError;
use aws_sdk_scheduler::operation::delete_schedule::DeleteScheduleError;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};

const SERVICE: &str = "scheduler";
const AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
/// Delivery retries of the target invocation.
pub const MAXIMUM_RETRY_ATTEMPTS: i32 = 3;
/// How long Scheduler keeps retrying an undelivered invocation.
pub const MAXIMUM_EVENT_AGE_SECONDS: i32 = 3600;
/// The timezone of every `at()` expression we write.
pub const SCHEDULE_TIMEZONE: &str = "UTC";

/// The EventBridge Scheduler deadline scheduler.
#[derive(Debug, Clone)]
pub struct EventBridgeDeadlineScheduler {
    client: crate::adapters::aws::LazyClient<Client>,
    group: String,
    target_arn: String,
    role_arn: String,
    dlq_arn: Option<String>,
}

impl EventBridgeDeadlineScheduler {
    pub fn new(
        client: impl Into<crate::adapters::aws::LazyClient<Client>>,
        group: impl Into<String>,
        target_arn: impl Into<String>,
        role_arn: impl Into<String>,
        dlq_arn: Option<String>,
    ) -> Self {
        Self {
            client: client.into(),
            group: group.into(),
            target_arn: target_arn.into(),
            role_arn: role_arn.into(),
            dlq_arn,
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }
}

/// The `at(yyyy-mm-ddThh:mm:ss)` expression (UTC) for `at`, rounded up to the next whole second so
/// the schedule never fires before `at`. None when `at` is outside the representable range.
pub fn format_at_expression(at: Millis) -> Option<String> {
    let seconds = at.div_euclid(1000) + i64::from(at.rem_euclid(1000) > 0);
    let time = chrono::DateTime::from_timestamp(seconds, 0)?;
    Some(format!("at({})", time.format(AT_FORMAT)))
}

/// The instant of an `at(yyyy-mm-ddThh:mm:ss)` expression read as UTC (the inverse of
/// [`format_at_expression`]); None for anything else (`rate(…)`, `cron(…)`, malformed).
pub fn parse_at_expression(expr: &str) -> Option<Millis> {
    let inner = expr.trim().strip_prefix("at(")?.strip_suffix(')')?;
    let time = chrono::NaiveDateTime::parse_from_str(inner.trim(), AT_FORMAT).ok()?;
    Some(time.and_utc().timestamp_millis())
}

fn build_error(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::new(SERVICE, format!("cannot build {what}: {e}"))
}

#[async_trait]
impl DeadlineScheduler for EventBridgeDeadlineScheduler {
    async fn schedule_deadline_check(&self, check: &DeadlineCheck, at: Millis) -> PortResult<()> {
        let name = deadline_schedule_name(&check.key());
        let expression = format_at_expression(at)
            .ok_or_else(|| PortError::new(SERVICE, format!("time {at} is out of range")))?;
        let input = serde_json::to_string(&AlertInput::DeadlineCheck(check.clone()))
            .map_err(|e| build_error("the schedule input", e))?;
        let target = Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(input)
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_retry_attempts(MAXIMUM_RETRY_ATTEMPTS)
                    .maximum_event_age_in_seconds(MAXIMUM_EVENT_AGE_SECONDS)
                    .build(),
            )
            .set_dead_letter_config(
                self.dlq_arn
                    .as_ref()
                    .map(|arn| DeadLetterConfig::builder().arn(arn).build()),
            )
            .build()
            .map_err(|e| build_error("the schedule target", e))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| build_error("the flexible time window", e))?;
        let result = self
            .client
            .get()
            .create_schedule()
            .name(&name)
            .group_name(&self.group)
            .schedule_expression(expression)
            .schedule_expression_timezone(SCHEDULE_TIMEZONE)
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(CreateScheduleError::ConflictException(_)) => {
                    tracing::debug!(schedule = %name, "deadline schedule already exists");
                    Ok(())
                }
                _ => Err(port_error(SERVICE, "CreateSchedule", &err)),
            },
        }
    }

    async fn cancel_deadline_check(&self, key: &OptInKey) -> PortResult<()> {
        let name = deadline_schedule_name(key);
        let result = self
            .client
            .get()
            .delete_schedule()
            .name(&name)
            .group_name(&self.group)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(DeleteScheduleError::ResourceNotFoundException(_)) => Ok(()),
                _ => Err(port_error(SERVICE, "DeleteSchedule", &err)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_expressions_are_utc_seconds_rounded_up() {
        // 2030-01-02T03:04:05Z
        let t = 1_893_553_445_000;
        assert_eq!(format_at_expression(t).unwrap(), "at(2030-01-02T03:04:05)");
        assert_eq!(
            format_at_expression(t + 1).unwrap(),
            "at(2030-01-02T03:04:06)"
        );
        assert_eq!(
            format_at_expression(t + 999).unwrap(),
            "at(2030-01-02T03:04:06)"
        );
        assert_eq!(format_at_expression(0).unwrap(), "at(1970-01-01T00:00:00)");
        assert_eq!(format_at_expression(-1).unwrap(), "at(1970-01-01T00:00:00)");
        assert_eq!(format_at_expression(Millis::MAX), None);
    }

    #[test]
    fn parse_is_the_inverse_of_format() {
        assert_eq!(
            parse_at_expression("at(2030-01-02T03:04:05)"),
            Some(1_893_553_445_000)
        );
        assert_eq!(
            parse_at_expression(" at( 2030-01-02T03:04:05 ) "),
            Some(1_893_553_445_000)
        );
        for t in [
            0,
            1_000,
            1_893_553_445_000,
            1_893_553_445_001,
            4_102_444_799_999,
        ] {
            let back = parse_at_expression(&format_at_expression(t).unwrap()).unwrap();
            assert!(back >= t && back - t < 1000, "{t} -> {back}");
        }
    }

    #[test]
    fn parse_refuses_other_expressions() {
        for bad in [
            "rate(5 minutes)",
            "cron(0 12 * * ? *)",
            "at()",
            "at(2030-01-02)",
            "at(2030-13-02T03:04:05)",
            "at(2030-01-02T03:04:05",
            "2030-01-02T03:04:05",
            "at(2030-01-02T03:04:05Z)",
        ] {
            assert_eq!(parse_at_expression(bad), None, "{bad}");
        }
    }
}
