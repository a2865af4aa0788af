//! The login adapters for real: `DynamoLoginStore` against moto (table from template.yaml) and
//! the Graph client's login calls against the Messenger sandbox.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::moto::{MotoServer, workspace_root};
use integration_tests::shared_moto;
use local_runner::provision::{Provisioned, provision};
use shared::adapters::dynamodb::logins::DynamoLoginStore;
use shared::adapters::dynamodb::table;
use shared::adapters::graph::GraphClient;
use shared::config::env;
use shared::domain::login::{
    Login, LoginRecorded, LoginSource, LoginState, Permission, StateConsumed, UserToken,
};
use shared::domain::opt_in::{Millis, OptInKey};
use shared::facebook::graph_error::GraphError;
use shared::ports::logins::{FacebookLogin, LoginStore};
use std::sync::Arc;

const SECRET_JSON: &str =
    r#"{"app_secret":"s","page_access_token":"p","client_token":"c","verify_token":"v"}"#;

struct Stack {
    _moto: Arc<MotoServer>,
    sdk: aws_config::SdkConfig,
    p: Provisioned,
}

async fn stack() -> Stack {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let name = format!("l{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let p = provision(
        &workspace_root().join("template.yaml"),
        &sdk,
        &name,
        SECRET_JSON,
    )
    .await
    .unwrap();
    Stack {
        _moto: moto,
        sdk,
        p,
    }
}

impl Stack {
    fn logins(&self) -> DynamoLoginStore {
        DynamoLoginStore::from_sdk(&self.sdk, self.p.table_name.clone())
    }

    async fn raw(
        &self,
        pk: String,
        sk: &str,
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .get_item()
            .table_name(&self.p.table_name)
            .key(table::PK, AttributeValue::S(pk))
            .key(table::SK, AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    async fn count(&self) -> usize {
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .scan()
            .table_name(&self.p.table_name)
            .send()
            .await
            .unwrap()
            .items()
            .len()
    }
}

fn login(asid: &str, at: Millis, name: Option<&str>, login_id: Option<&str>) -> Login {
    Login {
        page_id: "200".into(),
        asid: asid.into(),
        first_name: name.map(str::to_owned),
        permission: Permission::Granted,
        expected_login_id: login_id.map(str::to_owned),
        login_at: at,
        last_login_at: at,
        source: LoginSource::Callback,
        user_ref: None,
    }
}

#[tokio::test]
async fn a_user_ref_is_stored_and_kept_by_a_later_login_without_one() {
    let s = stack().await;
    let store = s.logins();
    let mut first = login("77", 1_000, Some("Ana"), Some("lid77"));
    first.user_ref = Some("cust_77".into());
    store.record_login(&first).await.unwrap();
    let later = login("77", 2_000, None, Some("lid77"));
    let LoginRecorded::Done(now) = store.record_login(&later).await.unwrap() else {
        panic!("a newer login must be recorded")
    };
    assert_eq!(now.user_ref.as_deref(), Some("cust_77"));
    let read = store.get_login("200", "77").await.unwrap().unwrap();
    assert_eq!(read.user_ref.as_deref(), Some("cust_77"));
}

#[tokio::test]
async fn logins_and_links_are_written_together_and_never_go_back_in_time() {
    let s = stack().await;
    let store = s.logins();
    let first = store
        .record_login(&login("42", 1_000, Some("Ana"), Some("lid42")))
        .await
        .unwrap();
    let LoginRecorded::Done(first) = first else {
        panic!("first login must be recorded")
    };
    assert_eq!(first.first_name.as_deref(), Some("Ana"));
    assert_eq!(first.expected_login_id.as_deref(), Some("lid42"));

    // A later login without a first name keeps the first login time and the name.
    let mut later = login("42", 2_000, None, Some("lid42"));
    later.permission = Permission::Declined;
    later.source = LoginSource::Api;
    let LoginRecorded::Done(now) = store.record_login(&later).await.unwrap() else {
        panic!("a newer login must be recorded")
    };
    assert_eq!((now.login_at, now.last_login_at), (1_000, 2_000));
    assert_eq!(now.first_name.as_deref(), Some("Ana"));
    assert_eq!(
        (now.permission, now.source),
        (Permission::Declined, LoginSource::Api)
    );

    // An older login (a slow concurrent request) is refused and changes nothing.
    let stale = store
        .record_login(&login("42", 1_500, Some("Old"), Some("lid42")))
        .await
        .unwrap();
    assert!(matches!(stale, LoginRecorded::Stale(ref l) if l.last_login_at == 2_000));
    let link = store
        .link_for(&OptInKey::new("200", "lid42"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            link.asid.as_str(),
            link.first_name.as_deref(),
            link.last_login_at
        ),
        ("42", Some("Ana"), 2_000)
    );
    assert_eq!(store.get_login("200", "42").await.unwrap(), Some(*now));
    assert_eq!(store.get_login("200", "43").await.unwrap(), None);
    assert_eq!(
        store.link_for(&OptInKey::new("200", "x")).await.unwrap(),
        None
    );

    // Keys and TTL as table.rs says.
    let raw = s
        .raw(table::login_pk("200", "42"), table::LOGIN_SK)
        .await
        .unwrap();
    assert_eq!(
        raw[table::EXPIRES_AT],
        AttributeValue::N(((2_000 + table::LOGIN_RETENTION_MS) / 1000).to_string())
    );
    assert!(
        s.raw(
            table::login_link_pk(&OptInKey::new("200", "lid42")),
            table::LOGIN_LINK_SK
        )
        .await
        .is_some()
    );

    // Without a login_id no link item is written.
    store
        .record_login(&login("7", 1, None, None))
        .await
        .unwrap();
    assert_eq!(s.count().await, 3);
}

#[tokio::test]
async fn login_states_are_single_use_and_expire() {
    let s = stack().await;
    let store = s.logins();
    let state = LoginState {
        state_hash: "a".repeat(64),
        return_to: "https://shop.example/".into(),
        redirect_uri: "https://api.example/login/callback".into(),
        created_at: 1_000,
        expires_at_ms: 601_000,
        // The website's reference travels with the state to the callback (Consumed below).
        user_ref: Some("cust_1".into()),
    };
    store.put_state(&state).await.unwrap();
    assert!(store.put_state(&state).await.is_err(), "issued once");
    let raw = s
        .raw(
            table::login_state_pk(&state.state_hash),
            table::LOGIN_STATE_SK,
        )
        .await
        .unwrap();
    assert_eq!(raw[table::EXPIRES_AT], AttributeValue::N("601".into()));

    assert_eq!(
        store
            .consume_state(&state.state_hash, 601_000)
            .await
            .unwrap(),
        StateConsumed::Expired
    );
    assert_eq!(
        store.consume_state(&"b".repeat(64), 2_000).await.unwrap(),
        StateConsumed::Unknown
    );
    assert_eq!(
        store
            .consume_state(&state.state_hash, 600_999)
            .await
            .unwrap(),
        StateConsumed::Consumed(state.clone())
    );
    assert_eq!(
        store.consume_state(&state.state_hash, 2_000).await.unwrap(),
        StateConsumed::Unknown
    );
    assert_eq!(s.count().await, 0);
}

#[tokio::test]
async fn concurrent_consumes_let_exactly_one_through() {
    let s = stack().await;
    let store = Arc::new(s.logins());
    let state = LoginState {
        state_hash: "c".repeat(64),
        return_to: "https://shop.example/".into(),
        redirect_uri: "https://api.example/login/callback".into(),
        created_at: 0,
        expires_at_ms: i64::MAX / 2,
        user_ref: None,
    };
    store.put_state(&state).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let hash = state.state_hash.clone();
            tokio::spawn(async move { store.consume_state(&hash, 1).await.unwrap() })
        })
        .collect();
    let mut consumed = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), StateConsumed::Consumed(_)) {
            consumed += 1;
        }
    }
    assert_eq!(consumed, 1);
}

#[tokio::test]
async fn the_graph_client_speaks_the_sandboxs_login_api() {
    use messenger_sandbox as sb;
    let sandbox = sb::start(sb::SandboxConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = shared::adapters::memory::config::test_config(&[(
        env::GRAPH_API_BASE_URL,
        &sandbox.base_url,
    )]);
    let secrets = shared::config::secrets::Secrets::from_json(&format!(
        r#"{{"app_secret":"{}","page_access_token":"{}","client_token":"{}","verify_token":"v"}}"#,
        sb::DEFAULT_APP_SECRET,
        sb::DEFAULT_PAGE_ACCESS_TOKEN,
        sb::DEFAULT_CLIENT_TOKEN
    ))
    .unwrap();
    let graph = GraphClient::new(&config, &secrets).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect_uri = "https://api.example/login/callback";
    let dialog = shared::facebook::dialog::login_dialog_url(
        &shared::adapters::memory::config::test_config(&[(
            env::FACEBOOK_WEB_BASE_URL,
            &sandbox.base_url,
        )]),
        redirect_uri,
        "st",
    )
    .unwrap();
    let back = http
        .get(format!("{dialog}&sandbox_choice=allow&sandbox_asid=31337&sandbox_first_name=Ana&sandbox_webhook=none"))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    let location = reqwest::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();

    let token = graph.exchange_code(&code, redirect_uri).await.unwrap();
    let info = graph.debug_token(&token).await.unwrap();
    assert!(info.is_valid);
    assert_eq!(info.app_id.as_deref(), Some(sb::DEFAULT_APP_ID));
    assert_eq!(info.user_id.as_deref(), Some("31337"));
    let me = graph.me(&token).await.unwrap();
    assert_eq!(
        (me.id.as_str(), me.first_name.as_deref()),
        ("31337", Some("Ana"))
    );
    let rows = graph.permissions(&token).await.unwrap();
    assert_eq!(
        shared::domain::login::messenger_permission(&rows),
        Permission::Granted
    );

    // A used code: Graph's 100/36009, kept as such.
    match graph.exchange_code(&code, redirect_uri).await {
        Err(GraphError::Api { status, body }) => {
            assert_eq!(
                (status, body.code, body.error_subcode),
                (400, 100, Some(36_009))
            );
            assert_eq!(body.message, "This authorization code has been used.");
        }
        other => panic!("expected a Graph error, got {other:?}"),
    }
    // An unknown token: debug_token says not valid; /me is a 190.
    let bogus = UserToken::new("EAAbogus");
    assert!(!graph.debug_token(&bogus).await.unwrap().is_valid);
    assert!(
        matches!(graph.me(&bogus).await, Err(GraphError::Api { body, .. }) if body.code == 190)
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn granted_logins_wait_in_the_due_index_apart_from_the_opt_ins_until_settled() {
    use shared::ports::opt_ins::OptInStore;
    let s = stack().await;
    let logins = s.logins();
    logins
        .record_login(&login("1", 10, Some("Ana"), Some("lid-1")))
        .await
        .unwrap();
    let mut declined = login("2", 10, None, Some("lid-2"));
    declined.permission = Permission::Declined;
    logins.record_login(&declined).await.unwrap();
    logins
        .record_login(&login("3", 10, None, None))
        .await
        .unwrap();
    logins
        .record_login(&login("4", 30, None, Some("lid-4")))
        .await
        .unwrap();

    assert!(logins.waiting_for_opt_in(9, 10).await.unwrap().is_empty());
    let waiting = logins.waiting_for_opt_in(10, 10).await.unwrap();
    assert_eq!(
        waiting.iter().map(|l| l.asid.as_str()).collect::<Vec<_>>(),
        ["1"]
    );
    assert_eq!(waiting[0].first_name.as_deref(), Some("Ana"));
    // A later login keeps the first grant time.
    logins
        .record_login(&login("1", 20, None, Some("lid-1")))
        .await
        .unwrap();
    assert_eq!(logins.waiting_for_opt_in(10, 10).await.unwrap().len(), 1);
    assert_eq!(logins.waiting_for_opt_in(100, 10).await.unwrap().len(), 2);
    // The opt-in sweep shares the index but never reads the waiting LOGINs.
    let opt_ins = shared::adapters::dynamodb::opt_ins::DynamoOptInStore::new(
        aws_sdk_dynamodb::Client::new(&s.sdk),
        s.p.table_name.clone(),
    );
    assert!(
        opt_ins
            .due_for_attention(i64::MAX, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Alerted once, by a conditional mark.
    assert!(
        logins
            .stop_waiting_for_opt_in("200", "1", Some(70))
            .await
            .unwrap()
    );
    assert!(
        !logins
            .stop_waiting_for_opt_in("200", "1", Some(71))
            .await
            .unwrap()
    );
    let raw = s
        .raw(table::login_pk("200", "1"), table::LOGIN_SK)
        .await
        .unwrap();
    assert_eq!(
        raw[table::ORPHAN_ALERTED_AT],
        AttributeValue::N("70".into())
    );
    assert!(!raw.contains_key(table::DUE_SHARD) && !raw.contains_key(table::DUE_AT));
    // A later login waits again, but is never alerted twice; settling clears it.
    logins
        .record_login(&login("1", 80, None, Some("lid-1")))
        .await
        .unwrap();
    assert!(
        !logins
            .stop_waiting_for_opt_in("200", "1", Some(90))
            .await
            .unwrap()
    );
    assert!(
        logins
            .stop_waiting_for_opt_in("200", "1", None)
            .await
            .unwrap()
    );
    // Its opt-in arrived: settled without alert. Unknown LOGINs are not created by settling.
    assert!(
        logins
            .stop_waiting_for_opt_in("200", "4", None)
            .await
            .unwrap()
    );
    let before = s.count().await;
    assert!(
        !logins
            .stop_waiting_for_opt_in("200", "nobody", None)
            .await
            .unwrap()
    );
    assert!(
        !logins
            .stop_waiting_for_opt_in("200", "nobody", Some(1))
            .await
            .unwrap()
    );
    assert_eq!(s.count().await, before);
    assert!(
        logins
            .waiting_for_opt_in(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A decline after a grant stops the wait.
    logins
        .record_login(&login("5", 100, None, Some("lid-5")))
        .await
        .unwrap();
    let mut revoked = login("5", 101, None, Some("lid-5"));
    revoked.permission = Permission::Declined;
    logins.record_login(&revoked).await.unwrap();
    assert!(
        logins
            .waiting_for_opt_in(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
