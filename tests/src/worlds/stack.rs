//! A whole local stack for end-to-end tests: moto (shared), the Messenger sandbox and the local
//! runner, each test with its own stack name.

use crate::shared_moto;
use local_runner::moto::MotoServer;
use local_runner::{LocalSettings, LocalStack};
use messenger_sandbox::{InboxMessage, RunningSandbox, SandboxConfig};
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::config::env;
use shared::domain::opt_in::{OptIn, OptInKey, State};
use shared::ports::opt_ins::OptInStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct TestStack {
    _moto: Arc<MotoServer>,
    pub sdk: aws_config::SdkConfig,
    pub sandbox: RunningSandbox,
    pub local: LocalStack,
    pub store: DynamoOptInStore,
    pub http: reqwest::Client,
}

pub fn template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

/// Start a stack; `configure` may add settings (config overrides, secrets) before it starts.
pub async fn start_stack(configure: impl FnOnce(LocalSettings) -> LocalSettings) -> TestStack {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let sandbox = match messenger_sandbox::start(
        SandboxConfig::default(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => panic!("sandbox does not start: {e}"),
    };
    let stack_name = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let settings = LocalSettings::new(template(), stack_name, ([127, 0, 0, 1], 0).into())
        .with(env::GRAPH_API_BASE_URL, sandbox.base_url.clone())
        .with(env::FACEBOOK_WEB_BASE_URL, sandbox.base_url.clone());
    let local = match LocalStack::start(configure(settings), &sdk).await {
        Ok(l) => l,
        Err(e) => panic!("local stack does not start: {e}"),
    };
    // The URL an operator pastes into the App Dashboard (under FACEBOOK_PATH_SEGMENT when set).
    sandbox.set_webhook_url(&format!("{}/webhooks/messenger", local.facebook_base_url()));
    let store = DynamoOptInStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        local.provisioned.table_name.clone(),
    );
    TestStack {
        _moto: moto,
        sdk,
        sandbox,
        local,
        store,
        http: reqwest::Client::new(),
    }
}

impl TestStack {
    /// POST a sandbox control endpoint and return its JSON answer (asserting 200).
    pub async fn sandbox_post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let response = self
            .http
            .post(format!("{}{path}", self.sandbox.base_url))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(response.status(), 200, "{path}");
        response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Opt a new person in through the sandbox; their login_id.
    pub async fn opt_in(&self) -> String {
        let answer = self
            .sandbox_post("/_sandbox/optin", serde_json::json!({}))
            .await;
        assert_eq!(answer["webhook_statuses"], serde_json::json!([200]));
        answer["login_id"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn item(&self, login_id: &str) -> Option<OptIn> {
        let key = OptInKey::new(messenger_sandbox::DEFAULT_PAGE_ID, login_id);
        self.store
            .get_opt_in(&key)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Wait (at most 30 s) for the opt-in to reach `state`.
    pub async fn wait_for_state(&self, login_id: &str, state: State) -> OptIn {
        let started = Instant::now();
        loop {
            if let Some(item) = self.item(login_id).await
                && item.state == state
            {
                return item;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never reached {state}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many items the table holds (tests assert "nothing written").
    pub async fn item_count(&self) -> usize {
        let out = aws_sdk_dynamodb::Client::new(&self.sdk)
            .scan()
            .table_name(&self.local.provisioned.table_name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan: {e}"));
        out.items().len()
    }

    /// The opt-in's deadline schedule, if it exists.
    pub async fn schedule(
        &self,
        login_id: &str,
    ) -> Option<aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput> {
        let key = OptInKey::new(messenger_sandbox::DEFAULT_PAGE_ID, login_id);
        aws_sdk_scheduler::Client::new(&self.sdk)
            .get_schedule()
            .group_name(&self.local.provisioned.schedule_group)
            .name(shared::domain::jobs::deadline_schedule_name(&key))
            .send()
            .await
            .ok()
    }

    /// POST a webhook body to the local API, signed with `signature` when given.
    pub async fn post_webhook(&self, body: &str, signature: Option<&str>) -> reqwest::StatusCode {
        let mut request = self
            .http
            .post(format!("{}/webhooks/messenger", self.local.api_base_url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(sig) = signature {
            request = request.header("x-hub-signature-256", sig);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("webhook: {e}"))
            .status()
    }

    pub fn inbox_for(&self, login_id: &str) -> Vec<InboxMessage> {
        self.sandbox
            .inbox()
            .into_iter()
            .filter(|m| m.login_id == login_id)
            .collect()
    }

    pub async fn stop(self) {
        self.local.shutdown().await;
        self.sandbox.shutdown().await;
    }
}
