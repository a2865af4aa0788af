//! The daily drift check (issue 13 §2), a [`Job::DriftCheck`] the sweep enqueues once a day: the
//! sender holds the Page token and the app secret, so it asks Graph what `ops doctor` asks (the
//! token's `debug_token`, the Page's `subscribed_apps`, the app's `subscriptions`, the served
//! version) and judges the answers with doctor's own checks ([`shared::domain::drift`]).
//!
//! One alert per NEW problem, not one per run: each check's last-known status is a conditional
//! write ([`shared::ports::drift::DriftStatusStore`]); only the write that turns it from ok to
//! failing alerts (with doctor's fix text), and only the one that turns it back records the
//! recovery. `DriftProblems` (EMF) counts the failing checks of each run for the alarm.
//!
//! [`Job::DriftCheck`]: shared::domain::jobs::Job::DriftCheck

use crate::backoff::RecordOutcome;
use crate::deps::Deps;
use shared::config::settings::Config;
use shared::domain::drift::{self, Verdict};
use shared::domain::jobs::DriftCheckJob;
use shared::domain::metrics::{Metric, Sample};
use shared::domain::preflight::Target;
use shared::ports::drift::StatusChange;
use shared::use_cases::alert;
use tracing::{error, info, warn};

/// A status that could not be recorded: the job comes back after this many seconds (its receives
/// count: a check that keeps failing to record ends in the send DLQ, tomorrow's check runs anyway).
pub const RETRY_SECONDS: u32 = 300;

/// What doctor compares Meta's answers with, from the sender's config. The webhook URL is known
/// when `PUBLIC_BASE_URL` is set (template.yaml gives the sender the stack's, and the
/// `FACEBOOK_PATH_SEGMENT`); without it the callback URL is not compared.
pub fn target(config: &Config) -> Target {
    let webhook_url = match (&config.public_base_url, &config.facebook_path_segment) {
        (Some(base), Some(segment)) => format!(
            "{}/{segment}/webhooks/messenger",
            base.trim_end_matches('/')
        ),
        (Some(base), None) => format!("{}/webhooks/messenger", base.trim_end_matches('/')),
        (None, _) => String::new(),
    };
    Target {
        app_id: config.fb_app_id.clone(),
        page_id: config.fb_page_id.clone(),
        webhook_url,
        graph_version: config.graph_api_version.clone(),
        secret_id: config.secret_id.clone(),
        page_token_secret_id: config.page_token_secret_id.clone(),
        fix_command: "cargo run -p ops -- doctor --stack <stack> --fix".to_owned(),
    }
}

/// Run one drift check.
pub async fn check(deps: &Deps, job: &DriftCheckJob) -> RecordOutcome {
    let page_id = deps.config.fb_page_id.as_str();
    if job.page_id != page_id {
        // One deployment serves one Page: a job for another is not ours to answer.
        warn!("drift check for another Page than FB_PAGE_ID; dropped");
        return RecordOutcome::Done;
    }
    let Some(answers) = deps.meta_setup.read_setup(page_id).await else {
        info!("drift check: this wiring cannot ask Graph; skipped");
        return RecordOutcome::Done;
    };
    let now = deps.ports.clock.now();
    let findings = drift::evaluate(&target(&deps.config), &answers, now);
    let failing = findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Failing(_)))
        .count();
    if findings
        .iter()
        .any(|f| !matches!(f.verdict, Verdict::Unknown(_)))
    {
        deps.ports.metrics.record(
            page_id,
            &[Sample {
                metric: Metric::DriftProblems,
                value: failing as f64,
            }],
        );
    }
    let mut unrecorded = false;
    for finding in findings {
        let name = finding.check.as_str();
        let (is_failing, lines) = match finding.verdict {
            Verdict::Unknown(why) => {
                info!(check = name, why = %why, "drift check: not known this time");
                continue;
            }
            Verdict::Ok => (false, Vec::new()),
            Verdict::Failing(lines) => (true, lines),
        };
        let change = deps
            .ports
            .pages
            .record_drift_status(page_id, name, is_failing, now)
            .await;
        let alert = match change {
            Ok(StatusChange::NewProblem) => {
                warn!(check = name, "drift check: new problem, alerted");
                drift::problem_alert(page_id, finding.check, &lines)
            }
            Ok(StatusChange::Recovered) => {
                info!(check = name, "drift check: recovered");
                drift::recovered_alert(page_id, finding.check)
            }
            Ok(StatusChange::Unchanged) => continue,
            Err(e) => {
                error!(check = name, error = %e, "drift check: could not record the status");
                unrecorded = true;
                continue;
            }
        };
        alert::publish(deps.ports.alerts.as_ref(), &alert).await;
    }
    if unrecorded {
        RecordOutcome::RetryKeep(RETRY_SECONDS)
    } else {
        RecordOutcome::Done
    }
}
