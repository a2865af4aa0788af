//! Follow-up jobs (issue 12 §2) through the batch handler over in-memory ports: sent with RESPONSE
//! to the PSID once (a duplicate job does not send again), stopped by an opt-out or a closed window
//! recorded after the API accepted it, retried after a transient Graph error, tagged HUMAN_AGENT
//! past 24 hours only with `HUMAN_AGENT_TAG=true`; each outcome emitted as an event.

use crate::twins::Twins;
use aws_lambda_events::event::sqs::SqsEvent;
use sender::{Deps, handle_batch};
use shared::adapters::memory::config::test_config;
use shared::domain::events::EventType;
use shared::domain::follow_up::{
    Delivery, FollowUp, FollowUpKey, FollowUpMessage, FollowUpState, STANDARD_WINDOW_MS,
};
use shared::domain::jobs::{FollowUpJob, Job};
use shared::domain::login::{Login, LoginSource, Permission};
use shared::domain::opt_in::{HOUR_MS, Millis, OptIn, OptInKey, State};
use shared::facebook::graph_error::{GraphError, GraphErrorBody};
use shared::ports::conversations::ConversationStore;
use shared::ports::follow_ups::FollowUpStore;
use shared::ports::logins::LoginStore;
use shared::ports::opt_ins::OptInStore;

const NOW: Millis = 1_795_536_000_000;
const PAGE: &str = "200000000000002";
const ASID: &str = "555";
const PSID: &str = "psid-555";

struct World {
    deps: Deps,
    twins: Twins,
}

fn world(overrides: &[(&str, &str)]) -> World {
    let twins = Twins::at(NOW);
    let deps = Deps::from_ports(test_config(overrides), &twins.ports());
    World { deps, twins }
}

fn event(message_id: &str, body: &str) -> SqsEvent {
    let escaped = serde_json::to_string(body).unwrap();
    let fixture = include_str!("../fixtures/sqs_batch.json")
        .replace("__MESSAGE_ID__", message_id)
        .replace("\"__BODY__\"", &escaped);
    serde_json::from_str(&fixture).unwrap()
}

fn job(key: &FollowUpKey) -> Job {
    Job::FollowUp(FollowUpJob {
        version: FollowUpJob::VERSION,
        page_id: key.page_id.clone(),
        asid: key.asid.clone(),
        id: key.id.clone(),
    })
}

impl World {
    /// The person: a LOGIN with a `user_ref`, their SENT opt-in, their last message at `last`,
    /// and an opt-out at `opted_out_at` if any.
    async fn person(&self, last: Millis, opted_out_at: Option<Millis>) -> OptInKey {
        let key = OptInKey::new(PAGE, "login-555");
        self.twins
            .logins
            .record_login(&Login {
                page_id: PAGE.into(),
                asid: ASID.into(),
                first_name: None,
                permission: Permission::Granted,
                expected_login_id: Some(key.login_id.clone()),
                login_at: NOW - 30 * HOUR_MS,
                last_login_at: NOW - 30 * HOUR_MS,
                source: LoginSource::Callback,
                user_ref: Some("cust_42".into()),
            })
            .await
            .unwrap();
        let mut o = OptIn::new(
            key.clone(),
            Some(NOW - 30 * HOUR_MS),
            NOW - 30 * HOUR_MS,
            24 * HOUR_MS,
            0,
        );
        o.state = State::Sent;
        o.opted_out_at = opted_out_at;
        self.twins.store.create_opt_in(&o).await.unwrap();
        assert!(self.twins.store.link_psid(&key, PSID, last).await.unwrap());
        key
    }

    /// A follow-up the API accepted at the current time.
    async fn accepted(&self, id: &str) -> FollowUpKey {
        let f = FollowUp::queued(
            PAGE,
            ASID,
            id,
            FollowUpMessage {
                text: "Your order has shipped".into(),
                quick_replies: vec![],
            },
            shared::ports::clock::Clock::now(self.twins.clock.as_ref()),
        );
        self.twins
            .follow_ups
            .create_follow_up(&f, None, f.created_at)
            .await
            .unwrap();
        f.key()
    }

    async fn deliver(&self, message_id: &str, key: &FollowUpKey) -> Vec<String> {
        self.deliver_at_receive(message_id, key, 1).await
    }

    /// Deliver the follow-up's job as its `receives`-th receive.
    async fn deliver_at_receive(
        &self,
        message_id: &str,
        key: &FollowUpKey,
        receives: u32,
    ) -> Vec<String> {
        let mut batch = event(message_id, &job(key).body());
        batch.records[0]
            .attributes
            .insert("ApproximateReceiveCount".into(), receives.to_string());
        let response = handle_batch(&self.deps, batch).await;
        response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    async fn stored(&self, key: &FollowUpKey) -> FollowUp {
        self.twins
            .follow_ups
            .get_follow_up(key)
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn a_follow_up_is_sent_once_with_response_to_the_psid() {
    let w = world(&[]);
    w.person(NOW - HOUR_MS, None).await;
    let key = w.accepted("fu_1").await;
    assert!(w.deliver("msg-1", &key).await.is_empty());
    let sent = w.twins.messenger.follow_ups();
    assert_eq!(sent.len(), 1);
    let (page, psid, message, delivery) = &sent[0];
    assert_eq!((page.as_str(), psid.as_str()), (PAGE, PSID));
    assert_eq!(message.text, "Your order has shipped");
    assert_eq!(*delivery, Delivery::Response);
    assert!(w.twins.messenger.sent().is_empty(), "no initial message");
    let stored = w.stored(&key).await;
    assert_eq!(stored.state, FollowUpState::Sent);
    assert_eq!(stored.sent_at, Some(NOW));
    assert!(stored.lease_owner.is_none());
    let events = w.twins.events.of_type(EventType::MessageSent);
    assert_eq!(events.len(), 1);
    let data = &events[0].data;
    assert_eq!(data["kind"], "follow_up");
    assert_eq!(data["id"], "fu_1");
    assert_eq!(data["asid"], ASID);
    assert_eq!(data["user_ref"], "cust_42");
    assert_eq!(data["state"], "SENT");
    assert_eq!(
        data["message_id"],
        stored.message_id.clone().unwrap().as_str()
    );
    // A duplicate job (or a redelivery) sends nothing more.
    assert!(w.deliver("msg-2", &key).await.is_empty());
    assert_eq!(w.twins.messenger.follow_ups().len(), 1);
}

#[tokio::test]
async fn an_opt_out_recorded_between_accept_and_send_stops_the_follow_up() {
    let w = world(&[]);
    let key = w.accepted("fu_1").await;
    // STOP after the API accepted the follow-up, before its job runs.
    w.person(NOW - HOUR_MS, Some(NOW)).await;
    w.twins.clock.advance(1_000);
    assert!(w.deliver("msg-1", &key).await.is_empty());
    assert!(w.twins.messenger.follow_ups().is_empty(), "not sent");
    let stored = w.stored(&key).await;
    assert_eq!(stored.state, FollowUpState::Failed);
    assert_eq!(stored.reason.as_deref(), Some("opted_out"));
    let failed = w.twins.events.of_type(EventType::MessageFailed);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data["reason"], "opted_out");
    assert_eq!(failed[0].data["kind"], "follow_up");
}

#[tokio::test]
async fn a_window_closed_between_accept_and_send_fails_outside_window() {
    let w = world(&[]);
    // The person wrote 23 h 59 min ago; the job runs 2 minutes after the API accepted it.
    w.person(NOW - STANDARD_WINDOW_MS + 60_000, None).await;
    let key = w.accepted("fu_1").await;
    w.twins.clock.advance(120_000);
    assert!(w.deliver("msg-1", &key).await.is_empty());
    assert!(w.twins.messenger.follow_ups().is_empty());
    let stored = w.stored(&key).await;
    assert_eq!(
        (stored.state, stored.reason.as_deref()),
        (FollowUpState::Failed, Some("outside_window"))
    );
}

fn transient() -> GraphError {
    GraphError::Api {
        status: 500,
        body: GraphErrorBody {
            code: 2,
            message: "An unexpected error has occurred. Please retry your request later.".into(),
            ..Default::default()
        },
    }
}

#[tokio::test]
async fn a_transient_graph_error_is_retried_inside_the_window() {
    let w = world(&[]);
    w.person(NOW - HOUR_MS, None).await;
    let key = w.accepted("fu_1").await;
    w.twins.messenger.then_fail(transient());
    assert_eq!(w.deliver("msg-1", &key).await, ["msg-1"], "retried");
    let visibility = w.twins.retry.visibility();
    assert_eq!(visibility.len(), 1);
    let stored = w.stored(&key).await;
    assert_eq!((stored.state, stored.attempts), (FollowUpState::Queued, 1));
    assert!(
        stored.lease_owner.is_none(),
        "the lease is released for the retry"
    );
    assert!(w.twins.messenger.follow_ups().is_empty());
    // The retry comes back and sends.
    w.twins.clock.advance(i64::from(visibility[0].1) * 1000);
    assert!(w.deliver("msg-1", &key).await.is_empty());
    assert_eq!(w.twins.messenger.follow_ups().len(), 1);
    assert_eq!(w.stored(&key).await.state, FollowUpState::Sent);
}

#[tokio::test]
async fn a_late_retry_is_handed_to_a_fresh_message_not_pushed_to_the_dlq() {
    let w = world(&[]);
    w.person(NOW - HOUR_MS, None).await;
    let key = w.accepted("fu_1").await;
    w.twins.messenger.then_fail(transient());
    assert!(
        w.deliver_at_receive("msg-1", &key, sender::HANDOVER_FROM_RECEIVE)
            .await
            .is_empty(),
        "acknowledged: the retry lives on in a new message"
    );
    let delayed = w.twins.retry.delayed_jobs.lock().unwrap().clone();
    assert_eq!(delayed.len(), 1);
    assert_eq!(delayed[0].0, job(&key));
    assert!(w.twins.retry.visibility().is_empty());
}

#[tokio::test]
async fn a_window_error_from_graph_fails_the_follow_up_without_a_retry() {
    let w = world(&[]);
    w.person(NOW - HOUR_MS, None).await;
    let key = w.accepted("fu_1").await;
    w.twins.messenger.then_fail(GraphError::Api {
        status: 400,
        body: GraphErrorBody {
            code: 10,
            error_subcode: Some(2_018_278),
            message: "(#10) This message is sent outside of allowed window.".into(),
            ..Default::default()
        },
    });
    assert!(w.deliver("msg-1", &key).await.is_empty());
    let stored = w.stored(&key).await;
    assert_eq!(stored.reason.as_deref(), Some("outside_window"));
    assert_eq!(stored.attempts, 1);
}

#[tokio::test]
async fn past_24_hours_only_human_agent_tag_sends_and_with_the_tag() {
    for (setting, sent) in [("false", false), ("true", true)] {
        let w = world(&[(shared::config::env::HUMAN_AGENT_TAG, setting)]);
        w.person(NOW - 30 * HOUR_MS, None).await;
        let key = w.accepted("fu_1").await;
        assert!(w.deliver("msg-1", &key).await.is_empty());
        let follow_ups = w.twins.messenger.follow_ups();
        assert_eq!(!follow_ups.is_empty(), sent, "HUMAN_AGENT_TAG={setting}");
        if sent {
            assert_eq!(follow_ups[0].3, Delivery::HumanAgent);
        } else {
            assert_eq!(
                w.stored(&key).await.reason.as_deref(),
                Some("outside_window")
            );
        }
    }
}

#[tokio::test]
async fn a_follow_up_event_that_could_not_be_queued_is_emitted_when_the_job_comes_back() {
    let w = world(&[]);
    w.person(NOW - HOUR_MS, None).await;
    let key = w.accepted("fu_1").await;
    w.twins
        .events
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        w.deliver("msg-1", &key).await,
        vec!["msg-1".to_owned()],
        "sent, but its event not queued: the record is handed back"
    );
    assert_eq!(w.stored(&key).await.state, FollowUpState::Sent);
    w.twins
        .events
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(w.deliver("msg-1", &key).await.is_empty());
    let events = w.twins.events.of_type(EventType::MessageSent);
    assert_eq!(events.len(), 1, "emitted when the job came back");
    assert_eq!(events[0].data["id"], "fu_1");
    assert_eq!(
        w.twins.messenger.follow_ups().len(),
        1,
        "and nothing was sent twice"
    );
}
