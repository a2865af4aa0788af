//! The SQS-triggered sender: for each send job, claim the opt-in, send the initial message once,
//! and record the outcome.
//!
//! - **One gate.** The claim is a conditional write with a lease; only the lease owner writes the
//!   outcome, so duplicate jobs, redeliveries and concurrent senders send at most once.
//! - **A short SENDING window.** Everything slow (rendering the text, pacing) happens *before* the
//!   claim, and the deadline and lease margins are checked *after* it, so an opt-out can meet a
//!   send in flight only between the claim and Graph's answer (at most `GRAPH_TIMEOUT_MS`). A
//!   message Graph accepts after the opt-out is recorded on the item (`sent_after_opt_out`), logged
//!   and counted (`SentAfterOptOut`), never hidden.
//! - **Every Graph answer has a class** ([`shared::facebook::graph_error::classify_graph_error`]): transient
//!   failures back off inside the deadline ([`backoff`]) through `ChangeMessageVisibility`; a job
//!   that can no longer make the deadline ends EXPIRED with an alert; "unreachable" ends the
//!   opt-in; configuration errors and Page restrictions pause the Page ([`pause`]).
//! - **Throughput.** A batch's records are sent concurrently (at most `SENDER_MAX_IN_FLIGHT`), and a
//!   per-Page [`pacer::Pacer`] keeps the instance under its share of the Send API limit.
//!
//! The files: [`batch`] (SQS in and out), [`attempt`] (claim → send), [`record`] (what Graph
//! answered), [`pause`] (the Page pause and its probe), [`pacer`], [`backoff`], [`deps`] (the
//! wiring), [`drift`] (the daily check of Meta's side). Operator documentation: docs/sender.md.

pub mod attempt;
pub mod backoff;
pub mod batch;
pub mod deps;
pub mod drift;
pub mod follow_up;
pub mod pacer;
pub mod pause;
pub mod record;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::bootstrap::{NotConfigured, SdkConfig, Unconfigured, UntilConfigured, build_deps};
use shared::config::settings::Config;

pub use attempt::process_job;
pub use backoff::RecordOutcome;
pub use batch::{HANDOVER_FROM_RECEIVE, MAX_RECEIVE_COUNT, handle_batch};
pub use deps::Deps;
pub use pacer::{INSTANCE_SENDS_PER_SECOND, Pacer};
pub use pause::PageViews;
pub use record::{MAX_BOUNDED_ATTEMPTS, MAX_UNKNOWN_ATTEMPTS};

/// The Lambda process: refuse TRACE logging of raw events, load config, secret and clients once
/// (cold start), then handle SQS batches until the runtime stops. `main.rs` is only this; the soak
/// test runs it as its own process too, so that it can be killed mid-batch. A secret not filled
/// yet does not stop the start ([`Sender`]).
pub async fn run() -> Result<(), Error> {
    shared::bootstrap::check_log_levels_from_env()?;
    shared::bootstrap::init_logging();
    let (config, sdk) = shared::bootstrap::load_settings().await?;
    let sender = Sender::from_aws(config, sdk).await;
    let sender = &sender;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(sender.handle(event.payload).await)
    }))
    .await
}

/// What the sender does while it is not configured (the alert says it).
pub const WHILE_NOT_CONFIGURED: &str = "leaves every send job in the queue for a retry (each \
     comes back after the queue's visibility timeout and moves to the send dead-letter queue after \
     5 receives: redrive it once the secret is filled)";

/// The sender as the Lambda runs it: its [`Deps`] once the secret is usable. Until then (a fresh
/// stack's empty placeholders, a Page token not filled yet) it starts anyway, alerts once per cold
/// start, leaves every record of its batches for a retry ([`leave_for_retry`]) and reads the
/// secrets again at most every [`shared::bootstrap::NOT_CONFIGURED_RETRY`].
pub struct Sender(UntilConfigured<Deps>);

impl Sender {
    pub fn new(deps: UntilConfigured<Deps>) -> Self {
        Self(deps)
    }

    /// The production wiring: only the fields the sender uses (the app secret, and the Page token
    /// from its own secret), then [`Deps::from_aws`].
    pub async fn from_aws(config: Config, sdk: SdkConfig) -> Self {
        let alerts = shared::bootstrap::sns_alerts(&config, &sdk);
        let page_id = config.fb_page_id.clone();
        let build = build_deps(move || {
            let (config, sdk) = (config.clone(), sdk.clone());
            async move {
                let secrets = shared::bootstrap::load_sender_secrets(&config, &sdk)
                    .await
                    .map_err(|e| e.to_string())?;
                Deps::from_aws(config, &secrets, &sdk).map_err(|e| e.to_string())
            }
        });
        Self(
            UntilConfigured::start(
                build,
                shared::bootstrap::NOT_CONFIGURED_RETRY,
                Unconfigured {
                    function: "sender",
                    meanwhile: WHILE_NOT_CONFIGURED,
                    page_id: &page_id,
                    alerts: &*alerts,
                },
            )
            .await,
        )
    }

    /// Handle one SQS batch, or leave it for a retry while not configured.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        match self.0.get().await {
            Ok(deps) => handle_batch(&deps, event).await,
            Err(problem) => leave_for_retry(&event, &problem),
        }
    }
}

/// Every record of the batch reported in `batchItemFailures`, untouched (nothing claimed, nothing
/// sent): SQS delivers each again after the visibility timeout, and moves it to the dead-letter
/// queue after `maxReceiveCount` receives. One log line per batch says why.
pub fn leave_for_retry(event: &SqsEvent, problem: &NotConfigured) -> SqsBatchResponse {
    tracing::error!(
        records = event.records.len(),
        problem = %problem,
        "the sender is not configured: the batch is left in the queue for a retry (the \
         dead-letter queue after 5 receives)"
    );
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = event.records.iter().map(batch::failure).collect();
    response
}
