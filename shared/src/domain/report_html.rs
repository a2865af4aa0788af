//! The compliance report as one self-contained HTML page (`report --html FILE`, and the local
//! stack's `GET /report.html`): the page an operator attaches to an App Review submission or an
//! audit. Pure: [`render_html`] turns a [`ComplianceReport`] into text; nothing is read or written.
//!
//! Self-contained so it reads the same offline, years later: the project's stylesheet is inlined,
//! the charts are inline SVG drawn here (bars and lines, no library), and there is no script, no
//! font, no image and no URL to fetch. Every figure has a legend saying what it counts.

use crate::domain::opt_in::{State, utc};
use crate::domain::report::{ComplianceReport, LatencyBucket, MissCause, OUTCOMES, Periods};
use std::fmt::Write as _;

/// The project's one stylesheet (the sandbox's and the HTTP API's pages use the same file).
pub const STYLESHEET: &str = include_str!("../../assets/style.css");

/// What this page adds to the stylesheet: a wider layout, the figures' colours and the legends.
const REPORT_CSS: &str = "\
main.report { max-width: 60rem; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr)); gap: .6rem; }
.figure { background: var(--bg); border-radius: 6px; padding: .5rem .8rem; }
.figure .value { font-size: 1.6rem; font-weight: 600; display: block; }
.figure .what { color: var(--muted); font-size: .85rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
svg.chart { width: 100%; height: auto; display: block; margin: .4rem 0; }
svg.chart text { font: 11px system-ui, sans-serif; fill: var(--fg); }
svg.chart .axis { stroke: var(--line); }
svg.chart .marker { stroke: var(--fg); stroke-dasharray: 4 3; }
.legend { color: var(--muted); font-size: .9rem; }
.legend .swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px;
                  vertical-align: -.1rem; margin-right: .3rem; }
ul.keys { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .3rem 1.2rem; margin: .3rem 0; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.small { font-size: .85rem; }
.c-SENT { fill: var(--green); background: var(--green); }
.c-UNREACHABLE { fill: var(--muted); background: var(--muted); }
.c-EXPIRED { fill: var(--red); background: var(--red); }
.c-OPTED_OUT { fill: #9fa6b0; background: #9fa6b0; }
.c-NOT_TERMINAL { fill: var(--blue); background: var(--blue); }
.c-LATE { fill: var(--amber); background: var(--amber); }
.c-bar { fill: var(--blue); background: var(--blue); }
";

/// Width and height of every chart's coordinate system (the SVG scales to the page).
const W: f64 = 720.0;
const H: f64 = 260.0;
/// Plot margins: left (axis labels), right, top (marker labels), bottom (category labels).
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 64.0;

/// Text for HTML element content and quoted attributes.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A latency as the page and the text report print it: `50.000 s`.
pub fn seconds_text(seconds: f64) -> String {
    format!("{seconds:.3} s")
}

/// What each `opt_out_source` means (the values the functions record).
pub fn opt_out_source_meaning(source: &str) -> &'static str {
    let (base, before) = match source.strip_suffix("_before_opt_in") {
        Some(base) => (base, true),
        None => (source, false),
    };
    let what = match base {
        "api" => "the website called POST /v1/opt-out",
        "stop_keyword" => "the person wrote a stop word to the Page",
        "stop_notifications" => "the person turned off the Page's notifications in Messenger",
        "deauthorize" => "the person removed the app (Facebook's deauthorize callback)",
        "data_deletion" => {
            "the person asked Facebook to delete their data (data deletion callback)"
        }
        "unknown" => "no source was recorded",
        _ => "recorded by another version of the functions",
    };
    if before {
        match base {
            "api" => {
                "POST /v1/opt-out before any opt-in was recorded: a placeholder, no message was owed"
            }
            _ => {
                "an opt-out that came before any opt-in was recorded: a placeholder, no message was owed"
            }
        }
    } else {
        what
    }
}

/// A round number ≥ `max` for the top of a count axis (1, 2, 5 × 10ⁿ).
fn axis_top(max: usize) -> usize {
    let mut unit = 1usize;
    loop {
        for m in [1, 2, 5] {
            if unit.saturating_mul(m) >= max.max(1) {
                return unit.saturating_mul(m);
            }
        }
        unit = unit.saturating_mul(10);
    }
}

/// The opening of a chart: the `svg` element and its count axis (0, half, top) with grid lines.
fn chart_open(out: &mut String, id: &str, title: &str, top: usize) {
    let _ = write!(
        out,
        "<svg class=\"chart\" id=\"{id}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    let plot_h = H - TOP - BOTTOM;
    for (i, value) in [0, top / 2, top].into_iter().enumerate() {
        let y = H - BOTTOM - plot_h * i as f64 / 2.0;
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{value}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
}

/// A category label under band `i` of `n`, turned so long labels fit.
fn band_label(out: &mut String, x: f64, label: &str) {
    let y = H - BOTTOM + 14.0;
    let _ = write!(
        out,
        "<text class=\"tick\" x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"end\" transform=\"rotate(-35 {x:.1} {y:.1})\">{}</text>",
        esc(label)
    );
}

/// Where `seconds` falls on the histogram: in its bucket's bar, linearly (the middle of the
/// open-ended last bar).
fn latency_x(buckets: &[LatencyBucket], seconds: f64, band: f64) -> Option<f64> {
    let i = buckets
        .iter()
        .position(|b| seconds >= b.from_seconds && b.to_seconds.is_none_or(|to| seconds < to))?;
    let b = buckets.get(i)?;
    let inside = match b.to_seconds {
        Some(to) if to > b.from_seconds => (seconds - b.from_seconds) / (to - b.from_seconds),
        _ => 0.5,
    };
    Some(LEFT + band * (i as f64 + 0.1 + 0.8 * inside))
}

/// The opt-in → message latency histogram, one bar per bucket, with the p50/p95/p99 markers.
fn latency_chart(out: &mut String, r: &ComplianceReport) {
    let buckets = &r.latency_histogram;
    let top = axis_top(buckets.iter().map(|b| b.count).max().unwrap_or(0));
    chart_open(
        out,
        "latency-histogram",
        "opt-in to message latency histogram",
        top,
    );
    let plot_h = H - TOP - BOTTOM;
    let band = (W - LEFT - RIGHT) / buckets.len().max(1) as f64;
    for (i, b) in buckets.iter().enumerate() {
        let h = plot_h * b.count as f64 / top as f64;
        let x = LEFT + band * i as f64 + band * 0.1;
        let _ = write!(
            out,
            "<rect class=\"bar c-bar\" data-count=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{}: {}</title></rect>",
            b.count,
            H - BOTTOM - h,
            band * 0.8,
            esc(&b.label),
            b.count
        );
        if b.count > 0 {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + band * 0.4,
                H - BOTTOM - h - 3.0,
                b.count
            );
        }
        band_label(out, LEFT + band * (i as f64 + 0.6), &b.label);
    }
    if let Some(l) = &r.opt_in_to_sent_seconds {
        for (k, (name, value)) in [("p50", l.p50), ("p95", l.p95), ("p99", l.p99)]
            .into_iter()
            .enumerate()
        {
            if let Some(x) = latency_x(buckets, value, band) {
                let label_y = 12.0 + 11.0 * k as f64;
                // Labels near the right edge go to the left of their line.
                let (label_x, anchor) = if x > W - 120.0 {
                    (x - 3.0, "end")
                } else {
                    (x + 3.0, "start")
                };
                let _ = write!(
                    out,
                    "<line class=\"marker\" id=\"marker-{name}\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{label_y:.1}\" y2=\"{:.1}\"/>\
                     <text x=\"{label_x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{name} {}</text>",
                    H - BOTTOM,
                    label_y + 3.0,
                    seconds_text(value)
                );
            }
        }
    }
    out.push_str("</svg>");
}

/// The opt-ins per period, one stacked bar per period by outcome.
fn periods_chart(out: &mut String, periods: &Periods) {
    let top = axis_top(periods.rows.iter().map(|p| p.total).max().unwrap_or(0));
    chart_open(
        out,
        "outcomes-chart",
        &format!("opt-ins per {} by outcome", periods.unit),
        top,
    );
    let plot_h = H - TOP - BOTTOM;
    let n = periods.rows.len().max(1);
    let band = (W - LEFT - RIGHT) / n as f64;
    // At most about 16 axis labels, evenly spread.
    let every = n.div_ceil(16).max(1);
    for (i, p) in periods.rows.iter().enumerate() {
        let x = LEFT + band * i as f64 + band * 0.1;
        let mut y = H - BOTTOM;
        let _ = write!(
            out,
            "<g class=\"period\" data-start=\"{}\" data-total=\"{}\"><title>{}: {} opt-ins</title>",
            esc(&p.start),
            p.total,
            esc(&p.label),
            p.total
        );
        for outcome in OUTCOMES {
            let count = p.counts.get(outcome).copied().unwrap_or(0);
            if count == 0 {
                continue;
            }
            let h = plot_h * count as f64 / top as f64;
            y -= h;
            let _ = write!(
                out,
                "<rect class=\"c-{outcome}\" data-count=\"{count}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"/>",
                band * 0.8
            );
        }
        out.push_str("</g>");
        if i % every == 0 {
            band_label(out, LEFT + band * (i as f64 + 0.6), &p.label);
        }
    }
    out.push_str("</svg>");
}

/// A horizontal bar per (label, count, class): the on-time split and the opt-out sources.
fn hbar_chart(out: &mut String, id: &str, title: &str, rows: &[(String, usize, &str)]) {
    let row_h = 26.0;
    let label_w = 210.0;
    let height = row_h * rows.len().max(1) as f64 + 8.0;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let _ = write!(
        out,
        "<svg class=\"chart\" id=\"{id}\" viewBox=\"0 0 {W} {height:.0}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    for (i, (label, count, class)) in rows.iter().enumerate() {
        let y = 4.0 + row_h * i as f64;
        let w = (W - label_w - 60.0) * *count as f64 / max as f64;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"hbar c-{class}\" data-count=\"{count}\" x=\"{label_w}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{count}</text>",
            label_w - 8.0,
            y + row_h * 0.6,
            esc(label),
            row_h - 8.0,
            label_w + w + 6.0,
            y + row_h * 0.6
        );
    }
    out.push_str("</svg>");
}

fn swatch(class: &str, text: &str) -> String {
    format!(
        "<li><span class=\"swatch c-{class}\"></span>{}</li>",
        esc(text)
    )
}

fn outcome_meaning(outcome: &str) -> &'static str {
    match outcome {
        "SENT" => "SENT: the initial message was sent",
        "UNREACHABLE" => "UNREACHABLE: Graph said the person cannot be reached",
        "EXPIRED" => "EXPIRED: the deadline passed unsent",
        "OPTED_OUT" => "OPTED_OUT: the person withdrew (no message owed)",
        _ => {
            "not terminal: still being sent, or waiting (open, or past its deadline until the sweep)"
        }
    }
}

fn summary(out: &mut String, r: &ComplianceReport) {
    let pct = r
        .sent_on_time_percent
        .map_or("n/a".to_owned(), |p| format!("{p:.1} %"));
    let figures = [
        (
            "on-time",
            pct,
            "sent on time (of settled opt-ins)".to_owned(),
        ),
        (
            "opt-ins",
            r.opt_ins.to_string(),
            "opt-ins in the window".into(),
        ),
        (
            "missed",
            r.missed_deadlines.len().to_string(),
            "deadlines missed".into(),
        ),
        (
            "sent-late",
            r.sent_late.to_string(),
            "sent after the deadline (the store refuses it: must stay 0)".into(),
        ),
        (
            "open",
            r.open.to_string(),
            "still open (unsent, deadline ahead)".into(),
        ),
    ];
    out.push_str("<div class=\"figures\">");
    for (id, value, what) in figures {
        let _ = write!(
            out,
            "<div class=\"figure\"><span class=\"value\" id=\"figure-{id}\">{}</span><span class=\"what\">{}</span></div>",
            esc(&value),
            esc(&what)
        );
    }
    out.push_str("</div>");
}

fn on_time_section(out: &mut String, r: &ComplianceReport) {
    let unreachable = r
        .states
        .get(State::Unreachable.as_str())
        .copied()
        .unwrap_or(0);
    out.push_str("<section class=\"card\" id=\"on-time\"><h2>Sent on time</h2>");
    let _ = write!(
        out,
        "<p><strong id=\"on-time-percent\">{}</strong> — {} of {} settled opt-ins got their initial message before the 24-hour deadline; {} still open.</p>",
        r.sent_on_time_percent
            .map_or("n/a".to_owned(), |p| format!("{p:.1} %")),
        r.sent_on_time,
        r.settled,
        r.open
    );
    hbar_chart(
        out,
        "on-time-chart",
        "settled opt-ins by outcome",
        &[
            ("sent on time".into(), r.sent_on_time, "SENT"),
            ("sent late".into(), r.sent_late, "LATE"),
            (
                "deadline missed".into(),
                r.missed_deadlines.len(),
                "EXPIRED",
            ),
            ("unreachable".into(), unreachable, "UNREACHABLE"),
        ],
    );
    out.push_str(
        "<p class=\"legend\">Legend: one bar per outcome of the <em>settled</em> opt-ins (terminal, or unsent past \
         the deadline; opt-outs excluded, as no message was owed once the person withdrew). \
         <em>Sent on time %</em> = sent before the deadline ÷ settled. <em>Sent late</em> counts messages sent at or \
         after the deadline; the store refuses such a send, so it must be 0. <em>Unreachable</em>: Graph said the \
         person cannot be reached (blocked the Page, account gone); it counts as not sent.</p></section>",
    );
}

fn latency_section(out: &mut String, r: &ComplianceReport) {
    out.push_str("<section class=\"card\" id=\"latency\"><h2>Opt-in → message latency</h2>");
    match &r.opt_in_to_sent_seconds {
        Some(l) => {
            out.push_str("<dl class=\"facts\" id=\"percentiles\">");
            for (name, value) in [
                ("p50", l.p50),
                ("p95", l.p95),
                ("p99", l.p99),
                ("max", l.max),
            ] {
                let _ = write!(
                    out,
                    "<dt>{name}</dt><dd id=\"{name}\">{}</dd>",
                    seconds_text(value)
                );
            }
            let _ = write!(
                out,
                "<dt>messages</dt><dd id=\"latency-samples\">{}</dd></dl>",
                l.samples
            );
        }
        None => out.push_str("<p id=\"percentiles\">No message was sent in this window.</p>"),
    }
    latency_chart(out, r);
    out.push_str(
        "<p class=\"legend\">Legend: each bar counts the <code>SENT</code> opt-ins whose initial message was \
         accepted by the Send API that long after the opt-in (<code>sent_at − opted_in_at</code>); the buckets \
         are fixed and widen with the latency (0.5 s up to 6 h), so two reports compare bar for bar. The dashed \
         lines mark p50, p95 and p99 (nearest rank), placed linearly inside their bucket. The deadline is 24 h.</p></section>",
    );
}

fn periods_section(out: &mut String, r: &ComplianceReport) {
    let _ = write!(
        out,
        "<section class=\"card\" id=\"over-time\"><h2>Outcomes per {}</h2>",
        esc(&r.periods.unit)
    );
    if r.periods.rows.is_empty() {
        out.push_str("<p>No opt-in in this window.</p>");
    }
    periods_chart(out, &r.periods);
    out.push_str("<ul class=\"keys legend\">");
    for outcome in OUTCOMES {
        out.push_str(&swatch(outcome, outcome_meaning(outcome)));
    }
    let _ = write!(
        out,
        "</ul><p class=\"legend\">Legend: one bar per {} (UTC) of the opt-in time, stacked by the opt-in's state \
         when the report was made; a bar's height is the number of opt-ins of that {}. The same figures:</p>",
        esc(&r.periods.unit),
        esc(&r.periods.unit)
    );
    out.push_str("<details><summary>table</summary><table class=\"small\" id=\"periods-table\"><tr><th>period start</th>");
    for outcome in OUTCOMES {
        let _ = write!(out, "<th class=\"n\">{outcome}</th>");
    }
    out.push_str("<th class=\"n\">total</th></tr>");
    for p in r.periods.rows.iter().filter(|p| p.total > 0) {
        let _ = write!(out, "<tr><td>{}</td>", esc(&p.start));
        for outcome in OUTCOMES {
            let _ = write!(
                out,
                "<td class=\"n\">{}</td>",
                p.counts.get(outcome).copied().unwrap_or(0)
            );
        }
        let _ = write!(out, "<td class=\"n\">{}</td></tr>", p.total);
    }
    out.push_str("</table></details></section>");
}

/// Rows of the missed-deadline table shown; the rest are counted (the JSON has them all).
const MAX_MISSED_ROWS: usize = 1000;

fn missed_section(out: &mut String, r: &ComplianceReport) {
    let _ = write!(
        out,
        "<section class=\"card\" id=\"missed\"><h2>Deadlines missed: <span id=\"missed-count\">{}</span></h2>",
        r.missed_deadlines.len()
    );
    out.push_str(
        "<table id=\"miss-causes\"><tr><th>cause</th><th class=\"n\">opt-ins</th><th>means</th></tr>",
    );
    for cause in MissCause::ALL {
        let _ = write!(
            out,
            "<tr data-cause=\"{}\"><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"legend\">{}</td></tr>",
            cause.as_str(),
            cause.as_str(),
            r.miss_causes.get(&cause).copied().unwrap_or(0),
            esc(cause.meaning())
        );
    }
    out.push_str("</table>");
    if !r.missed_deadlines.is_empty() {
        out.push_str(
            "<h3>Each missed deadline</h3><table class=\"small\" id=\"missed-table\"><tr><th>Page</th><th>login</th>\
             <th>opted in</th><th>deadline</th><th>state</th><th>cause</th><th>alerted</th><th class=\"n\">attempts</th>\
             <th>last error</th></tr>",
        );
        for m in r.missed_deadlines.iter().take(MAX_MISSED_ROWS) {
            let error = m.error_text();
            let _ = write!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&m.page_id),
                esc(&m.login_id_prefix),
                esc(&m.opted_in_at),
                esc(&m.deadline),
                m.state.as_str(),
                m.cause.as_str(),
                if m.alerted_at.is_some() { "yes" } else { "no" },
                m.attempts,
                esc(&error)
            );
        }
        out.push_str("</table>");
        if r.missed_deadlines.len() > MAX_MISSED_ROWS {
            let _ = write!(
                out,
                "<p>The first {MAX_MISSED_ROWS} of {} rows; <code>report --json</code> lists them all.</p>",
                r.missed_deadlines.len()
            );
        }
    }
    out.push_str(
        "<p class=\"legend\">Legend: a deadline is missed when the opt-in is <code>EXPIRED</code>, or still unsent past \
         its deadline until the sweep marks it <code>EXPIRED</code>. The cause is read from the opt-in's evidence: its \
         state, the Send API calls made (<em>attempts</em>) and the class of Graph's last error, as the sender \
         classifies it (docs/sender.md). <em>login</em> is the first 8 characters of the login_id, never the whole id; \
         times are UTC; <em>alerted</em> is yes when the \"close to its 24-hour deadline\" alert went out before the \
         deadline (every <code>EXPIRED</code> opt-in was alerted when it expired anyway).</p></section>",
    );
}

fn opt_outs_section(out: &mut String, r: &ComplianceReport) {
    let total: usize = r.opt_out_sources.values().sum();
    let _ = write!(
        out,
        "<section class=\"card\" id=\"opt-outs\"><h2>Opt-outs by source: <span id=\"opt-out-count\">{total}</span></h2>"
    );
    if r.opt_out_sources.is_empty() {
        out.push_str("<p>No opt-out in this window.</p>");
    } else {
        let rows: Vec<(String, usize, &str)> = r
            .opt_out_sources
            .iter()
            .map(|(source, n)| (source.clone(), *n, "OPTED_OUT"))
            .collect();
        hbar_chart(out, "opt-out-chart", "opt-outs by source", &rows);
        out.push_str("<ul class=\"legend\">");
        for source in r.opt_out_sources.keys() {
            let _ = write!(
                out,
                "<li><code>{}</code>: {}</li>",
                esc(source),
                esc(opt_out_source_meaning(source))
            );
        }
        out.push_str("</ul>");
    }
    if !r.opt_outs_after_end.is_empty() {
        let after: usize = r.opt_outs_after_end.values().sum();
        let parts: Vec<String> = r
            .opt_outs_after_end
            .iter()
            .map(|(source, n)| format!("<code>{}</code> {n}", esc(source)))
            .collect();
        let _ = write!(
            out,
            "<p id=\"opt-outs-after-end\">Of these, <span id=\"opt-out-after-end-count\">{after}</span> recorded \
             after the opt-in ended (it stays <code>SENT</code>, <code>UNREACHABLE</code> or <code>EXPIRED</code>): {}.</p>",
            parts.join(", ")
        );
    }
    out.push_str(
        "<p class=\"legend\">Legend: one bar per <code>opt_out_source</code> of the opt-ins of the window the person \
         opted out of: those now in <code>OPTED_OUT</code>, and those whose opt-out came after the opt-in ended (the \
         state and its evidence stay; <code>opted_out_at</code> records it). How the person withdrew. No message is \
         owed after an opt-out; a send already in flight may still land, and is recorded on the opt-in.</p></section>",
    );
}

fn states_section(out: &mut String, r: &ComplianceReport) {
    out.push_str("<section class=\"card\" id=\"states\"><h2>Opt-ins per state</h2><table class=\"small\"><tr>");
    for s in State::ALL {
        let _ = write!(out, "<th class=\"n\">{}</th>", s.as_str());
    }
    out.push_str("</tr><tr>");
    for s in State::ALL {
        let _ = write!(
            out,
            "<td class=\"n\">{}</td>",
            r.states.get(s.as_str()).copied().unwrap_or(0)
        );
    }
    let _ = write!(
        out,
        "</tr></table><p class=\"legend\">Legend: the state of each opt-in of the window when the report was made. \
         {} were alerted as at risk (the \"close to its deadline\" alert went out before the deadline).</p></section>",
        r.alerted
    );
}

/// The whole page.
pub fn render_html(r: &ComplianceReport) -> String {
    let mut out = String::with_capacity(32 * 1024);
    // `--since all` is the epoch: say what it means rather than print 1970.
    let since = if r.since == utc(0) {
        "the first opt-in the table holds".to_owned()
    } else {
        r.since.clone()
    };
    let pages = if r.page_ids.is_empty() {
        "none (no opt-in in the window)".to_owned()
    } else {
        r.page_ids.join(", ")
    };
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Login Connect compliance report — Page {}</title><style>{STYLESHEET}</style><style>{REPORT_CSS}</style></head>\
         <body><header class=\"top\"><span class=\"brand\">Login Connect with Messenger</span>\
         <span class=\"where\">compliance report</span></header><main class=\"report\">\
         <h1>Login Connect compliance report</h1><section class=\"card\" id=\"about\"><dl class=\"facts\">\
         <dt>window</dt><dd id=\"window\">{}</dd><dt>from</dt><dd id=\"since\">{}</dd>\
         <dt>to (excluded)</dt><dd id=\"until\">{}</dd><dt>Page id</dt><dd id=\"page-ids\">{}</dd>\
         <dt>generated at</dt><dd id=\"generated-at\">{}</dd></dl>",
        esc(&pages),
        esc(&r.window),
        esc(&since),
        esc(&r.until),
        esc(&pages),
        esc(&r.generated_at)
    );
    summary(&mut out, r);
    out.push_str(
        "<p class=\"legend\">Every opt-in whose opt-in time is in the window counts, in the state it had when the \
         report was made. Meta's rule: one initial message within 24 hours of the opt-in. Times are UTC.</p></section>",
    );
    on_time_section(&mut out, r);
    latency_section(&mut out, r);
    periods_section(&mut out, r);
    missed_section(&mut out, r);
    opt_outs_section(&mut out, r);
    states_section(&mut out, r);
    out.push_str(
        "<p class=\"legend\">Made by <code>report --html</code> from the opt-in table; the same figures as \
         <code>report --json</code>. Definitions: docs/alerts.md, \"The compliance report\".</p></main></body></html>\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::opt_in::{LastError, OptIn, OptInKey};
    use crate::domain::report::compute;
    use crate::domain::report::tests::{DAY, T0, opted_out_after_end, seeded};

    fn page() -> String {
        render_html(&compute(&seeded(), T0, T0 + DAY, T0 + DAY + 60_000))
    }

    /// Where each `attr` of `html` points (the text after `attr` up to the closing quote or `)`).
    fn targets<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
        html.match_indices(attr)
            .map(|(i, _)| {
                let rest = html[i + attr.len()..].trim_start_matches(['"', '\'', ' ']);
                let end = rest.find(['"', '\'', ')', '>']).unwrap_or(rest.len());
                &rest[..end]
            })
            .collect()
    }

    /// Documentation links are the only external URLs a report may carry (it has none today).
    const DOCUMENTATION: [&str; 1] = ["https://developers.facebook.com/docs/"];

    #[test]
    fn the_page_fetches_nothing_from_the_network() {
        let html = page();
        for attr in ["src=", "href=", "url(", "@import", "action=", "srcset="] {
            for target in targets(&html, attr) {
                let external = target.starts_with("http:")
                    || target.starts_with("https:")
                    || target.starts_with("//");
                let documentation =
                    attr == "href=" && DOCUMENTATION.iter().any(|d| target.starts_with(d));
                assert!(
                    !external || documentation,
                    "{attr}{target} would be fetched when the page is viewed"
                );
            }
        }
        for tag in ["<script", "<link", "<img", "<iframe", "<object", "<embed"] {
            assert!(!html.contains(tag), "{tag}");
        }
        // The stylesheet is inlined, not linked.
        assert!(html.contains(STYLESHEET));
        // The check itself finds what it looks for.
        let bad = "<img src=\"https://cdn.example/x.png\"><a href='http://x'>";
        assert_eq!(targets(bad, "src="), ["https://cdn.example/x.png"]);
        assert_eq!(targets(bad, "href="), ["http://x"]);
    }

    #[test]
    fn the_page_has_every_figure_with_its_legend() {
        let html = page();
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<title>Login Connect compliance report — Page 200</title>"));
        for needle in [
            "<dd id=\"window\">the opt-ins recorded from 2026-11-24T16:00:00Z to 2026-11-25T16:00:00Z (excluded)</dd>",
            "<dd id=\"page-ids\">200</dd>",
            "<dd id=\"generated-at\">2026-11-25T16:01:00Z</dd>",
            "<span class=\"value\" id=\"figure-on-time\">96.2 %</span>",
            "<dd id=\"p50\">50.000 s</dd>",
            "<dd id=\"p95\">95.000 s</dd>",
            "<dd id=\"p99\">99.000 s</dd>",
            "<dd id=\"latency-samples\">100</dd>",
            "<span id=\"missed-count\">3</span>",
            "<tr data-cause=\"no_attempt\"><td><code>no_attempt</code></td><td class=\"n\">2</td>",
            "<tr data-cause=\"page_paused\"><td><code>page_paused</code></td><td class=\"n\">1</td>",
            "190 Invalid OAuth access token.",
            "<code>unknown</code>: no source was recorded",
            "Outcomes per hour",
        ] {
            assert!(html.contains(needle), "{needle} not in the page");
        }
        for chart in [
            "on-time-chart",
            "latency-histogram",
            "outcomes-chart",
            "opt-out-chart",
        ] {
            assert!(
                html.contains(&format!("<svg class=\"chart\" id=\"{chart}\"")),
                "{chart}"
            );
        }
        assert_eq!(html.matches("<rect class=\"bar c-bar\"").count(), 12);
        assert_eq!(html.matches("<g class=\"period\"").count(), 24);
        for marker in ["marker-p50", "marker-p95", "marker-p99"] {
            assert!(html.contains(marker), "{marker}");
        }
        // A legend in every section.
        let sections = html.matches("<section class=\"card\"").count();
        assert_eq!(sections, 7);
        for section in html.split("<section class=\"card\"").skip(1) {
            assert!(section.contains("class=\"legend\""), "{section}");
        }
        // Only login_id prefixes.
        assert!(!html.contains("expired-aaaaaaaa"));
    }

    #[test]
    fn text_from_graph_is_escaped() {
        let mut o = OptIn::new(OptInKey::new("200", "x"), Some(T0), T0, DAY, 0);
        o.state = State::Expired;
        o.last_error = Some(LastError {
            code: 1,
            subcode: None,
            fbtrace_id: None,
            message: "<script>alert('x')</script>".into(),
        });
        let html = render_html(&compute(&[o], T0, T0 + DAY, T0 + DAY));
        assert!(!html.contains("<script"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    }

    #[test]
    fn an_empty_window_still_renders_every_section() {
        let html = render_html(&compute(&[], T0, T0 + DAY, T0 + DAY));
        assert!(html.contains("No message was sent in this window."));
        assert!(html.contains("No opt-in in this window."));
        assert!(html.contains("No opt-out in this window."));
        assert!(html.contains("<dd id=\"page-ids\">none (no opt-in in the window)</dd>"));
        let all = render_html(&compute(&[], 0, T0, T0));
        assert!(all.contains("<dd id=\"since\">the first opt-in the table holds</dd>"));
        assert!(html.contains("id=\"figure-on-time\">n/a<"));
        assert_eq!(html.matches("<rect class=\"bar c-bar\"").count(), 12);
    }

    /// Issue 13: the opt-outs recorded after the opt-in ended are in the total and said apart.
    #[test]
    fn opt_outs_after_the_opt_in_ended_are_counted_and_said() {
        let html = render_html(&compute(&opted_out_after_end(), T0, T0 + DAY, T0 + DAY));
        for part in [
            "<span id=\"opt-out-count\">4</span>",
            "<span id=\"opt-out-after-end-count\">3</span>",
            "<code>api</code> 1, <code>stop_keyword</code> 2.",
        ] {
            assert!(html.contains(part), "{part:?} in the HTML");
        }
    }
}
