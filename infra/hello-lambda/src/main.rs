//! The cold-start bench's yardstick (issue 13 §5): a `lambda_runtime` function that answers `{}`,
//! with nothing else — no config, no SDK client, no secret. Built with the same release profile as
//! the functions, so `init(function) / init(hello-lambda)`, measured in the same run, says what the
//! function's own start costs on top of the runtime, whatever the machine's load.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        Ok::<_, Error>(serde_json::json!({}))
    }))
    .await
}
