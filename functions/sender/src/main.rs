//! Lambda entry point: refuse TRACE logging of raw events, then `sender::run_lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::bootstrap::check_log_levels_from_env()?;
    sender::run_lambda().await
}
