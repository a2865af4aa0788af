//! Lambda entry point: refuse TRACE logging of raw events, load config and clients once, then
//! serve requests; the secret is re-read on its TTL (`SECRET_TTL_SECONDS`, `LiveDeps`). A secret
//! not filled yet does not stop the start: the function answers "not configured" (`Service`).

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::bootstrap::check_log_levels_from_env()?;
    shared::bootstrap::init_logging();
    let (config, sdk) = shared::bootstrap::load_settings().await?;
    let service = http_api::Service::from_aws(config, &sdk).await;
    let service = &service;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(service.handle(request).await)
    }))
    .await
}
