//! The three functions wired to the real AWS adapters against moto, on resources provisioned from
//! template.yaml, with a clock the test moves and in-memory metrics and Messenger: every AWS call is
//! real (moto), only time, Graph and stdout are doubles. Scheduler firing and the SQS event source
//! are driven by the test, step by step, the way the local runner drives them.

use crate::shared_moto;
use aws_lambda_events::event::sqs::SqsEvent;
use local_runner::moto::{MotoServer, workspace_root};
use local_runner::provision::{Provisioned, provision};
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::memory::messenger::MemoryMessenger;
use shared::adapters::memory::metrics::MemoryMetrics;
use shared::config::env;
use shared::config::secrets::Secrets;
use shared::config::settings::Config;
use shared::domain::jobs::deadline_schedule_name;
use shared::domain::opt_in::{Millis, OptIn, OptInKey};
use shared::ports::clock::Clock;
use shared::ports::opt_ins::OptInStore;
use std::collections::HashSet;
use std::sync::Arc;

pub const PAGE: &str = "200000000000002";
pub const APP_SECRET: &str = "harness-app-secret";
const SECRET_JSON: &str = r#"{"app_secret":"harness-app-secret","page_access_token":"page-token","client_token":"client-token","verify_token":"verify-token"}"#;

pub struct World {
    pub moto: Arc<MotoServer>,
    pub sdk: aws_config::SdkConfig,
    pub p: Provisioned,
    pub stack_name: String,
    pub config: Config,
    pub clock: Arc<ManualClock>,
    pub metrics: Arc<MemoryMetrics>,
    pub messenger: Arc<MemoryMessenger>,
    pub store: DynamoOptInStore,
    pub http: http_api::Deps,
    pub sender: sender::Deps,
    pub alerts: deadline_alerts::Deps,
    pub inbox: local_runner::alert_inbox::AlertInbox,
}

/// A fresh stack in the shared moto at time `now`, configured by `overrides` (env var names).
pub async fn world(now: Millis, overrides: &[(&str, &str)]) -> World {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let stack_name = format!("h{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let p = provision(
        &workspace_root().join("template.yaml"),
        &sdk,
        &stack_name,
        SECRET_JSON,
    )
    .await
    .unwrap_or_else(|e| panic!("provisioning failed: {e}"));
    let derived: Vec<(String, String)> = vec![
        (env::TABLE_NAME.into(), p.table_name.clone()),
        (env::SEND_QUEUE_URL.into(), p.send_queue_url.clone()),
        (env::SCHEDULE_GROUP.into(), p.schedule_group.clone()),
        (
            env::SCHEDULER_ROLE_ARN.into(),
            format!("arn:aws:iam::123456789012:role/{stack_name}-scheduler"),
        ),
        (
            env::DEADLINE_FUNCTION_ARN.into(),
            format!("arn:aws:lambda:us-east-1:123456789012:function:{stack_name}-deadline-alerts"),
        ),
        (env::SCHEDULER_DLQ_ARN.into(), p.scheduler_dlq_arn.clone()),
        (env::ALERT_TOPIC_ARN.into(), p.alert_topic_arn.clone()),
        (env::SECRET_ID.into(), p.secret_id.clone()),
        (env::FB_APP_ID.into(), "100000000000001".into()),
        (env::FB_PAGE_ID.into(), PAGE.into()),
    ];
    let config = Config::from_lookup(|name| {
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain(derived.iter().cloned())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let secrets = Secrets::from_json(SECRET_JSON).unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(ManualClock::at(now));
    let metrics = Arc::new(MemoryMetrics::default());
    let messenger = Arc::new(MemoryMessenger::default());

    let mut http = http_api::Deps::from_aws(config.clone(), secrets.clone(), &sdk)
        .unwrap_or_else(|e| panic!("graph client: {e}"));
    http.ports.clock = clock.clone();
    http.ports.metrics = metrics.clone();
    let mut sender = sender::Deps::from_aws(config.clone(), &secrets, &sdk)
        .unwrap_or_else(|e| panic!("graph client: {e}"));
    sender.ports.clock = clock.clone();
    sender.ports.metrics = metrics.clone();
    sender.ports.messenger = messenger.clone();
    let mut alerts = deadline_alerts::Deps::from_aws(config.clone(), &sdk)
        .unwrap_or_else(|e| panic!("graph client: {e}"));
    alerts.ports.clock = clock.clone();
    alerts.ports.metrics = metrics.clone();
    // The daily drift check has its own tests; here the queue holds only the send jobs counted.
    alerts.drift_checks = false;

    let inbox = local_runner::alert_inbox::AlertInbox::subscribe(
        &sdk,
        &p.alert_topic_arn,
        &format!("{stack_name}-alert-inbox"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let store = DynamoOptInStore::new(aws_sdk_dynamodb::Client::new(&sdk), &p.table_name);
    World {
        moto,
        sdk,
        p,
        stack_name,
        config,
        clock,
        metrics,
        messenger,
        store,
        http,
        sender,
        alerts,
        inbox,
    }
}

/// A signed `messaging_optins` webhook, as API Gateway hands it to the function.
pub fn optin_webhook(login_id: &str, timestamp_ms: Millis) -> lambda_http::Request {
    let body = messenger_sandbox::optin_webhook_body(PAGE, login_id, timestamp_ms);
    let signature = shared::facebook::webhook::sign_webhook(APP_SECRET.as_bytes(), body.as_bytes());
    let mut request = lambda_http::Request::new(lambda_http::Body::from(body));
    *request.method_mut() = lambda_http::http::Method::POST;
    *request.uri_mut() = lambda_http::http::Uri::from_static("/webhooks/messenger");
    let headers = request.headers_mut();
    headers.insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = lambda_http::http::HeaderValue::from_str(&signature) {
        headers.insert(shared::facebook::webhook::SIGNATURE_HEADER, value);
    }
    request
}

impl World {
    pub fn key(&self, login_id: &str) -> OptInKey {
        OptInKey::new(PAGE, login_id)
    }

    /// Facebook delivers the opt-in webhook now; returns the HTTP status.
    pub async fn webhook(&self, login_id: &str, timestamp_ms: Millis) -> u16 {
        http_api::handle(&self.http, optin_webhook(login_id, timestamp_ms))
            .await
            .status()
            .as_u16()
    }

    pub async fn item(&self, login_id: &str) -> OptIn {
        self.store
            .get_opt_in(&self.key(login_id))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{login_id} is not recorded"))
    }

    pub async fn schedule(
        &self,
        login_id: &str,
    ) -> Option<aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput> {
        aws_sdk_scheduler::Client::new(&self.sdk)
            .get_schedule()
            .group_name(&self.p.schedule_group)
            .name(deadline_schedule_name(&self.key(login_id)))
            .send()
            .await
            .ok()
    }

    /// What Scheduler does at the clock's time: fire the due one-time schedules, then delete them.
    pub async fn fire_schedules(&self) -> usize {
        local_runner::event_sources::fire_due_schedules(
            &aws_sdk_scheduler::Client::new(&self.sdk),
            &self.p.schedule_group,
            &self.alerts,
            self.clock.now(),
        )
        .await
    }

    /// The recurring sweep at the clock's time.
    pub async fn sweep(&self) -> deadline_alerts::Summary {
        deadline_alerts::handle(
            &self.alerts,
            serde_json::json!({"kind": "sweep", "version": 1}),
        )
        .await
        .unwrap_or_else(|e| panic!("sweep failed: {e}"))
    }

    /// The SQS event source mapping: receive the send jobs waiting on the queue, invoke the sender
    /// with them, delete those it did not return as failures. Returns the jobs delivered.
    pub async fn deliver_send_jobs(&self) -> usize {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let out = sqs
            .receive_message()
            .queue_url(&self.p.send_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)));
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return 0;
        }
        let records: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                serde_json::json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.p.send_queue_arn,
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        let event: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": records }))
            .unwrap_or_else(|e| panic!("{e}"));
        let response = sender::handle_batch(&self.sender, event).await;
        let failed: HashSet<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        for m in &messages {
            if !failed.contains(m.message_id().unwrap_or_default())
                && let Some(handle) = m.receipt_handle()
            {
                let _ = sqs
                    .delete_message()
                    .queue_url(&self.p.send_queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
        messages.len()
    }

    /// Everything published on the alert topic so far (waits until nothing more arrives).
    pub async fn published_alerts(&self) -> Vec<local_runner::alert_inbox::ReceivedAlert> {
        self.inbox
            .drain(std::time::Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
