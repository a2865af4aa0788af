//! Cold-start loading shared by every Lambda main and the local runner: the typed config, the AWS
//! SDK config, and the function's view of the secret (none for deadline-alerts). Each step fails
//! with a message naming what is wrong. Also the log-level guard every main runs first.

use crate::config::reader::ConfigError;
use crate::config::secrets::{SecretView, Secrets};
use crate::config::settings::Config;

/// Everything a function needs before it builds its adapters.
pub struct Loaded<S = Secrets> {
    pub config: Config,
    pub sdk: aws_config::SdkConfig,
    pub secrets: S,
}

/// Config from the environment and the SDK config: no secret (deadline-alerts uses none, so a
/// malformed secret edit cannot stop alerting).
pub async fn load_settings() -> Result<(Config, aws_config::SdkConfig), ConfigError> {
    let config = Config::from_env()?;
    let sdk = crate::adapters::aws::load_sdk_config().await;
    Ok((config, sdk))
}

/// Config from the environment, the SDK config, then the view `S` of the secret named by
/// `SECRET_ID` (only the fields that function uses are parsed).
pub async fn load_from_env<S: SecretView>() -> Result<Loaded<S>, ConfigError> {
    let (config, sdk) = load_settings().await?;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let secrets = crate::adapters::secrets::load_secret_view(&client, &config.secret_id).await?;
    Ok(Loaded {
        config,
        sdk,
        secrets,
    })
}

/// The sender's secrets: the app secret from `SECRET_ID` and the Page token from
/// `PAGE_TOKEN_SECRET_ID` (a secret only the sender's role can read), or both from `SECRET_ID`
/// when no Page-token secret is configured (the local stack).
pub async fn load_sender_secrets(
    config: &Config,
    sdk: &aws_config::SdkConfig,
) -> Result<crate::config::secrets::SenderSecrets, ConfigError> {
    use crate::adapters::secrets::load_secret_view;
    use crate::config::secrets::{AppSecretOnly, PageTokenSecret, SenderSecrets};
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    match &config.page_token_secret_id {
        None => load_secret_view::<SenderSecrets>(&client, &config.secret_id).await,
        Some(page_token_secret_id) => {
            let app: AppSecretOnly = load_secret_view(&client, &config.secret_id).await?;
            let page: PageTokenSecret = load_secret_view(&client, page_token_secret_id).await?;
            Ok(SenderSecrets {
                app_secret: app.app_secret,
                page_access_token: page.page_access_token,
            })
        }
    }
}

/// How often a function that is not configured yet tries again to build its dependencies (one
/// `GetSecretValue` per try and instance): filling the secret takes effect within this time,
/// without a new cold start.
pub const NOT_CONFIGURED_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds a function's dependencies, reading the secret again each time. The error names what is
/// wrong (a field, the secret's id), never a value.
pub type BuildDeps<D> =
    Box<dyn Fn() -> futures::future::BoxFuture<'static, Result<D, String>> + Send + Sync>;

/// `f` as a [`BuildDeps`]: each call runs a fresh build.
pub fn build_deps<D, F, Fut>(f: F) -> BuildDeps<D>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<D, String>> + Send + 'static,
{
    Box::new(move || -> futures::future::BoxFuture<'static, Result<D, String>> { Box::pin(f()) })
}

/// Why a function answers "not configured": its secret could not be read or still holds the
/// template's empty placeholders (a fresh stack). Names fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not configured: {0}")]
pub struct NotConfigured(pub String);

/// [`UntilConfigured::start`] as a Lambda main runs it: `build` (over copies of `config` and
/// `sdk`) retried every [`NOT_CONFIGURED_RETRY`], the alert on the stack's topic.
pub async fn start_until_configured<D, F, Fut>(
    config: Config,
    sdk: SdkConfig,
    function: &'static str,
    meanwhile: &'static str,
    build: F,
) -> UntilConfigured<D>
where
    D: Send + Sync + 'static,
    F: Fn(Config, SdkConfig) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<D, String>> + Send + 'static,
{
    let alerts = sns_alerts(&config, &sdk);
    let page_id = config.fb_page_id.clone();
    let build = build_deps(move || build(config.clone(), sdk.clone()));
    let tell = Unconfigured {
        function,
        meanwhile,
        page_id: &page_id,
        alerts: &*alerts,
    };
    UntilConfigured::start(build, NOT_CONFIGURED_RETRY, tell).await
}

/// A function's dependencies that need the secret, built at cold start, or, while they cannot be
/// built, the reason. A fresh stack's secret holds empty placeholders until the operator fills it:
/// instead of exiting at every cold start (a crash loop that fills dead-letter queues and fires
/// alarms), the function starts, says once why it cannot work ([`AlertKind::NotConfigured`], one
/// alert per cold start: every new instance alerts once while the secret stays unusable), answers
/// "not configured" and tries again every `retry_after`.
///
/// [`AlertKind::NotConfigured`]: crate::domain::alert::AlertKind::NotConfigured
pub struct UntilConfigured<D> {
    build: BuildDeps<D>,
    retry_after: std::time::Duration,
    ready: std::sync::OnceLock<std::sync::Arc<D>>,
    /// The last problem and when to try again; `None` once ready.
    waiting: tokio::sync::Mutex<Option<(NotConfigured, tokio::time::Instant)>>,
}

/// What a not-configured function tells operators: its name, and what it does meanwhile.
pub struct Unconfigured<'a> {
    pub function: &'static str,
    pub meanwhile: &'static str,
    pub page_id: &'a str,
    pub alerts: &'a dyn crate::ports::alerts::Alerts,
}

impl<D: Send + Sync + 'static> UntilConfigured<D> {
    /// Build the dependencies now; when that fails, log the problem and publish one alert.
    pub async fn start(
        build: BuildDeps<D>,
        retry_after: std::time::Duration,
        tell: Unconfigured<'_>,
    ) -> Self {
        // At most a day: `Instant + Duration` must not overflow (a handler never panics).
        let retry_after = retry_after.min(std::time::Duration::from_secs(86_400));
        let this = Self {
            build,
            retry_after,
            ready: std::sync::OnceLock::new(),
            waiting: tokio::sync::Mutex::new(None),
        };
        match (this.build)().await {
            Ok(deps) => {
                let _ = this.ready.set(std::sync::Arc::new(deps));
            }
            Err(problem) => {
                tracing::error!(
                    function = tell.function,
                    problem = %problem,
                    "not configured: {}; fill the secret (README, \"Deploying with SAM\")",
                    tell.meanwhile
                );
                let alert = crate::domain::alert::Alert::not_configured(
                    tell.page_id,
                    tell.function,
                    &problem,
                    tell.meanwhile,
                );
                crate::use_cases::alert::publish(tell.alerts, &alert).await;
                *this.waiting.lock().await = Some((
                    NotConfigured(problem),
                    tokio::time::Instant::now() + retry_after,
                ));
            }
        }
        this
    }

    /// The dependencies, or why there are none. While there are none, they are built again at most
    /// once every `retry_after`; the first success is kept for the instance's life.
    pub async fn get(&self) -> Result<std::sync::Arc<D>, NotConfigured> {
        if let Some(deps) = self.ready.get() {
            return Ok(deps.clone());
        }
        let mut waiting = self.waiting.lock().await;
        if let Some(deps) = self.ready.get() {
            return Ok(deps.clone());
        }
        let now = tokio::time::Instant::now();
        if let Some((problem, next_try)) = waiting.as_ref()
            && now < *next_try
        {
            return Err(problem.clone());
        }
        match (self.build)().await {
            Ok(deps) => {
                tracing::info!("configured now: the secret is usable");
                let deps = std::sync::Arc::new(deps);
                let _ = self.ready.set(deps.clone());
                *waiting = None;
                Ok(deps)
            }
            Err(problem) => {
                tracing::warn!(problem = %problem, "still not configured");
                let problem = NotConfigured(problem);
                *waiting = Some((problem.clone(), now + self.retry_after));
                Err(problem)
            }
        }
    }
}

/// The targets whose TRACE level logs whole invocation events: `lambda_runtime`'s
/// `layers::api_response` logs the raw JSON of every event ("raw JSON event received from
/// Lambda"), i.e. webhook bodies, signed requests and API keys in headers. `lambda_http` is
/// listed too: it sits on the same runtime.
pub const RAW_EVENT_TARGETS: &[&str] = &["lambda_runtime::layers::api_response", "lambda_http"];

/// Refuse to start when the log configuration would enable TRACE for a target that logs raw
/// events. Mirrors how `lambda_runtime::tracing::init_default_subscriber` reads the environment:
/// the level is `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG` as a whole, and `RUST_LOG`'s directives
/// (`target=level`, a bare `level`, or a bare `target`, which means TRACE) apply on top. The rule
/// is deliberately conservative: any directive that could reach TRACE for those targets refuses,
/// even if a more specific one would lower it again (DEBUG is the most an operator needs).
pub fn check_log_levels(lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let is_trace = |level: &str| {
        let level = level.trim();
        level.eq_ignore_ascii_case("trace") || level == "5"
    };
    let is_level = |word: &str| {
        matches!(
            word.trim().to_ascii_lowercase().as_str(),
            "trace"
                | "debug"
                | "info"
                | "warn"
                | "error"
                | "off"
                | "0"
                | "1"
                | "2"
                | "3"
                | "4"
                | "5"
        )
    };
    // A directive's target applies to ours when one is a prefix of the other (EnvFilter matches
    // by prefix; a broader target such as `lambda_runtime` covers the layer).
    let reaches_raw_events = |target: &str| {
        target.is_empty()
            || RAW_EVENT_TARGETS
                .iter()
                .any(|t| t.starts_with(target) || target.starts_with(t))
    };
    let mut problems = Vec::new();
    let lambda_level = lookup("AWS_LAMBDA_LOG_LEVEL").filter(|v| !v.trim().is_empty());
    let rust_log = lookup("RUST_LOG").unwrap_or_default();
    let base = lambda_level.clone().unwrap_or_else(|| rust_log.clone());
    if is_trace(&base) {
        let name = if lambda_level.is_some() {
            "AWS_LAMBDA_LOG_LEVEL"
        } else {
            "RUST_LOG"
        };
        problems.push(format!(
            "{name} is TRACE: the Lambda runtime would log every raw event (webhook bodies, signed requests, API keys); use DEBUG at most"
        ));
    }
    for directive in rust_log.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        // `target[span{field=value}]=level`: the level follows the last `=` outside braces.
        let (spec, level) = match directive.rsplit_once('=') {
            Some((spec, level)) if is_level(level) => (spec, level.trim()),
            _ if is_level(directive) => ("", directive),
            // A bare target (or something EnvFilter would read as one) means TRACE.
            _ => (directive, "trace"),
        };
        let target = spec.split('[').next().unwrap_or("").trim();
        if is_trace(level)
            && reaches_raw_events(target)
            && !problems.iter().any(|p| p.contains(directive))
        {
            problems.push(format!(
                "RUST_LOG directive {directive:?} enables TRACE for the Lambda runtime, which logs every raw event (webhook bodies, signed requests, API keys); use DEBUG at most"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError { problems })
    }
}

/// [`check_log_levels`] on the process environment: every Lambda main calls it first.
pub fn check_log_levels_from_env() -> Result<(), ConfigError> {
    check_log_levels(|k| std::env::var(k).ok())
}

/// Every main's log format (`crate::logging`), set up right after [`check_log_levels_from_env`].
pub use crate::logging::{init_logging, init_logging_with_writer};

pub use aws_config::SdkConfig;

use crate::adapters::aws::LazyClient;
use crate::adapters::dynamodb::opt_ins::DynamoOptInStore;
use crate::adapters::scheduler::EventBridgeDeadlineScheduler;
use crate::adapters::sns::SnsAlerts;
use crate::adapters::sqs::SqsSendQueue;
use std::sync::Arc;

/// The AWS adapters of every port, over one SDK config (clients are cheap to clone and share a
/// connection pool). Built once at cold start by the Lambda mains and by the local runner.
pub struct AwsPorts {
    pub store: Arc<DynamoOptInStore>,
    pub queue: Arc<SqsSendQueue>,
    pub scheduler: Arc<EventBridgeDeadlineScheduler>,
    pub alerts: Arc<SnsAlerts>,
    /// EMF lines on stdout (CloudWatch Logs extracts the metrics).
    pub metrics: Arc<crate::adapters::emf::EmfStdout>,
    pub erasure: Arc<crate::adapters::dynamodb::erasure::DynamoErasureStore>,
    /// The events queue ([`crate::adapters::events::SqsEvents`]), or `EventsOff` without `EVENTS_URL`.
    pub events: Arc<dyn crate::ports::events::EventPublisher>,
    /// The DynamoDB client the stores above share (and the LOGIN and follow-up stores reuse).
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl AwsPorts {
    /// One SDK client per service, shared by every adapter of that service: a client is cheap to
    /// clone, not to build (each construction parses its service's endpoint partitions and
    /// compiles their patterns, a measurable share of a cold start). DynamoDB, which every
    /// invocation of every function calls, is built now; SQS, Scheduler and SNS on first use
    /// ([`LazyClient`]): many instances never alert, and deadline-alerts queues only to retry.
    pub fn new(config: &Config, sdk: &SdkConfig) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = LazyClient::on_first_use(sdk, aws_sdk_sqs::Client::new);
        Self {
            store: Arc::new(DynamoOptInStore::new(
                dynamodb.clone(),
                config.table_name.clone(),
            )),
            queue: Arc::new(SqsSendQueue::new(
                sqs.clone(),
                config.send_queue_url.clone(),
            )),
            scheduler: Arc::new(EventBridgeDeadlineScheduler::new(
                LazyClient::on_first_use(sdk, aws_sdk_scheduler::Client::new),
                config.schedule_group.clone(),
                config.deadline_function_arn.clone(),
                config.scheduler_role_arn.clone(),
                config.scheduler_dlq_arn.clone(),
            )),
            alerts: sns_alerts(config, sdk),
            metrics: Arc::new(crate::adapters::emf::EmfStdout),
            erasure: Arc::new(crate::adapters::dynamodb::erasure::DynamoErasureStore::new(
                dynamodb.clone(),
                config.table_name.clone(),
            )),
            events: events_publisher(config, &sqs),
            dynamodb,
        }
    }
}

/// The alert topic alone (what a function that is not configured yet needs to say so).
pub fn sns_alerts(config: &Config, sdk: &SdkConfig) -> Arc<SnsAlerts> {
    Arc::new(SnsAlerts::new(
        LazyClient::on_first_use(sdk, aws_sdk_sns::Client::new),
        config.alert_topic_arn.clone(),
    ))
}

/// Events on (`EVENTS_URL` and `EVENTS_QUEUE_URL` set): the events queue; else `EventsOff`.
pub fn events_publisher(
    config: &Config,
    sqs: &LazyClient<aws_sdk_sqs::Client>,
) -> Arc<dyn crate::ports::events::EventPublisher> {
    match (&config.events.url, &config.events.queue_url) {
        (Some(_), Some(queue_url)) => Arc::new(crate::adapters::events::SqsEvents::new(
            sqs.clone(),
            queue_url.clone(),
        )),
        _ => Arc::new(crate::adapters::events::EventsOff),
    }
}

impl AwsPorts {
    /// The whole port bundle over AWS and Graph: these adapters, the LOGIN store over the same
    /// table, the system clock, and `graph` for Facebook Login and the Send API (the http-api's
    /// client holds no Page token; deadline-alerts never calls Graph).
    pub fn into_ports(
        self,
        config: &Config,
        graph: crate::adapters::graph::GraphClient,
    ) -> crate::ports::bundle::Ports {
        let graph = Arc::new(graph);
        crate::ports::bundle::Ports {
            opt_ins: self.store.clone(),
            conversations: self.store.clone(),
            pages: self.store,
            erasure: self.erasure,
            logins: Arc::new(crate::adapters::dynamodb::logins::DynamoLoginStore::new(
                self.dynamodb.clone(),
                config.table_name.clone(),
            )),
            queue: self.queue.clone(),
            retry: self.queue,
            scheduler: self.scheduler,
            events: self.events,
            alerts: self.alerts,
            metrics: self.metrics,
            clock: Arc::new(crate::adapters::clock::SystemClock),
            facebook: graph.clone(),
            messenger: graph,
            follow_ups: Arc::new(
                crate::adapters::dynamodb::follow_ups::DynamoFollowUpStore::new(
                    self.dynamodb,
                    config.table_name.clone(),
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(aws_lambda_log_level: Option<&str>, rust_log: Option<&str>) -> Result<(), String> {
        check_log_levels(|k| match k {
            "AWS_LAMBDA_LOG_LEVEL" => aws_lambda_log_level.map(str::to_owned),
            "RUST_LOG" => rust_log.map(str::to_owned),
            _ => None,
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn trace_for_the_runtime_refuses_to_start() {
        for (level, rust_log) in [
            (Some("TRACE"), None),
            (Some("trace"), Some("info")),
            (None, Some("trace")),
            (None, Some("info,lambda_runtime=trace")),
            (None, Some("lambda_runtime::layers=TRACE")),
            (
                None,
                Some("lambda_runtime::layers::api_response::more=trace"),
            ),
            (None, Some("lambda_http=trace")),
            (Some("INFO"), Some("lambda_runtime")),
            (Some("INFO"), Some("lambda_runtime[invoke]=trace")),
            (None, Some("warn,=trace")),
            (None, Some("lambda=5")),
        ] {
            let e = check(level, rust_log).expect_err(&format!("{level:?} {rust_log:?}"));
            assert!(e.contains("raw event"), "{e}");
        }
    }

    #[test]
    fn other_levels_and_other_targets_start() {
        for (level, rust_log) in [
            (None, None),
            (Some("INFO"), None),
            (Some("DEBUG"), Some("debug")),
            (
                Some("WARN"),
                Some("shared=trace,http_api=trace,sender=trace"),
            ),
            (
                None,
                Some("info,lambda_runtime=debug,aws_smithy_runtime=trace"),
            ),
            (Some(""), Some("error")),
        ] {
            assert_eq!(check(level, rust_log), Ok(()), "{level:?} {rust_log:?}");
        }
    }
}
