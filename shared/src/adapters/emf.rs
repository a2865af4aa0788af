//! The production metrics adapter: one CloudWatch Embedded Metric Format line on stdout per
//! [`Metrics::record`] (no `PutMetricData` call, no extra permission, no latency).

use crate::domain::metrics::{Sample, emf_document};
use crate::ports::metrics::Metrics;
use std::io::Write;

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
