//! The compliance report: for the opt-ins of a time range, was the initial message sent in time?
//!
//! [`compute`] is a pure function over stored opt-ins (the evidence each item carries: opt-in time,
//! deadline, state, `sent_at`, `terminal_at`, `alerted_at`, last Graph error). [`crate::ports::history::OptInHistory`]
//! is the port that reads those opt-ins; `make report` (`ops report`, infra/ops) prints the result, and a
//! website-facing `GET /v1/report` can serve the same JSON.
//!
//! Definitions (also in docs/alerts.md):
//! - an opt-in belongs to the range when its `opted_in_at` is in `[since, until)`;
//! - *settled*: terminal, or still unsent with its deadline passed (a sweep will mark it EXPIRED),
//!   excluding `OPTED_OUT` (no message was owed once the person withdrew);
//! - *sent on time %* = sent before the deadline ÷ settled;
//! - *missed deadlines*: `EXPIRED`, or still unsent past the deadline;
//! - latency percentiles: nearest rank over `sent_at − opted_in_at` of the `SENT` opt-ins;
//! - the figures the HTML page draws ([`crate::domain::report_html`]): the same latencies in fixed
//!   [`LATENCY_BUCKETS_MS`], the opt-ins per period of their opt-in time by outcome ([`Periods`]),
//!   each missed deadline's [`MissCause`], and the opt-outs per `opt_out_source`;
//! - *opt-outs*: the opt-ins of the range the person opted out of ([`OptIn::has_opted_out`]):
//!   `OPTED_OUT`, and the opt-outs recorded after the opt-in ended (a `SENT`, `UNREACHABLE` or
//!   `EXPIRED` opt-in keeps its state and gets `opted_out_at`).

use crate::domain::opt_in::{HOUR_MS, LastError, Millis, OptIn, State, login_id_prefix, utc};
use crate::facebook::graph_error::{ErrorClass, GraphErrorBody, classify_graph_error};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplianceReport {
    /// The range in words, for the first line: "every opt-in in the table, …" when `since` is the
    /// epoch (the default of `make report`), else the bounds.
    pub window: String,
    /// The range, RFC 3339 UTC: opt-ins with `since <= opted_in_at < until`.
    pub since: String,
    pub until: String,
    pub generated_at: String,
    pub opt_ins: usize,
    /// Opt-ins per state (every state, zeros included).
    pub states: BTreeMap<String, usize>,
    /// Not terminal and before the deadline: the outcome is not known yet.
    pub open: usize,
    /// The denominator of `sent_on_time_percent` (see the module documentation).
    pub settled: usize,
    pub sent: usize,
    pub sent_on_time: usize,
    /// Sent at or after the deadline. The store refuses such a send; this proves it stayed 0.
    pub sent_late: usize,
    /// `None` when nothing is settled yet.
    pub sent_on_time_percent: Option<f64>,
    pub opt_in_to_sent_seconds: Option<Latency>,
    /// Opt-ins the operators were alerted about before the deadline.
    pub alerted: usize,
    pub missed_deadlines: Vec<MissedDeadline>,
    /// The Pages the opt-ins of the range belong to, sorted.
    pub page_ids: Vec<String>,
    /// The `SENT` opt-ins per latency bucket ([`LATENCY_BUCKETS_MS`]), every bucket listed.
    pub latency_histogram: Vec<LatencyBucket>,
    /// The opt-ins per period of their opt-in time, by outcome.
    pub periods: Periods,
    /// The missed deadlines per cause (every cause, zeros included).
    pub miss_causes: BTreeMap<MissCause, usize>,
    /// The opt-ins the person opted out of ([`OptIn::has_opted_out`]: `OPTED_OUT`, or an opt-out
    /// recorded after the opt-in ended) per `opt_out_source` (`unknown` when none was recorded).
    pub opt_out_sources: BTreeMap<String, usize>,
    /// Of those, the opt-outs recorded after the opt-in ended (its state stayed `SENT`,
    /// `UNREACHABLE` or `EXPIRED`), per `opt_out_source`.
    pub opt_outs_after_end: BTreeMap<String, usize>,
}

/// The upper bounds (excluded) of the latency buckets, in milliseconds; a last bucket holds the rest.
/// Fixed, so two reports compare bar for bar; finer where a healthy stack sends (seconds).
pub const LATENCY_BUCKETS_MS: [Millis; 11] = [
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    30_000,
    60_000,
    5 * 60_000,
    15 * 60_000,
    HOUR_MS,
    6 * HOUR_MS,
];

/// One bar of the latency histogram: `from_seconds <= latency < to_seconds`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyBucket {
    /// "1–2 s", "≥ 6 h".
    pub label: String,
    pub from_seconds: f64,
    /// `None` for the last, open-ended bucket.
    pub to_seconds: Option<f64>,
    pub count: usize,
}

/// The outcome columns of the per-period counts: the terminal states, then everything not terminal.
pub const OUTCOMES: [&str; 5] = [
    "SENT",
    "UNREACHABLE",
    "EXPIRED",
    "OPTED_OUT",
    "NOT_TERMINAL",
];

/// The opt-ins per period (hour, day, week, …: the first that keeps the chart readable).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Periods {
    /// `hour`, `day`, `week`, `30 days` or `year`.
    pub unit: String,
    pub rows: Vec<PeriodCounts>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodCounts {
    /// The period's first instant, RFC 3339 UTC.
    pub start: String,
    /// Short label for the chart's axis: `11-24 16h`, `2026-11-24`.
    pub label: String,
    /// Opt-ins of the period per outcome ([`OUTCOMES`], zeros included).
    pub counts: BTreeMap<String, usize>,
    pub total: usize,
}

/// Why a deadline was missed, read from the evidence on the opt-in (its state, attempts and the
/// class of Graph's last error, as the sender classified it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissCause {
    /// No Send API call was made: the send job did not run before the deadline (a queue backlog,
    /// a sender or scheduler outage, or the opt-in came in already past its deadline).
    NoAttempt,
    /// Graph kept failing with transient errors (or errors it does not classify) until the deadline.
    GraphErrors,
    /// The Page was paused: our token or permissions, a Page restriction or an abuse warning.
    PagePaused,
    /// Graph said the messaging window was closed (our clock or latency was wrong).
    WindowClosed,
    /// The evidence does not explain it: a recipient error on an opt-in that expired anyway, or
    /// attempts with no answer recorded (a sender that stopped mid-send).
    Other,
}

impl MissCause {
    pub const ALL: [MissCause; 5] = [
        MissCause::NoAttempt,
        MissCause::GraphErrors,
        MissCause::PagePaused,
        MissCause::WindowClosed,
        MissCause::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MissCause::NoAttempt => "no_attempt",
            MissCause::GraphErrors => "graph_errors",
            MissCause::PagePaused => "page_paused",
            MissCause::WindowClosed => "window_closed",
            MissCause::Other => "other",
        }
    }

    /// What the cause means, for the legend of the page and docs/alerts.md.
    pub fn meaning(self) -> &'static str {
        match self {
            MissCause::NoAttempt => {
                "no Send API call was made before the deadline: the send job did not run (a queue backlog, a sender or scheduler outage) or waited on a paused Page"
            }
            MissCause::GraphErrors => {
                "Graph kept answering with transient errors (timeouts, 5xx, rate limits, unknown errors); the sender retried until the deadline"
            }
            MissCause::PagePaused => {
                "the Page was paused by a configuration error (Page token, permissions), a Page restriction or an abuse warning, and not resumed before the deadline"
            }
            MissCause::WindowClosed => {
                "Graph refused the message as outside the messaging window (our clock or the latency was wrong)"
            }
            MissCause::Other => {
                "the evidence does not explain it: Graph's last answer was not one that ends in an expiry, or calls were made with no answer recorded (see ATTEMPTS and LAST ERROR)"
            }
        }
    }

    /// The cause of a missed deadline, from the opt-in's evidence.
    pub fn of(o: &OptIn) -> MissCause {
        let Some(e) = &o.last_error else {
            return if o.state == State::Paused {
                MissCause::PagePaused
            } else if o.attempts > 0 {
                // Calls made but no answer recorded: a sender that stopped mid-send.
                MissCause::Other
            } else {
                MissCause::NoAttempt
            };
        };
        if e.code == 0 {
            // Transport failures (timeout, connection, a bare HTTP status): retried.
            return MissCause::GraphErrors;
        }
        let body = GraphErrorBody {
            message: e.message.clone(),
            code: e.code,
            error_subcode: e.subcode,
            ..GraphErrorBody::default()
        };
        match classify_graph_error(400, &body) {
            ErrorClass::Retry | ErrorClass::RetryBounded | ErrorClass::Unknown => {
                MissCause::GraphErrors
            }
            ErrorClass::Configuration | ErrorClass::PageRestricted | ErrorClass::AbuseWarning => {
                MissCause::PagePaused
            }
            ErrorClass::Window => MissCause::WindowClosed,
            ErrorClass::Unreachable => MissCause::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// One opt-in that did not get its message in time. Identifies the person only by a login_id prefix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissedDeadline {
    pub page_id: String,
    pub login_id_prefix: String,
    pub opted_in_at: String,
    pub deadline: String,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerted_at: Option<String>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    pub cause: MissCause,
}

impl MissedDeadline {
    /// Graph's last answer as the LAST ERROR column shows it: `code[/subcode] message`.
    pub fn error_text(&self) -> String {
        self.last_error.as_ref().map_or(String::new(), |e| {
            let code = match e.subcode {
                Some(sub) => format!("{}/{sub}", e.code),
                None => e.code.to_string(),
            };
            format!("{code} {}", e.message)
        })
    }
}

/// The nearest-rank percentile `q` (0–100] of sorted `values`.
pub fn percentile(sorted: &[Millis], q: f64) -> Option<Millis> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn seconds(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

/// A duration in words for a bucket bound: `500 ms`, `30 s`, `5 min`, `6 h`.
fn duration_label(ms: Millis) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{} s", ms / 1_000)
    } else if ms < HOUR_MS {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} h", ms / HOUR_MS)
    }
}

/// The latency histogram of sorted or unsorted `latencies` over [`LATENCY_BUCKETS_MS`].
pub fn latency_histogram(latencies: &[Millis]) -> Vec<LatencyBucket> {
    let mut from: Millis = 0;
    let mut buckets: Vec<LatencyBucket> = Vec::with_capacity(LATENCY_BUCKETS_MS.len() + 1);
    for to in LATENCY_BUCKETS_MS {
        buckets.push(LatencyBucket {
            label: if from == 0 {
                format!("< {}", duration_label(to))
            } else {
                format!("{}–{}", duration_label(from), duration_label(to))
            },
            from_seconds: seconds(from),
            to_seconds: Some(seconds(to)),
            count: latencies.iter().filter(|l| **l >= from && **l < to).count(),
        });
        from = to;
    }
    buckets.push(LatencyBucket {
        label: format!("≥ {}", duration_label(from)),
        from_seconds: seconds(from),
        to_seconds: None,
        count: latencies.iter().filter(|l| **l >= from).count(),
    });
    buckets
}

/// Period lengths tried in order, with the most periods each may draw.
const PERIOD_UNITS: [(&str, Millis, i64); 5] = [
    ("hour", HOUR_MS, 48),
    ("day", 24 * HOUR_MS, 62),
    ("week", 7 * 24 * HOUR_MS, 60),
    ("30 days", 30 * 24 * HOUR_MS, 60),
    ("year", 365 * 24 * HOUR_MS, 400),
];

/// Weeks start on Monday: the epoch was a Thursday, the first Monday 4 days later.
const FIRST_MONDAY_MS: Millis = 4 * 24 * HOUR_MS;

fn period_start(at: Millis, unit: &str, step: Millis) -> Millis {
    let origin = if unit == "week" { FIRST_MONDAY_MS } else { 0 };
    (at - origin).div_euclid(step) * step + origin
}

fn period_label(start: Millis, unit: &str) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(start) else {
        return String::new();
    };
    match unit {
        "hour" => t.format("%m-%d %Hh").to_string(),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// The outcome column of an opt-in in [`OUTCOMES`].
fn outcome(o: &OptIn) -> &'static str {
    if o.state.is_terminal() {
        o.state.as_str()
    } else {
        "NOT_TERMINAL"
    }
}

/// The opt-ins per period of their opt-in time, by outcome. The periods run from `since` (or the
/// first opt-in when `since` is the epoch) to `until` (or to `now`, or the last opt-in, when earlier),
/// in the shortest unit that draws at most its limit of periods; empty periods included.
pub fn periods(in_range: &[&OptIn], since: Millis, until: Millis, now: Millis) -> Periods {
    let (Some(first), Some(last)) = (
        in_range.iter().map(|o| o.opted_in_at).min(),
        in_range.iter().map(|o| o.opted_in_at).max(),
    ) else {
        return Periods {
            unit: "day".into(),
            rows: Vec::new(),
        };
    };
    let start = if since > 0 { since } else { first };
    let end = until.min(now.max(last + 1)).max(last + 1);
    let (unit, step) = PERIOD_UNITS
        .iter()
        .find(|(unit, step, limit)| {
            let first = period_start(start, unit, *step);
            (end - 1 - first) / step < *limit
        })
        .map_or(("year", 365 * 24 * HOUR_MS), |(u, s, _)| (*u, *s));
    let first_start = period_start(start, unit, step);
    let count = usize::try_from((end - 1 - first_start) / step + 1).unwrap_or(0);
    let mut rows: Vec<PeriodCounts> = (0..count.min(400))
        .map(|i| {
            let at = first_start + i as Millis * step;
            PeriodCounts {
                start: utc(at),
                label: period_label(at, unit),
                counts: OUTCOMES.iter().map(|o| ((*o).to_owned(), 0)).collect(),
                total: 0,
            }
        })
        .collect();
    for o in in_range {
        let index = usize::try_from((o.opted_in_at - first_start).div_euclid(step)).ok();
        if let Some(row) = index.and_then(|i| rows.get_mut(i)) {
            *row.counts.entry(outcome(o).to_owned()).or_default() += 1;
            row.total += 1;
        }
    }
    Periods {
        unit: unit.to_owned(),
        rows,
    }
}

/// The report over `opt_ins` (already read for the range; others are ignored) at `now`.
pub fn compute(opt_ins: &[OptIn], since: Millis, until: Millis, now: Millis) -> ComplianceReport {
    let in_range: Vec<&OptIn> = opt_ins
        .iter()
        .filter(|o| o.opted_in_at >= since && o.opted_in_at < until)
        .collect();
    let mut states: BTreeMap<String, usize> = State::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    let (mut open, mut settled, mut sent, mut sent_on_time, mut sent_late, mut alerted) =
        (0, 0, 0, 0, 0, 0);
    let mut latencies = Vec::new();
    let mut missed = Vec::new();
    for o in &in_range {
        *states.entry(o.state.as_str().to_owned()).or_default() += 1;
        if o.alerted_at.is_some() {
            alerted += 1;
        }
        let overdue = !o.state.is_terminal() && o.deadline_passed(now);
        if !o.state.is_terminal() && !overdue {
            open += 1;
        } else if o.state != State::OptedOut {
            settled += 1;
        }
        if o.state == State::Sent {
            sent += 1;
            let sent_at = o.sent_at.unwrap_or(o.updated_at);
            if sent_at < o.deadline_at {
                sent_on_time += 1;
            } else {
                sent_late += 1;
            }
            latencies.push((sent_at - o.opted_in_at).max(0));
        }
        if o.state == State::Expired || overdue {
            missed.push(*o);
        }
    }
    latencies.sort_unstable();
    let opt_in_to_sent_seconds = match (
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0),
        percentile(&latencies, 99.0),
        latencies.last(),
    ) {
        (Some(p50), Some(p95), Some(p99), Some(max)) => Some(Latency {
            samples: latencies.len(),
            p50: seconds(p50),
            p95: seconds(p95),
            p99: seconds(p99),
            max: seconds(*max),
        }),
        _ => None,
    };
    missed.sort_by(|a, b| {
        (a.deadline_at, &a.page_id, &a.login_id).cmp(&(b.deadline_at, &b.page_id, &b.login_id))
    });
    let missed_deadlines = missed
        .into_iter()
        .map(|o| MissedDeadline {
            page_id: o.page_id.clone(),
            login_id_prefix: login_id_prefix(&o.login_id),
            opted_in_at: utc(o.opted_in_at),
            deadline: utc(o.deadline_at),
            state: o.state,
            expired_at: o.terminal_at.map(utc),
            alerted_at: o.alerted_at.map(utc),
            attempts: o.attempts,
            last_error: o.last_error.clone(),
            cause: MissCause::of(o),
        })
        .collect::<Vec<_>>();
    let mut miss_causes: BTreeMap<MissCause, usize> =
        MissCause::ALL.iter().map(|c| (*c, 0)).collect();
    for m in &missed_deadlines {
        *miss_causes.entry(m.cause).or_default() += 1;
    }
    // Every opt-out, also one recorded after the opt-in ended (its state stays SENT, …).
    let mut opt_out_sources: BTreeMap<String, usize> = BTreeMap::new();
    let mut opt_outs_after_end: BTreeMap<String, usize> = BTreeMap::new();
    for o in in_range.iter().filter(|o| o.has_opted_out()) {
        let source = o.opt_out_source.as_deref().unwrap_or("unknown").to_owned();
        if o.state != State::OptedOut {
            *opt_outs_after_end.entry(source.clone()).or_default() += 1;
        }
        *opt_out_sources.entry(source).or_default() += 1;
    }
    let mut page_ids: Vec<String> = in_range.iter().map(|o| o.page_id.clone()).collect();
    page_ids.sort_unstable();
    page_ids.dedup();
    ComplianceReport {
        window: window(since, until),
        since: utc(since),
        until: utc(until),
        generated_at: utc(now),
        opt_ins: in_range.len(),
        states,
        open,
        settled,
        sent,
        sent_on_time,
        sent_late,
        sent_on_time_percent: (settled > 0)
            .then(|| (sent_on_time as f64 * 1000.0 / settled as f64).round() / 10.0),
        opt_in_to_sent_seconds,
        alerted,
        missed_deadlines,
        page_ids,
        latency_histogram: latency_histogram(&latencies),
        periods: periods(&in_range, since, until, now),
        miss_causes,
        opt_out_sources,
        opt_outs_after_end,
    }
}

/// The range in words. `since <= 0` means "from the start": everything the table holds (items live
/// 180 days after their deadline).
pub fn window(since: Millis, until: Millis) -> String {
    if since <= 0 {
        format!(
            "every opt-in in the table, recorded before {} (narrow with --since)",
            utc(until)
        )
    } else {
        format!(
            "the opt-ins recorded from {} to {} (excluded)",
            utc(since),
            utc(until)
        )
    }
}

/// What each column of the missed-deadline table means (printed under it, and in docs/alerts.md).
pub const MISSED_DEADLINE_LEGEND: &str = "    \
    Columns: PAGE the Page's id; LOGIN the first 8 characters of the login_id (never the whole id);
    OPTED IN when the person opted in, DEADLINE 24 h later, both UTC; STATE the opt-in's state now
    (EXPIRED, or still unsent past its deadline until the sweep marks it EXPIRED); ALERTED yes when
    the \"close to its 24-hour deadline\" alert went out before the deadline, no when it did not (an
    opt-in that failed or expired before its alert time never gets one); every EXPIRED row was
    alerted anyway when it expired (missed, given up, or refused as outside the window), whatever
    ALERTED says; ATTEMPTS the Send API calls made; LAST ERROR Graph's last answer (code/subcode
    and message).
";

/// The report for people: the window on the first line, a few aligned lines and a table of missed
/// deadlines with its legend.
pub fn render_text(r: &ComplianceReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Login Connect compliance report: {}", r.window);
    let _ = writeln!(
        out,
        "  opted in          {} .. {} (generated {})",
        r.since, r.until, r.generated_at
    );
    let _ = writeln!(out, "  opt-ins           {}", r.opt_ins);
    let pct = r
        .sent_on_time_percent
        .map_or("n/a".to_owned(), |p| format!("{p:.1} %"));
    let _ = writeln!(
        out,
        "  sent on time      {pct} ({} of {} settled; {} still open)",
        r.sent_on_time, r.settled, r.open
    );
    let _ = writeln!(out, "  sent late         {}", r.sent_late);
    match &r.opt_in_to_sent_seconds {
        Some(l) => {
            let _ = writeln!(
                out,
                "  opt-in -> sent    p50 {:.3} s  p95 {:.3} s  p99 {:.3} s  max {:.3} s ({} messages)",
                l.p50, l.p95, l.p99, l.max, l.samples
            );
        }
        None => {
            let _ = writeln!(out, "  opt-in -> sent    n/a (no message sent)");
        }
    }
    let states: Vec<String> = State::ALL
        .iter()
        .map(|s| format!("{} {}", s.as_str(), r.states.get(s.as_str()).unwrap_or(&0)))
        .collect();
    let _ = writeln!(out, "  states            {}", states.join(", "));
    if !r.opt_out_sources.is_empty() {
        let _ = writeln!(
            out,
            "  opted out by      {}",
            per_source(&r.opt_out_sources)
        );
    }
    if !r.opt_outs_after_end.is_empty() {
        let _ = writeln!(
            out,
            "    after the end   {} (recorded on SENT, UNREACHABLE or EXPIRED opt-ins)",
            per_source(&r.opt_outs_after_end)
        );
    }
    let _ = writeln!(
        out,
        "  alerted at risk   {} (got the \"close to its deadline\" alert before the deadline)",
        r.alerted
    );
    let causes: Vec<String> = r
        .miss_causes
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| format!("{} {n}", c.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "  missed deadlines  {}{}",
        r.missed_deadlines.len(),
        if causes.is_empty() {
            String::new()
        } else {
            format!(" ({})", causes.join(", "))
        }
    );
    if !r.missed_deadlines.is_empty() {
        let _ = writeln!(
            out,
            "    {:<18} {:<9} {:<21} {:<21} {:<11} {:<8} {:>8}  LAST ERROR",
            "PAGE", "LOGIN", "OPTED IN", "DEADLINE", "STATE", "ALERTED", "ATTEMPTS"
        );
        for m in &r.missed_deadlines {
            let error = m.error_text();
            let _ = writeln!(
                out,
                "    {:<18} {:<9} {:<21} {:<21} {:<11} {:<8} {:>8}  {}",
                m.page_id,
                m.login_id_prefix,
                m.opted_in_at,
                m.deadline,
                m.state.as_str(),
                if m.alerted_at.is_some() { "yes" } else { "no" },
                m.attempts,
                error
            );
        }
        out.push_str(MISSED_DEADLINE_LEGEND);
    }
    out
}

/// `api 1, stop_keyword 2`.
fn per_source(counts: &BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    parts.join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::opt_in::OptInKey;

    use crate::adapters::memory::opt_ins::MemoryOptInStore;
    use crate::ports::history::OptInHistory;

    pub(crate) const T0: Millis = 1_795_536_000_000; // 2026-11-24T16:00:00Z
    pub(crate) const DAY: Millis = 24 * HOUR_MS;

    fn opt_in(login: &str, at: Millis) -> OptIn {
        OptIn::new(OptInKey::new("200", login), Some(at), at, DAY, 2 * HOUR_MS)
    }

    fn sent(login: &str, at: Millis, after_ms: Millis) -> OptIn {
        let mut o = opt_in(login, at);
        o.state = State::Sent;
        o.sent_at = Some(at + after_ms);
        o.terminal_at = o.sent_at;
        o.attempts = 1;
        o
    }

    /// A day of evidence: 100 sent (1..=100 s), 2 expired, 1 overdue, 1 open, 1 opted out,
    /// 1 unreachable, and opt-ins outside the range.
    pub(crate) fn seeded() -> Vec<OptIn> {
        let mut all: Vec<OptIn> = (1..=100)
            .map(|i| sent(&format!("sent{i:03}"), T0 + i * 1000, i * 1000))
            .collect();
        let mut expired = opt_in("expired-aaaaaaaa", T0 + 10);
        expired.state = State::Expired;
        expired.terminal_at = Some(expired.deadline_at);
        expired.alerted_at = Some(expired.alert_at);
        expired.attempts = 4;
        expired.last_error = Some(LastError {
            code: 190,
            subcode: None,
            fbtrace_id: None,
            message: "Invalid OAuth access token.".into(),
        });
        all.push(expired);
        let mut window = opt_in("window-bbbbbbbb", T0 + 20);
        window.state = State::Expired;
        window.terminal_at = Some(T0 + 30);
        all.push(window);
        let mut overdue = opt_in("overdue-cccccccc", T0 + 30);
        overdue.state = State::Retrying;
        all.push(overdue);
        // Opted in at the end of the range: still open when the report runs.
        all.push(opt_in("open-dddddddd", T0 + DAY - 5));
        let mut out = opt_in("optout-eeeeeeee", T0 + 40);
        out.state = State::OptedOut;
        all.push(out);
        let mut gone = opt_in("unreach-ffffffff", T0 + 50);
        gone.state = State::Unreachable;
        all.push(gone);
        // Outside [T0, T0 + DAY).
        all.push(sent("before", T0 - 1, 1));
        all.push(sent("after", T0 + DAY, 1));
        all
    }

    #[test]
    fn the_figures_of_a_seeded_day() {
        let now = T0 + DAY + 60_000;
        let r = compute(&seeded(), T0, T0 + DAY, now);
        assert_eq!(r.opt_ins, 106);
        assert_eq!(r.states["SENT"], 100);
        assert_eq!(r.states["EXPIRED"], 2);
        assert_eq!(r.states["RETRYING"], 1);
        assert_eq!(r.states["OPTED_IN"], 1);
        assert_eq!(r.states["OPTED_OUT"], 1);
        assert_eq!(r.states["UNREACHABLE"], 1);
        assert_eq!(r.states["PAUSED"], 0);
        assert_eq!(r.states.len(), State::ALL.len());
        assert_eq!(r.open, 1);
        // 100 sent + 2 expired + 1 overdue + 1 unreachable; the opt-out is not owed a message.
        assert_eq!(r.settled, 104);
        assert_eq!((r.sent, r.sent_on_time, r.sent_late), (100, 100, 0));
        assert_eq!(r.sent_on_time_percent, Some(96.2));
        let l = r.opt_in_to_sent_seconds.unwrap();
        assert_eq!(
            (l.samples, l.p50, l.p95, l.p99, l.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(r.alerted, 1);
        let missed: Vec<(&str, State)> = r
            .missed_deadlines
            .iter()
            .map(|m| (m.login_id_prefix.as_str(), m.state))
            .collect();
        assert_eq!(
            missed,
            [
                ("expired-", State::Expired),
                ("window-b", State::Expired),
                ("overdue-", State::Retrying)
            ]
        );
        assert_eq!(r.missed_deadlines[0].deadline, utc(T0 + 10 + DAY));
        assert_eq!(r.missed_deadlines[0].attempts, 4);
        assert_eq!(r.since, "2026-11-24T16:00:00Z");
        assert_eq!(r.until, "2026-11-25T16:00:00Z");
    }

    #[test]
    fn the_text_lists_the_figures_and_only_login_id_prefixes() {
        let r = compute(&seeded(), T0, T0 + DAY, T0 + DAY + 60_000);
        let text = render_text(&r);
        for needle in [
            "opt-ins           106",
            "sent on time      96.2 % (100 of 104 settled; 1 still open)",
            "sent late         0",
            "p50 50.000 s  p95 95.000 s  p99 99.000 s  max 100.000 s (100 messages)",
            "SENT 100",
            "missed deadlines  3",
            "190 Invalid OAuth access token.",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        assert!(!text.contains("expired-aaaaaaaa"), "{text}");
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("expired-aaaaaaaa"));
    }

    /// Issue 14: the first line did not say which opt-ins were counted, and ALERTED was unexplained.
    #[test]
    fn the_first_line_names_the_window_and_the_columns_are_explained() {
        let r = compute(&seeded(), T0, T0 + DAY, T0 + DAY + 60_000);
        let text = render_text(&r);
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            "Login Connect compliance report: the opt-ins recorded from 2026-11-24T16:00:00Z to 2026-11-25T16:00:00Z (excluded)"
        );
        for column in [
            "PAGE",
            "LOGIN",
            "OPTED IN",
            "DEADLINE",
            "STATE",
            "ALERTED",
            "ATTEMPTS",
            "LAST ERROR",
        ] {
            assert!(
                MISSED_DEADLINE_LEGEND.contains(&format!("{column} ")),
                "{column}"
            );
        }
        assert!(text.contains(MISSED_DEADLINE_LEGEND), "{text}");
        let all = compute(&seeded(), 0, T0 + DAY, T0 + DAY);
        assert!(
            render_text(&all).starts_with(
                "Login Connect compliance report: every opt-in in the table, recorded before 2026-11-25T16:00:00Z"
            ),
            "{}",
            render_text(&all)
        );
    }

    #[test]
    fn an_empty_range_has_no_percentages() {
        let r = compute(&[], T0, T0 + DAY, T0);
        assert_eq!(r.opt_ins, 0);
        assert_eq!(r.sent_on_time_percent, None);
        assert_eq!(r.opt_in_to_sent_seconds, None);
        assert!(render_text(&r).contains("sent on time      n/a"));
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
        let v: Vec<Millis> = (1..=10).collect();
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 95.0), Some(10));
        assert_eq!(percentile(&v, 10.0), Some(1));
    }

    #[tokio::test]
    async fn the_memory_history_filters_the_range() {
        let store = MemoryOptInStore::new();
        for o in seeded() {
            store.insert(o);
        }
        let got = store.opt_ins_between(T0, T0 + DAY).await.unwrap();
        assert_eq!(got.len(), 106);
        assert!(store.opt_ins_between(T0, T0).await.unwrap().is_empty());
    }

    #[test]
    fn the_latency_histogram_has_every_bucket_and_counts_each_sent_once() {
        let r = compute(&seeded(), T0, T0 + DAY, T0 + DAY + 60_000);
        let counts: Vec<usize> = r.latency_histogram.iter().map(|b| b.count).collect();
        // 1 s; 2–4 s; 5–9 s; 10–29 s; 30–59 s; 60–100 s.
        assert_eq!(counts, [0, 0, 1, 3, 5, 20, 30, 41, 0, 0, 0, 0]);
        assert_eq!(counts.iter().sum::<usize>(), r.sent);
        let labels: Vec<&str> = r
            .latency_histogram
            .iter()
            .map(|b| b.label.as_str())
            .collect();
        assert_eq!(
            labels,
            [
                "< 500 ms",
                "500 ms–1 s",
                "1 s–2 s",
                "2 s–5 s",
                "5 s–10 s",
                "10 s–30 s",
                "30 s–1 min",
                "1 min–5 min",
                "5 min–15 min",
                "15 min–1 h",
                "1 h–6 h",
                "≥ 6 h"
            ]
        );
        assert_eq!(r.latency_histogram[2].from_seconds, 1.0);
        assert_eq!(r.latency_histogram[2].to_seconds, Some(2.0));
        assert_eq!(r.latency_histogram[11].to_seconds, None);
        // Bounds: a latency equal to a bound belongs to the bucket above it.
        let h = latency_histogram(&[0, 499, 500, 6 * HOUR_MS, 30 * HOUR_MS]);
        assert_eq!(
            h.iter().map(|b| b.count).collect::<Vec<_>>(),
            [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
        );
    }

    #[test]
    fn a_day_is_counted_per_hour_by_outcome() {
        let r = compute(&seeded(), T0, T0 + DAY, T0 + DAY + 60_000);
        assert_eq!(r.periods.unit, "hour");
        assert_eq!(r.periods.rows.len(), 24);
        let first = &r.periods.rows[0];
        assert_eq!(first.start, "2026-11-24T16:00:00Z");
        assert_eq!(first.label, "11-24 16h");
        assert_eq!(first.counts["SENT"], 100);
        assert_eq!(first.counts["EXPIRED"], 2);
        assert_eq!(first.counts["UNREACHABLE"], 1);
        assert_eq!(first.counts["OPTED_OUT"], 1);
        // The overdue RETRYING opt-in.
        assert_eq!(first.counts["NOT_TERMINAL"], 1);
        assert_eq!(first.total, 105);
        let last = &r.periods.rows[23];
        assert_eq!((last.counts["NOT_TERMINAL"], last.total), (1, 1));
        let totals: usize = r.periods.rows.iter().map(|p| p.total).sum();
        assert_eq!(totals, r.opt_ins);
        assert!(r.periods.rows[1..23].iter().all(|p| p.total == 0));
        assert!(
            r.periods
                .rows
                .iter()
                .all(|p| p.counts.len() == OUTCOMES.len())
        );
    }

    #[test]
    fn the_period_unit_follows_the_window() {
        let at = |days: Millis| sent(&format!("d{days}"), T0 + days * DAY, 1000);
        let unit = |last: Millis| {
            let r = compute(
                &[at(0), at(last)],
                0,
                T0 + (last + 1) * DAY,
                T0 + (last + 1) * DAY,
            );
            r.periods.unit
        };
        // From the first opt-in when `since` is the epoch, to `now` (here the end of the range).
        let ten_days = [at(0), at(9)];
        let r = compute(&ten_days, 0, T0 + 10 * DAY, T0 + 10 * DAY);
        // 2026-11-24 .. 2026-12-04: the range ends at 16:00 on the 11th day.
        assert_eq!((r.periods.unit.as_str(), r.periods.rows.len()), ("day", 11));
        assert_eq!(r.periods.rows[0].label, "2026-11-24");
        assert_eq!(r.periods.rows[9].counts["SENT"], 1);
        // A whole year: weeks, starting on a Monday (2026-11-23).
        let year = [at(0), at(300)];
        let r = compute(&year, 0, T0 + 301 * DAY, T0 + 301 * DAY);
        assert_eq!(r.periods.unit, "week");
        assert_eq!(r.periods.rows[0].start, "2026-11-23T00:00:00Z");
        assert_eq!(unit(1000), "30 days");
        assert_eq!(unit(1800), "year");
        // An explicit `since` starts the periods there, empty periods included.
        let r = compute(&[at(3)], T0, T0 + 4 * DAY, T0 + 4 * DAY);
        assert_eq!((r.periods.unit.as_str(), r.periods.rows.len()), ("day", 5));
        assert_eq!(r.periods.rows[0].total, 0);
        assert!(compute(&[], T0, T0 + DAY, T0 + DAY).periods.rows.is_empty());
    }

    fn error(code: i64, subcode: Option<i64>, message: &str) -> Option<LastError> {
        Some(LastError {
            code,
            subcode,
            fbtrace_id: None,
            message: message.into(),
        })
    }

    #[test]
    fn each_missed_deadline_has_a_cause_from_its_evidence() {
        let expired = |login: &str, attempts: u32, last_error: Option<LastError>| {
            let mut o = opt_in(login, T0 + 1);
            o.state = State::Expired;
            o.terminal_at = Some(o.deadline_at);
            o.attempts = attempts;
            o.last_error = last_error;
            o
        };
        let mut paused = opt_in("paused", T0 + 2);
        paused.state = State::Paused;
        let all = [
            expired("token", 1, error(190, None, "Invalid OAuth access token.")),
            expired(
                "window",
                1,
                error(
                    10,
                    Some(2_018_278),
                    "(#10) This message is sent outside of allowed window.",
                ),
            ),
            expired("timeout", 5, error(0, None, "timeout")),
            expired("unexpected", 3, error(2, None, "Unexpected error")),
            expired("restricted", 1, error(368, None, "Temporarily blocked")),
            expired("never", 0, None),
            expired("stopped", 2, None),
            expired("gone", 1, error(551, None, "This person isn't available")),
            paused,
        ];
        let r = compute(&all, T0, T0 + DAY, T0 + 2 * DAY);
        let cause = |login: &str| {
            r.missed_deadlines
                .iter()
                .find(|m| m.login_id_prefix == login)
                .map(|m| m.cause)
        };
        assert_eq!(cause("token"), Some(MissCause::PagePaused));
        assert_eq!(cause("restrict"), Some(MissCause::PagePaused));
        assert_eq!(cause("paused"), Some(MissCause::PagePaused));
        assert_eq!(cause("window"), Some(MissCause::WindowClosed));
        assert_eq!(cause("timeout"), Some(MissCause::GraphErrors));
        assert_eq!(cause("unexpect"), Some(MissCause::GraphErrors));
        assert_eq!(cause("never"), Some(MissCause::NoAttempt));
        assert_eq!(cause("stopped"), Some(MissCause::Other));
        assert_eq!(cause("gone"), Some(MissCause::Other));
        let counts: Vec<(&str, usize)> = r
            .miss_causes
            .iter()
            .map(|(c, n)| (c.as_str(), *n))
            .collect();
        assert_eq!(
            counts,
            [
                ("no_attempt", 1),
                ("graph_errors", 2),
                ("page_paused", 3),
                ("window_closed", 1),
                ("other", 2)
            ]
        );
        assert!(
            render_text(&r).contains(
                "missed deadlines  9 (no_attempt 1, graph_errors 2, page_paused 3, window_closed 1, other 2)"
            ),
            "{}",
            render_text(&r)
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["miss_causes"]["page_paused"], 3);
        assert_eq!(json["missed_deadlines"][0]["cause"], "other");
    }

    #[test]
    fn opt_outs_are_counted_per_source_and_pages_listed() {
        let out = |login: &str, page: &str, source: Option<&str>| {
            let mut o = opt_in(login, T0 + 5);
            o.page_id = page.into();
            o.state = State::OptedOut;
            o.opt_out_source = source.map(str::to_owned);
            o
        };
        let all = [
            out("a", "300", Some("stop_keyword")),
            out("b", "200", Some("stop_keyword")),
            out("c", "200", Some("api")),
            out("d", "200", Some("deauthorize_before_opt_in")),
            out("e", "200", None),
            sent("f", T0 + 6, 1000),
        ];
        let r = compute(&all, T0, T0 + DAY, T0 + DAY);
        let sources: Vec<(&str, usize)> = r
            .opt_out_sources
            .iter()
            .map(|(s, n)| (s.as_str(), *n))
            .collect();
        assert_eq!(
            sources,
            [
                ("api", 1),
                ("deauthorize_before_opt_in", 1),
                ("stop_keyword", 2),
                ("unknown", 1)
            ]
        );
        assert_eq!(r.page_ids, ["200", "300"]);
        assert!(
            render_text(&r).contains(
                "opted out by      api 1, deauthorize_before_opt_in 1, stop_keyword 2, unknown 1"
            ),
            "{}",
            render_text(&r)
        );
    }

    /// One opt-out before the end (`OPTED_OUT`, api) and three after it, on a SENT, an
    /// UNREACHABLE and an EXPIRED opt-in (stop_keyword, stop_keyword, api), and one sent opt-in.
    pub(crate) fn opted_out_after_end() -> Vec<OptIn> {
        let after_end = |mut o: OptIn, state: State, source: &str| {
            o.state = state;
            o.opted_out_at = Some(T0 + HOUR_MS);
            o.opt_out_source = Some(source.to_owned());
            o
        };
        let mut out = opt_in("a", T0 + 5);
        out.state = State::OptedOut;
        out.opted_out_at = Some(T0 + 10);
        out.opt_out_source = Some("api".into());
        vec![
            out,
            after_end(sent("b", T0 + 6, 1000), State::Sent, "stop_keyword"),
            after_end(opt_in("c", T0 + 7), State::Unreachable, "stop_keyword"),
            after_end(opt_in("d", T0 + 8), State::Expired, "api"),
            sent("e", T0 + 9, 1000),
        ]
    }

    /// Issue 13: an opt-out after the opt-in ended (`opted_out_at` on a SENT, UNREACHABLE or
    /// EXPIRED opt-in, which keeps its state) was missed: only OPTED_OUT items were counted.
    #[test]
    fn opt_outs_recorded_after_the_opt_in_ended_are_counted() {
        let r = compute(&opted_out_after_end(), T0, T0 + DAY, T0 + DAY);
        let counted = |m: &BTreeMap<String, usize>| {
            m.iter().map(|(s, n)| (s.clone(), *n)).collect::<Vec<_>>()
        };
        assert_eq!(
            counted(&r.opt_out_sources),
            [("api".to_owned(), 2), ("stop_keyword".to_owned(), 2)]
        );
        assert_eq!(
            counted(&r.opt_outs_after_end),
            [("api".to_owned(), 1), ("stop_keyword".to_owned(), 2)]
        );
        assert_eq!(r.states["SENT"], 2, "the states stay as they are");
        let text = render_text(&r);
        for line in [
            "  opted out by      api 2, stop_keyword 2\n",
            "    after the end   api 1, stop_keyword 2 (recorded on SENT, UNREACHABLE or EXPIRED opt-ins)\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["opt_outs_after_end"]["stop_keyword"], 2);
    }
}
