//! `ConversationStore` on DynamoDB (moto): PSID links and the PSID lookup, and opt-outs after them.

use integration_tests::moto::workspace_root;
use integration_tests::shared_moto;
use local_runner::provision::provision;
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::domain::opt_in::{OptIn, OptInKey, State};
use shared::ports::conversations::ConversationStore;
use shared::ports::opt_ins::OptInStore;

const SECRET_JSON: &str =
    r#"{"app_secret":"a","page_access_token":"p","client_token":"c","verify_token":"v"}"#;

#[tokio::test]
async fn psid_links_are_stored_found_and_only_for_existing_opt_ins() {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let stack = format!("c{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let p = provision(
        &workspace_root().join("template.yaml"),
        &sdk,
        &stack,
        SECRET_JSON,
    )
    .await
    .unwrap();
    let store = DynamoOptInStore::new(aws_sdk_dynamodb::Client::new(&sdk), p.table_name.clone());
    let key = OptInKey::new("200", "L1");
    store
        .create_opt_in(&OptIn::new(key.clone(), Some(1_000), 1_000, 86_400_000, 0))
        .await
        .unwrap();

    assert!(store.link_psid(&key, "PSID1", 5_000).await.unwrap());
    let item = store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(item.psid.as_deref(), Some("PSID1"));
    assert_eq!(item.last_user_message_at, Some(5_000));
    assert_eq!(item.state, State::OptedIn);
    assert_eq!(
        store.opt_in_for_psid("200", "PSID1").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.opt_in_for_psid("200", "OTHER").await.unwrap(), None);
    assert_eq!(
        store.opt_in_for_psid("999", "PSID1").await.unwrap(),
        None,
        "PSIDs are per Page"
    );

    // No link, and no lookup item, for an opt-in that does not exist.
    let ghost = OptInKey::new("200", "GHOST");
    assert!(!store.link_psid(&ghost, "PSID2", 6_000).await.unwrap());
    assert_eq!(store.opt_in_for_psid("200", "PSID2").await.unwrap(), None);
    assert!(
        store.get_opt_in(&ghost).await.unwrap().is_none(),
        "not created by the link"
    );

    // A later message updates the time; the opt-out is then refused by the claim.
    assert!(store.link_psid(&key, "PSID1", 7_000).await.unwrap());
    assert!(
        store
            .opt_out(&key, "stop_keyword", 7_001)
            .await
            .unwrap()
            .is_done()
    );
    assert!(
        !store
            .claim_for_send(&key, "s", 7_002, 60_000)
            .await
            .unwrap()
            .is_done()
    );
    let item = store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(
        (item.state, item.last_user_message_at),
        (State::OptedOut, Some(7_000))
    );
}

/// A fresh table; the moto handle must live as long as the test (the server stops with it).
async fn provisioned() -> (
    std::sync::Arc<integration_tests::moto::MotoServer>,
    aws_sdk_dynamodb::Client,
    String,
) {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let stack = format!("c{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let p = provision(
        &workspace_root().join("template.yaml"),
        &sdk,
        &stack,
        SECRET_JSON,
    )
    .await
    .unwrap();
    (moto, aws_sdk_dynamodb::Client::new(&sdk), p.table_name)
}

/// Whether the table holds an item with this partition key.
pub(crate) async fn exists(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
    sk: &str,
) -> bool {
    use aws_sdk_dynamodb::types::AttributeValue;
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .is_some()
}

#[tokio::test]
async fn a_psid_link_is_never_written_for_an_erased_opt_in() {
    use shared::adapters::dynamodb::table;
    use shared::domain::erasure::{KnownOptIn, PersonItems};
    use shared::ports::erasure::ErasureStore;
    let (_moto, client, table_name) = provisioned().await;
    let store = DynamoOptInStore::new(client.clone(), table_name.clone());
    let erasure =
        shared::adapters::dynamodb::erasure::DynamoErasureStore::new(client.clone(), &table_name);
    let key = OptInKey::new("200", "L9");
    store
        .create_opt_in(&OptIn::new(key.clone(), Some(1_000), 1_000, 86_400_000, 0))
        .await
        .unwrap();
    assert!(store.link_psid(&key, "PSID9", 2_000).await.unwrap());
    let psid_pk = table::psid_pk("200", "PSID9");
    assert!(exists(&client, &table_name, psid_pk.clone(), table::PSID_SK).await);

    let person = PersonItems {
        page_id: "200".into(),
        asid: "42".into(),
        opt_ins: vec![KnownOptIn {
            key: key.clone(),
            marker: "m9".into(),
        }],
    };
    let erased = erasure.erase(&person, 3_000).await.unwrap();
    assert_eq!(
        erased, 2,
        "the opt-in and its PSID link (found from the deleted item)"
    );
    assert!(!exists(&client, &table_name, psid_pk.clone(), table::PSID_SK).await);
    assert_eq!(erasure.erased_at("m9").await.unwrap(), Some(3_000));

    // A message arriving after the deletion: the transaction refuses, nothing reappears.
    assert!(!store.link_psid(&key, "PSID9", 4_000).await.unwrap());
    assert!(!exists(&client, &table_name, psid_pk, table::PSID_SK).await);
    assert!(store.get_opt_in(&key).await.unwrap().is_none());
    assert_eq!(store.opt_in_for_psid("200", "PSID9").await.unwrap(), None);
}

#[tokio::test]
async fn pending_stops_are_kept_once_read_and_cleared() {
    use shared::ports::conversations::PendingStop;
    let (_moto, client, table_name) = provisioned().await;
    let store = DynamoOptInStore::new(client, table_name);
    let stop = PendingStop {
        page_id: "200".into(),
        psid: "PSID5".into(),
        source: "stop_keyword".into(),
        received_at: 1_000,
    };
    assert!(store.keep_pending_stop(&stop).await.unwrap());
    let later = PendingStop {
        received_at: 2_000,
        source: "stop_notifications".into(),
        ..stop.clone()
    };
    assert!(
        !store.keep_pending_stop(&later).await.unwrap(),
        "the first stop is kept"
    );
    assert_eq!(
        store.pending_stop("200", "PSID5").await.unwrap(),
        Some(stop)
    );
    assert_eq!(store.pending_stop("201", "PSID5").await.unwrap(), None);
    store.clear_pending_stop("200", "PSID5").await.unwrap();
    store.clear_pending_stop("200", "PSID5").await.unwrap();
    assert_eq!(store.pending_stop("200", "PSID5").await.unwrap(), None);
}

#[tokio::test]
async fn an_opt_out_records_the_state_it_found() {
    let (_moto, client, table_name) = provisioned().await;
    let store = DynamoOptInStore::new(client, table_name);
    let sending = OptInKey::new("200", "SENDING1");
    let queued = OptInKey::new("200", "QUEUED1");
    for key in [&sending, &queued] {
        store
            .create_opt_in(&OptIn::new(key.clone(), Some(1_000), 1_000, 86_400_000, 0))
            .await
            .unwrap();
    }
    assert!(
        store
            .claim_for_send(&sending, "s", 2_000, 60_000)
            .await
            .unwrap()
            .is_done()
    );
    let shared::ports::opt_ins::Transitioned::Done(out) =
        store.opt_out(&sending, "api", 3_000).await.unwrap()
    else {
        panic!("opt-out refused");
    };
    assert_eq!(
        (out.state, out.opted_out_from),
        (State::OptedOut, Some(State::Sending)),
        "in flight"
    );
    let shared::ports::opt_ins::Transitioned::Done(out) =
        store.opt_out(&queued, "api", 3_000).await.unwrap()
    else {
        panic!("opt-out refused");
    };
    assert_eq!(out.opted_out_from, Some(State::OptedIn));
    // Refused once terminal: the recorded state stays.
    assert!(
        !store
            .opt_out(&sending, "api", 4_000)
            .await
            .unwrap()
            .is_done()
    );
    assert_eq!(
        store
            .get_opt_in(&sending)
            .await
            .unwrap()
            .unwrap()
            .opted_out_from,
        Some(State::Sending)
    );
}
