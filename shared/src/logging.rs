//! The log format of every function, in one place: each Lambda main, the local runner and the
//! tests that reproduce production lines (the cost bench, the log-secrets check) build it here.
//!
//! The environment rules are `lambda_runtime::tracing::init_default_subscriber`'s: the level is
//! `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO, with `RUST_LOG`'s directives on top;
//! `AWS_LAMBDA_LOG_FORMAT=JSON` (the template's `LogFormat`) gives JSON lines, anything else text;
//! no time (CloudWatch stamps each event), no target. The JSON differs in what costs bytes and
//! says nothing (CloudWatch Logs bills every byte ingested, issue 13 §5):
//! - the enclosing spans are printed once, as the `spans` list (root to leaf), not again as
//!   `span`. The list, not the current span, is kept: the runtime's "Lambda runtime invoke" span
//!   (`requestId`) is the root, and the sender's lines sit in a `send_job` span inside it, so the
//!   current span alone would drop their `requestId`;
//! - a span's `xrayTraceId` is left out when the trace is not sampled (`Sampled=0`): Lambda hands
//!   the runtime a trace header without active tracing too, and an unsampled trace id points to
//!   nothing in X-Ray. A sampled one is kept.

use std::fmt;
use tracing::Subscriber;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::{FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::{FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

pub use tracing_subscriber::util::TryInitError;

/// The level when neither `AWS_LAMBDA_LOG_LEVEL` nor `RUST_LOG` names one.
const DEFAULT_LEVEL: LevelFilter = LevelFilter::INFO;

/// The span field holding Lambda's X-Ray trace header.
const TRACE_FIELD: &str = "xrayTraceId";

/// What the environment asks for: the format and the filter.
pub struct LogSettings {
    /// JSON lines (`AWS_LAMBDA_LOG_FORMAT=JSON`), else text.
    pub json: bool,
    pub filter: EnvFilter,
}

impl LogSettings {
    /// The settings from `lookup` (an environment): `init_default_subscriber`'s rules.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let json = lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
        let rust_log = lookup("RUST_LOG");
        let level = lookup("AWS_LAMBDA_LOG_LEVEL")
            .or_else(|| rust_log.clone())
            .and_then(|l| l.parse::<LevelFilter>().ok())
            .unwrap_or(DEFAULT_LEVEL);
        let filter = EnvFilter::builder()
            .with_default_directive(level.into())
            .parse_lossy(rust_log.unwrap_or_default());
        Self { json, filter }
    }

    /// The settings from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// The lines' formatter, JSON or text, writing to `writer`: for a subscriber that adds its own
/// layers or filters (the cost bench counts each function's lines with one of these).
pub fn layer<S, W>(json: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync + 'static>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // No colour codes: CloudWatch shows them as text.
    let text = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(writer);
    if json {
        text.json()
            .with_current_span(false)
            .with_span_list(true)
            .fmt_fields(SpanFields)
            .boxed()
    } else {
        text.boxed()
    }
}

/// The subscriber of `settings`, writing to `writer` (tests set it for a thread or a scope).
pub fn subscriber<W>(settings: LogSettings, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    Registry::default()
        .with(settings.filter)
        .with(layer(settings.json, writer))
}

/// Install `settings` as the process's subscriber, writing to `writer`; fails when one is set.
pub fn try_init<W>(settings: LogSettings, writer: W) -> Result<(), TryInitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    subscriber(settings, writer).try_init()
}

/// The environment's log settings to `writer`. A subscriber set already is kept (it receives
/// the lines): starting matters more than the format.
pub fn init_logging_with_writer<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = try_init(LogSettings::from_env(), writer);
}

/// Every Lambda main's logging, to stdout (after `check_log_levels_from_env`).
pub fn init_logging() {
    init_logging_with_writer(std::io::stdout);
}

/// An in-memory log destination for tests: every writer appends to one buffer.
#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(any(test, feature = "testing"))]
impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The lines written so far that contain `text`.
    pub fn lines_with(&self, text: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(text))
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(any(test, feature = "testing"))]
impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(any(test, feature = "testing"))]
impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(any(test, feature = "testing"))]
thread_local! {
    static THIS_THREAD: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the capture of the writing thread, or nowhere (a buffer nobody reads).
#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Copy, Default)]
struct ThreadCapture;

#[cfg(any(test, feature = "testing"))]
impl<'a> MakeWriter<'a> for ThreadCapture {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        THIS_THREAD.with(|c| c.borrow().clone()).unwrap_or_default()
    }
}

/// Ends a [`capture_this_thread`] (the thread's previous capture, if any, resumes).
#[cfg(any(test, feature = "testing"))]
pub struct CaptureGuard(Option<Captured>);

#[cfg(any(test, feature = "testing"))]
impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        THIS_THREAD.with(|c| *c.borrow_mut() = previous);
    }
}

/// This thread's lines into `logs`, in production's format and level (JSON, INFO), while the
/// guard lives. One process-wide subscriber (set on first use) sends each line to the capture of
/// the thread that wrote it. Process-wide rather than a thread's default: with a thread's
/// default, a callsite first reached on another test's thread at the wrong moment can stay
/// disabled (tracing caches its interest), and the line is lost at random.
#[cfg(any(test, feature = "testing"))]
pub fn capture_this_thread(logs: &Captured) -> Result<CaptureGuard, String> {
    static SET: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let settings =
            LogSettings::from_lookup(|k| (k == "AWS_LAMBDA_LOG_FORMAT").then(|| "JSON".to_owned()));
        try_init(settings, ThreadCapture).map_err(|e| e.to_string())
    })
    .clone()?;
    let previous = THIS_THREAD.with(|c| c.borrow_mut().replace(logs.clone()));
    Ok(CaptureGuard(previous))
}

/// Span fields as a JSON object (what the JSON format expects), without an unsampled
/// `xrayTraceId`.
struct SpanFields;

impl SpanFields {
    fn json(
        fields: impl RecordFields,
    ) -> Result<serde_json::Map<String, serde_json::Value>, fmt::Error> {
        let mut text = String::new();
        JsonFields::new().format_fields(Writer::new(&mut text), fields)?;
        serde_json::from_str(&text).map_err(|_| fmt::Error)
    }

    fn write(
        mut fields: serde_json::Map<String, serde_json::Value>,
        out: &mut impl fmt::Write,
    ) -> fmt::Result {
        let unsampled = fields
            .get(TRACE_FIELD)
            .and_then(serde_json::Value::as_str)
            .is_some_and(|t| t.split(';').any(|part| part.trim() == "Sampled=0"));
        if unsampled {
            fields.remove(TRACE_FIELD);
        }
        write!(out, "{}", serde_json::Value::Object(fields))
    }
}

impl<'w> FormatFields<'w> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        Self::write(Self::json(fields)?, &mut writer)
    }

    /// Fields recorded later (`Span::record`) merge into the object (the default appends text).
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut merged = if current.fields.is_empty() {
            serde_json::Map::new()
        } else {
            serde_json::from_str(&current.fields).map_err(|_| fmt::Error)?
        };
        merged.extend(Self::json(fields)?);
        let mut text = String::new();
        Self::write(merged, &mut text)?;
        current.fields = text;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(lines: &Captured) -> Vec<serde_json::Value> {
        lines
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// Runs `f` under the production JSON format at INFO, returning what it wrote.
    fn json_lines(f: impl FnOnce()) -> Captured {
        let lines = Captured::default();
        let settings = LogSettings::from_lookup(env(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")]));
        assert!(settings.json);
        tracing::subscriber::with_default(subscriber(settings, lines.clone()), f);
        lines
    }

    const REQUEST_ID: &str = "8f0e4f4c-5d1a-4c55-9e8b-3f3a1d2c7b6e";
    const UNSAMPLED: &str =
        "Root=1-6b0de45d-688b8c949b544427b037df38;Parent=491154a4befa4322;Sampled=0";

    #[test]
    fn a_json_line_carries_the_request_span_once_and_its_level() {
        let lines = json_lines(|| {
            let invoke = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = REQUEST_ID,
                xrayTraceId = UNSAMPLED
            );
            let _invoke = invoke.enter();
            tracing::info!(login_id_prefix = "547434db", "opt-in recorded");
            let job = tracing::info_span!("send_job", message_id = "m-1");
            let _job = job.enter();
            tracing::info!(attempts = 1, "initial message sent");
            tracing::debug!("not at INFO");
        });
        let text = lines.text();
        let lines = json(&lines);
        assert_eq!(lines.len(), 2, "{text}");
        for line in &lines {
            assert_eq!(line["level"], "INFO", "{line}");
            assert!(line.get("span").is_none(), "the current span again: {line}");
            assert_eq!(line.to_string().matches(REQUEST_ID).count(), 1, "{line}");
            assert_eq!(line["spans"][0]["requestId"], REQUEST_ID, "{line}");
            assert_eq!(line["spans"][0]["name"], "Lambda runtime invoke", "{line}");
            assert!(line["spans"][0].get(TRACE_FIELD).is_none(), "{line}");
            assert!(line.get("target").is_none() && line.get("timestamp").is_none());
        }
        assert_eq!(lines[0]["fields"]["message"], "opt-in recorded");
        assert_eq!(lines[0]["fields"]["login_id_prefix"], "547434db");
        // Inside the sender's job span the request id is still there, with the job's.
        assert_eq!(lines[1]["spans"][1]["message_id"], "m-1");
        assert_eq!(lines[1]["fields"]["attempts"], 1);
    }

    #[test]
    fn a_sampled_trace_id_is_kept() {
        let sampled = UNSAMPLED.replace("Sampled=0", "Sampled=1");
        let lines = json_lines(|| {
            let span = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = REQUEST_ID,
                xrayTraceId = sampled.as_str()
            );
            let _span = span.enter();
            tracing::warn!("kept");
        });
        let lines = json(&lines);
        assert_eq!(lines[0]["spans"][0][TRACE_FIELD], sampled.as_str());
    }

    #[test]
    fn fields_recorded_later_stay_one_json_object() {
        let lines = json_lines(|| {
            let span = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = REQUEST_ID,
                tenantId = tracing::field::Empty
            );
            span.record("tenantId", "t-1");
            let _span = span.enter();
            tracing::info!("recorded");
        });
        let lines = json(&lines);
        assert_eq!(lines[0]["spans"][0]["requestId"], REQUEST_ID);
        assert_eq!(lines[0]["spans"][0]["tenantId"], "t-1");
    }

    #[test]
    fn the_environment_rules_are_the_runtimes() {
        let level = |vars: &[(&str, &str)]| {
            LogSettings::from_lookup(env(vars))
                .filter
                .max_level_hint()
                .map(|l| l.to_string())
        };
        assert_eq!(level(&[]).as_deref(), Some("info"));
        assert_eq!(level(&[("RUST_LOG", "warn")]).as_deref(), Some("warn"));
        assert_eq!(
            level(&[("AWS_LAMBDA_LOG_LEVEL", "ERROR")]).as_deref(),
            Some("error")
        );
        assert_eq!(
            level(&[("AWS_LAMBDA_LOG_LEVEL", "ERROR"), ("RUST_LOG", "trace")]).as_deref(),
            Some("trace"),
            "RUST_LOG's directives apply on top, as the runtime's (check_log_levels refuses this)"
        );
        // Directives on top of the level (the runtime's EnvFilter reads RUST_LOG as well).
        assert_eq!(
            level(&[
                ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
                ("RUST_LOG", "shared=debug")
            ])
            .as_deref(),
            Some("debug")
        );
        assert!(!LogSettings::from_lookup(env(&[])).json);
        assert!(!LogSettings::from_lookup(env(&[("AWS_LAMBDA_LOG_FORMAT", "Text")])).json);
        assert!(LogSettings::from_lookup(env(&[("AWS_LAMBDA_LOG_FORMAT", "json")])).json);
    }
}
