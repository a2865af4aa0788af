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
//! | `EventsNotQueued` | Count | an event to the website backend could not be queued (`use_cases::events`) |
//! | `DriftProblems` | Count | the daily drift check: how many checks of Meta's side fail (0 when all pass) |

use crate::domain::opt_in::Millis;

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
    EventsNotQueued,
    DriftProblems,
}

impl Metric {
    pub const ALL: [Metric; 10] = [
        Metric::InitialMessagesSent,
        Metric::OptInToSendSeconds,
        Metric::OptInsAtRisk,
        Metric::DeadlinesMissed,
        Metric::GraphApiVersionMismatch,
        Metric::SentAfterOptOut,
        Metric::UnmatchedStops,
        Metric::LoginsWithoutOptIn,
        Metric::EventsNotQueued,
        Metric::DriftProblems,
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
            Metric::EventsNotQueued => "EventsNotQueued",
            Metric::DriftProblems => "DriftProblems",
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let template = include_str!("../../../template.yaml");
        for name in names {
            assert!(
                template.contains(name),
                "{name} is not used in template.yaml"
            );
        }
    }
}
