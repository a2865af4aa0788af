//! A fresh stack: the Page token's secret still holds the template's empty placeholder (issue 13,
//! "Until the secret is filled, every function exits at cold start"). The sender starts anyway,
//! alerts once, leaves every record of its batches for a retry (untouched, no panic), and sends
//! them once the operator fills the secret, without a new cold start.

use crate::twins::Twins;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use sender::{Deps, Sender};
use shared::adapters::memory::config::test_config;
use shared::adapters::secrets::{MemorySecretSource, SecretSource};
use shared::bootstrap::{Unconfigured, UntilConfigured, build_deps};
use shared::config::secrets::{AppSecretOnly, PageTokenSecret, SecretView};
use shared::domain::alert::AlertKind;
use shared::domain::jobs::SendJob;
use shared::domain::opt_in::{HOUR_MS, OptIn, OptInKey, State};
use shared::ports::opt_ins::OptInStore;
use std::sync::Arc;
use std::time::Duration;

const NOW: i64 = 1_795_536_000_000;
const PAGE: &str = "200000000000002";
/// template.yaml's `PageTokenSecret` after the first deploy.
const PAGE_TOKEN_PLACEHOLDER: &str = r#"{"page_access_token":""}"#;

/// Reads a secret and parses it as `T`, as `load_secret_view` does.
async fn view<T: SecretView>(source: &MemorySecretSource) -> Result<T, String> {
    let json = source.fetch().await.map_err(|e| e.to_string())?;
    T::from_json(&json).map_err(|e| e.to_string())
}

/// The Lambda's wiring (`Sender::from_aws`) over secrets the test edits and the twins.
async fn sender(twins: &Twins, page_token: Arc<MemorySecretSource>, retry: Duration) -> Sender {
    let app = MemorySecretSource::new(r#"{"app_secret":"a","verify_token":"v"}"#);
    let ports = twins.ports();
    let build = build_deps(move || {
        let (app, page_token, ports) = (app.clone(), page_token.clone(), ports.clone());
        async move {
            view::<AppSecretOnly>(&app).await?;
            view::<PageTokenSecret>(&page_token).await?;
            Ok::<_, String>(Deps::from_ports(test_config(&[]), &ports))
        }
    });
    Sender::new(
        UntilConfigured::start(
            build,
            retry,
            Unconfigured {
                function: "sender",
                meanwhile: sender::WHILE_NOT_CONFIGURED,
                page_id: PAGE,
                alerts: &*twins.alerts,
            },
        )
        .await,
    )
}

fn batch(records: &[(&str, &str)]) -> SqsEvent {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "eventSource": "aws:sqs"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

fn failed(r: &SqsBatchResponse) -> Vec<&str> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

async fn opt_in(twins: &Twins) -> (OptInKey, String) {
    let o = OptIn::new(
        OptInKey::new(PAGE, "L1"),
        Some(NOW),
        NOW,
        24 * HOUR_MS,
        2 * HOUR_MS,
    );
    twins.store.create_opt_in(&o).await.unwrap();
    let job = serde_json::to_string(&SendJob::for_key(&o.key())).unwrap();
    (o.key(), job)
}

#[tokio::test]
async fn a_page_token_not_filled_leaves_the_records_for_a_retry_without_panicking() {
    let twins = Twins::at(NOW);
    let (key, job) = opt_in(&twins).await;
    let page_token = MemorySecretSource::new(PAGE_TOKEN_PLACEHOLDER);
    let sender = sender(&twins, page_token, Duration::from_secs(3600)).await;

    for _ in 0..2 {
        let r = sender
            .handle(batch(&[("m1", &job), ("m2", "not a job")]))
            .await;
        assert_eq!(failed(&r), ["m1", "m2"]);
    }
    // Nothing was claimed or sent: the record comes back as it was.
    assert!(twins.messenger.sent().is_empty());
    let item = twins.store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!((item.state, item.attempts), (State::OptedIn, 0));
    // One alert for the cold start, naming the empty field.
    let alerts = twins.alerts.published();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, AlertKind::NotConfigured);
    assert!(
        alerts[0].detail.contains("page_access_token is empty"),
        "{}",
        alerts[0].detail
    );
    assert!(alerts[0].detail.contains("dead-letter queue"));
}

#[tokio::test]
async fn filling_the_page_token_sends_the_waiting_records() {
    let twins = Twins::at(NOW);
    let (key, job) = opt_in(&twins).await;
    let page_token = MemorySecretSource::new(PAGE_TOKEN_PLACEHOLDER);
    let sender = sender(&twins, page_token.clone(), Duration::ZERO).await;
    assert_eq!(failed(&sender.handle(batch(&[("m1", &job)])).await), ["m1"]);

    page_token.set(r#"{"page_access_token":"filled"}"#);
    let r = sender.handle(batch(&[("m1", &job)])).await;
    assert!(failed(&r).is_empty());
    assert_eq!(twins.messenger.sent().len(), 1);
    let item = twins.store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(item.state, State::Sent);
    assert_eq!(
        twins.alerts.published().len(),
        1,
        "no alert once configured"
    );
}
