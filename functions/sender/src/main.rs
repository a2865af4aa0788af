//! Lambda entry point: everything is in `sender::run` (the soak test's `sender-process` runs it too).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sender::run().await
}
