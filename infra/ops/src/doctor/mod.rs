//! `ops doctor`: the preflight checklist of a stack, before go-live and whenever something looks
//! off. It reads what Meta and AWS say about the stack and prints one line per check, ✔ or ✘
//! with the exact fix (`shared::domain::preflight` turns the answers into lines); it exits
//! non-zero when something blocks go-live. `--fix` subscribes the Page to the app's webhooks.
//!
//! Which stack: `--stack NAME` reads a deployed stack's outputs, parameters and resources
//! (CloudFormation) and its secrets with the operator's AWS credentials (`locate::deployed`);
//! without it, the local stack of `make run` (`.local/doctor.json`, `locate::local`).

pub mod aws;
pub mod locate;
pub mod meta;

use serde::Deserialize;
use shared::domain::opt_in::Millis;
use shared::domain::preflight::{self, Check, Target};

pub const USAGE: &str = "\
Usage: ops doctor [--stack NAME] [--fix]

Checks, before go-live, what breaks a Login Connect integration first: the Page token
(debug_token), the Page's and the app's webhook subscriptions, the webhook's handshake, the
Graph version, the secret, and the AWS side (alert topic subscribed, dead-letter queues empty,
no alarm firing, the sweep schedule enabled). One line per check, ✔ or ✘ with its fix; the
exit status is 1 when something blocks go-live.

  --stack NAME    a deployed stack: its outputs and secrets, with the normal AWS credentials
                  and region (default: the local stack of `make run`)
  --fix           subscribe the Page to the app's webhooks when that line fails
                  (POST /{page-id}/subscribed_apps), then check again
  -h, --help      this help
";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub stack: Option<String>,
    pub fix: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Run(Args),
}

/// Parse `doctor`'s arguments (after the subcommand).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut parsed = Args::default();
    let mut flags = crate::flags::Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--fix" => parsed.fix = true,
            "--stack" => parsed.stack = Some(flags.value("--stack")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Command::Run(parsed))
}

/// Everything doctor needs to know about a stack: where it is and what its parts are called.
/// The local runner writes these names to `.local/doctor.json`; for a deployed stack they come
/// from CloudFormation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Facts {
    pub stack_name: String,
    pub region: String,
    /// The emulator's endpoint (the local stack); `None`: AWS, with the operator's credentials.
    #[serde(default)]
    pub aws_endpoint_url: Option<String>,
    pub webhook_url: String,
    pub graph_api_base_url: String,
    pub graph_api_version: String,
    pub fb_app_id: String,
    pub fb_page_id: String,
    pub secret_id: String,
    #[serde(default)]
    pub page_token_secret_id: Option<String>,
    pub alert_topic_arn: String,
    pub send_dlq_url: String,
    pub scheduler_dlq_url: String,
    /// The events dead-letter queue (`EventsDeadLetterQueueUrl`); `None`: a local stack with
    /// events off (no line).
    #[serde(default)]
    pub events_dlq_url: Option<String>,
    /// The recurring sweep's schedule, in the default group.
    #[serde(default)]
    pub sweep_schedule: Option<String>,
    /// The stack's alarms; `None`: those named `{stack_name}-…`.
    #[serde(default)]
    pub alarm_names: Option<Vec<String>>,
    /// How to run doctor with `--fix` against this stack (the fix of the subscription line).
    #[serde(default)]
    pub fix_command: String,
    /// The opt-in table (`ops redrive` looks the dead-lettered jobs' opt-ins up); locally it is
    /// read from `.local/stack.json` instead.
    #[serde(default)]
    pub table_name: Option<String>,
}

impl Facts {
    pub fn target(&self) -> Target {
        Target {
            app_id: self.fb_app_id.clone(),
            page_id: self.fb_page_id.clone(),
            webhook_url: self.webhook_url.clone(),
            graph_version: self.graph_api_version.clone(),
            secret_id: self.secret_id.clone(),
            page_token_secret_id: self.page_token_secret_id.clone(),
            fix_command: if self.fix_command.is_empty() {
                format!(
                    "cargo run -p ops -- doctor --stack {} --fix",
                    self.stack_name
                )
            } else {
                self.fix_command.clone()
            },
        }
    }
}

/// What doctor found, and what `--fix` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
    /// One line per repair made (`--fix`).
    pub fixed: Vec<String>,
}

impl Report {
    pub fn blocks_go_live(&self) -> bool {
        preflight::blocks_go_live(&self.checks)
    }

    pub fn render(&self) -> String {
        let fixed: String = self.fixed.iter().map(|f| format!("fixed: {f}\n")).collect();
        format!("{fixed}{}", preflight::render(&self.checks))
    }
}

/// Run every check against `facts` (AWS through `sdk`); with `fix`, repair what doctor can.
pub async fn check(facts: &Facts, sdk: &aws_config::SdkConfig, fix: bool, now: Millis) -> Report {
    let target = facts.target();
    let secrets = aws::read_secrets(sdk, facts).await;
    let mut checks = vec![secrets.check(&target)];
    let mut fixed = Vec::new();
    checks.extend(meta::checks(facts, &target, &secrets, fix, &mut fixed, now).await);
    checks.extend(aws::checks(sdk, facts).await);
    Report { checks, fixed }
}

/// The whole command: locate the stack, check, and the text to print.
pub async fn run(args: &Args, now: Millis) -> Result<Report, String> {
    let facts = match &args.stack {
        Some(stack) => locate::deployed(stack).await?,
        None => locate::local(std::path::Path::new("."))?,
    };
    let sdk = locate::sdk_config(&facts).await;
    Ok(check(&facts, &sdk, args.fix, now).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Command, String> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        assert_eq!(args(&[]).unwrap(), Command::Run(Args::default()));
        assert_eq!(args(&["-h"]).unwrap(), Command::Help);
        assert_eq!(
            args(&["--stack", "prod", "--fix"]).unwrap(),
            Command::Run(Args {
                stack: Some("prod".into()),
                fix: true
            })
        );
        assert_eq!(
            args(&["--stack=prod"]).unwrap(),
            Command::Run(Args {
                stack: Some("prod".into()),
                fix: false
            })
        );
        assert!(args(&["--stack"]).unwrap_err().contains("needs a value"));
        assert!(
            args(&["--table", "t"])
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}
