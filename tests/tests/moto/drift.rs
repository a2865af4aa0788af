//! The drift check's status items on DynamoDB (moto), against the in-memory twin: the same
//! answers for the same sequence of writes, and one claim per day among concurrent sweeps.

use integration_tests::moto::{MotoServer, workspace_root};
use integration_tests::shared_moto;
use local_runner::provision::provision;
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::ports::drift::{DriftStatusStore, StatusChange};
use std::sync::Arc;

const PAGE: &str = "200000000000002";

/// A store on a fresh table, with the moto server kept alive as long as it.
async fn dynamo_store() -> (Arc<MotoServer>, DynamoOptInStore) {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let stack = format!("d{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let p = provision(&workspace_root().join("template.yaml"), &sdk, &stack, "{}")
        .await
        .unwrap_or_else(|e| panic!("provisioning from template.yaml failed: {e}"));
    let store = DynamoOptInStore::new(aws_sdk_dynamodb::Client::new(&sdk), p.table_name);
    (moto, store)
}

/// The answers of `store` to one sequence of claims and status records.
async fn script(store: &dyn DriftStatusStore) -> (Vec<bool>, Vec<StatusChange>) {
    let mut claims = Vec::new();
    for day in ["2026-11-24", "2026-11-24", "2026-11-23", "2026-11-25"] {
        claims.push(store.claim_drift_day(PAGE, day, 1).await.unwrap());
    }
    let mut changes = Vec::new();
    for (check, failing) in [
        ("page_token", false),
        ("page_token", true),
        ("page_token", true),
        ("graph_version", true),
        ("page_token", false),
        ("page_token", false),
        ("page_token", true),
    ] {
        changes.push(
            store
                .record_drift_status(PAGE, check, failing, 2)
                .await
                .unwrap(),
        );
    }
    (claims, changes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_items_on_dynamodb_answer_as_the_twin() {
    use StatusChange::*;
    let (_moto, store) = dynamo_store().await;
    let dynamo = script(&store).await;
    let twin = script(&MemoryOptInStore::new()).await;
    assert_eq!(dynamo, twin);
    assert_eq!(
        dynamo,
        (
            vec![true, false, false, true],
            vec![
                Unchanged, NewProblem, Unchanged, NewProblem, Recovered, Unchanged, NewProblem
            ]
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sweeps_claim_a_day_once() {
    let (_moto, store) = dynamo_store().await;
    let store = Arc::new(store);
    let claims = futures::future::join_all((0..8).map(|_| {
        let store = store.clone();
        async move { store.claim_drift_day(PAGE, "2026-11-24", 1).await.unwrap() }
    }))
    .await;
    assert_eq!(claims.iter().filter(|c| **c).count(), 1, "{claims:?}");
}
