//! The daily drift check as the sender runs it (issue 13 §2), over twins: Meta's answers from
//! [`MemoryMetaSetup`], the status items in the twin table. One alert per new problem, none while
//! it stays, one "recovered" when it is gone; `DriftProblems` each run.

use super::twins::Twins;
use aws_lambda_events::event::sqs::SqsEvent;
use sender::{Deps, handle_batch};
use shared::adapters::memory::config::test_config;
use shared::adapters::memory::drift::MemoryMetaSetup;
use shared::domain::alert::AlertKind;
use shared::domain::drift::{SetupAnswers, healthy_answers};
use shared::domain::jobs::{DriftCheckJob, Job};
use shared::domain::metrics::Metric;
use shared::facebook::page_setup::{TokenDebug, TokenDebugError};
use std::sync::Arc;
use std::sync::atomic::Ordering;

const NOW: i64 = 1_795_536_000_000;
const PAGE: &str = "200000000000002";

fn drift_event(page_id: &str) -> SqsEvent {
    let body = Job::DriftCheck(DriftCheckJob {
        version: DriftCheckJob::VERSION,
        page_id: page_id.into(),
    })
    .body();
    serde_json::from_value(serde_json::json!({"Records": [{
        "messageId": "drift-1",
        "receiptHandle": "rh-drift-1",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:send",
        "awsRegion": "us-east-1"
    }]}))
    .unwrap()
}

struct World {
    twins: Twins,
    meta: Arc<MemoryMetaSetup>,
    deps: Deps,
}

fn world() -> World {
    let twins = Twins::at(NOW);
    let meta = Arc::new(MemoryMetaSetup::default());
    let deps = Deps::from_ports(test_config(&[]), &twins.ports()).with_meta_setup(meta.clone());
    World { twins, meta, deps }
}

impl World {
    fn healthy(&self) -> SetupAnswers {
        healthy_answers(&sender::drift::target(&self.deps.config))
    }

    fn invalidated(&self) -> SetupAnswers {
        SetupAnswers {
            token: Ok(TokenDebug {
                is_valid: false,
                error: Some(TokenDebugError {
                    code: 190,
                    subcode: Some(460),
                    message: "The session has been invalidated".into(),
                }),
                ..TokenDebug::default()
            }),
            ..self.healthy()
        }
    }

    /// Run one drift job; whether the batch asked for it back.
    async fn run(&self) -> bool {
        !handle_batch(&self.deps, drift_event(PAGE))
            .await
            .batch_item_failures
            .is_empty()
    }

    fn kinds(&self) -> Vec<AlertKind> {
        self.twins
            .alerts
            .published()
            .iter()
            .map(|a| a.kind)
            .collect()
    }
}

#[tokio::test]
async fn a_drift_problem_alerts_once_with_doctors_fix_and_its_recovery_once() {
    let w = world();
    w.meta.set(w.healthy());
    assert!(!w.run().await);
    assert!(w.kinds().is_empty(), "nothing recorded, nothing to say");
    assert_eq!(w.twins.store.drift_status(PAGE, "page_token"), None);

    w.meta.set(w.invalidated());
    assert!(!w.run().await);
    assert!(!w.run().await);
    assert_eq!(
        w.kinds(),
        [AlertKind::MetaSetupDrift],
        "one alert, not one per run"
    );
    let alert = &w.twins.alerts.published()[0];
    assert!(
        alert.detail.contains("✘ Page token is not valid (190/460"),
        "{}",
        alert.detail
    );
    let fix = sender::drift::target(&w.deps.config).token_fix();
    assert!(
        alert.detail.contains(&format!("fix: {fix}")),
        "{}",
        alert.detail
    );
    assert_eq!(w.twins.store.drift_status(PAGE, "page_token"), Some(true));

    w.meta.set(w.healthy());
    assert!(!w.run().await);
    assert!(!w.run().await);
    assert_eq!(
        w.kinds(),
        [AlertKind::MetaSetupDrift, AlertKind::MetaSetupRecovered]
    );
    assert_eq!(w.twins.store.drift_status(PAGE, "page_token"), Some(false));
    assert_eq!(
        w.twins.metrics.values(Metric::DriftProblems),
        [0.0, 1.0, 1.0, 0.0, 0.0]
    );
    assert_eq!(w.meta.reads.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_drift_job_is_not_a_poison_message_and_needs_no_graph_in_other_wirings() {
    // Deps::from_ports without a reader: the job is acknowledged, nothing alerted or counted.
    let twins = Twins::at(NOW);
    let deps = Deps::from_ports(test_config(&[]), &twins.ports());
    let response = handle_batch(&deps, drift_event(PAGE)).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(twins.alerts.published().is_empty());
    assert!(twins.metrics.values(Metric::DriftProblems).is_empty());
    // Another Page's job is dropped without asking Graph.
    let w = world();
    w.meta.set(w.invalidated());
    let response = handle_batch(&w.deps, drift_event("999")).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(w.meta.reads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_status_that_cannot_be_recorded_brings_the_drift_job_back() {
    let w = world();
    w.meta.set(w.invalidated());
    w.twins.store.fail.store(true, Ordering::SeqCst);
    assert!(w.run().await, "reported in batchItemFailures");
    assert!(w.kinds().is_empty(), "no alert without the recorded status");
    w.twins.store.fail.store(false, Ordering::SeqCst);
    assert!(!w.run().await);
    assert_eq!(w.kinds(), [AlertKind::MetaSetupDrift]);
}
