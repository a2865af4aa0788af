//! The AWS SDK configuration, loaded once at cold start.
//!
//! Region, credentials and the endpoint come from the standard sources (environment, profile,
//! Lambda's role). The SDK honours `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_<SERVICE>`) itself,
//! which is how the local stack and the tests point every client at moto; this is verified against
//! moto in `tests/tests/moto/adapters.rs`.
//!
//! **Every call is bounded in time.** The SDK sets no operation timeout by default, so one
//! stalled connection could hold a handler until its Lambda timeout, long after the sender's
//! lease and deadline margins were checked. Every client built from this configuration (every
//! AWS adapter is) gives up an attempt after [`ATTEMPT_TIMEOUT`] and the whole call, retries
//! included, after [`OPERATION_TIMEOUT`]: a few calls in a row still fit the shortest function
//! timeout in template.yaml (http-api 29 s, sender 30 s, deadline-alerts 60 s).

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

/// Connecting to an AWS endpoint (in-region: milliseconds).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt of a call. DynamoDB, SQS, SNS, Scheduler and Secrets Manager answer single-item
/// calls in milliseconds; a stalled attempt is better retried than waited on.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// A whole call, its retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The timeouts every AWS client of the product carries.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The loader [`load_sdk_config`] uses: the environment's settings, with [`timeout_config`] and
/// the HTTPS client of [`crate::adapters::tls::aws_https_client`] (no certificate file read at
/// cold start).
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    loader_with_timeouts().http_client(crate::adapters::tls::aws_https_client())
}

/// Load the SDK configuration from the environment, with [`timeout_config`].
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    sdk_config_loader().load().await
}

/// The operator CLI's SDK configuration (`ops`): [`timeout_config`], and the SDK's default HTTPS
/// client with the platform's roots — an operator's machine may sit behind a TLS-inspecting proxy
/// whose CA only the host trusts; its cold start does not matter.
pub async fn load_operator_sdk_config() -> aws_config::SdkConfig {
    loader_with_timeouts().load().await
}

fn loader_with_timeouts() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeout_config())
}

/// An SDK client built when an adapter first calls it, or given ready-made. Building one costs
/// more than the rest of a cold start together (its service's endpoint partitions are parsed and
/// their patterns compiled), and most invocations never call some services: deadline-alerts
/// publishes to SNS only when it alerts, the sender queues on SQS only to retry. Cloning shares
/// the one client.
#[derive(Clone)]
pub struct LazyClient<C>(std::sync::Arc<ClientSource<C>>);

enum ClientSource<C> {
    Ready(C),
    OnFirstUse {
        sdk: Box<aws_config::SdkConfig>,
        build: fn(&aws_config::SdkConfig) -> C,
        client: std::sync::OnceLock<C>,
    },
}

impl<C> LazyClient<C> {
    /// `build(sdk)` on the first [`LazyClient::get`], e.g. `aws_sdk_sns::Client::new`.
    pub fn on_first_use(
        sdk: &aws_config::SdkConfig,
        build: fn(&aws_config::SdkConfig) -> C,
    ) -> Self {
        Self(std::sync::Arc::new(ClientSource::OnFirstUse {
            sdk: Box::new(sdk.clone()),
            build,
            client: std::sync::OnceLock::new(),
        }))
    }

    /// The client, built now if this is its first use.
    pub fn get(&self) -> &C {
        match &*self.0 {
            ClientSource::Ready(client) => client,
            ClientSource::OnFirstUse { sdk, build, client } => client.get_or_init(|| build(sdk)),
        }
    }

    /// Whether the client exists yet (for tests and the cold-start bench).
    pub fn is_built(&self) -> bool {
        match &*self.0 {
            ClientSource::Ready(_) => true,
            ClientSource::OnFirstUse { client, .. } => client.get().is_some(),
        }
    }
}

impl<C> From<C> for LazyClient<C> {
    fn from(client: C) -> Self {
        Self(std::sync::Arc::new(ClientSource::Ready(client)))
    }
}

impl<C> std::fmt::Debug for LazyClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient")
            .field("built", &self.is_built())
            .finish()
    }
}

use crate::ports::error::PortError;
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

#[cfg(test)]
mod tests {
    use super::*;

    static BUILT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn counted(_: &aws_config::SdkConfig) -> usize {
        BUILT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    #[test]
    fn a_lazy_client_is_built_on_its_first_use_once_and_shared_by_its_clones() {
        let sdk = aws_config::SdkConfig::builder().build();
        let lazy = LazyClient::on_first_use(&sdk, counted);
        let clone = lazy.clone();
        assert!(!lazy.is_built());
        assert_eq!(BUILT.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(*clone.get(), 1);
        assert!(lazy.is_built());
        assert_eq!(*lazy.get(), 1);
        assert_eq!(BUILT.load(std::sync::atomic::Ordering::SeqCst), 1);
        let ready: LazyClient<usize> = 7.into();
        assert!(ready.is_built());
        assert_eq!(*ready.get(), 7);
    }

    #[tokio::test]
    async fn every_client_built_from_the_loaded_config_has_operation_and_attempt_timeouts() {
        // What `load_sdk_config` builds, with a region and credentials given so that nothing
        // is looked up on the network.
        let sdk = sdk_config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await;
        let expected = (
            Some(OPERATION_TIMEOUT),
            Some(ATTEMPT_TIMEOUT),
            Some(CONNECT_TIMEOUT),
        );
        let of = |t: Option<&TimeoutConfig>| {
            t.map_or((None, None, None), |t| {
                (
                    t.operation_timeout(),
                    t.operation_attempt_timeout(),
                    t.connect_timeout(),
                )
            })
        };
        assert_eq!(of(sdk.timeout_config()), expected);
        assert_eq!(
            of(aws_sdk_dynamodb::Client::new(&sdk)
                .config()
                .timeout_config()),
            expected
        );
        assert_eq!(
            of(aws_sdk_sqs::Client::new(&sdk).config().timeout_config()),
            expected
        );
        assert_eq!(
            of(aws_sdk_sns::Client::new(&sdk).config().timeout_config()),
            expected
        );
        assert_eq!(
            of(aws_sdk_scheduler::Client::new(&sdk)
                .config()
                .timeout_config()),
            expected
        );
        assert_eq!(
            of(aws_sdk_secretsmanager::Client::new(&sdk)
                .config()
                .timeout_config()),
            expected
        );
        // Within the shortest function timeout of template.yaml (http-api, 29 s), with room for
        // several calls in a row.
        assert!(ATTEMPT_TIMEOUT <= OPERATION_TIMEOUT);
        assert!(OPERATION_TIMEOUT * 5 <= Duration::from_secs(29));
    }
}
