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
//! wiring). Operator documentation: docs/sender.md.

pub mod attempt;
pub mod backoff;
pub mod batch;
pub mod deps;
pub mod pacer;
pub mod pause;
pub mod record;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

pub use attempt::process_job;
pub use backoff::RecordOutcome;
pub use batch::{HANDOVER_FROM_RECEIVE, MAX_RECEIVE_COUNT, handle_batch};
pub use deps::Deps;
pub use pacer::{INSTANCE_SENDS_PER_SECOND, Pacer};
pub use pause::PageViews;
pub use record::{MAX_BOUNDED_ATTEMPTS, MAX_UNKNOWN_ATTEMPTS};

/// The Lambda process: refuse TRACE logging of raw events, load config, secret and clients once
/// (cold start), then handle SQS batches until the runtime stops. `main.rs` is only this; the soak
/// test runs it as its own process too, so that it can be killed mid-batch.
pub async fn run() -> Result<(), Error> {
    shared::bootstrap::check_log_levels_from_env()?;
    lambda_runtime::tracing::init_default_subscriber();
    let (config, sdk) = shared::bootstrap::load_settings().await?;
    // Only the fields the sender uses: the app secret, and the Page token from its own secret.
    let secrets = shared::bootstrap::load_sender_secrets(&config, &sdk).await?;
    let deps = Deps::from_aws(config, &secrets, &sdk)?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(handle_batch(deps, event.payload).await)
    }))
    .await
}
