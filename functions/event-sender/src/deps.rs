//! What the event sender needs, built once per instance: the receiver's URL, the signer, the HTTP
//! client, the events queue's backoff side and the clock. [`Deps::new`] is the one constructor;
//! the Lambda main and the local runner reach it through [`Deps::from_aws`], tests with twins.

use crate::signing::{EventsSecrets, Signer};
use shared::bootstrap::SdkConfig;
use shared::config::settings::Config;
use shared::ports::clock::Clock;
use shared::ports::events::EventQueue;
use std::sync::Arc;
use std::time::Duration;

/// How long one delivery attempt may take (issue 12: "a 10 s timeout = retry").
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Records of one batch delivered at once (a batch is at most 10).
pub const MAX_IN_FLIGHT: usize = 10;

pub struct Deps {
    /// `EVENTS_URL`: never logged (its query may hold the receiver's token).
    pub url: String,
    pub signer: Signer,
    pub http: reqwest::Client,
    pub queue: Arc<dyn EventQueue>,
    pub clock: Arc<dyn Clock>,
    /// `EVENTS_RETRY_BASE_SECONDS` (30; tests only change it).
    pub retry_base_seconds: u32,
}

impl Deps {
    /// The event sender over `queue` and `clock`. Fails (naming the setting, never a value) when
    /// events are off or the key is unusable.
    pub fn new(
        config: &Config,
        secrets: &EventsSecrets,
        queue: Arc<dyn EventQueue>,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let url = required(
            &config.events.url,
            "EVENTS_URL is empty: events are off, there is nowhere to deliver to",
        )?;
        Ok(Self {
            url,
            signer: Signer::new(&secrets.events_signing_secret)?,
            http: crate::deliver::client(timeout)?,
            queue,
            clock,
            retry_base_seconds: config.events.retry_base_seconds,
        })
    }

    /// The production wiring: the events queue (and its dead-letter queue) on SQS, the system clock.
    pub fn from_aws(
        config: &Config,
        secrets: &EventsSecrets,
        sdk: &SdkConfig,
    ) -> Result<Self, String> {
        let queue_url = required(&config.events.queue_url, "EVENTS_QUEUE_URL is missing")?;
        let queue =
            shared::adapters::events::SqsEvents::new(aws_sdk_sqs::Client::new(sdk), queue_url)
                .with_dead_letter_queue(config.events.dlq_url.clone());
        Self::new(
            config,
            secrets,
            Arc::new(queue),
            Arc::new(shared::adapters::clock::SystemClock),
            DELIVERY_TIMEOUT,
        )
    }
}

/// The event sender's secret, from its own Secrets Manager secret (`EVENTS_SIGNING_SECRET_ID`).
pub async fn load_secrets(config: &Config, sdk: &SdkConfig) -> Result<EventsSecrets, String> {
    let id = required(
        &config.events.signing_secret_id,
        "EVENTS_SIGNING_SECRET_ID is missing",
    )?;
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    shared::adapters::secrets::load_secret_view::<EventsSecrets>(&client, &id)
        .await
        .map_err(|e| e.to_string())
}

/// The value of a setting the event sender cannot work without, or `problem`.
fn required(value: &Option<String>, problem: &str) -> Result<String, String> {
    value.clone().ok_or_else(|| problem.to_owned())
}
