//! Lambda entry point: everything is in `event_sender::run`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    event_sender::run().await
}
