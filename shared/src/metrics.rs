//! Business metrics, written as CloudWatch Embedded Metric Format (EMF) JSON lines on stdout.
//!
//! Lambda sends stdout to CloudWatch Logs, which extracts every line that is an EMF document into a
//! metric of namespace [`NAMESPACE`] — no `PutMetricData` call, no extra permission, no latency.
//! The metrics carry no dimension (one deployment serves one Page; the alarms and the dashboard in
//! template.yaml read them without dimensions); the Page id travels as a plain property so logs can
//! be searched by Page.
//!
//! | metric | unit | when |
//! |---|---|---|
//! | `InitialMessagesSent` | Count | an opt-in reached `SENT` |
//! | `OptInToSendSeconds` | Seconds | with it: sent_at − opted_in_at |
//! | `OptInsAtRisk` | Count | an opt-in still unsent at its alert time was alerted (once) |
//! | `DeadlinesMissed` | Count | an opt-in reached `EXPIRED` without a message |
//! | `GraphApiVersionMismatch` | Count | Graph's `facebook-api-version` answer differs from `GRAPH_API_VERSION` |
//! | `SentAfterOptOut` | Count | Graph accepted a message after the opt-out was recorded (in flight) |
//! | `UnmatchedStops` | Count | a stop request came from a PSID no opt-in is linked to (kept, alerted) |
//! | `LoginsWithoutOptIn` | Count | a granted login got no matching opt-in in time (alerted once) |

use crate::domain::{Millis, OptIn};
use std::io::Write;
use std::sync::Mutex;

/// The CloudWatch namespace of every metric of this product.
pub const NAMESPACE: &str = "LoginConnect";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    InitialMessagesSent,
    OptInToSendSeconds,
    OptInsAtRisk,
    DeadlinesMissed,
    GraphApiVersionMismatch,
    SentAfterOptOut,
    UnmatchedStops,
    LoginsWithoutOptIn,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::InitialMessagesSent,
        Metric::OptInToSendSeconds,
        Metric::OptInsAtRisk,
        Metric::DeadlinesMissed,
        Metric::GraphApiVersionMismatch,
        Metric::SentAfterOptOut,
        Metric::UnmatchedStops,
        Metric::LoginsWithoutOptIn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::InitialMessagesSent => "InitialMessagesSent",
            Metric::OptInToSendSeconds => "OptInToSendSeconds",
            Metric::OptInsAtRisk => "OptInsAtRisk",
            Metric::DeadlinesMissed => "DeadlinesMissed",
            Metric::GraphApiVersionMismatch => "GraphApiVersionMismatch",
            Metric::SentAfterOptOut => "SentAfterOptOut",
            Metric::UnmatchedStops => "UnmatchedStops",
            Metric::LoginsWithoutOptIn => "LoginsWithoutOptIn",
        }
    }

    /// The CloudWatch unit.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::OptInToSendSeconds => "Seconds",
            _ => "Count",
        }
    }
}

/// One value of one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub metric: Metric,
    pub value: f64,
}

impl Sample {
    pub fn count(metric: Metric) -> Self {
        Self { metric, value: 1.0 }
    }
}

/// Where metrics go. Synchronous and infallible: a metric that cannot be written is dropped, it
/// never fails the work it describes.
pub trait Metrics: Send + Sync {
    /// Record samples about one Page's opt-ins (one EMF document).
    fn record(&self, page_id: &str, samples: &[Sample]);
}

/// An opt-in reached `SENT`: `InitialMessagesSent` and `OptInToSendSeconds`.
pub fn record_sent(metrics: &dyn Metrics, opt_in: &OptIn) {
    let sent_at = opt_in.sent_at.unwrap_or(opt_in.updated_at);
    let seconds = (sent_at - opt_in.opted_in_at).max(0) as f64 / 1000.0;
    metrics.record(
        &opt_in.page_id,
        &[
            Sample::count(Metric::InitialMessagesSent),
            Sample {
                metric: Metric::OptInToSendSeconds,
                value: seconds,
            },
        ],
    );
}

/// An opt-in reached `EXPIRED` without a message.
pub fn record_deadline_missed(metrics: &dyn Metrics, page_id: &str) {
    metrics.record(page_id, &[Sample::count(Metric::DeadlinesMissed)]);
}

/// Graph accepted an initial message after the person's opt-out was recorded (a send in flight).
pub fn record_sent_after_opt_out(metrics: &dyn Metrics, page_id: &str) {
    metrics.record(page_id, &[Sample::count(Metric::SentAfterOptOut)]);
}

/// An opt-in was alerted as at risk (once per opt-in).
pub fn record_at_risk(metrics: &dyn Metrics, page_id: &str) {
    metrics.record(page_id, &[Sample::count(Metric::OptInsAtRisk)]);
}

/// Graph answered a call with another API version than the one asked for.
pub fn record_graph_version_mismatch(metrics: &dyn Metrics, page_id: &str) {
    metrics.record(page_id, &[Sample::count(Metric::GraphApiVersionMismatch)]);
}

/// A stop request came from a PSID no opt-in is linked to: kept as a pending stop and alerted.
pub fn record_unmatched_stop(metrics: &dyn Metrics, page_id: &str) {
    metrics.record(page_id, &[Sample::count(Metric::UnmatchedStops)]);
}

/// A granted login got no matching opt-in in time (alerted once per LOGIN).
pub fn record_login_without_opt_in(metrics: &dyn Metrics, page_id: &str) {
    metrics.record(page_id, &[Sample::count(Metric::LoginsWithoutOptIn)]);
}

/// The EMF document of `samples` at `timestamp` (epoch ms), as one JSON object.
pub fn emf_document(timestamp: Millis, page_id: &str, samples: &[Sample]) -> serde_json::Value {
    let mut definitions: Vec<serde_json::Value> = Vec::new();
    let mut root = serde_json::Map::new();
    for sample in samples {
        let name = sample.metric.name();
        if !root.contains_key(name) {
            definitions.push(serde_json::json!({"Name": name, "Unit": sample.metric.unit()}));
        }
        // Several values of one metric in one document: an array (EMF allows up to 100).
        match root.get_mut(name) {
            Some(serde_json::Value::Array(values)) => values.push(sample.value.into()),
            Some(previous) => {
                let first = previous.take();
                *previous = serde_json::Value::Array(vec![first, sample.value.into()]);
            }
            None => {
                root.insert(name.to_owned(), sample.value.into());
            }
        }
    }
    root.insert(
        "_aws".to_owned(),
        serde_json::json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                // One empty dimension set: the metrics are published without dimensions.
                "Dimensions": [[]],
                "Metrics": definitions,
            }],
        }),
    );
    root.insert("PageId".to_owned(), page_id.into());
    serde_json::Value::Object(root)
}

/// The production adapter: one EMF line on stdout per [`Metrics::record`].
#[derive(Debug, Default, Clone, Copy)]
pub struct EmfStdout;

impl Metrics for EmfStdout {
    fn record(&self, page_id: &str, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let line = emf_document(now, page_id, samples).to_string();
        // One write of the whole line under the lock, so it is never interleaved with log lines.
        let mut out = std::io::stdout().lock();
        let _ = out
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| out.flush());
    }
}

/// In-memory twin: keeps every sample, for tests.
#[derive(Debug, Default)]
pub struct MemoryMetrics {
    recorded: Mutex<Vec<(String, Sample)>>,
}

impl MemoryMetrics {
    /// Every (page_id, sample) recorded, in order.
    pub fn recorded(&self) -> Vec<(String, Sample)> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The values recorded for `metric`, in order.
    pub fn values(&self, metric: Metric) -> Vec<f64> {
        self.recorded()
            .into_iter()
            .filter(|(_, s)| s.metric == metric)
            .map(|(_, s)| s.value)
            .collect()
    }

    /// The sum of the values recorded for `metric` (the `Sum` statistic CloudWatch would show).
    pub fn sum(&self, metric: Metric) -> f64 {
        self.values(metric).iter().sum()
    }
}

impl Metrics for MemoryMetrics {
    fn record(&self, page_id: &str, samples: &[Sample]) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        recorded.extend(samples.iter().map(|s| (page_id.to_owned(), *s)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OptInKey;

    #[test]
    fn emf_documents_follow_the_specification() {
        let doc = emf_document(
            1_700_000_000_123,
            "200",
            &[
                Sample::count(Metric::InitialMessagesSent),
                Sample {
                    metric: Metric::OptInToSendSeconds,
                    value: 1.5,
                },
            ],
        );
        assert_eq!(
            doc,
            serde_json::json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_123_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "LoginConnect",
                        "Dimensions": [[]],
                        "Metrics": [
                            {"Name": "InitialMessagesSent", "Unit": "Count"},
                            {"Name": "OptInToSendSeconds", "Unit": "Seconds"}
                        ]
                    }]
                },
                "PageId": "200",
                "InitialMessagesSent": 1.0,
                "OptInToSendSeconds": 1.5
            })
        );
        // One line: no newline inside the serialised document.
        assert!(!doc.to_string().contains('\n'));
    }

    #[test]
    fn repeated_metrics_become_one_definition_with_an_array_of_values() {
        let doc = emf_document(
            0,
            "p",
            &[
                Sample::count(Metric::DeadlinesMissed),
                Sample::count(Metric::DeadlinesMissed),
                Sample::count(Metric::DeadlinesMissed),
            ],
        );
        assert_eq!(doc["DeadlinesMissed"], serde_json::json!([1.0, 1.0, 1.0]));
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn every_metric_named_by_the_alarms_and_dashboard_exists() {
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        let template = include_str!("../../template.yaml");
        for name in names {
            assert!(
                template.contains(name),
                "{name} is not used in template.yaml"
            );
        }
    }

    #[test]
    fn sent_records_the_count_and_the_latency() {
        let m = MemoryMetrics::default();
        let mut o = OptIn::new(OptInKey::new("p", "l"), Some(1_000), 1_000, 60_000, 0);
        o.sent_at = Some(3_500);
        record_sent(&m, &o);
        record_deadline_missed(&m, "p");
        record_at_risk(&m, "p");
        record_graph_version_mismatch(&m, "p");
        assert_eq!(m.sum(Metric::GraphApiVersionMismatch), 1.0);
        record_sent_after_opt_out(&m, "p");
        assert_eq!(m.sum(Metric::SentAfterOptOut), 1.0);
        assert_eq!(m.sum(Metric::InitialMessagesSent), 1.0);
        assert_eq!(m.values(Metric::OptInToSendSeconds), [2.5]);
        assert_eq!(m.sum(Metric::DeadlinesMissed), 1.0);
        assert_eq!(m.sum(Metric::OptInsAtRisk), 1.0);
        assert!(m.recorded().iter().all(|(page, _)| page == "p"));
    }
}
