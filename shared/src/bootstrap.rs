//! Cold-start loading shared by every Lambda main and the local runner: the typed config, the AWS
//! SDK config, and the secret. Each step fails with a message naming what is wrong.

use crate::config::{Config, ConfigError, Secrets};

/// Everything a function needs before it builds its adapters.
pub struct Loaded {
    pub config: Config,
    pub sdk: aws_config::SdkConfig,
    pub secrets: Secrets,
}

/// Load config from the environment, then the SDK config, then the secret named by `SECRET_ID`.
pub async fn load_from_env() -> Result<Loaded, ConfigError> {
    let config = Config::from_env()?;
    let sdk = crate::aws::load_sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let secrets = crate::adapters::secrets::load_secrets(&client, &config.secret_id).await?;
    Ok(Loaded {
        config,
        sdk,
        secrets,
    })
}

pub use aws_config::SdkConfig;

use crate::adapters::{
    dynamodb::DynamoOptInStore, scheduler::EventBridgeDeadlineScheduler, sns::SnsAlerts,
    sqs::SqsSendQueue,
};
use std::sync::Arc;

/// The AWS adapters of every port, over one SDK config (clients are cheap to clone and share a
/// connection pool). Built once at cold start by the Lambda mains and by the local runner.
pub struct AwsPorts {
    pub store: Arc<DynamoOptInStore>,
    pub queue: Arc<SqsSendQueue>,
    pub scheduler: Arc<EventBridgeDeadlineScheduler>,
    pub alerts: Arc<SnsAlerts>,
    /// EMF lines on stdout (CloudWatch Logs extracts the metrics).
    pub metrics: Arc<crate::metrics::EmfStdout>,
    pub erasure: Arc<crate::adapters::dynamodb_erasure::DynamoErasureStore>,
}

impl AwsPorts {
    pub fn new(config: &Config, sdk: &SdkConfig) -> Self {
        Self {
            store: Arc::new(DynamoOptInStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                config.table_name.clone(),
            )),
            queue: Arc::new(SqsSendQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                config.send_queue_url.clone(),
            )),
            scheduler: Arc::new(EventBridgeDeadlineScheduler::new(
                aws_sdk_scheduler::Client::new(sdk),
                config.schedule_group.clone(),
                config.deadline_function_arn.clone(),
                config.scheduler_role_arn.clone(),
                config.scheduler_dlq_arn.clone(),
            )),
            alerts: Arc::new(SnsAlerts::new(
                aws_sdk_sns::Client::new(sdk),
                config.alert_topic_arn.clone(),
            )),
            metrics: Arc::new(crate::metrics::EmfStdout),
            erasure: Arc::new(crate::adapters::dynamodb_erasure::DynamoErasureStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                config.table_name.clone(),
            )),
        }
    }
}
