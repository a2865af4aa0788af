//! The AWS SDK configuration, loaded once at cold start.
//!
//! Region, credentials and the endpoint come from the standard sources (environment, profile,
//! Lambda's role). The SDK honours `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_<SERVICE>`) itself,
//! which is how the local stack and the tests point every client at moto; this is verified against
//! moto in `tests/tests/adapters_moto.rs`.

use aws_config::BehaviorVersion;

/// Load the SDK configuration from the environment.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

use crate::ports::PortError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Turn an SDK error into a [`PortError`] with a short message (operation and error code), and log
/// the full error chain. Every `aws-sdk-*` crate re-exports the same `SdkError` type.
pub(crate) fn port_error<E, R>(service: &'static str, op: &str, err: &SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    tracing::warn!(service, op, error = %DisplayErrorContext(err), "AWS call failed");
    let what = match err {
        SdkError::ServiceError(_) => {
            let code = err.code().unwrap_or("service error");
            match err.message() {
                Some(m) => format!("{code}: {}", m.chars().take(200).collect::<String>()),
                None => code.to_owned(),
            }
        }
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(_) => "could not reach the service".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "invalid request".to_owned(),
        _ => "failed".to_owned(),
    };
    PortError::new(service, format!("{op}: {what}"))
}
