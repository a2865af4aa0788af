//! Lambda entry point: see `sender::run_lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sender::run_lambda().await
}
