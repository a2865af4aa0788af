//! What the sender needs, built once per instance: the config, the port bundle and the pacer.
//!
//! One wiring path: [`Deps::from_ports`] is the only constructor; the Lambda main and the local
//! runner reach it through [`Deps::from_aws`] (the AWS adapters and the Page's Graph client), tests
//! through a bundle of in-memory twins.

use crate::pacer::Pacer;
use shared::adapters::graph::{GraphClient, GraphInitError};
use shared::adapters::graph_admin::{GraphAdmin, PageSetupReader};
use shared::bootstrap::{AwsPorts, SdkConfig};
use shared::config::secrets::SenderSecrets;
use shared::config::settings::Config;
use shared::domain::opt_in::Millis;
use shared::ports::bundle::Ports;
use shared::ports::drift::{MetaSetup, MetaSetupOff};
use std::sync::Arc;
use std::time::Duration;

pub struct Deps {
    pub config: Config,
    /// The sender uses the opt-in and Page stores, the send queue and its retries, the scheduler
    /// (to cancel), alerts, metrics, the clock, the LOGIN store (for `{first_name}`) and the
    /// messenger.
    pub ports: Ports,
    /// Shared by every batch this instance handles.
    pub pacer: Arc<Pacer>,
    /// Meta's answers about the Page's setup, for the daily drift check ([`crate::drift`]):
    /// Graph admin calls with the Page token from [`Deps::from_aws`]; off in [`Deps::from_ports`]
    /// until [`Deps::with_meta_setup`] (the port bundle has no such field: only the sender asks).
    pub meta_setup: Arc<dyn MetaSetup>,
}

impl Deps {
    /// The production wiring, shared by the Lambda main and the local runner: the AWS adapters and
    /// a Graph client holding the Page token.
    pub fn from_aws(
        config: Config,
        secrets: impl Into<SenderSecrets>,
        sdk: &SdkConfig,
    ) -> Result<Self, GraphInitError> {
        let secrets: SenderSecrets = secrets.into();
        let graph = GraphClient::for_page(&config, &secrets)?;
        let admin = GraphAdmin::new(
            &config.graph_api_base_url,
            &config.graph_api_version,
            &config.fb_app_id,
            secrets.app_secret.clone(),
            Duration::from_millis(config.graph_timeout_ms),
        )?;
        let meta = PageSetupReader::new(admin, secrets.page_access_token);
        let ports = AwsPorts::new(&config, sdk).into_ports(&config, graph);
        Ok(Self::from_ports(config, &ports).with_meta_setup(Arc::new(meta)))
    }

    /// The drift check's reads of Meta (a twin in tests).
    pub fn with_meta_setup(mut self, meta_setup: Arc<dyn MetaSetup>) -> Self {
        self.meta_setup = meta_setup;
        self
    }

    /// The sender over any port bundle; its pacer follows the config's send tuning.
    pub fn from_ports(config: Config, ports: &Ports) -> Self {
        Self {
            pacer: Arc::new(Pacer::for_tuning(&config.send)),
            meta_setup: Arc::new(MetaSetupOff),
            ports: ports.clone(),
            config,
        }
    }

    /// How long before the deadline (and before the lease ends) a send may still start: the longest
    /// a Graph request can take.
    pub fn send_margin_ms(&self) -> Millis {
        Millis::try_from(self.config.graph_timeout_ms).unwrap_or(Millis::MAX)
    }
}
