//! The local stand-in for the AWS wiring (API Gateway, the SQS event source mapping, EventBridge
//! Scheduler). Resources are created in the emulator from template.yaml's own definitions, and the
//! handlers are built with the same `Deps::from_aws` the Lambda mains use: only the wiring differs.

pub mod alert_inbox;
pub mod api_gateway;
pub mod event_sources;
pub mod example_backend;
pub mod example_site;
pub mod invocation;
pub mod local_state;
pub mod moto;
pub mod provision;

use provision::Provisioned;
use shared::config::env;
use shared::config::reader::ConfigError;
use shared::config::settings::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The API key a local stack accepts when `API_KEYS` is unset: a fixed value that says it is local,
/// so the README's and the banner's `curl` lines work as printed. Never used outside the local runner.
pub const DEFAULT_LOCAL_API_KEY: &str = "local-dev-key-not-secret";

/// The events signing key a local stack uses when `EVENTS_SIGNING_SECRET` is unset: the base64 of
/// 36 bytes that say they are local (`local-events-signing-key-not-secret!`). Never used outside
/// the local runner; the example site's receiver verifies with it.
pub const DEFAULT_LOCAL_EVENTS_SIGNING_SECRET: &str =
    "whsec_bG9jYWwtZXZlbnRzLXNpZ25pbmcta2V5LW5vdC1zZWNyZXQh";

/// The example site's event receiver (its "backend" page), where a local stack delivers events
/// when `EVENTS_URL` is unset.
pub const EXAMPLE_SITE_EVENTS_PATH: &str = "/backend/events";

/// The secret values the local stack seeds into the emulator's Secrets Manager.
#[derive(Clone)]
pub struct LocalSecrets {
    pub app_secret: String,
    pub page_access_token: String,
    pub client_token: String,
    pub verify_token: String,
    /// Plain API keys; the secret stores their SHA-256 digests, as in production.
    /// Default: [`DEFAULT_LOCAL_API_KEY`] alone.
    pub api_keys: Vec<String>,
    /// The events signing key (`whsec_…`), seeded as `events_signing_secret`.
    pub events_signing_secret: String,
}

impl Default for LocalSecrets {
    fn default() -> Self {
        use messenger_sandbox as sb;
        Self {
            app_secret: sb::DEFAULT_APP_SECRET.into(),
            page_access_token: sb::DEFAULT_PAGE_ACCESS_TOKEN.into(),
            client_token: sb::DEFAULT_CLIENT_TOKEN.into(),
            verify_token: sb::DEFAULT_VERIFY_TOKEN.into(),
            api_keys: vec![DEFAULT_LOCAL_API_KEY.to_owned()],
            events_signing_secret: DEFAULT_LOCAL_EVENTS_SIGNING_SECRET.to_owned(),
        }
    }
}

impl LocalSecrets {
    pub fn to_json(&self) -> String {
        use sha2::{Digest, Sha256};
        let hashes: Vec<String> = self
            .api_keys
            .iter()
            .map(|k| hex::encode(Sha256::digest(k.as_bytes())))
            .collect();
        serde_json::json!({
            "app_secret": self.app_secret,
            "page_access_token": self.page_access_token,
            "client_token": self.client_token,
            "verify_token": self.verify_token,
            "api_key_hashes": hashes,
            "events_signing_secret": self.events_signing_secret,
        })
        .to_string()
    }
}

pub struct LocalSettings {
    pub template_path: PathBuf,
    pub stack_name: String,
    pub http_addr: SocketAddr,
    /// Where the example website listens (its origin is allowed as `return_to`).
    pub site_addr: SocketAddr,
    /// How often the sweep runs; `None` uses the template's `SweepRate` default.
    pub sweep_every: Option<Duration>,
    /// How often due one-time schedules are looked for.
    pub scheduler_tick: Duration,
    /// Concurrent SQS pollers (Lambda's event source mapping runs several).
    pub sender_pollers: usize,
    /// The sender's invocation timeout; `None`: `SenderFunction.Timeout` of the template.
    pub sender_timeout: Option<Duration>,
    /// Configuration values, by environment variable name (FB_APP_ID, GRAPH_API_BASE_URL, …).
    pub config_overrides: Vec<(String, String)>,
    pub secrets: LocalSecrets,
}

impl LocalSettings {
    pub fn new(
        template_path: PathBuf,
        stack_name: impl Into<String>,
        http_addr: SocketAddr,
    ) -> Self {
        Self {
            template_path,
            stack_name: stack_name.into(),
            http_addr,
            site_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            sweep_every: None,
            scheduler_tick: Duration::from_millis(500),
            sender_pollers: 2,
            sender_timeout: None,
            config_overrides: Vec::new(),
            secrets: LocalSecrets::default(),
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.config_overrides.push((name.to_owned(), value.into()));
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}", listen_hint(.variable, .addr, .source))]
    Listen {
        addr: SocketAddr,
        /// The environment variable of the local runner that sets this address.
        variable: &'static str,
        source: std::io::Error,
    },
    #[error("could not build the Graph client: {0}")]
    Graph(String),
    #[error("events: {0}")]
    Events(String),
    #[error("the example site: {0}")]
    Site(String),
}

/// The message for an address the local runner cannot listen on: names the variable to change
/// (a busy port is the usual cause: another `make run`, or another program on 3000/4000/8080).
pub fn listen_hint(variable: &str, addr: &SocketAddr, error: &std::io::Error) -> String {
    let mut free = *addr;
    free.set_port(addr.port().wrapping_add(1).max(1024));
    let cause = if error.kind() == std::io::ErrorKind::AddrInUse {
        "the port is already in use".to_owned()
    } else {
        error.to_string()
    };
    format!(
        "could not listen on {addr} ({cause}); set {variable} to a free address, e.g. \
         {variable}={free} make run"
    )
}

/// Bind `addr` (port 0: any free port); the error names `variable`, the setting that chose it.
pub async fn listen(
    addr: SocketAddr,
    variable: &'static str,
) -> Result<(tokio::net::TcpListener, SocketAddr), LocalError> {
    let error = |source| LocalError::Listen {
        addr,
        variable,
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

/// A running local stack.
pub struct LocalStack {
    pub api_base_url: String,
    /// The stack name the resources are named after (`{stack}-OptInTable`, …).
    pub stack_name: String,
    pub http_addr: SocketAddr,
    /// The example website (`GET /`), with its "Continue with Facebook" link.
    pub site_base_url: String,
    /// The example site's backend: the events it received (`/backend`).
    pub example_backend: Arc<example_backend::Backend>,
    pub provisioned: Provisioned,
    pub config: Config,
    /// The functions' environment (what template.yaml's `Environment` resolves to here, with the
    /// overrides applied): enough to run a function binary as its own process against this stack.
    pub function_env: Vec<(String, String)>,
    stop: watch::Sender<bool>,
    sender_paused: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// `rate(15 minutes)` → 15 min. Only the forms SAM accepts for rate expressions.
pub fn parse_rate(expr: &str) -> Option<Duration> {
    let inner = expr.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n * seconds))
}

impl LocalStack {
    pub async fn start(
        settings: LocalSettings,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, LocalError> {
        // The ports first: a busy one fails before anything is created in the emulator.
        let (listener, http_addr) = listen(settings.http_addr, "LOCAL_HTTP_ADDR").await?;
        let api_base_url = format!("http://{http_addr}");
        let (site_listener, site_addr) = listen(settings.site_addr, "LOCAL_SITE_ADDR").await?;
        let provisioned = provision::provision(
            &settings.template_path,
            sdk,
            &settings.stack_name,
            &settings.secrets.to_json(),
        )
        .await?;
        let site_base_url = format!("http://{site_addr}");

        let stack = &settings.stack_name;
        let derived: Vec<(String, String)> = vec![
            (env::TABLE_NAME.into(), provisioned.table_name.clone()),
            (
                env::SEND_QUEUE_URL.into(),
                provisioned.send_queue_url.clone(),
            ),
            (
                env::SCHEDULE_GROUP.into(),
                provisioned.schedule_group.clone(),
            ),
            (
                env::SCHEDULER_ROLE_ARN.into(),
                format!("arn:aws:iam::123456789012:role/{stack}-scheduler"),
            ),
            (
                env::DEADLINE_FUNCTION_ARN.into(),
                format!("arn:aws:lambda:us-east-1:123456789012:function:{stack}-deadline-alerts"),
            ),
            (
                env::SCHEDULER_DLQ_ARN.into(),
                provisioned.scheduler_dlq_arn.clone(),
            ),
            (
                env::ALERT_TOPIC_ARN.into(),
                provisioned.alert_topic_arn.clone(),
            ),
            (env::SECRET_ID.into(), provisioned.secret_id.clone()),
            (
                env::FB_APP_ID.into(),
                messenger_sandbox::DEFAULT_APP_ID.into(),
            ),
            (
                env::FB_PAGE_ID.into(),
                messenger_sandbox::DEFAULT_PAGE_ID.into(),
            ),
            (env::PUBLIC_BASE_URL.into(), api_base_url.clone()),
            (env::ALLOWED_RETURN_ORIGINS.into(), site_base_url.clone()),
        ];
        // Events on, to the example site's receiver unless EVENTS_URL says otherwise (an override).
        let derived: Vec<(String, String)> = match &provisioned.events {
            Some(events) => derived
                .into_iter()
                .chain([
                    (
                        env::EVENTS_URL.to_owned(),
                        format!("{site_base_url}{EXAMPLE_SITE_EVENTS_PATH}"),
                    ),
                    (env::EVENTS_QUEUE_URL.to_owned(), events.queue_url.clone()),
                    (env::EVENTS_DLQ_URL.to_owned(), events.dlq_url.clone()),
                    (
                        env::EVENTS_SIGNING_SECRET_ID.to_owned(),
                        events.signing_secret_id.clone(),
                    ),
                ])
                .collect(),
            None => derived,
        };
        // The sender reads its Page token from its own secret, as in AWS.
        let derived: Vec<(String, String)> = derived
            .into_iter()
            .chain(
                provisioned
                    .page_token_secret_id
                    .clone()
                    .map(|id| (env::PAGE_TOKEN_SECRET_ID.to_owned(), id)),
            )
            .collect();
        let overrides = settings.config_overrides.clone();
        let config = Config::from_lookup(|name| {
            overrides
                .iter()
                .rev()
                .chain(derived.iter())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })?;
        // The same path as a Lambda cold start: each function reads its own view of the secret
        // back from Secrets Manager (the http-api re-reads it on its TTL, as in Lambda).
        let http_deps = Arc::new(
            http_api::LiveDeps::from_aws(config.clone(), sdk)
                .await
                .map_err(|e| match e {
                    http_api::StartError::Config(e) => LocalError::Config(e),
                    http_api::StartError::Graph(e) => LocalError::Graph(e.to_string()),
                })?,
        );
        let sender_secrets = shared::bootstrap::load_sender_secrets(&config, sdk).await?;
        let sender_deps = Arc::new(
            sender::Deps::from_aws(config.clone(), &sender_secrets, sdk)
                .map_err(|e| LocalError::Graph(e.to_string()))?,
        );
        let alerts_deps = Arc::new(
            deadline_alerts::Deps::from_aws(config.clone(), sdk)
                .map_err(|e| LocalError::Graph(e.to_string()))?,
        );
        // The event sender reads its key from its own secret, as in AWS.
        let event_sender_deps = match (&provisioned.events, &config.events.url) {
            (Some(events), Some(_)) => {
                let secrets = event_sender::deps::load_secrets(&config, sdk)
                    .await
                    .map_err(LocalError::Events)?;
                let deps = event_sender::Deps::from_aws(&config, &secrets, sdk)
                    .map_err(LocalError::Events)?;
                Some((events.clone(), Arc::new(deps)))
            }
            _ => None,
        };
        // Later entries win when set as environment variables: overrides last.
        let function_env: Vec<(String, String)> = derived.into_iter().chain(overrides).collect();

        let (stop, stop_rx) = watch::channel(false);
        let (sender_paused, paused_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let app =
            api_gateway::router(http_deps).into_make_service_with_connect_info::<SocketAddr>();
        let mut server_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = server_stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "local API stopped");
            }
        }));

        let history = shared::adapters::dynamodb::opt_ins::DynamoOptInStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            provisioned.table_name.clone(),
        );
        let site = example_site::router(example_site::render(
            &site_base_url,
            &api_base_url,
            &format!("{}/_sandbox/inbox?format=html", config.graph_api_base_url),
        ))
        .merge(example_site::report_router(Arc::new(history)));
        let example_backend = Arc::new(
            example_backend::Backend::new(
                &settings.secrets.events_signing_secret,
                &api_base_url,
                settings
                    .secrets
                    .api_keys
                    .first()
                    .map(String::as_str)
                    .unwrap_or_default(),
            )
            .map_err(LocalError::Site)?,
        );
        let site = site.merge(example_backend::router(example_backend.clone()));
        let mut site_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = site_stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(site_listener, site)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "example site stopped");
            }
        }));

        let sqs = aws_sdk_sqs::Client::new(sdk);
        for _ in 0..settings.sender_pollers.max(1) {
            tasks.push(tokio::spawn(event_sources::run_sqs_poller(
                sqs.clone(),
                provisioned.send_queue_url.clone(),
                provisioned.send_queue_arn.clone(),
                settings
                    .sender_timeout
                    .unwrap_or(Duration::from_secs(provisioned.sender_timeout_s)),
                sender_deps.clone(),
                paused_rx.clone(),
                stop_rx.clone(),
            )));
        }
        if let Some((events, deps)) = event_sender_deps {
            let (_, never_paused) = watch::channel(false);
            tasks.push(tokio::spawn(event_sources::run_sqs_source(
                sqs.clone(),
                events.queue_url,
                events.queue_arn,
                Duration::from_secs(events.sender_timeout_s),
                event_sources::event_sender_handler(deps),
                never_paused,
                stop_rx.clone(),
            )));
        }
        let sweep_every = settings
            .sweep_every
            .or_else(|| provisioned.sweep_rate.as_deref().and_then(parse_rate))
            .unwrap_or(Duration::from_secs(15 * 60));
        tasks.push(tokio::spawn(event_sources::run_scheduler(
            aws_sdk_scheduler::Client::new(sdk),
            provisioned.schedule_group.clone(),
            alerts_deps,
            sweep_every,
            settings.scheduler_tick,
            stop_rx,
        )));

        Ok(Self {
            api_base_url,
            stack_name: settings.stack_name.clone(),
            http_addr,
            site_base_url,
            example_backend,
            provisioned,
            config,
            function_env,
            stop,
            sender_paused,
            tasks,
        })
    }

    /// Where the example site's backend receives events: the `EVENTS_URL` of a local stack.
    pub fn events_receiver_url(&self) -> String {
        format!("{}/backend/events", self.site_base_url)
    }

    /// Where the routes only Facebook calls live: the API's base URL, plus `/{segment}` when
    /// `FACEBOOK_PATH_SEGMENT` is configured (as the deployed stack's `FacebookWebhookUrl` output).
    pub fn facebook_base_url(&self) -> String {
        match &self.config.facebook_path_segment {
            Some(segment) => format!("{}/{segment}", self.api_base_url),
            None => self.api_base_url.clone(),
        }
    }

    /// What `ops doctor` needs to check this stack (`.local/doctor.json`), `aws_endpoint` being
    /// the emulator's.
    pub fn doctor_state(&self, aws_endpoint: &str) -> local_state::DoctorState {
        let p = &self.provisioned;
        local_state::DoctorState {
            stack_name: self.stack_name.clone(),
            region: "us-east-1".into(),
            aws_endpoint_url: aws_endpoint.to_owned(),
            webhook_url: format!("{}/webhooks/messenger", self.facebook_base_url()),
            graph_api_base_url: self.config.graph_api_base_url.clone(),
            graph_api_version: self.config.graph_api_version.clone(),
            fb_app_id: self.config.fb_app_id.clone(),
            fb_page_id: self.config.fb_page_id.clone(),
            secret_id: p.secret_id.clone(),
            page_token_secret_id: p.page_token_secret_id.clone(),
            alert_topic_arn: p.alert_topic_arn.clone(),
            send_dlq_url: p.send_dlq_url.clone(),
            scheduler_dlq_url: p.scheduler_dlq_url.clone(),
            events_dlq_url: p.events.as_ref().map(|e| e.dlq_url.clone()),
            sweep_schedule: p.sweep_schedule.clone(),
        }
    }

    /// Hold the SQS event source mapping (messages stay on the queue), as disabling the trigger
    /// does in AWS. Lets a person, or a test, look at an opt-in before it is sent.
    pub fn pause_sender(&self, paused: bool) {
        let _ = self.sender_paused.send(paused);
    }

    /// Stop the API, the pollers and the scheduler, and wait for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(
            parse_rate("rate(15 minutes)"),
            Some(Duration::from_secs(900))
        );
        assert_eq!(parse_rate("rate(1 hour)"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_rate("cron(0 * * * ? *)"), None);
        assert_eq!(parse_rate("rate(x minutes)"), None);
    }

    /// Issue 14, "Ports": a busy port ends with a message naming the variable to change, not a raw
    /// `Os { code: 98, kind: AddrInUse, .. }`.
    #[tokio::test]
    async fn a_busy_port_names_the_variable_to_change() {
        let busy = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = busy.local_addr().unwrap();
        let message = match listen(addr, "LOCAL_HTTP_ADDR").await {
            Ok(_) => panic!("{addr} was bound twice"),
            Err(e) => e.to_string(),
        };
        assert!(
            message.starts_with(&format!(
                "could not listen on {addr} (the port is already in use)"
            )),
            "{message}"
        );
        assert!(
            message
                .contains("set LOCAL_HTTP_ADDR to a free address, e.g. LOCAL_HTTP_ADDR=127.0.0.1:"),
            "{message}"
        );
        assert!(!message.contains("Os {"), "{message}");
    }

    /// Issue 14, "No API key in the local stack": a default stack seeds a key, stored as a digest.
    #[test]
    fn the_default_secret_holds_the_local_api_key() {
        let json: serde_json::Value =
            serde_json::from_str(&LocalSecrets::default().to_json()).unwrap();
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            DEFAULT_LOCAL_API_KEY.as_bytes(),
        ));
        assert_eq!(json["api_key_hashes"], serde_json::json!([digest]));
    }

    /// Issue 12: the seeded secret holds an events signing key the event sender accepts.
    #[test]
    fn the_default_secret_holds_a_usable_events_signing_key() {
        use shared::config::secrets::SecretView;
        let json = LocalSecrets::default().to_json();
        let secrets = event_sender::signing::EventsSecrets::from_json(&json).unwrap();
        assert_eq!(
            secrets.events_signing_secret.expose(),
            DEFAULT_LOCAL_EVENTS_SIGNING_SECRET
        );
    }

    #[test]
    fn secret_json_stores_key_digests_not_keys() {
        let s = LocalSecrets {
            api_keys: vec!["k1".into()],
            ..LocalSecrets::default()
        };
        let json = s.to_json();
        assert!(!json.contains("\"k1\""));
        assert!(json.contains(&hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"k1"))));
    }
}
