//! The product's Secrets Manager secret: read at cold start as the view a function needs
//! ([`SecretView`]), and, in the http-api, re-read on a short TTL ([`RefreshingSecret`]) so a
//! revoked API key stops working within minutes instead of at the next cold start.

use crate::config::reader::ConfigError;
use crate::config::secrets::{SecretView, Secrets};
use crate::domain::opt_in::Millis;
use crate::ports::clock::Clock;
use async_trait::async_trait;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use std::sync::Arc;

/// Where the secret's JSON comes from (Secrets Manager; a fake in tests).
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The secret's JSON text. Errors name the secret and what went wrong, never its value.
    async fn fetch(&self) -> Result<String, ConfigError>;
}

/// The secret named `secret_id` (name or ARN) in Secrets Manager.
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }

    /// Over a client built from `sdk` (the functions need no Secrets Manager dependency).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, secret_id: impl Into<String>) -> Self {
        Self::new(aws_sdk_secretsmanager::Client::new(sdk), secret_id)
    }
}

fn named(secret_id: &str, e: ConfigError) -> ConfigError {
    ConfigError {
        problems: e
            .problems
            .into_iter()
            .map(|p| format!("secret {secret_id:?}: {p}"))
            .collect(),
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn fetch(&self) -> Result<String, ConfigError> {
        let secret_id = self.secret_id.as_str();
        let fail = |problem: String| ConfigError {
            problems: vec![format!("secret {secret_id:?}: {problem}")],
        };
        let out = self
            .client
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
        out.secret_string()
            .map(str::to_owned)
            .ok_or_else(|| fail("has no string value (binary secrets are not supported)".into()))
    }
}

/// Read `secret_id` (name or ARN) and parse the whole document ([`Secrets`]: the local stack and
/// tests). Functions use [`load_secret_view`].
pub async fn load_secrets(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Secrets, ConfigError> {
    load_secret_view(client, secret_id).await
}

/// Read `secret_id` (name or ARN) and parse it as the view `T`. Errors name the secret id and what
/// went wrong, never the secret's value.
pub async fn load_secret_view<T: SecretView>(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<T, ConfigError> {
    let json = SecretsManagerSource::new(client.clone(), secret_id)
        .fetch()
        .await?;
    T::from_json(&json).map_err(|e| named(secret_id, e))
}

/// A secret held in memory that tests edit (and count the reads of): the twin of
/// [`SecretsManagerSource`].
pub struct MemorySecretSource {
    json: std::sync::Mutex<Result<String, ConfigError>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl MemorySecretSource {
    pub fn new(json: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            json: std::sync::Mutex::new(Ok(json.into())),
            reads: std::sync::atomic::AtomicUsize::new(0),
        })
    }
    /// What the next reads return.
    pub fn set(&self, json: impl Into<String>) {
        *self.json.lock().unwrap_or_else(|p| p.into_inner()) = Ok(json.into());
    }
    /// Make the next reads fail (e.g. access denied).
    pub fn fail(&self, problem: impl Into<String>) {
        *self.json.lock().unwrap_or_else(|p| p.into_inner()) = Err(ConfigError {
            problems: vec![problem.into()],
        });
    }
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl SecretSource for MemorySecretSource {
    async fn fetch(&self) -> Result<String, ConfigError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.json.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// After a failed re-read, how long the last good value is used before trying again (so a
/// Secrets Manager outage costs one call per instance every few seconds, not one per request).
const RETRY_AFTER_FAILURE_MS: Millis = 10_000;

struct Current<T> {
    value: Arc<T>,
    /// Bumped each time a re-read gives a different value.
    generation: u64,
    /// When the value must be read again.
    next_read_at: Millis,
}

/// The secret as a view `T`, read again once `ttl_ms` has passed since the last read. A failed or
/// malformed re-read keeps the last good value (an operator's typo must not take the API down)
/// and is logged; the cold-start read ([`RefreshingSecret::load`]) still fails fast.
pub struct RefreshingSecret<T> {
    source: Arc<dyn SecretSource>,
    clock: Arc<dyn Clock>,
    ttl_ms: Millis,
    current: tokio::sync::Mutex<Current<T>>,
}

impl<T: SecretView + PartialEq> RefreshingSecret<T> {
    /// The first read: an error here stops the cold start, with the problem named.
    pub async fn load(
        source: Arc<dyn SecretSource>,
        clock: Arc<dyn Clock>,
        ttl_ms: Millis,
    ) -> Result<Self, ConfigError> {
        let value = T::from_json(&source.fetch().await?)?;
        let next_read_at = clock.now().saturating_add(ttl_ms);
        Ok(Self {
            source,
            clock,
            ttl_ms,
            current: tokio::sync::Mutex::new(Current {
                value: Arc::new(value),
                generation: 0,
                next_read_at,
            }),
        })
    }

    /// The value to use now, with its generation (changes whenever the value does). Reads the
    /// source again when the TTL has passed; concurrent callers wait for that one read.
    pub async fn current(&self) -> (u64, Arc<T>) {
        let mut current = self.current.lock().await;
        let now = self.clock.now();
        if now >= current.next_read_at {
            match self
                .source
                .fetch()
                .await
                .and_then(|json| T::from_json(&json))
            {
                Ok(value) => {
                    if value != *current.value {
                        tracing::info!("the secret changed: using the new value");
                        current.value = Arc::new(value);
                        current.generation += 1;
                    }
                    current.next_read_at = now.saturating_add(self.ttl_ms);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "re-reading the secret failed: keeping the last good value");
                    current.next_read_at =
                        now.saturating_add(self.ttl_ms.min(RETRY_AFTER_FAILURE_MS));
                }
            }
        }
        (current.generation, current.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::clock::ManualClock;
    use crate::config::secrets::HttpApiSecrets;

    fn with_keys(keys: &[&str]) -> String {
        let hashes: Vec<String> = keys.iter().map(|k| format!("{k:0>64}")).collect();
        serde_json::json!({"app_secret": "a", "verify_token": "v", "api_key_hashes": hashes})
            .to_string()
    }

    const TTL: Millis = 300_000;

    #[tokio::test]
    async fn a_revoked_api_key_is_dropped_once_the_ttl_has_passed() {
        let source = MemorySecretSource::new(with_keys(&["a1", "b2"]));
        let clock = Arc::new(ManualClock::at(1_000_000));
        let secret = RefreshingSecret::<HttpApiSecrets>::load(source.clone(), clock.clone(), TTL)
            .await
            .unwrap();
        let (generation, first) = secret.current().await;
        assert_eq!(first.api_key_hashes.len(), 2);

        // The operator revokes b2: within the TTL the cached value is used, without a read.
        source.set(with_keys(&["a1"]));
        clock.advance(TTL - 1);
        assert_eq!(secret.current().await.1.api_key_hashes.len(), 2);
        assert_eq!(source.reads(), 1);

        // At the TTL it is read again and the new value (a new generation) is used.
        clock.advance(1);
        let (next_generation, now) = secret.current().await;
        assert_eq!(now.api_key_hashes.len(), 1);
        assert_ne!(next_generation, generation);
        assert_eq!(source.reads(), 2);

        // An unchanged re-read keeps the generation.
        clock.advance(TTL);
        assert_eq!(secret.current().await.0, next_generation);
    }

    #[tokio::test]
    async fn a_failed_or_malformed_reread_keeps_the_last_good_value() {
        let source = MemorySecretSource::new(with_keys(&["a1"]));
        let clock = Arc::new(ManualClock::at(0));
        let secret = RefreshingSecret::<HttpApiSecrets>::load(source.clone(), clock.clone(), TTL)
            .await
            .unwrap();
        source.set("{not json");
        clock.advance(TTL);
        let (generation, value) = secret.current().await;
        assert_eq!((generation, value.api_key_hashes.len()), (0, 1));
        // Tried again soon, not at every request and not only after a whole TTL.
        source.fail("access denied");
        clock.advance(RETRY_AFTER_FAILURE_MS - 1);
        secret.current().await;
        assert_eq!(source.reads(), 2);
        clock.advance(1);
        assert_eq!(secret.current().await.1.api_key_hashes.len(), 1);
        assert_eq!(source.reads(), 3);
        source.set(with_keys(&["c3", "d4"]));
        clock.advance(RETRY_AFTER_FAILURE_MS);
        assert_eq!(secret.current().await.1.api_key_hashes.len(), 2);
    }

    #[tokio::test]
    async fn the_cold_start_read_fails_fast() {
        let source = MemorySecretSource::new("{}");
        let clock = Arc::new(ManualClock::at(0));
        let e = RefreshingSecret::<HttpApiSecrets>::load(source, clock, TTL)
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("a field is missing"), "{e}");
    }
}
