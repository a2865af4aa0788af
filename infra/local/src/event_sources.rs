//! The Lambda event source mapping for SQS and EventBridge Scheduler, as they behave in AWS:
//! - SQS: receive batches, invoke the function (the sender, the event sender: any [`SqsHandler`])
//!   with an `SqsEvent`, delete only what the batch response does not list as failed (so
//!   visibility timeout, receive count and the DLQ work);
//! - Scheduler: fire one-time schedules of the group when due (then delete them, as
//!   `ActionAfterCompletion: DELETE` does), and the recurring sweep at its rate.

use crate::invocation::{Function, span};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use shared::adapters::scheduler::parse_at_expression;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{Instrument, debug, error, info, warn};

/// An SQS-triggered function, as the event source mapping invokes it.
pub type SqsHandler =
    Arc<dyn Fn(SqsEvent) -> futures::future::BoxFuture<'static, SqsBatchResponse> + Send + Sync>;

/// The sender as an [`SqsHandler`].
pub fn sender_handler(deps: Arc<sender::Deps>) -> SqsHandler {
    Arc::new(move |event| {
        let deps = deps.clone();
        Box::pin(async move {
            sender::handle_batch(&deps, event)
                .instrument(span(Function::Sender))
                .await
        })
    })
}

/// The event sender as an [`SqsHandler`].
pub fn event_sender_handler(deps: Arc<event_sender::Deps>) -> SqsHandler {
    Arc::new(move |event| {
        let deps = deps.clone();
        Box::pin(async move {
            event_sender::handle_batch(&deps, event)
                .instrument(span(Function::EventSender))
                .await
        })
    })
}

/// Poll `queue_url` and drive the sender until `stop` turns true ([`run_sqs_source`]).
pub async fn run_sqs_poller(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    timeout: Duration,
    deps: Arc<sender::Deps>,
    paused: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    let handler = sender_handler(deps);
    run_sqs_source(sqs, queue_url, queue_arn, timeout, handler, paused, stop).await
}

/// Poll `queue_url` and drive `handler` until `stop` turns true. An invocation that outlives
/// `timeout` (the function's Timeout) is dropped mid-flight, as Lambda ends a timed-out
/// invocation: its batch comes back after the visibility timeout.
pub async fn run_sqs_source(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    timeout: Duration,
    handler: SqsHandler,
    paused: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        if *paused.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                _ = stop.changed() => return,
            }
        }
        let received = tokio::select! {
            r = sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send() => r,
            _ = stop.changed() => return,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        if *paused.borrow() {
            // Paused while this receive was in flight: hand the messages back untouched.
            for m in &messages {
                if let Some(handle) = m.receipt_handle() {
                    let _ = sqs
                        .change_message_visibility()
                        .queue_url(&queue_url)
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .send()
                        .await;
                }
            }
            continue;
        }
        let event = match sqs_event(&messages, &queue_arn) {
            Ok(e) => e,
            Err(e) => {
                error!(error = %e, "could not build the SQS event");
                continue;
            }
        };
        match tokio::time::timeout(timeout, handler(event)).await {
            Ok(response) => settle_batch(&sqs, &queue_url, &messages, &response).await,
            Err(_) => error!(
                timeout_s = timeout.as_secs_f64(),
                records = messages.len(),
                "invocation timed out; its batch comes back after the visibility timeout"
            ),
        }
    }
}

/// The `SqsEvent` Lambda hands the function for `messages` received from the queue `queue_arn`.
pub fn sqs_event(
    messages: &[aws_sdk_sqs::types::Message],
    queue_arn: &str,
) -> Result<SqsEvent, serde_json::Error> {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, serde_json::Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), serde_json::json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records }))
}

/// After an invocation: delete what the batch response does not list as failed, as the event
/// source mapping does (the failed ones come back when their visibility timeout ends).
pub async fn settle_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[aws_sdk_sqs::types::Message],
    response: &SqsBatchResponse,
) {
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for m in messages {
        if failed.contains(m.message_id().unwrap_or("")) {
            continue;
        }
        if let Some(handle) = m.receipt_handle()
            && let Err(e) = sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .send()
                .await
        {
            warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed");
        }
    }
}

/// Fire due one-time schedules of `group` into deadline-alerts, and the sweep every `sweep_every`.
pub async fn run_scheduler(
    scheduler: aws_sdk_scheduler::Client,
    group: String,
    deps: Arc<deadline_alerts::Deps>,
    sweep_every: Duration,
    tick: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_sweep = tokio::time::Instant::now() + sweep_every;
    let mut known = KnownSchedules::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        known
            .fire_due(&scheduler, &group, &deps, deps.ports.clock.now())
            .await;
        if tokio::time::Instant::now() >= next_sweep {
            next_sweep = tokio::time::Instant::now() + sweep_every;
            match deadline_alerts::handle(&deps, serde_json::json!({"kind": "sweep", "version": 1}))
                .instrument(span(Function::DeadlineAlerts))
                .await
            {
                Ok(summary) => debug!(?summary, "sweep"),
                Err(e) => error!(error = %e, "sweep failed"),
            }
        }
    }
}

/// Fire the one-time schedules of `group` whose `at()` time is at or before `now`, as Scheduler
/// does: invoke deadline-alerts with the schedule's Input, then delete the schedule
/// (`ActionAfterCompletion: DELETE`). Returns how many fired.
pub async fn fire_due_schedules(
    scheduler: &aws_sdk_scheduler::Client,
    group: &str,
    deps: &deadline_alerts::Deps,
    now: i64,
) -> usize {
    KnownSchedules::default()
        .fire_due(scheduler, group, deps, now)
        .await
}

/// What the runner has read of each schedule (`ListSchedules` does not return the expression):
/// read once per version, so that a tick costs one list, not one `GetSchedule` per schedule.
#[derive(Default)]
pub struct KnownSchedules {
    /// name → (last modification, at() time in ms, Input).
    read: HashMap<String, (Option<i64>, Option<i64>, serde_json::Value)>,
}

impl KnownSchedules {
    pub async fn fire_due(
        &mut self,
        scheduler: &aws_sdk_scheduler::Client,
        group: &str,
        deps: &deadline_alerts::Deps,
        now: i64,
    ) -> usize {
        let mut listed = Vec::new();
        let mut pages = scheduler
            .list_schedules()
            .group_name(group)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(out) => listed.extend(out.schedules().iter().filter_map(|s| {
                    let modified = s
                        .last_modification_date()
                        .or(s.creation_date())
                        .map(|d| d.to_millis().unwrap_or_default());
                    s.name().map(|n| (n.to_owned(), modified))
                })),
                Err(e) => {
                    warn!(error = %aws_sdk_scheduler::error::DisplayErrorContext(&e), "list schedules failed");
                    return 0;
                }
            }
        }
        let names: HashSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        self.read.retain(|name, _| names.contains(name.as_str()));
        let mut fired = 0;
        for (name, modified) in listed {
            let fresh = self
                .read
                .get(&name)
                .is_some_and(|(m, _, _)| modified.is_some() && *m == modified);
            if !fresh {
                let schedule = match scheduler
                    .get_schedule()
                    .group_name(group)
                    .name(&name)
                    .send()
                    .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        debug!(error = %aws_sdk_scheduler::error::DisplayErrorContext(&e), "schedule vanished");
                        continue;
                    }
                };
                let at = schedule.schedule_expression().and_then(parse_at_expression);
                let input = schedule
                    .target()
                    .and_then(|t| t.input())
                    .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
                    .unwrap_or(serde_json::Value::Null);
                self.read.insert(name.clone(), (modified, at, input));
            }
            let Some((_, Some(at), input)) = self.read.get(&name) else {
                continue;
            };
            if *at > now {
                continue;
            }
            let input = input.clone();
            info!(schedule = %name, "firing one-time schedule");
            fired += 1;
            if let Err(e) = deadline_alerts::handle(deps, input)
                .instrument(span(Function::DeadlineAlerts))
                .await
            {
                error!(error = %e, schedule = %name, "deadline-alerts failed");
                if matches!(e, deadline_alerts::AlertsError::Port(_)) {
                    // Scheduler retries a failed invocation (its retry policy, then its DLQ): the
                    // schedule stays and fires again at the next tick.
                    continue;
                }
            }
            // ActionAfterCompletion: DELETE.
            let _ = scheduler
                .delete_schedule()
                .group_name(group)
                .name(&name)
                .send()
                .await;
            self.read.remove(&name);
        }
        fired
    }
}
