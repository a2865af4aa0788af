//! The sender Lambda, built inside the test package so that tests can run it as its own process
//! (`CARGO_BIN_EXE_sender-process`) and kill it: the same code as the `sender` binary.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sender::run().await
}
