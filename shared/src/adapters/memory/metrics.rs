//! In-memory twin of the metrics port: keeps every sample, for tests.

use crate::domain::metrics::{Metric, Sample};
use crate::ports::metrics::Metrics;
use std::sync::Mutex;

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
    use crate::domain::opt_in::{OptIn, OptInKey};
    use crate::ports::metrics::{
        record_at_risk, record_deadline_missed, record_graph_version_mismatch, record_sent,
        record_sent_after_opt_out,
    };

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
