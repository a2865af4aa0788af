//! The event sender (issue 12): delivers the events the other functions put on the events queue
//! to the website backend, as Standard Webhooks POSTs (standardwebhooks.com), signed, at least
//! once. A function of its own (docs/decisions.md, "A fourth function for events"): it alone
//! reads the signing secret, and a slow or dead receiver only ever holds this function.
//!
//! The files: [`batch`] (SQS in and out), [`deliver`] (one signed POST), [`signing`] (the secret
//! and the signature), [`schedule`] (the retry delays and `maxReceiveCount`), [`deps`] (the
//! wiring). The delivery contract: docs/events.md.

pub mod batch;
pub mod deliver;
pub mod deps;
pub mod schedule;
pub mod signing;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::bootstrap::{SdkConfig, UntilConfigured};
use shared::config::settings::Config;

pub use batch::handle_batch;
pub use deps::Deps;
pub use schedule::MAX_RECEIVE_COUNT;

/// The Lambda process: refuse TRACE logging of raw events, load config, secret and clients once
/// (cold start), then handle SQS batches until the runtime stops.
pub async fn run() -> Result<(), Error> {
    shared::bootstrap::check_log_levels_from_env()?;
    shared::bootstrap::init_logging();
    let (config, sdk) = shared::bootstrap::load_settings().await?;
    let sender = &EventSender::from_aws(config, sdk).await;
    let handler = service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(sender.handle(event.payload).await)
    });
    lambda_runtime::run(handler).await
}

/// What the event sender does while it is not configured (the alert says it).
pub const WHILE_NOT_CONFIGURED: &str = "leaves every event in the events queue (each comes back \
     after the queue's visibility timeout and moves to the events dead-letter queue after 13 \
     receives: redrive it once EVENTS_URL and the signing secret are usable)";

/// The event sender as the Lambda runs it: its [`Deps`] once `EVENTS_URL` and the signing secret
/// are usable; until then it starts anyway, alerts once per cold start and hands every record back.
pub struct EventSender(UntilConfigured<Deps>);

impl EventSender {
    pub fn new(deps: UntilConfigured<Deps>) -> Self {
        Self(deps)
    }

    /// The production wiring: the signing secret from its own secret, then [`Deps::from_aws`].
    pub async fn from_aws(config: Config, sdk: SdkConfig) -> Self {
        let build = |config: Config, sdk: SdkConfig| async move {
            let secrets = deps::load_secrets(&config, &sdk).await?;
            Deps::from_aws(&config, &secrets, &sdk)
        };
        let meanwhile = WHILE_NOT_CONFIGURED;
        Self(
            shared::bootstrap::start_until_configured(
                config,
                sdk,
                "event-sender",
                meanwhile,
                build,
            )
            .await,
        )
    }

    /// Handle one SQS batch, or, while not configured, report every record in
    /// `batchItemFailures` untouched: SQS delivers each again after the visibility timeout.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let problem = match self.0.get().await {
            Ok(deps) => return handle_batch(&deps, event).await,
            Err(problem) => problem,
        };
        tracing::error!(
            records = event.records.len(),
            problem = %problem,
            "the event sender is not configured: the batch is left in the events queue"
        );
        batch::retry_all(event.records.iter())
    }
}
