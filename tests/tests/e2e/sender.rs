//! The sender end to end through the local runner (signed webhook → DynamoDB + SQS in moto → the
//! SQS event source → sender → sandbox over HTTP), with sandbox faults: backoff on the real queue
//! (the poller honours `ChangeMessageVisibility` and `batchItemFailures`), and a Page paused by a
//! configuration error that resumes by itself through the delayed probe job.

use integration_tests::shared_moto;
use local_runner::{LocalSettings, LocalStack, moto::MotoServer};
use messenger_sandbox::{FaultRule, RunningSandbox, SandboxConfig};
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::config::env;
use shared::domain::opt_in::{OptIn, OptInKey, State};
use shared::ports::opt_ins::OptInStore;
use shared::ports::pages::PageStateStore;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Stack {
    _moto: std::sync::Arc<MotoServer>,
    sandbox: RunningSandbox,
    local: LocalStack,
    store: DynamoOptInStore,
}

async fn stack(settings: &[(&str, &str)]) -> Stack {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let sandbox =
        messenger_sandbox::start(SandboxConfig::default(), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("sandbox starts");
    let mut local = LocalSettings::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        format!("e2es-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        "127.0.0.1:0".parse().unwrap(),
    )
    .with(env::GRAPH_API_BASE_URL, sandbox.base_url.clone())
    .with(env::FACEBOOK_WEB_BASE_URL, sandbox.base_url.clone());
    for (name, value) in settings {
        local = local.with(name, *value);
    }
    let local = LocalStack::start(local, &sdk)
        .await
        .expect("local stack starts");
    sandbox.set_webhook_url(&format!("{}/webhooks/messenger", local.api_base_url));
    let store = DynamoOptInStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        local.provisioned.table_name.clone(),
    );
    Stack {
        _moto: moto,
        sandbox,
        local,
        store,
    }
}

impl Stack {
    /// A person opts in (the sandbox posts the signed webhook); returns the opt-in's key.
    async fn opt_in(&self) -> OptInKey {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/_sandbox/optin", self.sandbox.base_url))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["webhook_statuses"], serde_json::json!([200]));
        OptInKey::new(
            messenger_sandbox::DEFAULT_PAGE_ID,
            answer["login_id"].as_str().unwrap(),
        )
    }

    async fn wait_for(&self, key: &OptInKey, state: State, within: Duration) -> OptIn {
        let started = Instant::now();
        loop {
            if let Some(item) = self.store.get_opt_in(key).await.unwrap()
                && item.state == state
            {
                return item;
            }
            assert!(started.elapsed() < within, "never reached {state}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn inbox_count(&self, key: &OptInKey) -> usize {
        self.sandbox
            .inbox()
            .iter()
            .filter(|m| m.login_id == key.login_id)
            .count()
    }

    async fn stop(self) {
        self.local.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_failures_back_off_on_the_real_queue_and_the_message_arrives_once() {
    let s = stack(&[(env::RETRY_BASE_SECONDS, "1")]).await;
    s.sandbox
        .add_fault(FaultRule {
            count: Some(2),
            ..FaultRule::error(1200, Some(2_018_024))
        })
        .unwrap();
    let started = Instant::now();
    let key = s.opt_in().await;
    let item = s.wait_for(&key, State::Sent, Duration::from_secs(30)).await;
    assert_eq!(item.attempts, 3);
    assert_eq!(
        item.last_error.map(|e| e.code),
        Some(1200),
        "the evidence stays"
    );
    assert_eq!(s.inbox_count(&key), 1);
    let stats = s.sandbox.stats();
    assert_eq!((stats.faults_injected, stats.accepted), (2, 1));
    eprintln!("opt-in → SENT through two 1200s: {:?}", started.elapsed());
    // Nothing is left on the queue to send again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.inbox_count(&key), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_paused_by_a_bad_token_resumes_by_itself_through_the_probe() {
    let s = stack(&[(env::PAUSE_PROBE_SECONDS, "2")]).await;
    s.sandbox
        .add_fault(FaultRule {
            count: Some(1),
            ..FaultRule::error(190, Some(463))
        })
        .unwrap();
    let first = s.opt_in().await;
    let paused = s
        .wait_for(&first, State::Paused, Duration::from_secs(20))
        .await;
    assert_eq!(paused.last_error.map(|e| e.code), Some(190));
    // The sender records the opt-in PAUSED, then pauses its Page: wait for the second write.
    let paused_by = Instant::now() + Duration::from_secs(10);
    while !s
        .store
        .get_page(&first.page_id)
        .await
        .unwrap()
        .is_some_and(|page| page.is_paused())
    {
        assert!(Instant::now() < paused_by, "the Page was never paused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The fault was a single answer: "the operator has fixed it". The delayed probe job (2 s)
    // sends the first opt-in, the Page resumes, and a later opt-in goes straight through.
    s.wait_for(&first, State::Sent, Duration::from_secs(30))
        .await;
    // SENT is written before the prober flips the Page back to ACTIVE: wait for the flip.
    let resumed_by = Instant::now() + Duration::from_secs(10);
    while s
        .store
        .get_page(&first.page_id)
        .await
        .unwrap()
        .unwrap()
        .is_paused()
    {
        assert!(Instant::now() < resumed_by, "the Page never resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = s.opt_in().await;
    s.wait_for(&second, State::Sent, Duration::from_secs(20))
        .await;
    assert_eq!((s.inbox_count(&first), s.inbox_count(&second)), (1, 1));
    s.stop().await;
}
