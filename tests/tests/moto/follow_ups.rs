//! `DynamoFollowUpStore` for real, against moto on a table provisioned from template.yaml: the
//! follow-up and its `Idempotency-Key` record are one conditional write (two concurrent creates
//! with one key store one follow-up; an expired record frees the key), and every change of a
//! follow-up is conditional (claimed while queued and unleased, finished only by its owner, and
//! only from queued).

use integration_tests::moto::{MotoServer, workspace_root};
use integration_tests::shared_moto;
use local_runner::provision::{Provisioned, provision};
use shared::adapters::dynamodb::follow_ups::DynamoFollowUpStore;
use shared::adapters::dynamodb::table;
use shared::domain::follow_up::{
    FollowUp, FollowUpMessage, FollowUpOutcome, FollowUpState, IDEMPOTENCY_WINDOW_MS,
    IdempotencyRecord, QuickReply,
};
use shared::domain::opt_in::Millis;
use shared::ports::follow_ups::{CreatedFollowUp, FollowUpChange, FollowUpStore};
use std::sync::Arc;

const SECRET_JSON: &str =
    r#"{"app_secret":"s","page_access_token":"p","client_token":"c","verify_token":"v"}"#;
const T0: Millis = 1_795_536_000_000;

struct Stack {
    _moto: Arc<MotoServer>,
    sdk: aws_config::SdkConfig,
    p: Provisioned,
}

async fn stack() -> Stack {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let name = format!("f{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
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
    fn store(&self) -> DynamoFollowUpStore {
        DynamoFollowUpStore::from_sdk(&self.sdk, self.p.table_name.clone())
    }
}

fn follow_up(id: &str) -> FollowUp {
    FollowUp::queued(
        "200000000000002",
        "555",
        id,
        FollowUpMessage {
            text: "Your order has shipped".into(),
            quick_replies: vec![QuickReply {
                content_type: "text".into(),
                title: "Track".into(),
                payload: "TRACK_1".into(),
            }],
        },
        T0,
    )
}

fn record(id: &str, request_hash: &str, at: Millis) -> IdempotencyRecord {
    IdempotencyRecord {
        key_hash: "k".repeat(64),
        request_hash: request_hash.into(),
        follow_up_id: id.into(),
        created_at: at,
    }
}

#[tokio::test]
async fn one_idempotency_key_creates_one_follow_up_even_concurrently() {
    let s = stack().await;
    let store = s.store();
    let (a, b) = (follow_up("fu_a"), follow_up("fu_b"));
    let (ra, rb) = (record("fu_a", "h", T0), record("fu_b", "h", T0));
    let (x, y) = tokio::join!(
        store.create_follow_up(&a, Some(&ra), T0),
        store.create_follow_up(&b, Some(&rb), T0)
    );
    let outcomes = [x.unwrap(), y.unwrap()];
    let created = outcomes
        .iter()
        .filter(|o| **o == CreatedFollowUp::Created)
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    let winner = if outcomes[0] == CreatedFollowUp::Created {
        &a
    } else {
        &b
    };
    let loser = if outcomes[0] == CreatedFollowUp::Created {
        &b
    } else {
        &a
    };
    // The refusal carries the winner's record; the loser's follow-up was not written.
    assert!(outcomes.iter().any(|o| matches!(
        o,
        CreatedFollowUp::KeyTaken(Some(r)) if r.follow_up_id == winner.id
    )));
    assert_eq!(
        store.get_follow_up(&winner.key()).await.unwrap(),
        Some(winner.clone()),
        "stored as given (quick replies included)"
    );
    assert_eq!(store.get_follow_up(&loser.key()).await.unwrap(), None);
    let live = store
        .idempotency_record(&ra.key_hash, T0 + 1)
        .await
        .unwrap();
    assert_eq!(live.map(|r| r.follow_up_id), Some(winner.id.clone()));

    // 24 hours later the record no longer counts (whatever the TTL has done) and the key is free.
    let later = T0 + IDEMPOTENCY_WINDOW_MS;
    assert_eq!(
        store.idempotency_record(&ra.key_hash, later).await.unwrap(),
        None
    );
    let c = follow_up("fu_c");
    let rc = record("fu_c", "other", later);
    assert_eq!(
        store.create_follow_up(&c, Some(&rc), later).await.unwrap(),
        CreatedFollowUp::Created
    );
    // Without a key: a plain conditional create.
    let d = follow_up("fu_d");
    assert_eq!(
        store.create_follow_up(&d, None, T0).await.unwrap(),
        CreatedFollowUp::Created
    );
    assert!(
        store.create_follow_up(&d, None, T0).await.is_err(),
        "an id is never overwritten"
    );
    let raw = aws_sdk_dynamodb::Client::new(&s.sdk)
        .get_item()
        .table_name(&s.p.table_name)
        .key(
            table::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(table::follow_up_pk(&d.page_id, &d.asid)),
        )
        .key(
            table::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(table::follow_up_sk(&d.id)),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(
        raw.contains_key(table::EXPIRES_AT),
        "the follow-up has a TTL"
    );
}

#[tokio::test]
async fn follow_up_transitions_are_conditional_on_queued_and_the_lease_owner() {
    let s = stack().await;
    let store = s.store();
    let f = follow_up("fu_1");
    let key = f.key();
    store.create_follow_up(&f, None, T0).await.unwrap();

    let claimed = match store
        .claim_follow_up(&key, "a", T0, T0 + 60_000)
        .await
        .unwrap()
    {
        FollowUpChange::Done(item) => item,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (claimed.attempts, claimed.lease_owner.as_deref()),
        (1, Some("a"))
    );
    // A second claim while the lease lives is refused, with the item.
    assert!(matches!(
        store.claim_follow_up(&key, "b", T0 + 1, T0 + 60_001).await.unwrap(),
        FollowUpChange::Refused(Some(item)) if item.lease_owner.as_deref() == Some("a")
    ));
    // Only the owner finishes.
    let sent = FollowUpOutcome::Sent {
        message_id: "m_1".into(),
    };
    assert!(matches!(
        store
            .finish_follow_up(&key, "b", &sent, T0 + 2)
            .await
            .unwrap(),
        FollowUpChange::Refused(Some(_))
    ));
    // A retry releases the lease; the next claim counts a second attempt.
    let released = store
        .finish_follow_up(&key, "a", &FollowUpOutcome::Retry, T0 + 3)
        .await
        .unwrap();
    assert!(
        matches!(released, FollowUpChange::Done(ref i) if i.lease_owner.is_none() && i.state == FollowUpState::Queued)
    );
    assert!(matches!(
        store.claim_follow_up(&key, "b", T0 + 4, T0 + 60_004).await.unwrap(),
        FollowUpChange::Done(item) if item.attempts == 2
    ));
    let done = match store
        .finish_follow_up(&key, "b", &sent, T0 + 5)
        .await
        .unwrap()
    {
        FollowUpChange::Done(item) => item,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (done.state, done.message_id.as_deref(), done.sent_at),
        (FollowUpState::Sent, Some("m_1"), Some(T0 + 5))
    );
    assert!(done.lease_owner.is_none() && done.lease_until.is_none());
    // Sent is final: no claim, no other outcome, even for the last owner.
    assert!(matches!(
        store
            .claim_follow_up(&key, "c", T0 + 10 * 60_000, T0 + 11 * 60_000)
            .await
            .unwrap(),
        FollowUpChange::Refused(Some(_))
    ));
    let failed = FollowUpOutcome::Failed {
        reason: "opted_out".into(),
    };
    assert!(matches!(
        store.finish_follow_up(&key, "b", &failed, T0 + 6).await.unwrap(),
        FollowUpChange::Refused(Some(item)) if item.state == FollowUpState::Sent
    ));
    // A missing follow-up: refused with nothing.
    let mut missing = key.clone();
    missing.id = "fu_missing".into();
    assert_eq!(
        store
            .claim_follow_up(&missing, "a", T0, T0 + 1)
            .await
            .unwrap(),
        FollowUpChange::Refused(None)
    );
    // A failure records its reason.
    let g = follow_up("fu_2");
    store.create_follow_up(&g, None, T0).await.unwrap();
    store
        .claim_follow_up(&g.key(), "a", T0, T0 + 60_000)
        .await
        .unwrap();
    let failed = match store
        .finish_follow_up(&g.key(), "a", &failed, T0 + 7)
        .await
        .unwrap()
    {
        FollowUpChange::Done(item) => item,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (failed.state, failed.reason.as_deref(), failed.failed_at),
        (FollowUpState::Failed, Some("opted_out"), Some(T0 + 7))
    );
}

#[tokio::test]
async fn a_data_deletion_erases_every_follow_up_of_the_person_and_only_theirs() {
    let s = stack().await;
    let store = s.store();
    for id in ["fu_1", "fu_2", "fu_3"] {
        assert_eq!(
            store
                .create_follow_up(&follow_up(id), None, T0)
                .await
                .unwrap(),
            CreatedFollowUp::Created
        );
    }
    let mut other = follow_up("fu_other");
    other.asid = "556".into();
    store.create_follow_up(&other, None, T0).await.unwrap();

    assert_eq!(
        store.erase_person("200000000000002", "555").await.unwrap(),
        3
    );
    for id in ["fu_1", "fu_2", "fu_3"] {
        assert_eq!(
            store.get_follow_up(&follow_up(id).key()).await.unwrap(),
            None
        );
    }
    assert!(
        store.get_follow_up(&other.key()).await.unwrap().is_some(),
        "another person's follow-up stays"
    );
    // Again: nothing left, nothing fails.
    assert_eq!(
        store.erase_person("200000000000002", "555").await.unwrap(),
        0
    );
}
