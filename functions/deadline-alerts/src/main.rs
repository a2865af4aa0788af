//! Lambda entry point: refuse TRACE logging of raw events, load config and clients once, then
//! handle schedule invocations. No secret is read: this function uses none, and a malformed
//! secret edit must not stop alerting (its IAM role cannot read the secret either).

use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::bootstrap::check_log_levels_from_env()?;
    tracing::init_default_subscriber();
    let (config, sdk) = shared::bootstrap::load_settings().await?;
    let deps = deadline_alerts::Deps::from_aws(config, &sdk);
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
