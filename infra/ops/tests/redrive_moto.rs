//! `ops redrive` against queues and a table provisioned from template.yaml in moto: a send DLQ
//! holding a redrivable job, a job whose opt-in is terminal, one past its deadline and a poison
//! body. The summary (no login_id), the refusal, `--discard-refused --manual` (the redrivable job
//! back on the send queue, the others gone), and moto's missing `StartMessageMoveTask` said so.
//! The events DLQ: every event goes back, however old, except those of a person erased since
//! (their LOGIN gone, or a later `person.deleted` in the DLQ) and unreadable bodies; no asid or
//! `user_ref` printed.

use local_runner::moto::{MotoServer, workspace_root};
use local_runner::provision::{Provisioned, provision};
use ops::redrive::{Args, Located, run_on};
use shared::adapters::dynamodb::logins::DynamoLoginStore;
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::domain::events::{
    MessageKind, Subject, login_completed, message_sent, opt_in_received, person_deleted,
};
use shared::domain::jobs::{AlertInput, DeadlineCheck, Job, SendJob};
use shared::domain::login::{Login, LoginSource, Permission};
use shared::domain::opt_in::{HOUR_MS, Millis, OptIn, OptInKey, utc};
use shared::ports::logins::LoginStore;
use shared::ports::opt_ins::OptInStore;

const PAGE: &str = "200000000000002";
const LIVE: &str = "live-login-0000000001";
const OPTED_OUT: &str = "gone-login-0000000002";
const LATE: &str = "late-login-0000000003";

struct World {
    _moto: std::sync::Arc<MotoServer>,
    located: Located,
    p: Provisioned,
    now: Millis,
}

async fn world() -> World {
    let moto = MotoServer::shared().expect("moto starts");
    let sdk = moto.sdk_config().await;
    let stack = format!("rd{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let p = provision(
        &workspace_root().join("template.yaml"),
        &sdk,
        &stack,
        r#"{"app_secret":"a","page_access_token":"p","verify_token":"v"}"#,
    )
    .await
    .expect("provisioned");
    let store = DynamoOptInStore::new(aws_sdk_dynamodb::Client::new(&sdk), &p.table_name);
    let now = chrono::Utc::now().timestamp_millis();
    let opt_in = |login: &str, at: Millis| {
        OptIn::new(
            OptInKey::new(PAGE, login),
            Some(at),
            at,
            24 * HOUR_MS,
            2 * HOUR_MS,
        )
    };
    for o in [
        opt_in(LIVE, now - HOUR_MS),
        opt_in(OPTED_OUT, now - HOUR_MS),
        opt_in(LATE, now - 25 * HOUR_MS),
    ] {
        store.create_opt_in(&o).await.expect("created");
    }
    assert!(
        store
            .opt_out(&OptInKey::new(PAGE, OPTED_OUT), "api", now)
            .await
            .expect("opted out")
            .is_done()
    );
    World {
        _moto: moto,
        located: Located {
            sdk,
            send_dlq_url: p.send_dlq_url.clone(),
            scheduler_dlq_url: p.scheduler_dlq_url.clone(),
            events_dlq_url: p.events.as_ref().map(|e| e.dlq_url.clone()),
            table_name: p.table_name.clone(),
            page_id: PAGE.into(),
        },
        p,
        now,
    }
}

fn job(login: &str) -> String {
    Job::Initial(SendJob::for_key(&OptInKey::new(PAGE, login))).body()
}

impl World {
    fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.located.sdk)
    }

    async fn put(&self, url: &str, body: &str) {
        self.sqs()
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage");
    }

    /// Every body `url` holds (received, then made visible again).
    async fn bodies(&self, url: &str) -> Vec<String> {
        let out = self
            .sqs()
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .expect("ReceiveMessage");
        let mut bodies: Vec<String> = out
            .messages()
            .iter()
            .map(|m| m.body().unwrap_or_default().to_owned())
            .collect();
        bodies.sort();
        bodies
    }

    async fn redrive(&self, args: Args) -> ops::redrive::Outcome {
        let outcome = run_on(&self.located, &args, self.now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        println!("{}", outcome.text);
        for login in [LIVE, OPTED_OUT, LATE] {
            assert!(!outcome.text.contains(login), "no login_id printed");
        }
        outcome
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_shows_refuses_then_discards_and_moves_back_the_live_job() {
    let w = world().await;
    let dlq = w.p.send_dlq_url.clone();
    for body in [job(LIVE), job(OPTED_OUT), job(LATE), "not a job".to_owned()] {
        w.put(&dlq, &body).await;
    }
    let refused = serde_json::to_string(&AlertInput::DeadlineCheck(DeadlineCheck {
        version: 1,
        page_id: PAGE.into(),
        login_id: OPTED_OUT.into(),
        deadline_at: w.now + HOUR_MS,
    }))
    .unwrap();
    w.put(&w.p.scheduler_dlq_url, &refused).await;

    let first = w.redrive(Args::default()).await;
    assert!(first.blocked, "refused messages block the move");
    for line in [
        "send dead-letter queue",
        ": 4 message(s), oldest ",
        "  kinds: 3 initial_message, 1 unreadable\n",
        "  refused: 3 (1 unreadable body (it would only fail again), 1 opt-in already terminal (OPTED_OUT), 1 opt-in past its deadline)\n",
        "NOT moved: the refused messages are still in the queue",
        "--discard-refused",
        "scheduler dead-letter queue",
        "  kinds: 1 deadline_check\n",
    ] {
        assert!(first.text.contains(line), "{line:?} not in\n{}", first.text);
    }
    assert_eq!(w.bodies(&dlq).await.len(), 4, "nothing moved or deleted");
    assert!(w.bodies(&w.p.send_queue_url).await.is_empty());

    let second = w
        .redrive(Args {
            discard_refused: true,
            manual: true,
            ..Args::default()
        })
        .await;
    assert!(!second.blocked, "{}", second.text);
    assert!(
        second.text.contains("deleted the 3 refused message(s)"),
        "{}",
        second.text
    );
    assert!(
        second.text.contains(&format!(
            "moved 1 message(s) back to {}",
            w.p.send_queue_url
        )),
        "{}",
        second.text
    );
    assert!(second.text.contains("deleted the 1 refused message(s)"));
    assert_eq!(w.bodies(&w.p.send_queue_url).await, [job(LIVE)]);
    assert!(w.bodies(&dlq).await.is_empty(), "the others are gone");
    assert!(w.bodies(&w.p.scheduler_dlq_url).await.is_empty());

    let third = w.redrive(Args::default()).await;
    assert!(
        third
            .text
            .contains("send dead-letter queue: empty, nothing to redrive")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_move_tasks_the_endpoint_is_named_and_manual_offered() {
    let w = world().await;
    w.put(&w.p.send_dlq_url, &job(LIVE)).await;
    let outcome = w.redrive(Args::default()).await;
    assert!(outcome.blocked);
    assert!(
        outcome.text.contains(
            "does not implement StartMessageMoveTask (moto 5.2.5 does not): rerun with --manual"
        ),
        "{}",
        outcome.text
    );
    assert_eq!(
        w.bodies(&w.p.send_dlq_url).await,
        [job(LIVE)],
        "left in the DLQ"
    );
}

/// The due index holds only what nothing else watches: a deadline check that failed every retry
/// (in the scheduler DLQ) may name an opt-in nothing watches any more. Redrive cannot move it
/// back (no source queue), so it puts the opt-in in the due index for the sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_deadline_check_hands_its_opt_in_to_the_sweep() {
    let w = world().await;
    let store = DynamoOptInStore::new(
        aws_sdk_dynamodb::Client::new(&w.located.sdk),
        &w.p.table_name,
    );
    let live = OptInKey::new(PAGE, LIVE);
    assert!(store.due_for_attention(w.now, 10).await.unwrap().is_empty());
    let check = serde_json::to_string(&AlertInput::DeadlineCheck(DeadlineCheck {
        version: 1,
        page_id: PAGE.into(),
        login_id: LIVE.into(),
        deadline_at: w.now + 23 * HOUR_MS,
    }))
    .unwrap();
    w.put(&w.p.scheduler_dlq_url, &check).await;
    let outcome = w.redrive(Args::default()).await;
    assert!(
        outcome
            .text
            .contains("1 opt-in(s) they name put in the due index"),
        "{}",
        outcome.text
    );
    let due = store.due_for_attention(w.now, 10).await.unwrap();
    assert_eq!(due.iter().map(|o| o.key()).collect::<Vec<_>>(), [live]);
}

/// The person whose LOGIN the table holds, the one whose LOGIN is gone (erased), and the one
/// erased (a `person.deleted` in the DLQ) who logged in again since.
const KEPT: &str = "asid-kept-000000001";
const GONE: &str = "asid-gone-000000002";
const AGAIN: &str = "asid-again-00000003";
const USER_REF: &str = "website-user-42";

fn subject(asid: Option<&str>) -> Subject {
    Subject {
        asid: asid.map(str::to_owned),
        user_ref: asid.map(|_| USER_REF.to_owned()),
        state: None,
    }
}

fn event_body(event: &shared::domain::events::OutboundEvent) -> String {
    serde_json::to_string(event).unwrap()
}

/// Issue 13: `ops redrive` left the events DLQ to SQS's own redrive, which also redelivers the
/// events of a person erased since. It now shows it (types only), refuses those events and
/// unreadable bodies, and moves the rest back to the events queue, whatever their age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_dlq_goes_back_except_the_events_of_erased_persons() {
    let w = world().await;
    let events =
        w.p.events
            .clone()
            .expect("the template has the events queue");
    let logins = DynamoLoginStore::new(
        aws_sdk_dynamodb::Client::new(&w.located.sdk),
        &w.p.table_name,
    );
    for asid in [KEPT, AGAIN] {
        let login = Login {
            page_id: PAGE.into(),
            asid: asid.into(),
            first_name: None,
            permission: Permission::Granted,
            expected_login_id: None,
            login_at: w.now - 20 * 24 * HOUR_MS,
            last_login_at: w.now - 20 * HOUR_MS,
            source: LoginSource::Api,
            user_ref: Some(USER_REF.into()),
        };
        logins.record_login(&login).await.expect("LOGIN recorded");
    }
    let now = w.now;
    let opted_in = OptIn::new(
        OptInKey::new(PAGE, LIVE),
        Some(now),
        now - 3 * HOUR_MS,
        24 * HOUR_MS,
        2 * HOUR_MS,
    );
    let old = now - 10 * 24 * HOUR_MS;
    let (kept_old, gone, before_deletion, deletion, after_deletion, nobody) = (
        message_sent(
            &subject(Some(KEPT)),
            MessageKind::Initial,
            "optin_1",
            "m_1",
            old,
        ),
        message_sent(
            &subject(Some(GONE)),
            MessageKind::Initial,
            "optin_2",
            "m_2",
            now - HOUR_MS,
        ),
        opt_in_received(&subject(Some(AGAIN)), &opted_in),
        person_deleted(&subject(Some(AGAIN)), "code-1", now - 2 * HOUR_MS),
        login_completed(&subject(Some(AGAIN)), Permission::Granted, now - HOUR_MS),
        opt_in_received(&subject(None), &opted_in),
    );
    let back: Vec<String> = [&kept_old, &deletion, &after_deletion, &nobody]
        .into_iter()
        .map(event_body)
        .collect();
    for body in back.iter().cloned().chain([
        event_body(&gone),
        event_body(&before_deletion),
        "not an event".to_owned(),
    ]) {
        w.put(&events.dlq_url, &body).await;
    }
    let never_printed = |text: &str| {
        for secret in [KEPT, GONE, AGAIN, USER_REF] {
            assert!(!text.contains(secret), "{secret} printed in\n{text}");
        }
    };

    let first = w.redrive(Args::default()).await;
    never_printed(&first.text);
    assert!(first.blocked, "refused events block the move");
    for line in [
        "send dead-letter queue: empty",
        &format!(
            "events dead-letter queue {}: 7 message(s), oldest ",
            events.dlq_url
        ),
        "  event types: 1 login.completed, 2 message.sent, 2 optin.received, 1 person.deleted, 1 unreadable\n",
        "  refused: 3 (1 unreadable body (it would only fail again), 1 person erased since (a later person.deleted is in the DLQ), 1 person erased (their LOGIN is gone from the table))\n",
        "NOT moved: the refused messages are still in the queue",
        &format!(
            "  oldest event happened {} (240 h 0 min ago); none is refused for its age",
            utc(old)
        ),
    ] {
        assert!(first.text.contains(line), "{line:?} not in\n{}", first.text);
    }
    assert_eq!(w.bodies(&events.dlq_url).await.len(), 7, "nothing moved");

    let second = w
        .redrive(Args {
            discard_refused: true,
            manual: true,
            ..Args::default()
        })
        .await;
    never_printed(&second.text);
    assert!(!second.blocked, "{}", second.text);
    for line in [
        "deleted the 3 refused message(s) from the DLQ".to_owned(),
        format!("moved 4 message(s) back to {}", events.queue_url),
    ] {
        assert!(
            second.text.contains(&line),
            "{line:?} not in\n{}",
            second.text
        );
    }
    let mut expected = back;
    expected.sort();
    assert_eq!(w.bodies(&events.queue_url).await, expected);
    assert!(w.bodies(&events.dlq_url).await.is_empty());
}
