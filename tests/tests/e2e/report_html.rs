//! The compliance report's HTML page in a real browser (issue 13, "A report people can look at"):
//! headless Chromium opens the page `report --html FILE` writes, rendered from a known set of
//! opt-ins read back through the history port, saves it as `target/screens/report.png`, and checks
//! what a person would see: the charts drawn (every SVG with a size, one bar per latency bucket with
//! heights in proportion to the counts, one stacked bar per hour), the p50/p95/p99 texts equal to the
//! computed values, the shared stylesheet applied, and nothing fetched from the network.
//! A second test follows the local stack's example site to its live `GET /report.html`.
//!
//! Skipped, with a message, when /usr/bin/chromium is absent (`make browser` installs it).

use crate::pages::{STYLED_BACKGROUND, open, screens_dir, screenshot, skip, with_chromium};
use integration_tests::cdp::{CdpResult, Chromium};
use integration_tests::shared_moto;
use local_runner::{LocalSettings, LocalStack};
use messenger_sandbox::SandboxConfig;
use serde_json::{Value, json};
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::config::env;
use shared::domain::opt_in::{HOUR_MS, LastError, Millis, OptIn, OptInKey, SendOutcome, State};
use shared::domain::report::{ComplianceReport, compute};
use shared::domain::report_html::{render_html, seconds_text};
use shared::ports::history::OptInHistory;
use shared::ports::opt_ins::OptInStore;
use std::path::PathBuf;
use std::time::Duration;

const T0: Millis = 1_795_536_000_000; // 2026-11-24T16:00:00Z
const DAY: Millis = 24 * HOUR_MS;

fn opt_in(login: &str, at: Millis) -> OptIn {
    OptIn::new(OptInKey::new("200", login), Some(at), at, DAY, 2 * HOUR_MS)
}

/// 100 opt-ins sent after 0.3 s, 0.6 s, … 30 s (one every 10 minutes from T0), three expired (a
/// revoked Page token, Graph timeouts, never tried), two opted out (API, stop word), one unreachable.
fn known_opt_ins() -> Vec<OptIn> {
    let mut all: Vec<OptIn> = (1..=100)
        .map(|i| {
            let mut o = opt_in(&format!("sent-{i:03}-xxxxxxxx"), T0 + i * 600_000);
            o.state = State::Sent;
            o.sent_at = Some(o.opted_in_at + i * 300);
            o.terminal_at = o.sent_at;
            o.attempts = 1;
            o
        })
        .collect();
    let error = |code: i64, message: &str| LastError {
        code,
        subcode: None,
        fbtrace_id: None,
        message: message.into(),
    };
    for (login, attempts, last_error) in [
        (
            "token-xxxxxxxx",
            1,
            Some(error(190, "Invalid OAuth access token.")),
        ),
        ("timeout-xxxxxxx", 6, Some(error(0, "timeout"))),
        ("never-xxxxxxxx", 0, None),
    ] {
        let mut o = opt_in(login, T0 + 5 * 60_000);
        o.state = State::Expired;
        o.terminal_at = Some(o.deadline_at);
        o.attempts = attempts;
        o.last_error = last_error;
        all.push(o);
    }
    for (login, source) in [("api-xxxxxxxx", "api"), ("stop-xxxxxxxx", "stop_keyword")] {
        let mut o = opt_in(login, T0 + 2 * HOUR_MS);
        o.state = State::OptedOut;
        o.opted_out_at = Some(o.opted_in_at + 1000);
        o.opt_out_source = Some(source.into());
        all.push(o);
    }
    let mut gone = opt_in("gone-xxxxxxxx", T0 + 3 * HOUR_MS);
    gone.state = State::Unreachable;
    gone.attempts = 1;
    all.push(gone);
    all
}

/// What the page shows, measured by the browser (sizes are CSS pixels of the laid-out page).
const MEASURE: &str = r#"(() => {
  const box = e => { const r = e.getBoundingClientRect(); return {x: r.left, w: r.width, h: r.height}; };
  const text = id => (document.getElementById(id) || {}).textContent || null;
  return {
    title: document.title,
    background: getComputedStyle(document.body).backgroundColor,
    charts: Array.from(document.querySelectorAll('svg.chart')).map(s => ({id: s.id, ...box(s)})),
    bars: Array.from(document.querySelectorAll('#latency-histogram rect.bar'))
      .map(r => ({count: Number(r.dataset.count), ...box(r)})),
    periods: document.querySelectorAll('#outcomes-chart g.period').length,
    period_rects: Array.from(document.querySelectorAll('#outcomes-chart g.period rect'))
      .map(r => ({count: Number(r.dataset.count), ...box(r)})),
    markers: ['p50', 'p95', 'p99'].map(n => { const m = document.getElementById('marker-' + n); return m ? box(m) : null; }),
    opt_out_bars: Array.from(document.querySelectorAll('#opt-out-chart rect')).map(box),
    p50: text('p50'), p95: text('p95'), p99: text('p99'),
    on_time: text('figure-on-time'),
    missed: text('missed-count'),
    page_ids: text('page-ids'),
    generated_at: text('generated-at'),
    legends: document.querySelectorAll('section.card .legend').length,
    fetched: performance.getEntriesByType('resource').map(e => e.name),
    height: document.documentElement.scrollHeight,
  };
})()"#;

/// Make the viewport as tall as the page, so the screenshot holds all of it.
fn whole_page(chrome: &mut Chromium, height: &Value) -> CdpResult<()> {
    let height = height.as_f64().unwrap_or(760.0).clamp(760.0, 8000.0);
    chrome.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1000, "height": height, "deviceScaleFactor": 1, "mobile": false}),
    )?;
    Ok(())
}

/// The known opt-ins through the history port, as `report` reads them.
async fn known_report() -> ComplianceReport {
    let store = MemoryOptInStore::new();
    for o in known_opt_ins() {
        store.insert(o);
    }
    let opt_ins = store.opt_ins_between(T0, T0 + DAY).await.unwrap();
    compute(&opt_ins, T0, T0 + DAY, T0 + DAY + HOUR_MS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_page_draws_its_charts_in_chromium() {
    if skip("the_report_page_draws_its_charts_in_chromium") {
        return;
    }
    let r = known_report().await;
    // The figures the page must show, computed by hand from the known opt-ins.
    let latency = r.opt_in_to_sent_seconds.clone().unwrap();
    assert_eq!((latency.p50, latency.p95, latency.p99), (15.0, 28.5, 29.7));
    let expected_bars = [1, 2, 3, 10, 17, 66, 1, 0, 0, 0, 0, 0];
    let counts: Vec<usize> = r.latency_histogram.iter().map(|b| b.count).collect();
    assert_eq!(counts, expected_bars);
    assert_eq!(r.sent_on_time_percent, Some(96.2));

    let path = screens_dir().join("report.html");
    std::fs::write(&path, render_html(&r)).unwrap();
    let url = format!("file://{}", path.canonicalize().unwrap().display());
    let seen = with_chromium(move |chrome| {
        open(chrome, &url)?;
        let seen = chrome.eval(MEASURE)?;
        whole_page(chrome, &seen["height"])?;
        screenshot(chrome, "report")?;
        Ok(seen)
    })
    .await;

    assert_eq!(seen["background"], json!(STYLED_BACKGROUND), "{seen}");
    assert_eq!(
        seen["title"],
        json!("Login Connect compliance report — Page 200")
    );
    assert_eq!(seen["page_ids"], json!("200"));
    assert_eq!(seen["generated_at"], json!("2026-11-25T17:00:00Z"));
    // Every chart laid out with a size.
    let charts: Vec<&str> = seen["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(
                c["w"].as_f64().unwrap() > 300.0 && c["h"].as_f64().unwrap() > 50.0,
                "{c}"
            );
            c["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        charts,
        [
            "on-time-chart",
            "latency-histogram",
            "outcomes-chart",
            "opt-out-chart"
        ]
    );
    // One bar per bucket; the drawn heights in proportion to the counts.
    let bars = seen["bars"].as_array().unwrap();
    let drawn: Vec<usize> = bars
        .iter()
        .map(|b| b["count"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(drawn, expected_bars);
    let tallest = bars[5]["h"].as_f64().unwrap();
    assert!(tallest > 50.0, "{seen}");
    for bar in bars {
        let (count, h, w) = (
            bar["count"].as_f64().unwrap(),
            bar["h"].as_f64().unwrap(),
            bar["w"].as_f64().unwrap(),
        );
        assert!(w > 10.0, "{bar}");
        assert!(
            (h - tallest * count / 66.0).abs() < 1.5,
            "{bar} vs {tallest}"
        );
    }
    // The percentile texts and markers.
    assert_eq!(seen["p50"], json!(seconds_text(latency.p50)));
    assert_eq!(seen["p50"], json!("15.000 s"));
    assert_eq!(seen["p95"], json!("28.500 s"));
    assert_eq!(seen["p99"], json!("29.700 s"));
    // All three fall in the 10–30 s bucket: each dashed line drawn across that bar.
    let bar = &bars[5];
    let (left, right) = (
        bar["x"].as_f64().unwrap(),
        bar["x"].as_f64().unwrap() + bar["w"].as_f64().unwrap(),
    );
    for marker in seen["markers"].as_array().unwrap() {
        assert!(marker["h"].as_f64().unwrap() > 50.0, "{seen}");
        let x = marker["x"].as_f64().unwrap();
        assert!(left < x && x < right, "{marker} outside the bar {bar}");
    }
    // One stacked bar per hour of the day; every drawn segment visible.
    assert_eq!(seen["periods"], json!(24));
    let segments = seen["period_rects"].as_array().unwrap();
    let drawn: u64 = segments.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    assert_eq!(drawn, r.opt_ins as u64);
    assert!(
        segments.iter().all(|s| s["h"].as_f64().unwrap() > 0.0),
        "{seen}"
    );
    assert_eq!(seen["opt_out_bars"].as_array().unwrap().len(), 2);
    assert_eq!(seen["on_time"], json!("96.2 %"));
    assert_eq!(seen["missed"], json!("3"));
    assert!(seen["legends"].as_u64().unwrap() >= 7, "{seen}");
    // Self-contained: the browser fetched nothing.
    assert_eq!(seen["fetched"], json!([]), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_example_site_links_the_live_report_of_the_local_table() {
    if skip("the_example_site_links_the_live_report_of_the_local_table") {
        return;
    }
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let sandbox =
        messenger_sandbox::start(SandboxConfig::default(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let settings = LocalSettings::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        format!("report-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        "127.0.0.1:0".parse().unwrap(),
    )
    .with(env::GRAPH_API_BASE_URL, sandbox.base_url.clone())
    .with(env::FACEBOOK_WEB_BASE_URL, sandbox.base_url.clone());
    let local = LocalStack::start(settings, &sdk).await.unwrap();
    let store = DynamoOptInStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        local.provisioned.table_name.clone(),
    );
    // Three opt-ins an hour ago, through the store's own writes: two sent, one opted out.
    let at = chrono::Utc::now().timestamp_millis() - HOUR_MS;
    for (i, login) in ["site-sent-1", "site-sent-2", "site-out"]
        .iter()
        .enumerate()
    {
        let o = OptIn::new(OptInKey::new("200", *login), Some(at), at, DAY, 2 * HOUR_MS);
        store.create_opt_in(&o).await.unwrap();
        if i < 2 {
            assert!(
                store
                    .claim_for_send(&o.key(), "w", at + 100, at + 60_000)
                    .await
                    .unwrap()
                    .is_done()
            );
            let sent = SendOutcome::Sent {
                message_id: format!("m_{i}"),
            };
            assert!(
                store
                    .finish_send(&o.key(), "w", &sent, at + 1_500)
                    .await
                    .unwrap()
                    .is_done()
            );
        } else {
            assert!(
                store
                    .opt_out(&o.key(), "api", at + 2_000)
                    .await
                    .unwrap()
                    .is_done()
            );
        }
    }
    let site = format!("{}/", local.site_base_url);
    let seen = with_chromium(move |chrome| {
        open(chrome, &site)?;
        chrome.click("a#report")?;
        chrome.wait_for(
            "document.querySelector('#latency-histogram') !== null && document.readyState === 'complete'",
            Duration::from_secs(20),
        )?;
        let seen = chrome.eval(MEASURE)?;
        whole_page(chrome, &seen["height"])?;
        screenshot(chrome, "report-local")?;
        Ok(seen)
    })
    .await;
    assert_eq!(seen["p50"], json!("1.500 s"), "{seen}");
    assert_eq!(seen["on_time"], json!("100.0 %"), "{seen}");
    assert_eq!(seen["opt_out_bars"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(seen["fetched"], json!([]), "{seen}");
    local.shutdown().await;
    sandbox.shutdown().await;
}
