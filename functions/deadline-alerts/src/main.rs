//! Lambda entry point: everything is in `deadline_alerts::run` (it reads no secret: see there).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deadline_alerts::run().await
}
