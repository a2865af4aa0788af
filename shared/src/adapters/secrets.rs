//! The product's one Secrets Manager secret, read once at cold start.

use crate::config::{ConfigError, Secrets};
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

/// Read `secret_id` (name or ARN) and parse it as [`Secrets`]. Errors name the secret id and what
/// went wrong, never the secret's value.
pub async fn load_secrets(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Secrets, ConfigError> {
    let fail = |problem: String| ConfigError {
        problems: vec![format!("secret {secret_id:?}: {problem}")],
    };
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(
                secret_id,
                error = %aws_sdk_secretsmanager::error::DisplayErrorContext(&e),
                "GetSecretValue failed"
            );
            let what = match e.code() {
                Some("ResourceNotFoundException") => "does not exist".to_owned(),
                Some("AccessDeniedException") => "access denied".to_owned(),
                Some(code) => format!("GetSecretValue failed ({code})"),
                None => "GetSecretValue failed (the service could not be reached)".to_owned(),
            };
            fail(what)
        })?;
    let json = out
        .secret_string()
        .ok_or_else(|| fail("has no string value (binary secrets are not supported)".into()))?;
    Secrets::from_json(json).map_err(|e| ConfigError {
        problems: e
            .problems
            .into_iter()
            .map(|p| format!("secret {secret_id:?}: {p}"))
            .collect(),
    })
}
