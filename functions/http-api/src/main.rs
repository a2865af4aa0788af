//! Lambda entry point: load config, secret and clients once, then serve requests.

use lambda_http::{Error, Request, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let loaded = shared::bootstrap::load_from_env().await?;
    let deps = http_api::Deps::from_aws(loaded.config, loaded.secrets, &loaded.sdk)?;
    let deps = &deps;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(http_api::handle(deps, request).await)
    }))
    .await
}
