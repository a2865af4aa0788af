//! `ops redrive` against queues and a table provisioned from template.yaml in moto: a send DLQ
//! holding a redrivable job, a job whose opt-in is terminal, one past its deadline and a poison
//! body. The summary (no login_id), the refusal, `--discard-refused --manual` (the redrivable job
//! back on the send queue, the others gone), and moto's missing `StartMessageMoveTask` said so.

use local_runner::moto::{MotoServer, workspace_root};
use local_runner::provision::{Provisioned, provision};
use ops::redrive::{Args, Located, run_on};
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::domain::jobs::{AlertInput, DeadlineCheck, Job, SendJob};
use shared::domain::opt_in::{HOUR_MS, Millis, OptIn, OptInKey};
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
            table_name: p.table_name.clone(),
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
