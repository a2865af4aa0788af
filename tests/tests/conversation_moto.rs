//! `ConversationStore` on DynamoDB (moto): PSID links and the PSID lookup, and opt-outs after them.

use integration_tests::moto::workspace_root;
use integration_tests::shared_moto;
use local_runner::provision::provision;
use shared::adapters::dynamodb::DynamoOptInStore;
use shared::domain::{OptIn, OptInKey, State};
use shared::ports::{ConversationStore, OptInStore};

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
