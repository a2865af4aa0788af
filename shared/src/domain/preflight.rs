//! The preflight checklist (`ops doctor`): each check turns what Meta or AWS answered into one
//! line, ✔ or ✘, and a ✘ carries the exact fix (a command or a console step). Pure: the answers
//! are read by `adapters::graph_admin` and the ops crate; [`render`] prints, [`blocks_go_live`]
//! decides the exit status.
//!
//! In `shared`, not in the ops crate, because the Graph checks are meant to run inside the stack
//! too (issue 13 §2, drift alarms) with the same fix texts.

use crate::domain::opt_in::{Millis, utc};
use crate::facebook::graph_error::GraphError;
use crate::facebook::page_setup::{
    AppSubscription, PAGES_MESSAGING, REQUIRED_WEBHOOK_FIELDS, SubscribedApp, TokenDebug,
};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    Pass,
    Fail,
    /// Could not be checked here (said why); does not block go-live.
    NotChecked,
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub status: Status,
    /// What was checked, and what was found.
    pub what: String,
    /// On ✘, what to do; on "not checked", why.
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(what: impl Into<String>) -> Self {
        Self {
            status: Status::Pass,
            what: what.into(),
            fix: None,
        }
    }

    pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn not_checked(what: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            status: Status::NotChecked,
            what: what.into(),
            fix: Some(why.into()),
        }
    }

    /// `✔ what`, `✘ what` + an indented `fix:` line, or `– what` + `not checked:`.
    pub fn line(&self) -> String {
        match (&self.status, &self.fix) {
            (Status::Pass, _) => format!("✔ {}", self.what),
            (Status::Fail, fix) => format!(
                "✘ {}\n    fix: {}",
                self.what,
                fix.as_deref().unwrap_or("see docs/operate.md")
            ),
            (Status::NotChecked, why) => format!(
                "– {}\n    not checked: {}",
                self.what,
                why.as_deref().unwrap_or("")
            ),
        }
    }
}

/// Any ✘: something blocks go-live.
pub fn blocks_go_live(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

/// The checklist and a last line with the counts and the verdict.
pub fn render(checks: &[Check]) -> String {
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let mut out: String = checks.iter().map(|c| c.line() + "\n").collect();
    let verdict = if blocks_go_live(checks) {
        "NOT ready for go-live: fix the ✘ lines and run doctor again"
    } else {
        "ready for go-live"
    };
    out.push_str(&format!(
        "{} ✔, {} ✘, {} not checked: {verdict}\n",
        count(Status::Pass),
        count(Status::Fail),
        count(Status::NotChecked)
    ));
    out
}

/// What the checks compare the answers with, and what the fixes name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub app_id: String,
    pub page_id: String,
    /// This stack's webhook URL (`FacebookWebhookUrl`).
    pub webhook_url: String,
    /// The Graph version the stack asks for (`GRAPH_API_VERSION`).
    pub graph_version: String,
    /// The secret holding app_secret, client_token, verify_token and API key hashes.
    pub secret_id: String,
    /// The Page token's own secret, when the stack has one.
    pub page_token_secret_id: Option<String>,
    /// The command that runs doctor with `--fix` for this stack.
    pub fix_command: String,
}

impl Target {
    fn page_token_secret(&self) -> &str {
        self.page_token_secret_id
            .as_deref()
            .unwrap_or(&self.secret_id)
    }

    /// How to replace the Page token.
    pub fn token_fix(&self) -> String {
        format!(
            "Meta App Dashboard → Messenger → Settings → Access Tokens: Generate a token for Page {} \
             (made from a long-lived user token it never expires), then store it: aws secretsmanager \
             put-secret-value --secret-id {} --secret-string '{{\"page_access_token\":\"<token>\"}}' \
             and force a sender cold start (docs/operate.md)",
            self.page_id,
            self.page_token_secret()
        )
    }

    fn app_secret_fix(&self) -> String {
        format!(
            "the secret's app_secret is not app {}'s: copy it from Meta App Dashboard → Settings → \
             Basic → App secret into the secret {} (aws secretsmanager put-secret-value), or deploy \
             with the right FacebookAppId",
            self.app_id, self.secret_id
        )
    }

    fn subscribe_fix(&self) -> String {
        format!(
            "{} (POST /{}/subscribed_apps?subscribed_fields={}), or Meta App Dashboard → Messenger → \
             Settings → Webhooks → Add Subscriptions for the Page",
            self.fix_command,
            self.page_id,
            REQUIRED_WEBHOOK_FIELDS.join(",")
        )
    }

    fn webhook_fix(&self) -> String {
        format!(
            "Meta App Dashboard → Webhooks → Page → Edit subscription: Callback URL {}, Verify token \
             the secret's verify_token, and subscribe to {}",
            self.webhook_url,
            REQUIRED_WEBHOOK_FIELDS.join(", ")
        )
    }
}

fn graph_failure(what: &str, error: &GraphError, token_fix: String) -> Check {
    match error {
        GraphError::Api { body, .. } if body.code == 190 => Check::fail(
            format!("{what}: Graph refused the token (190: {})", body.message),
            token_fix,
        ),
        other => Check::fail(
            format!("{what}: Graph could not be asked ({other})"),
            "check that Graph (GRAPH_API_BASE_URL) is reachable from here, then run doctor again",
        ),
    }
}

/// The Page token, from `debug_token` asked with the app token: valid; a PAGE token of the
/// configured Page and app; `pages_messaging` granted; its expiry (✘ within 7 days).
pub fn page_token(
    target: &Target,
    answer: Result<&TokenDebug, &GraphError>,
    now: Millis,
) -> Vec<Check> {
    let d = match answer {
        Ok(d) => d,
        // debug_token is asked with the app token: a 190 here is the app secret's.
        Err(e) => {
            return vec![graph_failure(
                "Page token (debug_token)",
                e,
                target.app_secret_fix(),
            )];
        }
    };
    if !d.is_valid {
        let why = d.error.as_ref().map_or_else(
            || "no reason given".to_owned(),
            |e| {
                format!(
                    "{}/{}: {}",
                    e.code,
                    e.subcode.unwrap_or_default(),
                    e.message
                )
            },
        );
        return vec![Check::fail(
            format!("Page token is not valid ({why})"),
            target.token_fix(),
        )];
    }
    let mut checks = vec![Check::pass("Page token is valid (debug_token)")];
    let kind = d.token_type.as_deref().unwrap_or("unknown");
    let page = d.profile_id.as_deref().unwrap_or("none");
    let app = d.app_id.as_deref().unwrap_or("none");
    let mut problems = Vec::new();
    if kind != "PAGE" {
        problems.push(format!("a {kind} token, not a PAGE token"));
    }
    if page != target.page_id {
        problems.push(format!(
            "for Page {page}, not FB_PAGE_ID {}",
            target.page_id
        ));
    }
    if app != target.app_id {
        problems.push(format!("of app {app}, not FB_APP_ID {}", target.app_id));
    }
    checks.push(if problems.is_empty() {
        Check::pass(format!(
            "Page token is a PAGE token of Page {page} for app {app}"
        ))
    } else {
        Check::fail(
            format!("Page token is {}", problems.join(", ")),
            target.token_fix(),
        )
    });
    checks.push(if d.scopes.iter().any(|s| s == PAGES_MESSAGING) {
        Check::pass(format!("Page token has {PAGES_MESSAGING}"))
    } else {
        Check::fail(
            format!(
                "Page token lacks {PAGES_MESSAGING} (scopes: {})",
                if d.scopes.is_empty() {
                    "none".to_owned()
                } else {
                    d.scopes.join(", ")
                }
            ),
            format!(
                "the app needs {PAGES_MESSAGING} (Advanced Access through App Review); then {}",
                target.token_fix()
            ),
        )
    });
    checks.push(match d.expires_at.filter(|at| *at > 0) {
        None => Check::pass("Page token never expires"),
        Some(at) => {
            let days = (at * 1000 - now).div_euclid(86_400_000);
            let when = utc(at * 1000);
            if days < 7 {
                Check::fail(
                    format!("Page token expires {when} ({days} days left)"),
                    target.token_fix(),
                )
            } else {
                Check::pass(format!("Page token expires {when} ({days} days left)"))
            }
        }
    });
    checks
}

/// The Page's subscribed apps: this app, with every field the product needs.
pub fn page_subscription(target: &Target, answer: Result<&[SubscribedApp], &GraphError>) -> Check {
    let what = format!("Page {} subscribed app {}", target.page_id, target.app_id);
    let apps = match answer {
        Ok(apps) => apps,
        Err(e) => {
            return graph_failure(&format!("{what} (subscribed_apps)"), e, target.token_fix());
        }
    };
    let Some(app) = apps.iter().find(|a| a.id == target.app_id) else {
        return Check::fail(
            format!(
                "Page {} has not subscribed app {} to its webhooks (no opt-in reaches the stack)",
                target.page_id, target.app_id
            ),
            target.subscribe_fix(),
        );
    };
    let missing = missing_fields(app.subscribed_fields.iter().map(String::as_str));
    if missing.is_empty() {
        Check::pass(format!("{what} to {}", REQUIRED_WEBHOOK_FIELDS.join(", ")))
    } else {
        Check::fail(
            format!("{what} without {}", missing.join(", ")),
            target.subscribe_fix(),
        )
    }
}

fn missing_fields<'a>(have: impl Iterator<Item = &'a str> + Clone) -> Vec<&'static str> {
    REQUIRED_WEBHOOK_FIELDS
        .into_iter()
        .filter(|f| !have.clone().any(|h| h == *f))
        .collect()
}

/// The app's `page` webhook subscription: this stack's callback URL, active, every field.
pub fn app_subscription(
    target: &Target,
    answer: Result<&[AppSubscription], &GraphError>,
) -> Vec<Check> {
    let subs = match answer {
        Ok(subs) => subs,
        Err(e) => {
            return vec![graph_failure(
                "App webhook subscription (subscriptions)",
                e,
                target.app_secret_fix(),
            )];
        }
    };
    let Some(sub) = subs.iter().find(|s| s.object == "page") else {
        return vec![Check::fail(
            format!("App {} has no page webhook subscription", target.app_id),
            target.webhook_fix(),
        )];
    };
    let mut checks = Vec::new();
    // An empty webhook URL: not known where the check runs (the sender without PUBLIC_BASE_URL).
    if !target.webhook_url.is_empty() && sub.callback_url != target.webhook_url {
        checks.push(Check::fail(
            format!(
                "App {}'s page webhook calls {}, not this stack's {}",
                target.app_id, sub.callback_url, target.webhook_url
            ),
            target.webhook_fix(),
        ));
    }
    if !sub.active {
        checks.push(Check::fail(
            format!("App {}'s page webhook subscription is inactive", target.app_id),
            format!(
                "Meta deactivates a callback that keeps failing: make the handshake line pass, then {}, and save (Meta verifies it again)",
                target.webhook_fix()
            ),
        ));
    }
    let missing = missing_fields(sub.fields.iter().map(|f| f.name.as_str()));
    if !missing.is_empty() {
        checks.push(Check::fail(
            format!(
                "App {}'s page webhook subscription lacks {}",
                target.app_id,
                missing.join(", ")
            ),
            target.webhook_fix(),
        ));
    }
    if checks.is_empty() {
        checks.push(Check::pass(format!(
            "App {}'s page webhook calls {}, active, with {}",
            target.app_id,
            target.webhook_url,
            REQUIRED_WEBHOOK_FIELDS.join(", ")
        )));
    }
    checks
}

/// What the webhook answered to Meta's verification GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    Answered { status: u16, body: String },
    Unreachable(String),
}

/// The webhook echoes `hub.challenge` for `hub.mode=subscribe` and the stored verify token.
pub fn webhook_handshake(target: &Target, challenge: &str, outcome: &Handshake) -> Check {
    let url = &target.webhook_url;
    match outcome {
        Handshake::Answered { status: 200, body } if body.trim() == challenge => Check::pass(
            format!("the webhook {url} answers Meta's handshake with the stored verify token"),
        ),
        Handshake::Answered { status, .. } => {
            let fix = match status {
                200 | 401 | 403 => format!(
                    "the webhook refused the secret's verify_token: put the verify token of Meta App \
                     Dashboard → Webhooks into the secret {} (the http-api reads it again within \
                     SecretTtlSeconds), or enter the secret's one in the dashboard",
                    target.secret_id
                ),
                404 => "no route at this URL: use the stack's FacebookWebhookUrl output (it carries FacebookPathSegment)".to_owned(),
                _ => "the http-api failed: is the secret filled (the secret line above)? Read the function's logs (sam logs -n HttpApiFunction --stack-name <stack>)".to_owned(),
            };
            Check::fail(
                format!("the webhook {url} answered the handshake with HTTP {status}"),
                fix,
            )
        }
        Handshake::Unreachable(why) => Check::fail(
            format!("the webhook {url} could not be reached ({why})"),
            "check the URL (FacebookWebhookUrl output, PublicBaseUrl) and that the stack is deployed",
        ),
    }
}

/// Announced end-of-life dates (shared/reference/messenger.md, "Graph API versions").
const END_OF_LIFE: [(&str, &str); 2] = [("v24.0", "2028-02-18"), ("v25.0", "2028-07-29")];

/// The asked Graph version against the one Graph says served the calls; days left where known.
pub fn graph_version(asked: &str, served: Option<&str>, now: Millis) -> Check {
    let Some(served) = served else {
        return Check::not_checked(
            format!("Graph version {asked}"),
            "Graph named no version (no facebook-api-version header)",
        );
    };
    if served != asked {
        return Check::fail(
            format!("Graph served {served} when asked for {asked}: {asked} has expired"),
            format!(
                "deploy with GraphApiVersion={served} or newer (sam deploy --parameter-overrides \
                 GraphApiVersion={served}) after reading Meta's changelog (docs/alerts.md, GraphApiVersionMismatch)"
            ),
        );
    }
    let end = END_OF_LIFE
        .iter()
        .find(|(v, _)| *v == asked)
        .and_then(|(_, d)| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    match end.and_then(|d| d.and_hms_opt(0, 0, 0)) {
        None => Check::pass(format!(
            "Graph serves {asked} as asked (no end of life announced)"
        )),
        Some(end) => {
            let days = (end.and_utc().timestamp_millis() - now).div_euclid(86_400_000);
            let what = format!(
                "Graph serves {asked} as asked, available until {} ({days} days left)",
                end.date()
            );
            if days < 90 {
                Check::fail(
                    what,
                    "move to a newer GraphApiVersion before then (sam deploy --parameter-overrides GraphApiVersion=…)",
                )
            } else {
                Check::pass(what)
            }
        }
    }
}

/// A value an operator left as a placeholder (`…`, `<token>`, `changeme`…).
fn placeholder(value: &str) -> bool {
    let v = value.trim();
    let lower = v.to_ascii_lowercase();
    v.is_empty()
        || v != value
        || v.contains('…')
        || v.contains("...")
        || (v.starts_with('<') && v.ends_with('>'))
        || [
            "changeme",
            "change_me",
            "change-me",
            "todo",
            "xxx",
            "placeholder",
            "replace_me",
            "fill_me",
        ]
        .contains(&lower.as_str())
}

/// The secret (and the Page token's own secret, when the stack has one): every field present
/// and not a placeholder, API keys stored as SHA-256 hex digests.
pub fn secret(target: &Target, main: &str, page_token_secret: Option<&str>) -> Check {
    let parse = |json: &str| {
        serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .filter(|v| v.is_object())
    };
    let fill = format!(
        "aws secretsmanager put-secret-value --secret-id {} --secret-string \
         '{{\"app_secret\":\"…\",\"client_token\":\"…\",\"verify_token\":\"…\",\"api_key_hashes\":[\"<sha256 hex>\"]}}' \
         (README, Deploying with SAM; a key's hash: printf %s KEY | sha256sum)",
        target.secret_id
    );
    let Some(main) = parse(main) else {
        return Check::fail(
            format!("the secret {} is not a JSON object", target.secret_id),
            fill,
        );
    };
    let page = match page_token_secret {
        Some(json) => match parse(json) {
            Some(v) => v,
            None => {
                return Check::fail(
                    format!(
                        "the Page token secret {} is not a JSON object",
                        target.page_token_secret()
                    ),
                    target.token_fix(),
                );
            }
        },
        None => main.clone(),
    };
    let mut problems = Vec::new();
    let mut field =
        |doc: &serde_json::Value, name: &str| match doc.get(name).and_then(|v| v.as_str()) {
            None => problems.push(format!("{name} is missing")),
            Some(v) if placeholder(v) => problems.push(format!("{name} is empty or a placeholder")),
            Some(_) => {}
        };
    field(&main, "app_secret");
    field(&main, "client_token");
    field(&main, "verify_token");
    field(&page, "page_access_token");
    let hashes = main.get("api_key_hashes").map(|h| h.as_array().cloned());
    let keys = match hashes {
        None => 0,
        Some(None) => {
            problems.push("api_key_hashes is not a list".to_owned());
            0
        }
        Some(Some(list)) => {
            let hashed = |h: &serde_json::Value| {
                h.as_str()
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            };
            if !list.iter().all(hashed) {
                problems.push(
                    "api_key_hashes holds a value that is not a SHA-256 hex digest (store printf %s KEY | sha256sum, never the key)"
                        .to_owned(),
                );
            }
            list.len()
        }
    };
    if problems.is_empty() {
        Check::pass(format!(
            "the secret holds app_secret, client_token, verify_token, page_access_token and {keys} hashed API key(s)"
        ))
    } else {
        let fix = if problems.iter().all(|p| p.starts_with("page_access_token")) {
            target.token_fix()
        } else {
            fill
        };
        Check::fail(format!("the secret: {}", problems.join("; ")), fix)
    }
}

/// One subscription of the alert topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSubscription {
    pub protocol: String,
    /// `SubscriptionArn` is `PendingConfirmation` until the endpoint confirms.
    pub confirmed: bool,
}

/// The alert topic has at least one confirmed subscription: someone receives the alerts.
pub fn alert_topic(topic_arn: &str, subscriptions: Result<&[TopicSubscription], &str>) -> Check {
    let subs = match subscriptions {
        Ok(s) => s,
        Err(e) => {
            return cannot_read(
                &format!("the alert topic {topic_arn}"),
                e,
                "sns:ListSubscriptionsByTopic",
            );
        }
    };
    let confirmed: Vec<&str> = subs
        .iter()
        .filter(|s| s.confirmed)
        .map(|s| s.protocol.as_str())
        .collect();
    if !confirmed.is_empty() {
        return Check::pass(format!(
            "the alert topic has {} confirmed subscription(s) ({})",
            confirmed.len(),
            confirmed.join(", ")
        ));
    }
    let pending = subs.len();
    Check::fail(
        format!(
            "nobody receives the alerts: the alert topic has no confirmed subscription ({pending} pending confirmation)"
        ),
        format!(
            "aws sns subscribe --topic-arn {topic_arn} --protocol email --notification-endpoint <you@example.com> \
             (or deploy with AlarmEmail=…), then click the link in the confirmation e-mail"
        ),
    )
}

fn cannot_read(what: &str, error: &str, permission: &str) -> Check {
    Check::fail(
        format!("{what} could not be read ({error})"),
        format!("run doctor with AWS credentials allowed to {permission} in the stack's region"),
    )
}

/// Which dead-letter queue (their fixes differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterQueue {
    /// Initial messages the sender gave up on (`SendDeadLetterQueue`).
    Send,
    /// Failed deadline schedules and alert invocations (`SchedulerDeadLetterQueue`).
    Scheduler,
    /// Events the website backend did not accept within 29 hours (`EventsDeadLetterQueue`).
    Events,
}

/// A dead-letter queue is empty (`ApproximateNumberOfMessages`).
pub fn dead_letter_queue(kind: DeadLetterQueue, url: &str, messages: Result<u64, &str>) -> Check {
    let name = match kind {
        DeadLetterQueue::Send => "the send dead-letter queue",
        DeadLetterQueue::Scheduler => "the scheduler dead-letter queue",
        DeadLetterQueue::Events => "the events dead-letter queue",
    };
    let count = match messages {
        Ok(n) => n,
        Err(e) => return cannot_read(name, e, "sqs:GetQueueAttributes"),
    };
    if count == 0 {
        return Check::pass(format!("{name} is empty"));
    }
    // Events are undelivered, not failed sends: the cause is the receiver.
    let cause = match kind {
        DeadLetterQueue::Events => {
            "fix the website's receiver (docs/events.md: answer 2xx within 10 s, verify the signature with the current key)"
        }
        DeadLetterQueue::Send | DeadLetterQueue::Scheduler => "fix the cause (docs/alerts.md)",
    };
    let look = format!(
        "look at them (aws sqs receive-message --queue-url {url} --visibility-timeout 0 --max-number-of-messages 10 --attribute-names All), {cause}"
    );
    let then = match kind {
        DeadLetterQueue::Send => "then move them back to the send queue: aws sqs start-message-move-task --source-arn <SendDeadLetterQueue ARN> (the sender skips opt-ins already terminal)".to_owned(),
        DeadLetterQueue::Scheduler => format!("then empty it: aws sqs purge-queue --queue-url {url} (the sweep re-checks every open opt-in)"),
        // Not SQS's own redrive: it would also redeliver the events of a person erased since.
        DeadLetterQueue::Events => "then move them back with ops redrive (make redrive locally; cargo run -p ops -- redrive --stack <stack>): it refuses the events of a person erased since and moves the rest to the events queue with StartMessageMoveTask (their webhook-ids are unchanged, so a receiver that has one ignores it)".to_owned(),
    };
    Check::fail(
        format!("{name} holds {count} message(s)"),
        format!("{look}, {then}"),
    )
}

/// No alarm in ALARM. `alarms`: (name, state) of the stack's alarms.
pub fn alarms(alarms: Result<&[(String, String)], &str>) -> Check {
    let alarms = match alarms {
        Ok(a) => a,
        Err(e) => return cannot_read("the stack's alarms", e, "cloudwatch:DescribeAlarms"),
    };
    let firing: Vec<&str> = alarms
        .iter()
        .filter(|(_, s)| s == "ALARM")
        .map(|(n, _)| n.as_str())
        .collect();
    if firing.is_empty() {
        return Check::pass(format!("{} alarm(s), none in ALARM", alarms.len()));
    }
    Check::fail(
        format!("in ALARM: {}", firing.join(", ")),
        format!(
            "each alarm's runbook is in docs/alerts.md; why it fired: aws cloudwatch describe-alarms --alarm-names {} --query 'MetricAlarms[].StateReason'",
            firing.join(" ")
        ),
    )
}

/// The recurring sweep's schedule is ENABLED. `state`: `None` when it does not exist.
pub fn sweep_schedule(name: &str, state: Result<Option<&str>, &str>) -> Check {
    let redeploy =
        "redeploy the stack (sam deploy): the template creates the sweep schedule ENABLED";
    match state {
        Err(e) => cannot_read(
            &format!("the sweep schedule {name}"),
            e,
            "scheduler:GetSchedule",
        ),
        Ok(None) => Check::fail(
            format!("the sweep schedule {name} does not exist"),
            redeploy,
        ),
        Ok(Some("ENABLED")) => Check::pass(format!("the sweep schedule {name} is ENABLED")),
        Ok(Some(other)) => Check::fail(
            format!(
                "the sweep schedule {name} is {other}: nothing expires or alerts missed deadlines"
            ),
            format!(
                "Amazon EventBridge console → Scheduler → Schedules → {name} → Enable, or {redeploy}"
            ),
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::facebook::graph_error::GraphErrorBody;
    use crate::facebook::page_setup::{SubscriptionField, TokenDebugError};

    const NOW: Millis = 1_795_536_000_000; // 2026-11-24T16:00:00Z

    pub(crate) fn target() -> Target {
        Target {
            app_id: "1".into(),
            page_id: "2".into(),
            webhook_url: "https://api.example/seg/webhooks/messenger".into(),
            graph_version: "v27.0".into(),
            secret_id: "arn:secret:main".into(),
            page_token_secret_id: Some("arn:secret:page".into()),
            fix_command: "ops doctor --stack prod --fix".into(),
        }
    }

    fn page_token_debug() -> TokenDebug {
        TokenDebug {
            app_id: Some("1".into()),
            token_type: Some("PAGE".into()),
            is_valid: true,
            expires_at: Some(0),
            profile_id: Some("2".into()),
            scopes: vec!["pages_messaging".into(), "pages_manage_metadata".into()],
            error: None,
        }
    }

    fn failures(checks: &[Check]) -> Vec<&Check> {
        checks.iter().filter(|c| c.status == Status::Fail).collect()
    }

    #[test]
    fn a_good_page_token_passes_every_line() {
        let checks = page_token(&target(), Ok(&page_token_debug()), NOW);
        assert_eq!(checks.len(), 4);
        assert!(!blocks_go_live(&checks), "{}", render(&checks));
        assert!(checks[3].what.contains("never expires"));
    }

    #[test]
    fn an_expired_page_token_names_the_error_and_the_way_to_replace_it() {
        let d = TokenDebug {
            is_valid: false,
            error: Some(TokenDebugError {
                code: 190,
                message: "Session has expired".into(),
                subcode: Some(463),
            }),
            ..page_token_debug()
        };
        let checks = page_token(&target(), Ok(&d), NOW);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].what.contains("190/463"), "{}", checks[0].what);
        let fix = checks[0].fix.as_deref().unwrap();
        assert!(
            fix.contains("Access Tokens") && fix.contains("--secret-id arn:secret:page"),
            "{fix}"
        );
    }

    #[test]
    fn a_user_token_of_another_page_and_app_fails_one_line_naming_each() {
        let d = TokenDebug {
            token_type: Some("USER".into()),
            profile_id: None,
            app_id: Some("9".into()),
            ..page_token_debug()
        };
        let checks = page_token(&target(), Ok(&d), NOW);
        let failed = failures(&checks);
        assert_eq!(failed.len(), 1);
        for part in [
            "a USER token",
            "for Page none, not FB_PAGE_ID 2",
            "of app 9, not FB_APP_ID 1",
        ] {
            assert!(failed[0].what.contains(part), "{}", failed[0].what);
        }
    }

    #[test]
    fn a_token_without_pages_messaging_or_close_to_expiry_fails() {
        let d = TokenDebug {
            scopes: vec!["pages_show_list".into()],
            expires_at: Some(NOW / 1000 + 3 * 86_400),
            ..page_token_debug()
        };
        let checks = page_token(&target(), Ok(&d), NOW);
        let failed = failures(&checks);
        assert_eq!(failed.len(), 2, "{}", render(&checks));
        assert!(
            failed[0]
                .what
                .contains("lacks pages_messaging (scopes: pages_show_list)")
        );
        assert!(failed[0].fix.as_deref().unwrap().contains("App Review"));
        assert!(
            failed[1].what.contains("(3 days left)"),
            "{}",
            failed[1].what
        );
        let later = TokenDebug {
            expires_at: Some(NOW / 1000 + 30 * 86_400),
            ..page_token_debug()
        };
        assert!(!blocks_go_live(&page_token(&target(), Ok(&later), NOW)));
    }

    #[test]
    fn a_refused_app_token_points_at_the_app_secret() {
        let e = GraphError::Api {
            status: 400,
            body: GraphErrorBody {
                code: 190,
                message: "Invalid OAuth access token signature.".into(),
                ..GraphErrorBody::default()
            },
        };
        let checks = page_token(&target(), Err(&e), NOW);
        assert!(checks[0].fix.as_deref().unwrap().contains("App secret"));
        let down = page_token(&target(), Err(&GraphError::Timeout), NOW);
        assert!(down[0].fix.as_deref().unwrap().contains("reachable"));
    }

    fn app(fields: &[&str]) -> SubscribedApp {
        SubscribedApp {
            id: "1".into(),
            name: Some("Shop".into()),
            subscribed_fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn the_page_must_subscribe_this_app_with_every_field() {
        let all = app(&REQUIRED_WEBHOOK_FIELDS);
        assert_eq!(
            page_subscription(&target(), Ok(&[all])).status,
            Status::Pass
        );
        let none = page_subscription(&target(), Ok(&[]));
        assert!(none.what.contains("has not subscribed app 1"));
        let fix = none.fix.unwrap();
        assert!(fix.starts_with("ops doctor --stack prod --fix (POST /2/subscribed_apps?subscribed_fields=messages,messaging_optins,messaging_policy_enforcement)"), "{fix}");
        let partial = page_subscription(&target(), Ok(&[app(&["messages", "messaging_optins"])]));
        assert!(
            partial
                .what
                .ends_with("without messaging_policy_enforcement"),
            "{}",
            partial.what
        );
        let other = SubscribedApp {
            id: "7".into(),
            ..app(&REQUIRED_WEBHOOK_FIELDS)
        };
        assert_eq!(
            page_subscription(&target(), Ok(&[other])).status,
            Status::Fail
        );
    }

    fn subscription() -> AppSubscription {
        AppSubscription {
            object: "page".into(),
            callback_url: target().webhook_url,
            active: true,
            fields: REQUIRED_WEBHOOK_FIELDS
                .iter()
                .map(|f| SubscriptionField {
                    name: (*f).into(),
                    version: Some("v27.0".into()),
                })
                .collect(),
        }
    }

    #[test]
    fn the_app_subscription_must_call_this_stack_be_active_and_have_every_field() {
        let ok = app_subscription(&target(), Ok(&[subscription()]));
        assert_eq!((ok.len(), ok[0].status), (1, Status::Pass));
        let wrong = AppSubscription {
            callback_url: "https://old.example/webhooks/messenger".into(),
            active: false,
            fields: vec![],
            ..subscription()
        };
        let checks = app_subscription(&target(), Ok(&[wrong]));
        assert_eq!(failures(&checks).len(), 3);
        assert!(checks[0].what.contains("calls https://old.example/webhooks/messenger, not this stack's https://api.example/seg/webhooks/messenger"));
        assert!(
            checks[0]
                .fix
                .as_deref()
                .unwrap()
                .contains("Callback URL https://api.example/seg/webhooks/messenger")
        );
        assert!(checks[1].what.contains("inactive"));
        assert!(
            checks[2]
                .what
                .contains("lacks messages, messaging_optins, messaging_policy_enforcement")
        );
        let user_only = AppSubscription {
            object: "user".into(),
            ..subscription()
        };
        let none = app_subscription(&target(), Ok(&[user_only]));
        assert!(none[0].what.contains("no page webhook subscription"));
    }

    #[test]
    fn the_handshake_must_echo_the_challenge() {
        let t = target();
        let ok = Handshake::Answered {
            status: 200,
            body: "c123".into(),
        };
        assert_eq!(webhook_handshake(&t, "c123", &ok).status, Status::Pass);
        let refused = webhook_handshake(
            &t,
            "c123",
            &Handshake::Answered {
                status: 403,
                body: String::new(),
            },
        );
        assert!(refused.fix.unwrap().contains("verify_token"));
        let missing = webhook_handshake(
            &t,
            "c123",
            &Handshake::Answered {
                status: 404,
                body: String::new(),
            },
        );
        assert!(missing.fix.unwrap().contains("FacebookWebhookUrl"));
        let wrong_echo = webhook_handshake(
            &t,
            "c123",
            &Handshake::Answered {
                status: 200,
                body: "x".into(),
            },
        );
        assert_eq!(wrong_echo.status, Status::Fail);
        let down = webhook_handshake(&t, "c", &Handshake::Unreachable("refused".into()));
        assert!(down.what.contains("could not be reached (refused)"));
    }

    #[test]
    fn the_graph_version_must_be_served_as_asked_with_days_left_where_known() {
        assert_eq!(
            graph_version("v27.0", Some("v27.0"), NOW).status,
            Status::Pass
        );
        let v25 = graph_version("v25.0", Some("v25.0"), NOW);
        assert!(
            v25.what.contains("until 2028-07-29 (612 days left)"),
            "{}",
            v25.what
        );
        let expired = graph_version("v20.0", Some("v24.0"), NOW);
        assert!(expired.what.contains("served v24.0 when asked for v20.0"));
        assert!(expired.fix.unwrap().contains("GraphApiVersion=v24.0"));
        let soon = graph_version("v24.0", Some("v24.0"), 1_830_000_000_000);
        assert_eq!(soon.status, Status::Fail, "{}", soon.what);
        assert_eq!(graph_version("v27.0", None, NOW).status, Status::NotChecked);
    }

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_secret_must_be_filled_without_placeholders_and_keys_hashed() {
        let t = target();
        let main = format!(
            r#"{{"app_secret":"a","client_token":"c","verify_token":"v","api_key_hashes":["{HASH}"]}}"#
        );
        let page = r#"{"page_access_token":"p"}"#;
        let ok = secret(&t, &main, Some(page));
        assert_eq!(ok.status, Status::Pass, "{}", ok.what);
        assert!(ok.what.contains("1 hashed API key"));
        let template = r#"{"app_secret":"…","client_token":"","verify_token":"<the generated one>","api_key_hashes":["my-plain-key"]}"#;
        let bad = secret(&t, template, Some(page));
        for part in [
            "app_secret is empty or a placeholder",
            "client_token is empty",
            "verify_token is empty",
            "not a SHA-256 hex digest",
        ] {
            assert!(bad.what.contains(part), "{}", bad.what);
        }
        assert!(
            bad.fix
                .unwrap()
                .contains("put-secret-value --secret-id arn:secret:main")
        );
        let no_token = secret(&t, &main, Some(r#"{"page_access_token":""}"#));
        assert!(
            no_token
                .fix
                .unwrap()
                .contains("--secret-id arn:secret:page")
        );
        assert_eq!(secret(&t, "not json", None).status, Status::Fail);
        // Without its own secret the Page token is read from the main one.
        let one = Target {
            page_token_secret_id: None,
            ..t
        };
        assert!(
            secret(&one, &main, None)
                .what
                .contains("page_access_token is missing")
        );
    }

    #[test]
    fn someone_must_receive_the_alerts() {
        let pending = [TopicSubscription {
            protocol: "email".into(),
            confirmed: false,
        }];
        let check = alert_topic("arn:t", Ok(&pending));
        assert!(check.what.contains("(1 pending confirmation)"));
        assert!(
            check
                .fix
                .unwrap()
                .contains("aws sns subscribe --topic-arn arn:t")
        );
        let confirmed = [TopicSubscription {
            protocol: "sqs".into(),
            confirmed: true,
        }];
        assert_eq!(alert_topic("arn:t", Ok(&confirmed)).status, Status::Pass);
        assert!(
            alert_topic("arn:t", Err("AccessDenied"))
                .fix
                .unwrap()
                .contains("sns:ListSubscriptionsByTopic")
        );
    }

    #[test]
    fn dead_letter_queues_must_be_empty() {
        assert_eq!(
            dead_letter_queue(DeadLetterQueue::Send, "u", Ok(0)).status,
            Status::Pass
        );
        let send = dead_letter_queue(DeadLetterQueue::Send, "https://q/dlq", Ok(2));
        assert!(send.what.contains("holds 2 message(s)"));
        assert!(send.fix.unwrap().contains("start-message-move-task"));
        let sched = dead_letter_queue(DeadLetterQueue::Scheduler, "https://q/s", Ok(1));
        assert!(
            sched
                .fix
                .unwrap()
                .contains("purge-queue --queue-url https://q/s")
        );
        let events = dead_letter_queue(DeadLetterQueue::Events, "https://q/e", Ok(3));
        assert_eq!(events.status, Status::Fail);
        assert_eq!(
            events.what,
            "the events dead-letter queue holds 3 message(s)"
        );
        let fix = events.fix.unwrap();
        for expected in [
            "--queue-url https://q/e",
            "fix the website's receiver (docs/events.md",
            "move them back with ops redrive (make redrive locally",
            "refuses the events of a person erased since",
        ] {
            assert!(fix.contains(expected), "{expected} in {fix}");
        }
    }

    #[test]
    fn no_alarm_may_be_firing_and_the_sweep_must_be_enabled() {
        let quiet = [
            ("a".to_owned(), "OK".to_owned()),
            ("b".to_owned(), "INSUFFICIENT_DATA".to_owned()),
        ];
        assert_eq!(alarms(Ok(&quiet)).status, Status::Pass);
        let firing = [(
            "prod-SendDeadLetterQueueAlarm".to_owned(),
            "ALARM".to_owned(),
        )];
        let check = alarms(Ok(&firing));
        assert!(
            check
                .what
                .contains("in ALARM: prod-SendDeadLetterQueueAlarm")
        );
        assert!(
            check
                .fix
                .unwrap()
                .contains("--alarm-names prod-SendDeadLetterQueueAlarm")
        );
        assert_eq!(
            sweep_schedule("s", Ok(Some("ENABLED"))).status,
            Status::Pass
        );
        let off = sweep_schedule("s", Ok(Some("DISABLED")));
        assert!(off.fix.unwrap().contains("Schedules → s → Enable"));
        assert!(
            sweep_schedule("s", Ok(None))
                .fix
                .unwrap()
                .contains("redeploy")
        );
    }

    #[test]
    fn the_checklist_renders_each_line_and_a_verdict() {
        let checks = [
            Check::pass("a"),
            Check::fail("b", "do c"),
            Check::not_checked("d", "moto lacks it"),
        ];
        let text = render(&checks);
        assert_eq!(
            text,
            "✔ a\n✘ b\n    fix: do c\n– d\n    not checked: moto lacks it\n1 ✔, 1 ✘, 1 not checked: NOT ready for go-live: fix the ✘ lines and run doctor again\n"
        );
        assert!(blocks_go_live(&checks));
        assert!(!blocks_go_live(&checks[..1]));
        assert!(!blocks_go_live(&checks[2..]));
    }
}
