//! The drift alarm end to end (issue 13 §2) through the local stack: the sweep (deadline-alerts'
//! handler over the stack's AWS wiring) queues the daily drift check, the stack's sender runs it
//! against the Messenger sandbox with its Page token. The Page token invalidated in the sandbox →
//! exactly ONE alert in the alert inbox over two daily runs, with doctor's fix; restored → the
//! recovery is recorded (and said once).

use integration_tests::worlds::stack::{TestStack, start_stack};
use local_runner::alert_inbox::{AlertInbox, ReceivedAlert};
use shared::adapters::dynamodb::table;
use shared::adapters::memory::clock::ManualClock;
use shared::domain::alert::AlertKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_MS: i64 = 86_400_000;

/// One sweep as if it ran `days` days from now (the drift day is claimed per UTC day).
async fn sweep(stack: &TestStack, days: i64) {
    let mut deps = deadline_alerts::Deps::from_aws(stack.local.config.clone(), &stack.sdk)
        .unwrap_or_else(|e| panic!("{e}"));
    deps.ports.clock = Arc::new(ManualClock::at(
        chrono::Utc::now().timestamp_millis() + days * DAY_MS,
    ));
    deadline_alerts::handle(&deps, serde_json::json!({"kind": "sweep", "version": 1}))
        .await
        .unwrap_or_else(|e| panic!("sweep: {e}"));
}

/// Wait until the send queue is empty and nothing is in flight: the sender has run every job.
async fn wait_for_sender(stack: &TestStack) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let started = Instant::now();
    // Give the poller time to receive what was just queued.
    tokio::time::sleep(Duration::from_millis(500)).await;
    loop {
        let out = sqs
            .get_queue_attributes()
            .queue_url(&stack.local.provisioned.send_queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let count = |a: A| {
            out.attributes()
                .and_then(|m| m.get(&a))
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        };
        if count(A::ApproximateNumberOfMessages) + count(A::ApproximateNumberOfMessagesNotVisible)
            == 0
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the sender never emptied the send queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stored `failing` flag of the Page token check, if recorded.
async fn page_token_status(stack: &TestStack) -> Option<bool> {
    let out = aws_sdk_dynamodb::Client::new(&stack.sdk)
        .get_item()
        .table_name(&stack.local.provisioned.table_name)
        .key(
            table::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(table::page_pk(
                messenger_sandbox::DEFAULT_PAGE_ID,
            )),
        )
        .key(
            table::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(table::drift_sk("page_token")),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    out.item()
        .and_then(|i| i.get("failing"))
        .and_then(|v| v.as_bool().ok())
        .copied()
}

async fn page_token(stack: &TestStack, method: reqwest::Method, body: Option<serde_json::Value>) {
    let mut request = stack.http.request(
        method,
        format!("{}/_sandbox/page_token", stack.sandbox.base_url),
    );
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
}

fn drift_alerts(alerts: &[ReceivedAlert]) -> Vec<&ReceivedAlert> {
    alerts
        .iter()
        .filter(|a| {
            a.alert.as_ref().is_some_and(|a| {
                matches!(
                    a.kind,
                    AlertKind::MetaSetupDrift | AlertKind::MetaSetupRecovered
                )
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalidated_page_token_alerts_once_over_two_daily_checks_and_recovers() {
    let stack = start_stack(|settings| settings).await;
    let inbox = AlertInbox::subscribe(
        &stack.sdk,
        &stack.local.provisioned.alert_topic_arn,
        &format!("{}-drift-inbox", stack.local.stack_name),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // A healthy setup: the check runs, records nothing, says nothing.
    sweep(&stack, 0).await;
    wait_for_sender(&stack).await;
    assert_eq!(page_token_status(&stack).await, None);

    page_token(
        &stack,
        reqwest::Method::PUT,
        Some(serde_json::json!({"state": "invalidated"})),
    )
    .await;
    // Day 1, twice (the second sweep of the day queues nothing), then day 2.
    sweep(&stack, 1).await;
    sweep(&stack, 1).await;
    wait_for_sender(&stack).await;
    assert_eq!(page_token_status(&stack).await, Some(true));
    sweep(&stack, 2).await;
    wait_for_sender(&stack).await;
    let alerts = inbox
        .drain(Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let drift = drift_alerts(&alerts);
    assert_eq!(drift.len(), 1, "one alert, not one per run: {alerts:?}");
    let alert = drift[0].alert.as_ref().unwrap_or_else(|| unreachable!());
    assert_eq!(alert.kind, AlertKind::MetaSetupDrift);
    assert!(
        alert.detail.contains("✘ Page token is not valid (190/460"),
        "{}",
        alert.detail
    );
    let page_token_secret = stack
        .local
        .provisioned
        .page_token_secret_id
        .clone()
        .unwrap_or_else(|| stack.local.provisioned.secret_id.clone());
    for fix in [
        "Messenger → Settings → Access Tokens",
        &format!("--secret-id {page_token_secret}"),
    ] {
        assert!(
            alert.detail.contains(fix),
            "{fix:?} not in {}",
            alert.detail
        );
    }

    page_token(&stack, reqwest::Method::DELETE, None).await;
    sweep(&stack, 3).await;
    wait_for_sender(&stack).await;
    assert_eq!(
        page_token_status(&stack).await,
        Some(false),
        "recovery recorded"
    );
    let alerts = inbox
        .drain(Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<AlertKind> = drift_alerts(&alerts)
        .iter()
        .filter_map(|a| a.alert.as_ref().map(|a| a.kind))
        .collect();
    assert_eq!(kinds, [AlertKind::MetaSetupRecovered]);
    stack.stop().await;
}
