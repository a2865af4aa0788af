//! What a person sees with `make run` and a short window (docs/alerts.md), in real time through the
//! local runner, moto and the sandbox: every send fails (the sandbox expects another Page token),
//! the opt-in is alerted once before its deadline, then expires and the miss is alerted.

use integration_tests::shared_moto;
use local_runner::alert_inbox::AlertInbox;
use local_runner::{LocalSettings, LocalStack};
use messenger_sandbox::SandboxConfig;
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::config::env;
use shared::domain::alert::AlertKind;
use shared::domain::jobs::deadline_schedule_name;
use shared::domain::opt_in::{OptInKey, State};
use shared::ports::opt_ins::OptInStore;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_short_window_an_alert_and_an_expiry_happen_within_seconds() {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let sandbox = messenger_sandbox::start(
        SandboxConfig {
            // Not the stack's token: every send fails with Graph error 190.
            page_access_token: "a-token-the-stack-does-not-have".into(),
            optin_window_ms: 12_000,
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let mut settings = LocalSettings::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        format!("e2ed-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        "127.0.0.1:0".parse().unwrap(),
    )
    .with(env::GRAPH_API_BASE_URL, sandbox.base_url.clone())
    .with(env::FACEBOOK_WEB_BASE_URL, sandbox.base_url.clone())
    .with(env::OPTIN_WINDOW_SECONDS, "12")
    .with(env::ALERT_LEAD_SECONDS, "6");
    settings.sweep_every = Some(Duration::from_secs(1));
    let local = LocalStack::start(settings, &sdk).await.unwrap();
    sandbox.set_webhook_url(&format!("{}/webhooks/messenger", local.api_base_url));
    let inbox = AlertInbox::subscribe(
        &sdk,
        &local.provisioned.alert_topic_arn,
        &format!("{}-inbox", local.provisioned.table_name),
    )
    .await
    .unwrap();
    let store = DynamoOptInStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        local.provisioned.table_name.clone(),
    );

    let started = Instant::now();
    let optin: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/_sandbox/optin", sandbox.base_url))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let login_id = optin["login_id"].as_str().unwrap().to_owned();
    let key = OptInKey::new(messenger_sandbox::DEFAULT_PAGE_ID, &login_id);

    // Collect alerts until the miss arrives (deadline 12 s, sweep every second).
    let mut seen = Vec::new();
    while !seen.iter().any(|(k, _)| *k == AlertKind::DeadlineMissed) {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no missed-deadline alert yet; seen {seen:?}"
        );
        for a in inbox.receive(Duration::from_secs(1)).await.unwrap() {
            let alert = a.alert.expect("one of our alerts");
            seen.push((alert.kind, started.elapsed()));
        }
    }
    eprintln!("alerts as they arrived: {seen:?}");
    let at_risk: Vec<Duration> = seen
        .iter()
        .filter(|(k, _)| *k == AlertKind::DeadlineAtRisk)
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(at_risk.len(), 1, "{seen:?}");
    let missed_at = seen
        .iter()
        .find(|(k, _)| *k == AlertKind::DeadlineMissed)
        .map(|(_, t)| *t)
        .unwrap();
    assert!(at_risk[0] < missed_at, "{seen:?}");
    assert!(
        at_risk[0] >= Duration::from_secs(5),
        "not before the alert time: {seen:?}"
    );

    let item = store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(item.state, State::Expired);
    assert!(item.alerted_at.is_some());
    assert!(sandbox.inbox().is_empty());
    let schedule = aws_sdk_scheduler::Client::new(&sdk)
        .get_schedule()
        .group_name(&local.provisioned.schedule_group)
        .name(deadline_schedule_name(&key))
        .send()
        .await;
    assert!(schedule.is_err(), "the schedule is gone");
    // Nothing more: no second at-risk or missed alert.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late: Vec<AlertKind> = inbox
        .drain(Duration::from_secs(1))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|a| a.alert.map(|a| a.kind))
        .filter(|k| matches!(k, AlertKind::DeadlineAtRisk | AlertKind::DeadlineMissed))
        .collect();
    assert!(late.is_empty(), "{late:?}");
    local.shutdown().await;
    sandbox.shutdown().await;
}
