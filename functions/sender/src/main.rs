//! Lambda entry point: load config, secret and clients once, then handle SQS batches.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let loaded = shared::bootstrap::load_from_env().await?;
    let deps = sender::Deps::from_aws(loaded.config, &loaded.secrets, &loaded.sdk)?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(sender::handle_batch(deps, event.payload).await)
    }))
    .await
}
