//! Issue 12 on DynamoDB (moto): an opt-out after the opt-in ended (SENT, EXPIRED, UNREACHABLE) is
//! recorded by one conditional write — once, keeping the state and the SENT evidence — and refused
//! where [`Event::OptOutAfterEnd`] does not apply (a live opt-in, one already opted out, none).

use integration_tests::moto::workspace_root;
use integration_tests::shared_moto;
use local_runner::provision::provision;
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::domain::opt_in::{Event, OptIn, OptInKey, SendOutcome, State};
use shared::ports::opt_ins::{OptInStore, Transitioned};

const SECRET_JSON: &str =
    r#"{"app_secret":"a","page_access_token":"p","client_token":"c","verify_token":"v"}"#;

/// The store over a fresh stack; the moto handle keeps the server up while the test holds it.
async fn store() -> (
    std::sync::Arc<integration_tests::moto::MotoServer>,
    DynamoOptInStore,
) {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let stack = format!("o{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let p = provision(
        &workspace_root().join("template.yaml"),
        &sdk,
        &stack,
        SECRET_JSON,
    )
    .await
    .unwrap();
    let store = DynamoOptInStore::new(aws_sdk_dynamodb::Client::new(&sdk), p.table_name.clone());
    (moto, store)
}

async fn opted_in(store: &DynamoOptInStore, login_id: &str) -> OptInKey {
    let o = OptIn::new(
        OptInKey::new("200", login_id),
        Some(1_000),
        1_000,
        60_000,
        0,
    );
    store.create_opt_in(&o).await.unwrap();
    o.key()
}

async fn sent(store: &DynamoOptInStore, login_id: &str) -> OptInKey {
    let key = opted_in(store, login_id).await;
    assert!(
        store
            .claim_for_send(&key, "s", 2_000, 30_000)
            .await
            .unwrap()
            .is_done()
    );
    let outcome = SendOutcome::Sent {
        message_id: "m.1".into(),
    };
    let done = store.finish_send(&key, "s", &outcome, 2_500).await.unwrap();
    assert!(done.is_done());
    key
}

#[tokio::test]
async fn an_opt_out_after_the_initial_message_is_recorded_once_and_keeps_the_evidence() {
    let (_moto, store) = store().await;
    let key = sent(&store, "L1").await;
    // The opt-out of a live opt-in is refused: SENT is not one of its sources.
    let Transitioned::Refused(Some(found)) =
        store.opt_out(&key, "stop_keyword", 3_000).await.unwrap()
    else {
        panic!("SENT is terminal");
    };
    assert!(Event::OptOutAfterEnd.sources().contains(&found.state));
    let Transitioned::Done(item) = store
        .opt_out_late(&key, "stop_keyword", 3_000)
        .await
        .unwrap()
    else {
        panic!("the opt-out after the end must be recorded");
    };
    assert_eq!(item.state, State::Sent);
    assert_eq!(
        (item.message_id.as_deref(), item.sent_at),
        (Some("m.1"), Some(2_500))
    );
    assert_eq!(
        (item.opted_out_at, item.terminal_at),
        (Some(3_000), Some(2_500))
    );
    assert_eq!(item.opt_out_source.as_deref(), Some("stop_keyword"));
    assert_eq!(item.opted_out_from, Some(State::Sent));
    assert!(item.has_opted_out());
    // Once: a second one is refused and changes nothing.
    let again = store.opt_out_late(&key, "api", 4_000).await.unwrap();
    let Transitioned::Refused(Some(kept)) = again else {
        panic!("recorded once: {again:?}");
    };
    assert_eq!(kept, item);
    assert_eq!(store.get_opt_in(&key).await.unwrap().unwrap(), *item);
}

#[tokio::test]
async fn only_ended_opt_ins_take_an_opt_out_after_the_end() {
    let (_moto, store) = store().await;
    // EXPIRED and UNREACHABLE: recorded, state kept.
    let expired = opted_in(&store, "E").await;
    assert!(store.expire(&expired, 61_000).await.unwrap().is_done());
    let done = store.opt_out_late(&expired, "api", 62_000).await.unwrap();
    let Transitioned::Done(item) = done else {
        panic!("EXPIRED: {done:?}");
    };
    assert_eq!(
        (item.state, item.opted_out_at),
        (State::Expired, Some(62_000))
    );
    let unreachable = opted_in(&store, "U").await;
    store
        .claim_for_send(&unreachable, "s", 2_000, 30_000)
        .await
        .unwrap();
    let outcome = SendOutcome::Unreachable {
        error: Default::default(),
    };
    store
        .finish_send(&unreachable, "s", &outcome, 2_100)
        .await
        .unwrap();
    let done = store
        .opt_out_late(&unreachable, "deauthorize", 3_000)
        .await
        .unwrap();
    assert!(done.is_done(), "UNREACHABLE: {done:?}");
    // A live opt-in, an opted-out one, none: refused, unchanged.
    let live = opted_in(&store, "L").await;
    let refused = store.opt_out_late(&live, "api", 3_000).await.unwrap();
    let Transitioned::Refused(Some(item)) = refused else {
        panic!("OPTED_IN: {refused:?}");
    };
    assert_eq!((item.state, item.opted_out_at), (State::OptedIn, None));
    assert!(store.opt_out(&live, "api", 3_000).await.unwrap().is_done());
    assert!(
        !store
            .opt_out_late(&live, "api", 4_000)
            .await
            .unwrap()
            .is_done()
    );
    assert_eq!(
        store.get_opt_in(&live).await.unwrap().unwrap().opted_out_at,
        Some(3_000)
    );
    let none = OptInKey::new("200", "NONE");
    assert_eq!(
        store.opt_out_late(&none, "api", 3_000).await.unwrap(),
        Transitioned::Refused(None)
    );
}

#[tokio::test]
async fn concurrent_opt_outs_after_the_end_record_one() {
    let (_moto, store) = store().await;
    let key = sent(&store, "C").await;
    let (a, b) = futures::join!(
        store.opt_out_late(&key, "stop_keyword", 5_000),
        store.opt_out_late(&key, "api", 5_001),
    );
    let done = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|t| t.is_done())
        .count();
    assert_eq!(done, 1, "exactly one writer wins");
}

#[tokio::test]
async fn a_new_consent_after_an_opt_out_after_the_end_renews_the_opt_in() {
    use shared::domain::opt_in::REDELIVERY_HORIZON_MS;
    use shared::ports::opt_ins::{ConsentGuard, Recorded};
    let (_moto, store) = store().await;
    let key = sent(&store, "R").await;
    assert!(
        store
            .opt_out_late(&key, "api", 3_000)
            .await
            .unwrap()
            .is_done()
    );
    let at = 3_000 + REDELIVERY_HORIZON_MS + 1;
    let guard = ConsentGuard {
        erasure_marker: "marker-r".into(),
        event_at: Some(at),
    };
    let again = OptIn::new(key.clone(), Some(at), at, 60_000, 0);
    let recorded = store.record_opt_in(&again, &guard).await.unwrap();
    let Recorded::Renewed(renewed) = recorded else {
        panic!("a new consent: {recorded:?}");
    };
    assert_eq!((renewed.generation, renewed.state), (1, State::OptedIn));
    assert!(!renewed.has_opted_out());
    let stored = store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(
        stored.previous_generations[0].message_id.as_deref(),
        Some("m.1")
    );
}
