//! A sender wired to the Messenger sandbox over real HTTP (the production `GraphClient`), with the
//! opt-in store in moto (the production DynamoDB adapter) or in memory, a manual clock, and
//! in-memory queue, scheduler and alerts so tests can see every backoff and alert.

use crate::shared_moto;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use local_runner::moto::{MotoServer, workspace_root};
use local_runner::provision::{Provisioned, provision};
use messenger_sandbox::{FaultRule, InboxMessage, RunningSandbox, SandboxConfig};
use sender::Deps;
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::adapters::graph::GraphClient;
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::memory::config::test_config;
use shared::adapters::memory::erasure::MemoryErasure;
use shared::adapters::memory::logins::{MemoryFacebookLogin, MemoryLoginStore};
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::adapters::memory::queue::MemoryRetryQueue;
use shared::adapters::memory::queue::MemorySendQueue;
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::config::env;
use shared::config::secrets::Secrets;
use shared::domain::jobs::SendJob;
use shared::domain::opt_in::{HOUR_MS, Millis, OptIn, OptInKey};
use shared::ports::bundle::Ports;
use shared::ports::clock::Clock;
use shared::ports::opt_ins::OptInStore;
use shared::ports::pages::PageStateStore;
use std::sync::Arc;

pub const SECRET_JSON: &str = r#"{"app_secret":"sandbox-app-secret","page_access_token":"sandbox-page-access-token","client_token":"sandbox-client-token","verify_token":"v"}"#;

/// The sandbox's own credentials (what a correctly configured deployment holds).
pub fn sandbox_secrets() -> Secrets {
    secrets_with("sandbox-page-access-token", "sandbox-app-secret")
}

pub fn secrets_with(page_token: &str, app_secret: &str) -> Secrets {
    let json = serde_json::json!({
        "app_secret": app_secret, "page_access_token": page_token,
        "client_token": "sandbox-client-token", "verify_token": "v",
    });
    match Secrets::from_json(&json.to_string()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

pub struct SenderWorld {
    pub deps: Deps,
    pub sandbox: RunningSandbox,
    pub store: Arc<dyn OptInStore>,
    pub pages: Arc<dyn PageStateStore>,
    /// The memory store, when the world is in memory.
    pub memory: Option<Arc<MemoryOptInStore>>,
    pub queue: Arc<MemorySendQueue>,
    pub retry: Arc<MemoryRetryQueue>,
    pub alerts: Arc<MemoryAlerts>,
    pub scheduler: Arc<MemoryScheduler>,
    pub clock: Arc<ManualClock>,
    pub provisioned: Option<Provisioned>,
    pub sdk: Option<aws_config::SdkConfig>,
    _moto: Option<Arc<MotoServer>>,
}

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

impl SenderWorld {
    /// Opt-in store in moto (a fresh stack provisioned from template.yaml).
    pub async fn with_moto(overrides: &[(&str, &str)]) -> Self {
        let moto = shared_moto();
        let sdk = moto.sdk_config().await;
        let stack = format!("s{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let provisioned = provision(
            &workspace_root().join("template.yaml"),
            &sdk,
            &stack,
            SECRET_JSON,
        )
        .await
        .unwrap_or_else(|e| panic!("provisioning failed: {e}"));
        let store = Arc::new(DynamoOptInStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            provisioned.table_name.clone(),
        ));
        let mut world = Self::build(store.clone(), store, None, overrides).await;
        world.provisioned = Some(provisioned);
        world.sdk = Some(sdk);
        world._moto = Some(moto);
        world
    }

    /// Everything in memory but Graph (the sandbox over HTTP).
    pub async fn in_memory(overrides: &[(&str, &str)]) -> Self {
        let store = Arc::new(MemoryOptInStore::new());
        Self::build(store.clone(), store.clone(), Some(store), overrides).await
    }

    async fn build(
        store: Arc<dyn OptInStore>,
        pages: Arc<dyn PageStateStore>,
        memory: Option<Arc<MemoryOptInStore>>,
        overrides: &[(&str, &str)],
    ) -> Self {
        let sandbox =
            messenger_sandbox::start(SandboxConfig::default(), "127.0.0.1:0".parse().unwrap())
                .await
                .expect("sandbox starts");
        let mut settings: Vec<(&str, &str)> = vec![
            (env::GRAPH_API_BASE_URL, sandbox.base_url.as_str()),
            (env::GRAPH_TIMEOUT_MS, "1000"),
        ];
        settings.extend_from_slice(overrides);
        let config = test_config(&settings);
        let queue = Arc::new(MemorySendQueue::default());
        let retry = Arc::new(MemoryRetryQueue::default());
        let alerts = Arc::new(MemoryAlerts::default());
        let scheduler = Arc::new(MemoryScheduler::default());
        let clock = Arc::new(ManualClock::at(now_ms()));
        let messenger = GraphClient::new(&config, &sandbox_secrets()).expect("graph client");
        // The sender never calls the conversation, erasure or Facebook Login ports: twins of their
        // own.
        let unused = Arc::new(MemoryOptInStore::new());
        let logins = Arc::new(MemoryLoginStore::new());
        let ports = Ports {
            opt_ins: store.clone(),
            conversations: unused.clone(),
            pages: pages.clone(),
            erasure: Arc::new(MemoryErasure::new(unused, logins.clone())),
            logins,
            queue: queue.clone(),
            retry: retry.clone(),
            scheduler: scheduler.clone(),
            events: Arc::new(shared::adapters::memory::events::MemoryEvents::default()),
            follow_ups: Arc::new(shared::adapters::memory::follow_ups::MemoryFollowUps::default()),
            alerts: alerts.clone(),
            metrics: Arc::new(shared::adapters::memory::metrics::MemoryMetrics::default()),
            clock: clock.clone(),
            facebook: Arc::new(MemoryFacebookLogin::default()),
            messenger: Arc::new(messenger),
        };
        let deps = Deps::from_ports(config, &ports);
        Self {
            deps,
            sandbox,
            store,
            pages,
            memory,
            queue,
            retry,
            alerts,
            scheduler,
            clock,
            provisioned: None,
            sdk: None,
            _moto: None,
        }
    }

    /// A cold start with other credentials (e.g. the operator fixed the token).
    pub fn use_secrets(&mut self, secrets: &Secrets) {
        let client = GraphClient::new(&self.deps.config, secrets).expect("graph client");
        self.deps.ports.messenger = Arc::new(client);
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// A person opts in now: the sandbox knows the login_id and the store has the opt-in with a
    /// 24-hour window from the clock's now.
    pub async fn opt_in(&self) -> OptInKey {
        self.opt_in_with_window(24 * HOUR_MS).await
    }

    pub async fn opt_in_with_window(&self, window_ms: Millis) -> OptInKey {
        let login_id = self.sandbox_opt_in(None).await;
        self.store_opt_in(&login_id, window_ms).await
    }

    /// The sandbox records an opt-in (at `timestamp_ms`, default now) and returns its login_id.
    pub async fn sandbox_opt_in(&self, timestamp_ms: Option<Millis>) -> String {
        let mut body = serde_json::json!({"deliver": false});
        if let Some(ts) = timestamp_ms {
            body["timestamp_ms"] = serde_json::json!(ts);
        }
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/_sandbox/optin", self.sandbox.base_url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["login_id"].as_str().unwrap().to_owned()
    }

    /// The store records an opt-in now, with this window.
    pub async fn store_opt_in(&self, login_id: &str, window_ms: Millis) -> OptInKey {
        let key = OptInKey::new(messenger_sandbox::DEFAULT_PAGE_ID, login_id);
        let now = self.now();
        let o = OptIn::new(key.clone(), Some(now), now, window_ms, 2 * HOUR_MS);
        self.store.create_opt_in(&o).await.unwrap();
        key
    }

    pub async fn item(&self, key: &OptInKey) -> OptIn {
        self.store
            .get_opt_in(key)
            .await
            .unwrap()
            .expect("opt-in exists")
    }

    /// One SQS batch with one record for `key`, received `receives` times.
    pub async fn run(&self, message_id: &str, key: &OptInKey, receives: u32) -> SqsBatchResponse {
        sender::handle_batch(&self.deps, job_event(message_id, key, receives)).await
    }

    pub fn fault(&self, rule: FaultRule) {
        self.sandbox.add_fault(rule).expect("valid fault");
    }

    pub fn inbox_for(&self, key: &OptInKey) -> Vec<InboxMessage> {
        self.sandbox
            .inbox()
            .into_iter()
            .filter(|m| m.login_id == key.login_id)
            .collect()
    }

    pub async fn stop(self) {
        self.sandbox.shutdown().await;
    }
}

/// An SQS event with one record per (message id, job), as Lambda delivers it.
pub fn job_event(message_id: &str, key: &OptInKey, receives: u32) -> SqsEvent {
    batch_event(&[(message_id, key)], receives)
}

pub fn batch_event(records: &[(&str, &OptInKey)], receives: u32) -> SqsEvent {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, key)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("receipt-{id}"),
                "body": serde_json::to_string(&SendJob::for_key(key)).unwrap(),
                "attributes": {"ApproximateReceiveCount": receives.to_string()},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:send",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}
