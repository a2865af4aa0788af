//! Lambda entry point: load config and clients once, then handle schedule invocations.

use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let loaded = shared::bootstrap::load_from_env().await?;
    let deps = deadline_alerts::Deps::from_aws(loaded.config, &loaded.sdk);
    let deps = &deps;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            deadline_alerts::handle(deps, event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
