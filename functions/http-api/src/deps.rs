//! What the handler needs, and its one wiring path: [`Deps::from_ports`] takes the function's
//! ports from a [`Ports`] bundle (AWS and Graph in production through [`Deps::from_aws`], moto in
//! the local runner, the in-memory twins in tests). [`LiveDeps`] rebuilds them when the secret
//! changes, so a revoked API key stops working within the secret's TTL.
//!
//! The use cases the routes share (the opt-out, the Page pause / resume) come from the bundle
//! (`Ports::opt_outs`, `Ports::page_ports`), wired once in `shared::use_cases::bundle`.

use shared::adapters::clock::SystemClock;
use shared::adapters::graph::{GraphClient, GraphInitError};
use shared::adapters::secrets::{RefreshingSecret, SecretsManagerSource};
use shared::bootstrap::{AwsPorts, NotConfigured, SdkConfig, UntilConfigured};
use shared::config::reader::ConfigError;
use shared::config::secrets::HttpApiSecrets;
use shared::config::settings::Config;
use shared::ports::bundle::Ports;
use std::sync::{Arc, Mutex};

/// What the handler needs, built once at cold start (and again when the secret changes). The
/// bundle's Send API is the http-api's Graph client, which holds no Page token: only the sender
/// sends.
pub struct Deps {
    pub config: Config,
    /// The http-api's view of the secret: no Page token.
    pub secrets: HttpApiSecrets,
    pub ports: Ports,
}

impl Deps {
    /// The one constructor: production, the local runner and tests differ only in the bundle.
    pub fn from_ports(config: Config, secrets: HttpApiSecrets, ports: &Ports) -> Self {
        Self {
            config,
            secrets,
            ports: ports.clone(),
        }
    }

    /// The production wiring: AWS adapters over one SDK config and Facebook Login's Graph client.
    /// Shared by the Lambda main and the local runner, so both run the same code.
    pub fn from_aws(
        config: Config,
        secrets: impl Into<HttpApiSecrets>,
        sdk: &SdkConfig,
    ) -> Result<Self, GraphInitError> {
        let secrets = secrets.into();
        let graph = GraphClient::for_login(&config, secrets.app_secret.clone())?;
        let ports = AwsPorts::new(&config, sdk).into_ports(&config, graph);
        Ok(Self::from_ports(config, secrets, &ports))
    }
}

/// Why the http-api could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Graph(#[from] GraphInitError),
}

/// Builds the handler's dependencies for a given secret value.
pub type Rebuild = Box<dyn Fn(HttpApiSecrets) -> Result<Deps, StartError> + Send + Sync>;

/// The dependencies to use for the next request. With a [`RefreshingSecret`], the secret is read
/// again once its TTL has passed and, when it changed, the dependencies are rebuilt from it (as a
/// cold start would), so a revoked API key, a new verify token or a reset app secret take effect
/// within the TTL.
pub struct LiveDeps {
    current: Mutex<(u64, Arc<Deps>)>,
    refresh: Option<(RefreshingSecret<HttpApiSecrets>, Rebuild)>,
}

impl LiveDeps {
    /// Dependencies that never change (tests).
    pub fn fixed(deps: Deps) -> Self {
        Self {
            current: Mutex::new((0, Arc::new(deps))),
            refresh: None,
        }
    }

    /// `deps` built from the secret's current value; `rebuild` makes new ones when it changes.
    pub async fn refreshing(
        secret: RefreshingSecret<HttpApiSecrets>,
        rebuild: Rebuild,
    ) -> Result<Self, StartError> {
        let (generation, value) = secret.current().await;
        let deps = rebuild((*value).clone())?;
        Ok(Self {
            current: Mutex::new((generation, Arc::new(deps))),
            refresh: Some((secret, rebuild)),
        })
    }

    /// The production wiring: the secret named by `SECRET_ID`, re-read every `SECRET_TTL_SECONDS`.
    pub async fn from_aws(config: Config, sdk: &SdkConfig) -> Result<Self, StartError> {
        let source = Arc::new(SecretsManagerSource::from_sdk(
            sdk,
            config.secret_id.clone(),
        ));
        let secret =
            RefreshingSecret::load(source, Arc::new(SystemClock), config.secret_ttl_ms).await?;
        let sdk = sdk.clone();
        Self::refreshing(
            secret,
            Box::new(move |secrets| Ok(Deps::from_aws(config.clone(), secrets, &sdk)?)),
        )
        .await
    }

    /// The dependencies for one request.
    pub async fn current(&self) -> Arc<Deps> {
        let Some((secret, rebuild)) = &self.refresh else {
            return self.snapshot().1;
        };
        let (generation, value) = secret.current().await;
        let (built, deps) = self.snapshot();
        if built == generation {
            return deps;
        }
        match rebuild((*value).clone()) {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
                *current = (generation, fresh.clone());
                fresh
            }
            Err(e) => {
                // Keep serving with the previous dependencies; the next request tries again.
                tracing::error!(error = %e, "could not rebuild the handler after a secret change");
                deps
            }
        }
    }

    fn snapshot(&self) -> (u64, Arc<Deps>) {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        (current.0, current.1.clone())
    }
}

/// The http-api as the Lambda runs it: [`LiveDeps`] once the secret is usable. A fresh stack's
/// secret holds empty placeholders until the operator fills it; meanwhile the function starts
/// anyway, alerts once per cold start, answers `/healthz` and 503 `not_configured` everywhere
/// else (`Service::handle`), and reads the secret again at most every
/// [`shared::bootstrap::NOT_CONFIGURED_RETRY`].
pub struct Service(UntilConfigured<LiveDeps>);

/// What the http-api does while it is not configured (the alert says it).
pub const WHILE_NOT_CONFIGURED: &str = "answers 503 not_configured on every route but /healthz (webhook deliveries are retried by Meta)";

impl Service {
    pub fn new(live: UntilConfigured<LiveDeps>) -> Self {
        Self(live)
    }

    /// The production wiring: [`LiveDeps::from_aws`] once the secret is usable; the alert goes to
    /// the stack's topic.
    pub async fn from_aws(config: Config, sdk: &SdkConfig) -> Self {
        let alerts = shared::bootstrap::sns_alerts(&config, sdk);
        let page_id = config.fb_page_id.clone();
        let sdk = sdk.clone();
        let build = shared::bootstrap::build_deps(move || {
            let (config, sdk) = (config.clone(), sdk.clone());
            async move {
                LiveDeps::from_aws(config, &sdk)
                    .await
                    .map_err(|e| e.to_string())
            }
        });
        Self(
            UntilConfigured::start(
                build,
                shared::bootstrap::NOT_CONFIGURED_RETRY,
                shared::bootstrap::Unconfigured {
                    function: "http-api",
                    meanwhile: WHILE_NOT_CONFIGURED,
                    page_id: &page_id,
                    alerts: &*alerts,
                },
            )
            .await,
        )
    }

    /// The dependencies for one request, or why there are none yet.
    pub async fn live(&self) -> Result<Arc<LiveDeps>, NotConfigured> {
        self.0.get().await
    }
}
