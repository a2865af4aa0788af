//! The compliance report: for the opt-ins of a time range, was the initial message sent in time?
//!
//! [`compute`] is a pure function over stored opt-ins (the evidence each item carries: opt-in time,
//! deadline, state, `sent_at`, `terminal_at`, `alerted_at`, last Graph error). [`crate::ports::history::OptInHistory`]
//! is the port that reads those opt-ins; `make report` (infra/report) prints the result, and a
//! website-facing `GET /v1/report` can serve the same JSON.
//!
//! Definitions (also in docs/alerts.md):
//! - an opt-in belongs to the range when its `opted_in_at` is in `[since, until)`;
//! - *settled*: terminal, or still unsent with its deadline passed (a sweep will mark it EXPIRED),
//!   excluding `OPTED_OUT` (no message was owed once the person withdrew);
//! - *sent on time %* = sent before the deadline ÷ settled;
//! - *missed deadlines*: `EXPIRED`, or still unsent past the deadline;
//! - latency percentiles: nearest rank over `sent_at − opted_in_at` of the `SENT` opt-ins.

use crate::domain::opt_in::{LastError, Millis, OptIn, State, login_id_prefix, utc};
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
        })
        .collect();
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
    let _ = writeln!(
        out,
        "  alerted at risk   {} (got the \"close to its deadline\" alert before the deadline)",
        r.alerted
    );
    let _ = writeln!(out, "  missed deadlines  {}", r.missed_deadlines.len());
    if !r.missed_deadlines.is_empty() {
        let _ = writeln!(
            out,
            "    {:<18} {:<9} {:<21} {:<21} {:<11} {:<8} {:>8}  LAST ERROR",
            "PAGE", "LOGIN", "OPTED IN", "DEADLINE", "STATE", "ALERTED", "ATTEMPTS"
        );
        for m in &r.missed_deadlines {
            let error = m.last_error.as_ref().map_or(String::new(), |e| {
                let code = match e.subcode {
                    Some(sub) => format!("{}/{sub}", e.code),
                    None => e.code.to_string(),
                };
                format!("{code} {}", e.message)
            });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::opt_in::{HOUR_MS, OptInKey};

    use crate::adapters::memory::opt_ins::MemoryOptInStore;
    use crate::ports::history::OptInHistory;

    const T0: Millis = 1_795_536_000_000; // 2026-11-24T16:00:00Z
    const DAY: Millis = 24 * HOUR_MS;

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
    fn seeded() -> Vec<OptIn> {
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
}
