//! The real AWS adapters against moto, on resources provisioned from template.yaml by the local
//! runner's provisioner. Every test uses its own uuid stack name, so tests share one moto server.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::moto::{MotoServer, workspace_root};
use integration_tests::shared_moto;
use local_runner::provision::{Provisioned, provision};
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::adapters::dynamodb::table;
use shared::adapters::scheduler::{EventBridgeDeadlineScheduler, parse_at_expression};
use shared::adapters::secrets::load_secrets;
use shared::adapters::sns::SnsAlerts;
use shared::adapters::sqs::SqsSendQueue;
use shared::domain::alert::{Alert, AlertKind};
use shared::domain::attention::first_attention;
use shared::domain::jobs::{AlertInput, DeadlineCheck, SendJob, deadline_schedule_name};
use shared::domain::opt_in::SendOutcome;
use shared::domain::opt_in::{LastError, Millis, OptIn, OptInKey, State};
use shared::ports::alerts::Alerts;
use shared::ports::opt_ins::{Created, OptInStore, Transitioned};
use shared::ports::queue::SendQueue;
use shared::ports::scheduler::DeadlineScheduler;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SECRET_JSON: &str = r#"{"app_secret":"app-s3cret","page_access_token":"page-tok","client_token":"client-tok","verify_token":"verify-tok","api_key_hashes":["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]}"#;

struct Stack {
    _moto: Arc<MotoServer>,
    sdk: aws_config::SdkConfig,
    p: Provisioned,
    stack_name: String,
}

fn template_path() -> PathBuf {
    workspace_root().join("template.yaml")
}

fn unique_stack() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A fresh stack provisioned from the real template.yaml in the shared moto.
async fn stack() -> Stack {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let stack_name = unique_stack();
    let p = provision(&template_path(), &sdk, &stack_name, SECRET_JSON)
        .await
        .unwrap_or_else(|e| panic!("provisioning from template.yaml failed: {e}"));
    Stack {
        _moto: moto,
        sdk,
        p,
        stack_name,
    }
}

impl Stack {
    fn store(&self) -> DynamoOptInStore {
        DynamoOptInStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            self.p.table_name.clone(),
        )
    }

    /// The item exactly as stored.
    async fn raw_item(&self, key: &OptInKey) -> HashMap<String, AttributeValue> {
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .get_item()
            .table_name(&self.p.table_name)
            .key(table::PK, AttributeValue::S(table::opt_in_pk(key)))
            .key(table::SK, AttributeValue::S(table::OPTIN_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("item exists")
    }
}

/// An opt-in whose window is [0, deadline) and whose alert time is `alert_at`.
fn opt_in(login_id: &str, deadline: Millis, alert_at: Millis) -> OptIn {
    let mut o = OptIn::new(OptInKey::new("1000", login_id), Some(0), 0, deadline, 0);
    o.alert_at = alert_at;
    o
}

fn done(t: Transitioned) -> OptIn {
    match t {
        Transitioned::Done(o) => *o,
        Transitioned::Refused(o) => panic!("expected Done, got Refused({o:?})"),
    }
}

fn refused(t: Transitioned) -> Option<OptIn> {
    match t {
        Transitioned::Refused(o) => o.map(|o| *o),
        Transitioned::Done(o) => panic!("expected Refused, got Done({o:?})"),
    }
}

fn sent(id: &str) -> SendOutcome {
    SendOutcome::Sent {
        message_id: id.into(),
    }
}

fn error(code: i64) -> LastError {
    LastError {
        code,
        subcode: Some(2_018_001),
        fbtrace_id: Some("trace".into()),
        message: "nope".into(),
    }
}

// ------------------------------------------------------------------------------- provisioning

#[tokio::test]
async fn the_real_template_provisions_the_layout_of_table_rs_and_twice_is_fine() {
    let s = stack().await;
    // Same stack again: everything is reused.
    let again = provision(&template_path(), &s.sdk, &s.stack_name, SECRET_JSON)
        .await
        .unwrap();
    assert_eq!(again, s.p);

    let p = &s.p;
    assert_eq!(p.table_name, format!("{}-OptInTable", s.stack_name));
    assert_eq!(p.schedule_group, format!("{}-deadlines", s.stack_name));
    assert_eq!(p.sweep_rate.as_deref(), Some("rate(15 minutes)"));
    assert_eq!(p.max_receive_count, 5);
    assert!(p.send_queue_visibility_timeout_s >= 30);
    // The local event source ends invocations at the template's timeout (30 s): below the send
    // lease (SEND_LEASE_SECONDS, 60 s), so a live sender never outlives its claim.
    assert_eq!(p.sender_timeout_s, 30);
    assert!(p.send_queue_visibility_timeout_s as u64 >= p.sender_timeout_s);
    assert!(
        p.send_queue_arn
            .ends_with(&format!(":{}-SendQueue", s.stack_name))
    );
    assert!(p.scheduler_dlq_arn.ends_with("-SchedulerDeadLetterQueue"));
    assert!(p.alert_topic_arn.starts_with("arn:aws:sns:us-east-1:"));

    let ddb = aws_sdk_dynamodb::Client::new(&s.sdk);
    let t = ddb
        .describe_table()
        .table_name(&p.table_name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<(String, String)> = t
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (table::PK.into(), "HASH".into()),
            (table::SK.into(), "RANGE".into())
        ]
    );
    let gsi = t
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some(table::DUE_INDEX))
        .expect("due-index exists");
    let gsi_keys: Vec<(String, String)> = gsi
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        gsi_keys,
        [
            (table::DUE_SHARD.into(), "HASH".into()),
            (table::DUE_AT.into(), "RANGE".into())
        ]
    );
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&p.table_name)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name(), Some(table::EXPIRES_AT));
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );

    // The send queue's redrive policy points at the send DLQ.
    let sqs = aws_sdk_sqs::Client::new(&s.sdk);
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&p.send_queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let get = |n: &str| attrs[&aws_sdk_sqs::types::QueueAttributeName::from(n)].clone();
    assert_eq!(
        get("VisibilityTimeout"),
        p.send_queue_visibility_timeout_s.to_string()
    );
    let redrive: serde_json::Value = serde_json::from_str(&get("RedrivePolicy")).unwrap();
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{}-SendDeadLetterQueue", s.stack_name))
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    assert!(p.send_dlq_url.ends_with("-SendDeadLetterQueue"));

    // The schedule group exists.
    aws_sdk_scheduler::Client::new(&s.sdk)
        .get_schedule_group()
        .name(&p.schedule_group)
        .send()
        .await
        .unwrap();
}

const FIXTURE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  SweepRate: { Type: String, Default: rate(7 minutes) }
  Visibility: { Type: Number, Default: 42 }
  Email: { Type: String, Default: "" }
Conditions:
  HasEmail: !Not [!Equals [!Ref Email, ""]]
Resources:
  SendQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !Ref Visibility
      MessageRetentionPeriod: 345600
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt SendDeadLetterQueue.Arn
        maxReceiveCount: 4
  SendDeadLetterQueue:
    Type: AWS::SQS::Queue
  SchedulerDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties: { MessageRetentionPeriod: 1209600 }
  OnlyWithEmail:
    Type: AWS::SQS::Queue
    Condition: HasEmail
  OptInTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - { AttributeName: pk, AttributeType: S }
        - { AttributeName: sk, AttributeType: S }
        - { AttributeName: due_shard, AttributeType: S }
        - { AttributeName: due_at, AttributeType: N }
      KeySchema:
        - { AttributeName: pk, KeyType: HASH }
        - { AttributeName: sk, KeyType: RANGE }
      GlobalSecondaryIndexes:
        - IndexName: due-index
          KeySchema:
            - { AttributeName: due_shard, KeyType: HASH }
            - { AttributeName: due_at, KeyType: RANGE }
          Projection: { ProjectionType: ALL }
      TimeToLiveSpecification: { AttributeName: expires_at, Enabled: true }
  DeadlineScheduleGroup:
    Type: AWS::Scheduler::ScheduleGroup
    Properties:
      Name: !Sub "${AWS::StackName}-deadlines"
  AlertTopic:
    Type: AWS::SNS::Topic
  AppSecret:
    Type: AWS::SecretsManager::Secret
    Properties:
      GenerateSecretString: { PasswordLength: 8 }
  SomeFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          X: !If [HasEmail, a, b]
"#;

fn write_fixture(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("template-{}.yaml", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_contract_fixture_template_provisions_with_resolved_intrinsics() {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let stack_name = unique_stack();
    let path = write_fixture(FIXTURE);
    let first = provision(&path, &sdk, &stack_name, SECRET_JSON).await;
    let second = provision(&path, &sdk, &stack_name, SECRET_JSON).await;
    std::fs::remove_file(&path).ok();
    let p = first.unwrap();
    assert_eq!(second.unwrap(), p);
    assert_eq!(p.send_queue_visibility_timeout_s, 42);
    assert_eq!(p.max_receive_count, 4);
    assert_eq!(
        p.sender_timeout_s, 3,
        "no SenderFunction: Lambda's default timeout"
    );
    assert_eq!(p.sweep_rate.as_deref(), Some("rate(7 minutes)"));
    assert_eq!(p.schedule_group, format!("{stack_name}-deadlines"));
    assert_eq!(p.table_name, format!("{stack_name}-OptInTable"));

    // The conditional queue was skipped (its condition is false for the defaults).
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let missing = sqs
        .get_queue_url()
        .queue_name(format!("{stack_name}-OnlyWithEmail"))
        .send()
        .await;
    assert!(missing.is_err(), "OnlyWithEmail must not be created");
    // The secret holds the given value.
    let secrets = load_secrets(&aws_sdk_secretsmanager::Client::new(&sdk), &p.secret_id)
        .await
        .unwrap();
    assert_eq!(secrets.verify_token.expose(), "verify-tok");
}

#[tokio::test]
async fn template_problems_name_the_resource() {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let broken = FIXTURE.replace("!GetAtt SendDeadLetterQueue.Arn", "!GetAtt Nowhere.Arn");
    let path = write_fixture(&broken);
    let e = provision(&path, &sdk, &unique_stack(), SECRET_JSON).await;
    std::fs::remove_file(&path).ok();
    let e = e.unwrap_err().to_string();
    assert!(e.contains("SendQueue") && e.contains("Nowhere.Arn"), "{e}");

    let missing = FIXTURE.replace("  AlertTopic:\n    Type: AWS::SNS::Topic\n", "");
    let path = write_fixture(&missing);
    let e = provision(&path, &sdk, &unique_stack(), SECRET_JSON).await;
    std::fs::remove_file(&path).ok();
    let e = e.unwrap_err().to_string();
    assert!(e.contains("AlertTopic"), "{e}");

    let e = provision(Path::new("/nonexistent/template.yaml"), &sdk, "x", "{}")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/template.yaml"), "{e}");
}

// ------------------------------------------------------------------------------- DynamoDB

#[tokio::test]
async fn create_is_conditional_and_a_duplicate_returns_the_stored_copy() {
    let s = stack().await;
    let store = s.store();
    let o = opt_in("create-1", 1_000_000, 900_000);
    let key = o.key();
    assert_eq!(store.get_opt_in(&key).await.unwrap(), None);
    assert_eq!(store.create_opt_in(&o).await.unwrap(), Created::New);

    let mut again = o.clone();
    again.created_at = 5;
    again.deadline_at = 7;
    match store.create_opt_in(&again).await.unwrap() {
        Created::AlreadyExists(stored) => assert_eq!(*stored, o),
        Created::New => panic!("a duplicate must not be created"),
    }
    assert_eq!(store.get_opt_in(&key).await.unwrap(), Some(o.clone()));

    let raw = s.raw_item(&key).await;
    assert_eq!(raw[table::PK], AttributeValue::S(table::opt_in_pk(&key)));
    assert_eq!(raw[table::SK], AttributeValue::S(table::OPTIN_SK.into()));
    // Created: watched by its job and schedule, not in the due index (no index write).
    assert!(!raw.contains_key(table::DUE_SHARD) && !raw.contains_key(table::DUE_AT));
    assert_eq!(
        raw[table::EXPIRES_AT],
        AttributeValue::N(table::expires_at_seconds(o.deadline_at).to_string())
    );
    assert_eq!(raw["state"], AttributeValue::S("OPTED_IN".into()));
    // Watched: its shard and attention time, the keys of the due index.
    done(store.watch_from(&key, 123).await.unwrap());
    let raw = s.raw_item(&key).await;
    assert_eq!(
        raw[table::DUE_SHARD],
        AttributeValue::S(table::due_shard(&key))
    );
    assert_eq!(raw[table::DUE_AT], AttributeValue::N("123".into()));
}

fn consent(marker: &str, event_at: Millis) -> shared::ports::opt_ins::ConsentGuard {
    shared::ports::opt_ins::ConsentGuard {
        erasure_marker: marker.into(),
        event_at: Some(event_at),
    }
}

#[tokio::test]
async fn an_opt_in_racing_a_deletion_is_refused_by_the_erasure_marker() {
    use shared::ports::opt_ins::Recorded;
    let s = stack().await;
    let store = s.store();
    // What a deletion writes first: the marker, erased at 1000.
    aws_sdk_dynamodb::Client::new(&s.sdk)
        .put_item()
        .table_name(&s.p.table_name)
        .item(table::PK, AttributeValue::S(table::erased_pk("marker-1")))
        .item(table::SK, AttributeValue::S(table::ERASED_SK.into()))
        .item("erased_at", AttributeValue::N("1000".into()))
        .send()
        .await
        .unwrap();
    let before = OptIn::new(
        OptInKey::new("1000", "erased-1"),
        Some(1000),
        1000,
        60_000,
        0,
    );
    assert_eq!(
        store
            .record_opt_in(&before, &consent("marker-1", 1000))
            .await
            .unwrap(),
        Recorded::Erased
    );
    assert_eq!(store.get_opt_in(&before.key()).await.unwrap(), None);
    // A consent given after the deletion is new; another person's marker does not matter.
    let after = OptIn::new(before.key(), Some(1001), 1001, 60_000, 0);
    assert_eq!(
        store
            .record_opt_in(&after, &consent("marker-1", 1001))
            .await
            .unwrap(),
        Recorded::New
    );
    assert_eq!(
        store.get_opt_in(&after.key()).await.unwrap(),
        Some(after.clone())
    );
    // A duplicate: the stored copy.
    assert_eq!(
        store
            .record_opt_in(&after, &consent("marker-1", 1001))
            .await
            .unwrap(),
        Recorded::AlreadyExists(Box::new(after))
    );
}

#[tokio::test]
async fn a_new_consent_after_an_opt_out_is_a_new_generation_written_conditionally() {
    use shared::domain::opt_in::REDELIVERY_HORIZON_MS;
    use shared::ports::opt_ins::Recorded;
    let s = stack().await;
    let store = s.store();
    let first = OptIn::new(OptInKey::new("1000", "again-1"), Some(0), 0, 60_000, 0);
    let key = first.key();
    assert_eq!(
        store.record_opt_in(&first, &consent("m", 0)).await.unwrap(),
        Recorded::New
    );
    done(store.opt_out(&key, "api", 10).await.unwrap());
    // The withdrawn consent redelivered, and a consent within the horizon: unchanged.
    let horizon = 10 + REDELIVERY_HORIZON_MS;
    for event_at in [0, horizon] {
        let o = OptIn::new(key.clone(), Some(event_at), horizon + 100, 60_000, 0);
        match store
            .record_opt_in(&o, &consent("m", event_at))
            .await
            .unwrap()
        {
            Recorded::AlreadyExists(stored) => assert_eq!(stored.state, State::OptedOut),
            other => panic!("event at {event_at}: {other:?}"),
        }
    }
    // Beyond it: the next generation, concurrently delivered three times, is written once.
    let again = OptIn::new(key.clone(), Some(horizon + 1), horizon + 1, 60_000, 0);
    let guard = consent("m", horizon + 1);
    let outcomes =
        futures::future::join_all((0..3).map(|_| store.record_opt_in(&again, &guard))).await;
    let renewed: Vec<OptIn> = outcomes
        .into_iter()
        .filter_map(|o| match o.unwrap() {
            Recorded::Renewed(r) => Some(*r),
            Recorded::AlreadyExists(stored) => {
                assert_eq!(stored.generation, 1);
                None
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(renewed.len(), 1, "one new generation");
    let stored = store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(stored, renewed[0]);
    assert_eq!((stored.state, stored.generation), (State::OptedIn, 1));
    assert_eq!(stored.deadline_at, horizon + 1 + 60_000);
    assert_eq!(stored.previous_generations.len(), 1);
    assert_eq!(
        stored.previous_generations[0].opt_out_source.as_deref(),
        Some("api")
    );
    let raw = s.raw_item(&key).await;
    assert_eq!(raw["generation"], AttributeValue::N("1".into()));
    // The new generation is written whole, outside the due index (its follow-up watches it).
    assert!(!raw.contains_key(table::DUE_SHARD));
    // The new generation is claimable and sent once in its own window.
    done(
        store
            .claim_for_send(&key, "a", horizon + 2, horizon + 500)
            .await
            .unwrap(),
    );
    let sent_at = horizon + 3;
    let now = done(
        store
            .finish_send(&key, "a", &sent("m-2"), sent_at)
            .await
            .unwrap(),
    );
    assert_eq!((now.state, now.generation), (State::Sent, 1));
    // A SENT generation is never replaced, however late the next webhook.
    let later = OptIn::new(
        key.clone(),
        Some(sent_at + 10 * REDELIVERY_HORIZON_MS),
        sent_at + 10 * REDELIVERY_HORIZON_MS,
        60_000,
        0,
    );
    assert!(matches!(
        store
            .record_opt_in(&later, &consent("m", later.opted_in_at))
            .await
            .unwrap(),
        Recorded::AlreadyExists(_)
    ));
}

#[tokio::test]
async fn an_opt_out_placeholder_gives_way_to_a_consent_beyond_the_horizon() {
    use shared::domain::opt_in::REDELIVERY_HORIZON_MS;
    use shared::ports::opt_ins::Recorded;
    let s = stack().await;
    let store = s.store();
    let mut placeholder = OptIn::new(
        OptInKey::new("1000", "placeholder-1"),
        Some(50),
        50,
        60_000,
        0,
    );
    placeholder.state = State::OptedOut;
    placeholder.opted_out_at = Some(50);
    placeholder.terminal_at = Some(50);
    assert_eq!(
        store.create_opt_in(&placeholder).await.unwrap(),
        Created::New
    );
    let at = 50 + REDELIVERY_HORIZON_MS + 1;
    let o = OptIn::new(placeholder.key(), Some(at), at, 60_000, 0);
    let Recorded::Renewed(renewed) = store.record_opt_in(&o, &consent("m", at)).await.unwrap()
    else {
        panic!("a consent beyond the horizon replaces the placeholder");
    };
    assert_eq!(renewed.previous_generations, vec![placeholder]);
}

#[tokio::test]
async fn claim_and_finish_follow_the_lease_and_owner_rules() {
    let s = stack().await;
    let store = s.store();
    let o = opt_in("lease-1", 1_000, 900);
    let k = o.key();
    store.create_opt_in(&o).await.unwrap();

    let a = done(store.claim_for_send(&k, "a", 10, 100).await.unwrap());
    assert_eq!(
        (
            a.state,
            a.attempts,
            a.lease_owner.as_deref(),
            a.lease_until,
            a.updated_at
        ),
        (State::Sending, 1, Some("a"), Some(100), 10)
    );
    let current = refused(store.claim_for_send(&k, "b", 20, 120).await.unwrap()).unwrap();
    assert_eq!(
        current.lease_owner.as_deref(),
        Some("a"),
        "live lease: refused"
    );
    let current = refused(store.finish_send(&k, "b", &sent("m"), 30).await.unwrap()).unwrap();
    assert_eq!(current.state, State::Sending, "not the owner");

    let b = done(store.claim_for_send(&k, "b", 100, 200).await.unwrap());
    assert_eq!(
        (b.attempts, b.lease_owner.as_deref()),
        (2, Some("b")),
        "lease expired"
    );
    let lost = refused(store.finish_send(&k, "a", &sent("m-a"), 110).await.unwrap()).unwrap();
    assert_eq!(lost.lease_owner.as_deref(), Some("b"), "a lost the lease");

    let fin = done(store.finish_send(&k, "b", &sent("m-b"), 120).await.unwrap());
    assert_eq!(
        (fin.state, fin.attempts, fin.sent_at, fin.terminal_at),
        (State::Sent, 2, Some(120), Some(120))
    );
    assert_eq!(fin.message_id.as_deref(), Some("m-b"));
    assert_eq!((fin.lease_owner, fin.lease_until), (None, None));
    let raw = s.raw_item(&k).await;
    assert!(
        !raw.contains_key(table::DUE_SHARD),
        "terminal items leave the due index"
    );
    assert!(!raw.contains_key("lease_owner"));

    let after = refused(store.claim_for_send(&k, "c", 130, 230).await.unwrap()).unwrap();
    assert_eq!(after.state, State::Sent, "terminal: nothing more");

    // An unknown opt-in: refused, with nothing to show.
    let ghost = OptInKey::new("1000", "ghost");
    assert_eq!(
        refused(store.claim_for_send(&ghost, "a", 1, 2).await.unwrap()),
        None
    );
    assert_eq!(refused(store.expire(&ghost, 1).await.unwrap()), None);
}

#[tokio::test]
async fn transient_config_and_unreachable_outcomes() {
    let s = stack().await;
    let store = s.store();
    let retry = opt_in("outcome-retry", 1_000, 900);
    let unreachable = opt_in("outcome-unreachable", 1_000, 900);
    for o in [&retry, &unreachable] {
        store.create_opt_in(o).await.unwrap();
        // Watched by the index (as when its schedule could not be made).
        done(
            store
                .watch_from(&o.key(), first_attention(o))
                .await
                .unwrap(),
        );
        store.claim_for_send(&o.key(), "w", 1, 50).await.unwrap();
    }
    let r = done(
        store
            .finish_send(
                &retry.key(),
                "w",
                &SendOutcome::Retry { error: error(2) },
                5,
            )
            .await
            .unwrap(),
    );
    assert_eq!(r.state, State::Retrying);
    assert_eq!(r.last_error, Some(error(2)));
    assert_eq!(
        (r.lease_owner, r.lease_until, r.terminal_at),
        (None, None, None)
    );
    assert!(
        s.raw_item(&retry.key())
            .await
            .contains_key(table::DUE_SHARD)
    );
    // RETRYING is claimable again; PAUSED is not (until resumed) but stays due.
    let again = done(
        store
            .claim_for_send(&retry.key(), "w2", 6, 60)
            .await
            .unwrap(),
    );
    assert_eq!((again.state, again.attempts), (State::Sending, 2));
    let paused = done(
        store
            .finish_send(
                &retry.key(),
                "w2",
                &SendOutcome::Paused { error: error(190) },
                7,
            )
            .await
            .unwrap(),
    );
    assert_eq!(paused.state, State::Paused);
    assert_eq!(paused.last_error.map(|e| e.code), Some(190));
    assert!(
        !store
            .claim_for_send(&retry.key(), "w3", 8, 80)
            .await
            .unwrap()
            .is_done()
    );

    let u = done(
        store
            .finish_send(
                &unreachable.key(),
                "w",
                &SendOutcome::Unreachable { error: error(551) },
                9,
            )
            .await
            .unwrap(),
    );
    assert_eq!((u.state, u.terminal_at), (State::Unreachable, Some(9)));
    assert!(
        !s.raw_item(&unreachable.key())
            .await
            .contains_key(table::DUE_SHARD)
    );
}

#[tokio::test]
async fn a_paused_or_parked_opt_in_enters_the_due_index_so_the_resume_finds_it() {
    use shared::ports::pages::PageStateStore;
    let s = stack().await;
    let store = s.store();
    let paused = opt_in("outcome-paused", 1_000, 900);
    let parked = opt_in("outcome-parked", 1_000, 900);
    for o in [&paused, &parked] {
        store.create_opt_in(o).await.unwrap();
        assert!(!s.raw_item(&o.key()).await.contains_key(table::DUE_SHARD));
    }
    store
        .claim_for_send(&paused.key(), "w", 1, 50)
        .await
        .unwrap();
    let p = done(
        store
            .finish_send(
                &paused.key(),
                "w",
                &SendOutcome::Paused { error: error(190) },
                7,
            )
            .await
            .unwrap(),
    );
    assert_eq!(p.state, State::Paused);
    done(store.park_opt_in(&parked.key(), 8).await.unwrap());
    for (o, at) in [(&paused, "7"), (&parked, "8")] {
        let raw = s.raw_item(&o.key()).await;
        assert_eq!(
            raw[table::DUE_SHARD],
            AttributeValue::S(table::due_shard(&o.key()))
        );
        assert_eq!(raw[table::DUE_AT], AttributeValue::N(at.into()));
    }
    let found: Vec<String> = store
        .paused_opt_ins(&paused.page_id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.login_id)
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
}

#[tokio::test]
async fn nothing_is_claimed_at_or_after_the_deadline_and_expiry_waits_for_it() {
    let s = stack().await;
    let store = s.store();
    let o = opt_in("deadline-1", 1_000, 900);
    let k = o.key();
    store.create_opt_in(&o).await.unwrap();
    assert_eq!(
        refused(store.expire(&k, 999).await.unwrap()).unwrap().state,
        State::OptedIn
    );
    assert!(
        !store
            .claim_for_send(&k, "a", 1_000, 2_000)
            .await
            .unwrap()
            .is_done()
    );
    assert!(
        !store
            .claim_for_send(&k, "a", 1_500, 2_000)
            .await
            .unwrap()
            .is_done()
    );
    let e = done(store.expire(&k, 1_000).await.unwrap());
    assert_eq!((e.state, e.terminal_at), (State::Expired, Some(1_000)));
    assert!(!s.raw_item(&k).await.contains_key(table::DUE_SHARD));
    assert!(
        !store.expire(&k, 1_001).await.unwrap().is_done(),
        "already terminal"
    );

    // SENDING expires only once its lease has run out.
    let sending = opt_in("deadline-2", 1_000, 900);
    let k2 = sending.key();
    store.create_opt_in(&sending).await.unwrap();
    store.claim_for_send(&k2, "a", 990, 1_100).await.unwrap();
    assert_eq!(
        refused(store.expire(&k2, 1_050).await.unwrap())
            .unwrap()
            .state,
        State::Sending
    );
    let e2 = done(store.expire(&k2, 1_100).await.unwrap());
    assert_eq!((e2.state, e2.lease_owner), (State::Expired, None));
}

/// The twin: `memory::tests::a_send_in_flight_at_the_opt_out_is_recorded_once_by_its_claim`.
#[tokio::test]
async fn a_send_in_flight_at_the_opt_out_is_recorded_once_by_its_claim() {
    let s = stack().await;
    let store = s.store();
    let o = opt_in("inflight-1", 1_000, 900);
    let k = o.key();
    store.create_opt_in(&o).await.unwrap();
    let not_out = refused(
        store
            .record_send_after_opt_out(&k, 0, "m", 1)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!((not_out.state, not_out.message_id), (State::OptedIn, None));
    store.claim_for_send(&k, "a", 1, 50).await.unwrap();
    assert_eq!(
        refused(
            store
                .record_send_after_opt_out(&k, 1, "m", 2)
                .await
                .unwrap()
        )
        .unwrap()
        .state,
        State::Sending,
        "still SENDING: the SENT write is the sender's"
    );
    done(store.opt_out(&k, "api", 2).await.unwrap());
    let later_claim = refused(
        store
            .record_send_after_opt_out(&k, 2, "m", 3)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(later_claim.message_id, None, "not the last claim");
    let out = done(
        store
            .record_send_after_opt_out(&k, 1, "m", 3)
            .await
            .unwrap(),
    );
    assert_eq!(
        (
            out.state,
            out.message_id.as_deref(),
            out.sent_at,
            out.sent_after_opt_out
        ),
        (State::OptedOut, Some("m"), Some(3), true)
    );
    assert_eq!((out.opted_out_at, out.terminal_at), (Some(2), Some(2)));
    let raw = s.raw_item(&k).await;
    assert_eq!(
        raw.get("sent_after_opt_out"),
        Some(&AttributeValue::Bool(true))
    );
    assert!(!raw.contains_key(table::DUE_SHARD), "still terminal");
    let again = refused(
        store
            .record_send_after_opt_out(&k, 1, "m2", 4)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(again.message_id.as_deref(), Some("m"), "recorded once");
    assert_eq!(
        store
            .record_send_after_opt_out(&OptInKey::new("PAGE", "nobody"), 1, "m", 5)
            .await
            .unwrap(),
        Transitioned::Refused(None)
    );
}

#[tokio::test]
async fn opt_out_beats_a_later_claim_and_a_late_sent() {
    let s = stack().await;
    let store = s.store();
    let o = opt_in("optout-1", 1_000, 900);
    let k = o.key();
    store.create_opt_in(&o).await.unwrap();
    store.claim_for_send(&k, "a", 1, 50).await.unwrap();
    let out = done(store.opt_out(&k, "api", 2).await.unwrap());
    assert_eq!(
        (
            out.state,
            out.opted_out_at,
            out.opt_out_source.as_deref(),
            out.terminal_at
        ),
        (State::OptedOut, Some(2), Some("api"), Some(2))
    );
    assert_eq!((out.lease_owner, out.lease_until), (None, None));

    let late = refused(store.finish_send(&k, "a", &sent("m"), 3).await.unwrap()).unwrap();
    assert_eq!(late.state, State::OptedOut);
    assert_eq!(late.message_id, None);
    let retry = SendOutcome::Retry {
        error: LastError::default(),
    };
    assert!(
        !store
            .finish_send(&k, "a", &retry, 4)
            .await
            .unwrap()
            .is_done()
    );
    assert!(
        !store
            .claim_for_send(&k, "b", 100, 200)
            .await
            .unwrap()
            .is_done()
    );
    assert!(
        !store.opt_out(&k, "again", 5).await.unwrap().is_done(),
        "terminal"
    );
    let now = store.get_opt_in(&k).await.unwrap().unwrap();
    assert_eq!(
        (now.state, now.opt_out_source.as_deref()),
        (State::OptedOut, Some("api"))
    );
    assert!(!s.raw_item(&k).await.contains_key(table::DUE_SHARD));
}

#[tokio::test]
async fn mark_alerted_only_once() {
    let s = stack().await;
    let store = s.store();
    let o = opt_in("alerted-1", 1_000, 900);
    let k = o.key();
    store.create_opt_in(&o).await.unwrap();
    let first = done(store.mark_alerted(&k, 5).await.unwrap());
    assert_eq!((first.alerted_at, first.state), (Some(5), State::OptedIn));
    let second = refused(store.mark_alerted(&k, 6).await.unwrap()).unwrap();
    assert_eq!(second.alerted_at, Some(5));
    assert_eq!(
        refused(
            store
                .mark_alerted(&OptInKey::new("1000", "nobody"), 6)
                .await
                .unwrap()
        ),
        None
    );
}

#[tokio::test]
async fn due_for_attention_spans_shards_sorted_and_excludes_terminal() {
    let s = stack().await;
    let store = s.store();
    let mut all = Vec::new();
    for i in 0..16 {
        // alert_at 100, 110, …, 250
        let o = opt_in(&format!("due-{i:02}"), 10_000, 100 + 10 * i);
        store.create_opt_in(&o).await.unwrap();
        // Watched by the index from its first attention time (nothing else watches it here).
        done(
            store
                .watch_from(&o.key(), first_attention(&o))
                .await
                .unwrap(),
        );
        all.push(o);
    }
    let shards: std::collections::HashSet<_> =
        all.iter().map(|o| table::due_shard(&o.key())).collect();
    assert!(
        shards.len() >= 3,
        "the fixture must span several shards: {shards:?}"
    );

    // Two become terminal, one is in flight (still due: SENDING is not terminal).
    store.opt_out(&all[0].key(), "api", 1).await.unwrap();
    store
        .claim_for_send(&all[1].key(), "w", 1, 5)
        .await
        .unwrap();
    store
        .finish_send(&all[1].key(), "w", &sent("m"), 2)
        .await
        .unwrap();
    store
        .claim_for_send(&all[2].key(), "w", 1, 5)
        .await
        .unwrap();

    assert!(store.due_for_attention(119, 100).await.unwrap().is_empty());
    let due = store.due_for_attention(200, 100).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|o| o.login_id.as_str()).collect();
    let expected: Vec<String> = (2..=10).map(|i| format!("due-{i:02}")).collect();
    assert_eq!(ids, expected, "alert_at <= 200, unsent, oldest first");
    assert_eq!(due[0].state, State::Sending);

    let limited = store.due_for_attention(10_000, 4).await.unwrap();
    let ids: Vec<&str> = limited.iter().map(|o| o.login_id.as_str()).collect();
    assert_eq!(ids, ["due-02", "due-03", "due-04", "due-05"]);
    assert!(store.due_for_attention(10_000, 0).await.unwrap().is_empty());

    // The due index is sorted by the next attention time: deferring moves an opt-in out of range.
    let k3 = all[3].key();
    assert_eq!(
        s.raw_item(&k3).await[table::DUE_AT],
        AttributeValue::N("130".into()),
        "first attention: the alert time (before the 3-minute stuck check)"
    );
    let deferred = done(store.watch_from(&k3, 5_000).await.unwrap());
    assert_eq!(deferred.state, State::OptedIn);
    assert_eq!(
        s.raw_item(&k3).await[table::DUE_AT],
        AttributeValue::N("5000".into())
    );
    let ids: Vec<String> = store
        .due_for_attention(200, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.login_id)
        .collect();
    assert!(!ids.contains(&"due-03".to_owned()), "{ids:?}");
    assert_eq!(ids.len(), 8);
    let later = store.due_for_attention(5_000, 100).await.unwrap();
    assert_eq!(
        later.last().unwrap().login_id,
        "due-03",
        "most overdue first"
    );
    // Terminal opt-ins are never deferred back into the index.
    let out = refused(store.watch_from(&all[0].key(), 5_000).await.unwrap()).unwrap();
    assert_eq!(out.state, State::OptedOut);
    let raw = s.raw_item(&all[0].key()).await;
    assert!(!raw.contains_key(table::DUE_SHARD) && !raw.contains_key(table::DUE_AT));
    assert_eq!(
        refused(
            store
                .watch_from(&OptInKey::new("1000", "nobody"), 1)
                .await
                .unwrap()
        ),
        None
    );
    // What the query read: one request per shard, only the due items.
    let (due, cost) = store.due_for_attention_measured(200, 100).await.unwrap();
    assert_eq!(due.len(), 8);
    assert_eq!(cost.requests, table::DUE_SHARDS);
    assert_eq!(cost.items_read, 8);
    assert!(cost.bytes_read > 8 * 100, "{cost:?}");
    assert!(cost.estimated_rcu >= f64::from(table::DUE_SHARDS) * 0.5);
}

// ------------------------------------------------------------------------------- SQS

#[tokio::test]
async fn send_jobs_arrive_as_json_and_visibility_can_be_changed() {
    let s = stack().await;
    let client = aws_sdk_sqs::Client::new(&s.sdk);
    let queue = SqsSendQueue::new(client.clone(), s.p.send_queue_url.clone());
    let job = SendJob::for_key(&OptInKey::new("1000", "sqs-1"));
    queue.enqueue(&job).await.unwrap();

    let receive = || async {
        client
            .receive_message()
            .queue_url(&s.p.send_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    };
    let got = receive().await;
    assert_eq!(got.len(), 1);
    let body: SendJob = serde_json::from_str(got[0].body().unwrap()).unwrap();
    assert_eq!(body, job);
    let raw: serde_json::Value = serde_json::from_str(got[0].body().unwrap()).unwrap();
    assert_eq!(raw["version"], SendJob::VERSION);

    // Invisible now; visible again at once after a 0-second visibility change.
    assert!(receive().await.is_empty());
    queue
        .change_visibility(got[0].receipt_handle().unwrap(), 0)
        .await
        .unwrap();
    let again = receive().await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id(), got[0].message_id());

    let nowhere = SqsSendQueue::new(client, format!("{}-missing", s.p.send_queue_url));
    let e = nowhere.enqueue(&job).await.unwrap_err();
    assert_eq!(e.service, "sqs");
}

// ------------------------------------------------------------------------------- Scheduler

#[tokio::test]
async fn deadline_schedules_are_one_time_utc_and_idempotent() {
    let s = stack().await;
    let client = aws_sdk_scheduler::Client::new(&s.sdk);
    let target = "arn:aws:lambda:us-east-1:123456789012:function:deadline-alerts";
    let role = "arn:aws:iam::123456789012:role/scheduler";
    let scheduler = EventBridgeDeadlineScheduler::new(
        client.clone(),
        s.p.schedule_group.clone(),
        target,
        role,
        Some(s.p.scheduler_dlq_arn.clone()),
    );
    let o = opt_in("sched-1", 1_893_553_445_000, 0);
    let check = DeadlineCheck::for_opt_in(&o);
    let at = 1_893_553_445_250; // 2030-01-02T03:04:05.250Z → rounded up to :06
    scheduler.schedule_deadline_check(&check, at).await.unwrap();
    scheduler.schedule_deadline_check(&check, at).await.unwrap();

    let name = deadline_schedule_name(&o.key());
    let got = client
        .get_schedule()
        .name(&name)
        .group_name(&s.p.schedule_group)
        .send()
        .await
        .unwrap();
    assert_eq!(got.schedule_expression(), Some("at(2030-01-02T03:04:06)"));
    assert_eq!(
        parse_at_expression(got.schedule_expression().unwrap()),
        Some(1_893_553_446_000)
    );
    assert_eq!(got.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(got.group_name(), Some(s.p.schedule_group.as_str()));
    assert_eq!(
        got.flexible_time_window().map(|w| w.mode().as_str()),
        Some("OFF")
    );
    assert_eq!(
        got.action_after_completion().map(|a| a.as_str()),
        Some("DELETE")
    );
    let t = got.target().unwrap();
    assert_eq!((t.arn(), t.role_arn()), (target, role));
    assert_eq!(
        t.dead_letter_config().and_then(|d| d.arn()),
        Some(s.p.scheduler_dlq_arn.as_str())
    );
    let retry = t.retry_policy().unwrap();
    assert_eq!(
        (
            retry.maximum_retry_attempts(),
            retry.maximum_event_age_in_seconds()
        ),
        (Some(3), Some(3600))
    );
    let input: serde_json::Value = serde_json::from_str(t.input().unwrap()).unwrap();
    assert_eq!(input["kind"], "deadline_check");
    assert_eq!(input["version"], DeadlineCheck::VERSION);
    let parsed: AlertInput = serde_json::from_value(input).unwrap();
    assert_eq!(parsed, AlertInput::DeadlineCheck(check));

    scheduler.cancel_deadline_check(&o.key()).await.unwrap();
    let gone = client
        .get_schedule()
        .name(&name)
        .group_name(&s.p.schedule_group)
        .send()
        .await;
    assert!(gone.is_err(), "deleted");
    scheduler.cancel_deadline_check(&o.key()).await.unwrap();

    // A group that does not exist is an error, not a silent success.
    let lost = EventBridgeDeadlineScheduler::new(client, "no-such-group", target, role, None);
    assert!(
        lost.schedule_deadline_check(&DeadlineCheck::for_opt_in(&o), at)
            .await
            .is_err()
    );
}

// ------------------------------------------------------------------------------- SNS

#[tokio::test]
async fn alerts_are_published_to_the_topic_as_json() {
    let s = stack().await;
    // Subscribe a queue to the topic to see what was published.
    let sqs = aws_sdk_sqs::Client::new(&s.sdk);
    let inbox = sqs
        .create_queue()
        .queue_name(format!("{}-alert-inbox", s.stack_name))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let inbox_arn = sqs
        .get_queue_attributes()
        .queue_url(&inbox)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let sns = aws_sdk_sns::Client::new(&s.sdk);
    sns.subscribe()
        .topic_arn(&s.p.alert_topic_arn)
        .protocol("sqs")
        .endpoint(&inbox_arn)
        .send()
        .await
        .unwrap();

    let alerts = SnsAlerts::new(sns.clone(), s.p.alert_topic_arn.clone());
    let o = opt_in("abcdefghijklmnop", 1_000, 900);
    let alert = Alert::about(&o, AlertKind::DeadlineAtRisk, "2 hours left");
    alerts.publish(&alert).await.unwrap();

    let got = sqs
        .receive_message()
        .queue_url(&inbox)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(got.len(), 1);
    let envelope: serde_json::Value = serde_json::from_str(got[0].body().unwrap()).unwrap();
    assert_eq!(envelope["Subject"], alert.subject());
    let message: Alert = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message, alert);
    assert!(!got[0].body().unwrap().contains("abcdefghijklmnop"));

    let nowhere = SnsAlerts::new(sns, format!("{}-missing", s.p.alert_topic_arn));
    assert_eq!(nowhere.publish(&alert).await.unwrap_err().service, "sns");
}

// ------------------------------------------------------------------------------- Secrets Manager

#[tokio::test]
async fn secrets_are_read_back_and_a_missing_secret_is_named() {
    let s = stack().await;
    let client = aws_sdk_secretsmanager::Client::new(&s.sdk);
    let secrets = load_secrets(&client, &s.p.secret_id).await.unwrap();
    assert_eq!(secrets.app_secret.expose(), "app-s3cret");
    assert_eq!(secrets.page_access_token.expose(), "page-tok");
    assert_eq!(secrets.client_token.expose(), "client-tok");
    assert_eq!(secrets.verify_token.expose(), "verify-tok");
    assert_eq!(
        secrets.api_key_hashes,
        ["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]
    );

    let missing = format!("{}-no-such-secret", s.stack_name);
    let e = load_secrets(&client, &missing)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&missing), "{e}");

    // A secret that is not the expected JSON: named, and its value is not echoed.
    let bad = format!("{}-bad", s.stack_name);
    client
        .create_secret()
        .name(&bad)
        .secret_string(r#"{"app_secret":"leak-me-not"}"#)
        .send()
        .await
        .unwrap();
    let e = load_secrets(&client, &bad).await.unwrap_err().to_string();
    assert!(e.contains(&bad), "{e}");
    assert!(!e.contains("leak-me-not"), "{e}");
}

// ------------------------------------------------------------------------------- SDK config

/// The child half of `aws_endpoint_url_from_the_environment_reaches_moto`: runs only when that
/// test starts this binary with the environment set.
#[tokio::test]
async fn child_load_sdk_config_from_env() {
    let Ok(expected) = std::env::var("ADAPTERS_MOTO_CHILD_ENDPOINT") else {
        return;
    };
    let sdk = shared::adapters::aws::load_sdk_config().await;
    assert_eq!(sdk.endpoint_url(), Some(expected.as_str()));
    // The production loader bounds every call (shared/src/adapters/aws.rs).
    let timeouts = aws_sdk_dynamodb::Client::new(&sdk)
        .config()
        .timeout_config()
        .map(|t| (t.operation_timeout(), t.operation_attempt_timeout()));
    assert_eq!(
        timeouts,
        Some((
            Some(shared::adapters::aws::OPERATION_TIMEOUT),
            Some(shared::adapters::aws::ATTEMPT_TIMEOUT)
        ))
    );
    let tables = aws_sdk_dynamodb::Client::new(&sdk)
        .list_tables()
        .send()
        .await
        .expect("the client must reach moto through AWS_ENDPOINT_URL");
    let want = std::env::var("ADAPTERS_MOTO_CHILD_TABLE").unwrap();
    assert!(
        tables.table_names().contains(&want),
        "{want} not in {tables:?}"
    );
    println!("CHILD-REACHED-MOTO");
}

#[tokio::test]
async fn aws_endpoint_url_from_the_environment_reaches_moto() {
    let s = stack().await;
    let exe = std::env::current_exe().unwrap();
    let out = tokio::process::Command::new(exe)
        .args([
            "--exact",
            &integration_tests::test_name(module_path!(), "child_load_sdk_config_from_env"),
            "--nocapture",
        ])
        .env("ADAPTERS_MOTO_CHILD_ENDPOINT", &s._moto.endpoint)
        .env("ADAPTERS_MOTO_CHILD_TABLE", &s.p.table_name)
        .env("AWS_ENDPOINT_URL", &s._moto.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-REACHED-MOTO"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// DynamoDB applies a conditional write atomically, so of many concurrent claims of one opt-in
/// exactly one wins. moto's threaded server does not guarantee that by itself: the tests' moto
/// runs through infra/python/moto_server_serialized.py, and this test fails without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn of_concurrent_claims_of_one_opt_in_exactly_one_wins() {
    let s = stack().await;
    let store = Arc::new(s.store());
    for round in 0..30 {
        let opt_in = OptIn::new(
            OptInKey::new("PAGE", format!("race-{round}")),
            Some(1_000),
            1_000,
            86_400_000,
            7_200_000,
        );
        store.create_opt_in(&opt_in).await.unwrap();
        let claims = (0..8).map(|i| {
            let store = store.clone();
            let key = opt_in.key();
            tokio::spawn(async move {
                store
                    .claim_for_send(&key, &format!("owner-{i}"), 2_000, 62_000)
                    .await
            })
        });
        let outcomes = futures::future::join_all(claims).await;
        let won = outcomes
            .into_iter()
            .filter(|o| matches!(o, Ok(Ok(Transitioned::Done(_)))))
            .count();
        assert_eq!(won, 1, "round {round}: {won} concurrent claims won");
        let item = store.get_opt_in(&opt_in.key()).await.unwrap().unwrap();
        assert_eq!(item.attempts, 1, "round {round}");
    }
}

// ------------------------------------------------------------------------------- Page state item

/// The Page state item: every change agrees with `shared::domain::page` (the twin's own rules), and
/// Meta's block holds against every change of ours.
mod page_state {
    use super::*;

    use shared::domain::page::{PageChange, PageState, PageStatus, PauseCause};
    use shared::ports::pages::PageStateStore;

    fn page(status: PageStatus, cause: Option<PauseCause>, probe_at: Option<Millis>) -> PageState {
        PageState {
            page_id: String::new(),
            status,
            paused_at: Some(1),
            cause,
            reason: None,
            probe_at,
            probes: 2,
            resumed_at: (status == PageStatus::Active).then_some(5),
            updated_at: 1,
        }
    }

    /// Every kind of Page item the table can hold (those written before this model included).
    fn page_grid() -> Vec<(&'static str, Option<PageState>)> {
        use PageStatus::{Active, Paused};
        use PauseCause::{Configuration, PageRestricted, PolicyBlock};
        vec![
            ("no item", None),
            ("active", Some(page(Active, Some(Configuration), None))),
            (
                "active after a block",
                Some(page(Active, Some(PolicyBlock), None)),
            ),
            (
                "paused, probe due",
                Some(page(Paused, Some(Configuration), Some(100))),
            ),
            (
                "paused, probe later",
                Some(page(Paused, Some(Configuration), Some(101))),
            ),
            (
                "restricted, probe due",
                Some(page(Paused, Some(PageRestricted), Some(0))),
            ),
            ("blocked", Some(page(Paused, Some(PolicyBlock), None))),
            (
                "blocked, old shape",
                Some(page(Paused, Some(PolicyBlock), Some(Millis::MAX))),
            ),
            (
                "blocked, probe_at past",
                Some(page(Paused, Some(PolicyBlock), Some(0))),
            ),
        ]
    }

    fn json_to_attribute(v: &serde_json::Value) -> AttributeValue {
        match v {
            serde_json::Value::String(s) => AttributeValue::S(s.clone()),
            serde_json::Value::Number(n) => AttributeValue::N(n.to_string()),
            serde_json::Value::Bool(b) => AttributeValue::Bool(*b),
            serde_json::Value::Object(m) => AttributeValue::M(
                m.iter()
                    .map(|(k, v)| (k.clone(), json_to_attribute(v)))
                    .collect(),
            ),
            other => panic!("not used in a Page item: {other}"),
        }
    }

    impl Stack {
        /// Write a Page item as stored, bypassing the adapter.
        async fn put_page(&self, page: &PageState) {
            let serde_json::Value::Object(fields) = serde_json::to_value(page).unwrap() else {
                panic!("a Page state is an object");
            };
            let mut item: HashMap<String, AttributeValue> = fields
                .iter()
                .map(|(k, v)| (k.clone(), json_to_attribute(v)))
                .collect();
            item.insert(
                table::PK.into(),
                AttributeValue::S(table::page_pk(&page.page_id)),
            );
            item.insert(
                table::SK.into(),
                AttributeValue::S(table::PAGE_STATE_SK.into()),
            );
            aws_sdk_dynamodb::Client::new(&self.sdk)
                .put_item()
                .table_name(&self.p.table_name)
                .set_item(Some(item))
                .send()
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn every_page_change_on_dynamodb_follows_the_page_model() {
        let st = stack().await;
        let s = st.store();
        let reason = error(190);
        let changes = [
            PageChange::pause(PauseCause::Configuration, &reason, 500),
            PageChange::Block {
                reason: reason.clone(),
            },
            PageChange::Unblock,
            PageChange::TakeProbe { next_probe_at: 500 },
            PageChange::ProbeAccepted,
        ];
        let now = 100;
        let mut n = 0;
        for change in &changes {
            for (name, before) in page_grid() {
                n += 1;
                let page_id = format!("grid{n}");
                let before = before.map(|mut p| {
                    p.page_id = page_id.clone();
                    p
                });
                if let Some(p) = &before {
                    st.put_page(p).await;
                }
                let expected = change.apply(&page_id, before.as_ref(), now);
                let done = s.change_page(&page_id, change, now).await.unwrap();
                assert_eq!(done, expected.is_some(), "{:?} on {name}", change.event());
                assert_eq!(
                    s.get_page(&page_id).await.unwrap(),
                    expected.or(before),
                    "{:?} on {name}: the stored item",
                    change.event()
                );
            }
        }
    }

    #[tokio::test]
    async fn meta_block_on_an_already_paused_page_is_recorded_on_dynamodb() {
        let st = stack().await;
        let s = st.store();
        assert!(
            s.pause_page("42", PauseCause::Configuration, &error(190), 5, 100)
                .await
                .unwrap()
        );
        let block = LastError {
            message: "policy enforcement block: spam".into(),
            ..LastError::default()
        };
        assert!(
            s.block_page("42", &block, 6).await.unwrap(),
            "a block during a configuration pause is recorded"
        );
        assert!(!s.block_page("42", &block, 7).await.unwrap(), "once");
        let page = s.get_page("42").await.unwrap().unwrap();
        assert_eq!(page.cause, Some(PauseCause::PolicyBlock));
        assert_eq!(page.probe_at, None);
        // The configuration pause's probe time passes: no probe slot, no resume, no pause over it.
        assert!(!s.take_probe("42", 1_000, 2_000).await.unwrap());
        assert!(!s.resume_page("42", 1_000).await.unwrap());
        assert!(
            !s.pause_page("42", PauseCause::Configuration, &error(190), 1_000, 2_000)
                .await
                .unwrap()
        );
        assert!(s.get_page("42").await.unwrap().unwrap().is_blocked());
        // Only an unblock lifts it, and an unblock lifts nothing else.
        assert!(s.unblock_page("42", 1_001).await.unwrap());
        assert!(!s.unblock_page("42", 1_002).await.unwrap());
        assert!(
            s.pause_page("42", PauseCause::Configuration, &error(190), 1_003, 2_000)
                .await
                .unwrap()
        );
        assert!(!s.unblock_page("42", 1_004).await.unwrap());
        assert!(s.get_page("42").await.unwrap().unwrap().is_paused());
    }
}
