//! The operator CLI `ops`: `ops report` (this file, as `make report`) and `ops doctor` (the
//! preflight checklist, [`doctor`]; `make doctor`).
//!
//! `make report`: the compliance report of a time range, from the opt-in table.
//!
//! Which table:
//! 1. `--table NAME`: that table, with the normal AWS credentials and region (environment, profile,
//!    SSO…; `AWS_ENDPOINT_URL` is honoured as by every SDK client);
//! 2. else `TABLE_NAME` from the environment, the same way;
//! 3. else the local stack: `.local/stack.json`, written by `make run` in the working directory,
//!    names the emulator's endpoint and table.
//!
//! The figures are computed by [`shared::domain::report::compute`] (pure, tested on seeded data); this crate
//! only parses arguments, finds the table and prints.

pub mod doctor;
pub mod flags;
pub mod redrive;

use shared::config::env;
use shared::domain::opt_in::Millis;
use shared::domain::report::{ComplianceReport, compute, render_text};
use shared::domain::report_html::render_html;
use shared::ports::history::OptInHistory;
use std::path::PathBuf;

pub const USAGE: &str = "\
Usage: report [--since TIME] [--until TIME] [--table NAME] [--json] [--html FILE]

Prints, for the opt-ins recorded in [since, until): how many, the share sent on time,
p50/p95/p99 opt-in -> sent, counts per state, and every missed deadline
(login_id prefix only). The first line names the range.

  --since TIME    start of the range (default all: every opt-in the table holds);
                  RFC 3339 (2026-11-24T00:00:00Z), a time ago: 90s, 30m, 24h, 7d;
                  now; or all
  --until TIME    end of the range, excluded (default now), same forms
  --table NAME    read this DynamoDB table with the normal AWS credentials and region
                  (default: $TABLE_NAME, else the local stack of `make run`)
  --json          print JSON instead of text
  --html FILE     also write the report as one self-contained HTML page (charts,
                  legends; nothing fetched when viewed) to FILE
  -h, --help      this help
";

/// Where the local stack describes itself (see `local_runner::local_state`).
pub const LOCAL_STATE_FILE: &str = ".local/stack.json";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub since: Option<String>,
    pub until: Option<String>,
    pub table: Option<String>,
    pub json: bool,
    /// Where to write the HTML page, if asked.
    pub html: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Run(Args),
}

/// Parse the command line (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut parsed = Args::default();
    let mut flags = flags::Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => parsed.json = true,
            "--since" => parsed.since = Some(flags.value("--since")?),
            "--until" => parsed.until = Some(flags.value("--until")?),
            "--table" => parsed.table = Some(flags.value("--table")?),
            "--html" => parsed.html = Some(PathBuf::from(flags.value("--html")?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Command::Run(parsed))
}

/// `2026-11-24T00:00:00Z` (any RFC 3339 offset), `now`, `all` (the epoch: from the start), or a
/// time before `now`: `90s`, `30m`, `24h`, `7d` (an optional trailing ` ago` is accepted).
pub fn parse_time(text: &str, now: Millis) -> Result<Millis, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if t.eq_ignore_ascii_case("all") {
        return Ok(0);
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(at.timestamp_millis());
    }
    let ago = t.strip_suffix("ago").map_or(t, str::trim_end);
    let split = ago.find(|c: char| !c.is_ascii_digit()).unwrap_or(ago.len());
    let (number, unit) = ago.split_at(split);
    let unit_ms: Millis = match unit.trim() {
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    match number.parse::<Millis>() {
        Ok(n) if unit_ms > 0 => n
            .checked_mul(unit_ms)
            .map(|ms| now - ms)
            .ok_or_else(|| format!("{text:?} is too far back")),
        _ => Err(format!(
            "{text:?} is not a time: use RFC 3339 (2026-11-24T00:00:00Z), now, all, or a time ago like 90s, 30m, 24h, 7d"
        )),
    }
}

/// The table to read and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A table reached with the normal AWS configuration.
    Aws { table: String },
    /// The local stack's table in its emulator.
    Local {
        table: String,
        endpoint: String,
        region: String,
    },
}

/// Decide where to read: `--table`, then `TABLE_NAME`, then the local state file under `dir`.
pub fn locate(
    args: &Args,
    env_table: Option<String>,
    dir: &std::path::Path,
) -> Result<Source, String> {
    if let Some(table) = args
        .table
        .clone()
        .or(env_table.filter(|t| !t.trim().is_empty()))
    {
        return Ok(Source::Aws { table });
    }
    let path: PathBuf = dir.join(LOCAL_STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        format!(
            "no table to read: pass --table NAME (a deployed stack's OptInTableName output) or start the local stack with `make run` (it writes {})",
            path.display()
        )
    })?;
    let state: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    let field = |name: &str| {
        state[name]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("{} has no {name}", path.display()))
    };
    Ok(Source::Local {
        table: field("table_name")?,
        endpoint: field("aws_endpoint_url")?,
        region: field("region").unwrap_or_else(|_| "us-east-1".into()),
    })
}

/// A DynamoDB store over `source`.
pub async fn store_for(source: &Source) -> shared::adapters::dynamodb::opt_ins::DynamoOptInStore {
    use aws_config::{BehaviorVersion, Region};
    let (sdk, table) = match source {
        Source::Aws { table } => (
            shared::adapters::aws::load_operator_sdk_config().await,
            table.clone(),
        ),
        Source::Local {
            table,
            endpoint,
            region,
        } => {
            let sdk = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(region.clone()))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "testing", "testing", None, None, "local",
                ))
                .endpoint_url(endpoint)
                .load()
                .await;
            (sdk, table.clone())
        }
    };
    shared::adapters::dynamodb::opt_ins::DynamoOptInStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table,
    )
}

/// Read the range and compute the report.
pub async fn report(
    history: &dyn OptInHistory,
    since: Millis,
    until: Millis,
    now: Millis,
) -> Result<ComplianceReport, String> {
    if until <= since {
        return Err("--until must be later than --since".into());
    }
    let opt_ins = history
        .opt_ins_between(since, until)
        .await
        .map_err(|e| format!("could not read the opt-ins: {e}"))?;
    Ok(compute(&opt_ins, since, until, now))
}

/// The default `--since`: everything the table holds (the local stack holds a few runs; a deployed
/// table 180 days after each deadline, and the Scan reads every item whatever the range). A 24 h
/// default left out the README's own 25-hours-ago expiry example.
pub const DEFAULT_SINCE: &str = "all";

/// The whole command: parse, locate, read, print. Returns the text to print.
pub async fn run(args: &Args, now: Millis) -> Result<String, String> {
    let since = parse_time(args.since.as_deref().unwrap_or(DEFAULT_SINCE), now)?;
    let until = parse_time(args.until.as_deref().unwrap_or("now"), now)?;
    let source = locate(
        args,
        std::env::var(env::TABLE_NAME).ok(),
        std::path::Path::new("."),
    )?;
    let store = store_for(&source).await;
    let r = report(&store, since, until, now).await?;
    let written = match &args.html {
        Some(path) => write_html(&r, path)?,
        None => String::new(),
    };
    if args.json {
        serde_json::to_string_pretty(&r).map_err(|e| e.to_string())
    } else {
        let table = match &source {
            Source::Aws { table } => table.clone(),
            Source::Local {
                table, endpoint, ..
            } => format!("{table} (local, {endpoint})"),
        };
        Ok(format!(
            "{}  table             {table}\n{written}",
            render_text(&r)
        ))
    }
}

/// Write the HTML page of `r` to `path`; the line that says so.
pub fn write_html(r: &ComplianceReport, path: &std::path::Path) -> Result<String, String> {
    std::fs::write(path, render_html(r))
        .map_err(|e| format!("could not write {}: {e}", path.display()))?;
    Ok(format!(
        "  html              {} (open it in a browser)\n",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_536_000_000; // 2026-11-24T16:00:00Z

    fn args(a: &[&str]) -> Result<Command, String> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        assert_eq!(args(&[]).unwrap(), Command::Run(Args::default()));
        assert_eq!(args(&["--help"]).unwrap(), Command::Help);
        assert_eq!(
            args(&["--since", "7d", "--until=1h", "--table", "t", "--json"]).unwrap(),
            Command::Run(Args {
                since: Some("7d".into()),
                until: Some("1h".into()),
                table: Some("t".into()),
                json: true,
                html: None,
            })
        );
        assert_eq!(
            args(&["--html", "target/report.html"]).unwrap(),
            Command::Run(Args {
                html: Some(PathBuf::from("target/report.html")),
                ..Args::default()
            })
        );
        assert!(
            args(&["--html"])
                .unwrap_err()
                .contains("--html needs a value")
        );
        assert!(
            args(&["--since"])
                .unwrap_err()
                .contains("--since needs a value")
        );
        assert!(args(&["--nope"]).unwrap_err().contains("unknown argument"));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("all", NOW), Ok(0));
        assert_eq!(parse_time(DEFAULT_SINCE, NOW), Ok(0));
        assert_eq!(parse_time("24h", NOW), Ok(NOW - 86_400_000));
        assert_eq!(parse_time("90s", NOW), Ok(NOW - 90_000));
        assert_eq!(parse_time("30m", NOW), Ok(NOW - 1_800_000));
        assert_eq!(parse_time("7d ago", NOW), Ok(NOW - 7 * 86_400_000));
        assert_eq!(parse_time("2026-11-24T16:00:00Z", 0), Ok(NOW));
        assert_eq!(parse_time("2026-11-24T17:00:00+01:00", 0), Ok(NOW));
        for bad in ["", "yesterday", "5 weeks", "h", "2026-11-24"] {
            assert!(parse_time(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_table_comes_from_the_flag_the_environment_or_the_local_stack() {
        let dir = std::env::temp_dir().join(format!("report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let flag = Args {
            table: Some("prod-OptInTable".into()),
            ..Args::default()
        };
        assert_eq!(
            locate(&flag, Some("env".into()), &dir),
            Ok(Source::Aws {
                table: "prod-OptInTable".into()
            })
        );
        assert_eq!(
            locate(&Args::default(), Some("env".into()), &dir),
            Ok(Source::Aws {
                table: "env".into()
            })
        );
        let missing = locate(&Args::default(), None, &dir).unwrap_err();
        assert!(
            missing.contains("make run") && missing.contains("--table"),
            "{missing}"
        );
        std::fs::create_dir_all(dir.join(".local")).unwrap();
        std::fs::write(
            dir.join(LOCAL_STATE_FILE),
            r#"{"aws_endpoint_url":"http://127.0.0.1:5","region":"us-east-1","table_name":"local-OptInTable"}"#,
        )
        .unwrap();
        assert_eq!(
            locate(&Args::default(), Some(" ".into()), &dir),
            Ok(Source::Local {
                table: "local-OptInTable".into(),
                endpoint: "http://127.0.0.1:5".into(),
                region: "us-east-1".into(),
            })
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn html_writes_one_page_and_says_where() {
        let dir = std::env::temp_dir().join(format!("report-html-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("report.html");
        let r = compute(&[], NOW - 86_400_000, NOW, NOW);
        let line = write_html(&r, &path).unwrap();
        assert!(
            line.contains("report.html (open it in a browser)"),
            "{line}"
        );
        let html = std::fs::read_to_string(&path).unwrap();
        assert!(html.starts_with("<!doctype html>"), "{html}");
        assert!(html.contains("Login Connect compliance report"));
        let missing = write_html(&r, &dir.join("no/such/dir/report.html")).unwrap_err();
        assert!(missing.starts_with("could not write"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
