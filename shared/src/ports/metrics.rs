//! Where business metrics go ([`Metrics`]), and the named recordings the use cases make. Adapters:
//! [`crate::adapters::emf::EmfStdout`] (CloudWatch EMF on stdout) and the in-memory twin.

use crate::domain::metrics::{Metric, Sample};
use crate::domain::opt_in::OptIn;

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
