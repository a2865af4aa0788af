//! Follow-up messages (issue 12 §2) over in-memory ports: accepted inside the window, each
//! refusal a 409 that writes and queues nothing, every bad request a 400 that writes nothing, and
//! `Idempotency-Key` (same answer, mismatch, concurrent requests, a lost job re-queued).

use crate::common::*;
use async_trait::async_trait;
use shared::adapters::memory::follow_ups::MemoryFollowUps;
use shared::domain::follow_up::{
    FollowUp, FollowUpKey, FollowUpOutcome, FollowUpState, IdempotencyRecord,
};
use shared::domain::jobs::Job;
use shared::domain::opt_in::{HOUR_MS, Millis, OptIn, OptInKey, State};
use shared::ports::bundle::Ports;
use shared::ports::conversations::ConversationStore;
use shared::ports::error::PortResult;
use shared::ports::follow_ups::{CreatedFollowUp, FollowUpChange, FollowUpStore};
use shared::ports::opt_ins::OptInStore;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A person who logged in, whose initial message was sent, and who last wrote to the Page at
/// `last_message` (`None`: never).
async fn person(w: &World, asid: &str, last_message: Option<Millis>) -> OptInKey {
    person_opted_out(w, asid, last_message, None).await
}

/// [`person`], with an opt-out recorded at `opted_out_at` after the initial message.
async fn person_opted_out(
    w: &World,
    asid: &str,
    last_message: Option<Millis>,
    opted_out_at: Option<Millis>,
) -> OptInKey {
    let token = format!("tok-{asid}");
    w.facebook.token_for(&token, user(asid, Some("Ana"), true));
    let body = serde_json::json!({ "user_access_token": token }).to_string();
    let r = send(w, Req::post("/v1/logins").key(KEY_OLD).json(&body)).await;
    assert_eq!(r.status(), 201);
    let key = OptInKey::new(PAGE, expected_login_id(asid));
    let mut o = OptIn::new(
        key.clone(),
        Some(NOW - 30 * HOUR_MS),
        NOW - 30 * HOUR_MS,
        24 * HOUR_MS,
        2 * HOUR_MS,
    );
    o.state = State::Sent;
    o.sent_at = Some(NOW - 30 * HOUR_MS + 1_000);
    o.opted_out_at = opted_out_at;
    w.store.create_opt_in(&o).await.unwrap();
    if let Some(at) = last_message {
        assert!(
            w.store
                .link_psid(&key, &format!("psid-{asid}"), at)
                .await
                .unwrap()
        );
    }
    key
}

fn follow_up(asid: &str, body: &str) -> Req {
    Req::post(&format!("/v1/users/{asid}/messages"))
        .key(KEY_NEW)
        .json(body)
}

const HELLO: &str = r#"{"text":"Your order has shipped"}"#;

fn jobs(w: &World) -> Vec<Job> {
    w.queue.other_jobs.lock().unwrap().clone()
}

/// Nothing of a follow-up was written or queued.
fn nothing_written(w: &World) {
    assert!(w.follow_ups.all().is_empty());
    assert_eq!(w.follow_ups.key_count(), 0);
    assert!(jobs(w).is_empty());
}

#[tokio::test]
async fn a_follow_up_inside_the_window_is_queued_and_readable() {
    let w = world();
    person(&w, "555", Some(NOW - 2 * HOUR_MS)).await;
    let body = r#"{"text":"Shipped!","quick_replies":[{"content_type":"text","title":"Track","payload":"TRACK_1"}]}"#;
    let r = send(&w, follow_up("555", body)).await;
    assert_eq!(r.status(), 202, "{:?}", r.body());
    let v = json_of(&r);
    assert_eq!(v["state"], "queued");
    let id = v["id"].as_str().unwrap().to_owned();
    let stored = w.follow_ups.all();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, id);
    assert_eq!(stored[0].message.quick_replies[0].payload, "TRACK_1");
    match jobs(&w).as_slice() {
        [Job::FollowUp(job)] => {
            assert_eq!((job.page_id.as_str(), job.asid.as_str()), (PAGE, "555"));
            assert_eq!(job.id, id);
        }
        other => panic!("expected one follow-up job, got {other:?}"),
    }
    let r = send(
        &w,
        Req::get(&format!("/v1/users/555/messages/{id}")).key(KEY_OLD),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v = json_of(&r);
    assert_eq!(
        (v["id"].as_str(), v["state"].as_str()),
        (Some(id.as_str()), Some("queued"))
    );
    assert_eq!(v["message_id"], serde_json::Value::Null);
    // Another person's path, an unknown id, a malformed id: 404.
    for path in [
        format!("/v1/users/556/messages/{id}"),
        "/v1/users/555/messages/fu_00000000000000000000000000000000".to_owned(),
        "/v1/users/555/messages/nope".to_owned(),
    ] {
        let r = send(&w, Req::get(&path).key(KEY_OLD)).await;
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn each_refusal_is_a_409_and_queues_nothing() {
    let w = world();
    // Never wrote to the Page.
    person(&w, "1", None).await;
    // Wrote 25 hours ago.
    person(&w, "2", Some(NOW - 25 * HOUR_MS)).await;
    // Wrote an hour ago, then said STOP after the initial message (SENT keeps its evidence).
    person_opted_out(&w, "3", Some(NOW - HOUR_MS), Some(NOW - 60_000)).await;
    // Exactly 24 hours ago: the window has just closed.
    person(&w, "4", Some(NOW - 24 * HOUR_MS)).await;
    for (asid, code) in [
        ("1", "no_conversation"),
        ("2", "outside_window"),
        ("3", "opted_out"),
        ("4", "outside_window"),
    ] {
        let r = send(&w, follow_up(asid, HELLO).h("idempotency-key", asid)).await;
        assert_eq!(
            (r.status().as_u16(), error_code(&r)),
            (409, code.into()),
            "{asid}"
        );
    }
    let r = send(&w, follow_up("2", HELLO)).await;
    assert_eq!(
        json_of(&r)["error"]["window_ended_at"],
        "2026-11-24T15:00:00Z",
        "24 hours after the last message"
    );
    let r = send(&w, follow_up("777", HELLO)).await;
    assert_eq!(
        (r.status().as_u16(), error_code(&r)),
        (404, "unknown_person".into())
    );
    nothing_written(&w);
}

#[tokio::test]
async fn human_agent_tag_extends_the_window_to_7_days() {
    let w = world_with(&[(shared::config::env::HUMAN_AGENT_TAG, "true")]);
    person(&w, "2", Some(NOW - 30 * HOUR_MS)).await;
    person(&w, "8", Some(NOW - 8 * 24 * HOUR_MS)).await;
    assert_eq!(send(&w, follow_up("2", HELLO)).await.status(), 202);
    let r = send(&w, follow_up("8", HELLO)).await;
    assert_eq!(
        (r.status().as_u16(), error_code(&r)),
        (409, "outside_window".into())
    );
}

#[tokio::test]
async fn hostile_requests_are_a_clear_4xx_and_write_nothing() {
    let w = world();
    person(&w, "555", Some(NOW - HOUR_MS)).await;
    let reply = r#"{"content_type":"text","title":"t","payload":"p"}"#;
    let fourteen = format!(
        r#"{{"text":"hi","quick_replies":[{}]}}"#,
        vec![reply; 14].join(",")
    );
    let long = serde_json::json!({ "text": "x".repeat(2000) }).to_string();
    let cases: Vec<(Req, u16, &str)> = vec![
        (follow_up("555", "{not json"), 400, "invalid_json"),
        (follow_up("555", &long), 400, "invalid_message"),
        (follow_up("555", &fourteen), 400, "invalid_message"),
        (follow_up("555", r#"{"text":""}"#), 400, "invalid_message"),
        (
            follow_up("555", r#"{"text":"hi","tag":"HUMAN_AGENT"}"#),
            400,
            "invalid_request",
        ),
        (
            follow_up("555", r#"{"quick_replies":[]}"#),
            400,
            "invalid_request",
        ),
        (
            follow_up(
                "555",
                r#"{"text":"hi","quick_replies":[{"content_type":"text","title":"123456789012345678901","payload":"p"}]}"#,
            ),
            400,
            "invalid_message",
        ),
        (
            follow_up("555", HELLO).h("idempotency-key", &"k".repeat(256)),
            400,
            "invalid_idempotency_key",
        ),
        (follow_up("abc", HELLO), 400, "invalid_asid"),
        (follow_up("404", HELLO), 404, "unknown_person"),
        (
            Req::post("/v1/users/555/messages")
                .key("wrong-key")
                .json(HELLO),
            401,
            "unauthorized",
        ),
        (
            Req::post("/v1/users/555/messages")
                .key(KEY_OLD)
                .h("content-type", "text/plain")
                .json(HELLO),
            415,
            "unsupported_media_type",
        ),
    ];
    for (request, status, code) in cases {
        let r = send(&w, request.clone()).await;
        assert_eq!(
            (r.status().as_u16(), error_code(&r)),
            (status, code.into()),
            "{:?}",
            request.body
        );
    }
    nothing_written(&w);
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_answers_the_same_and_queues_once() {
    let w = world();
    person(&w, "555", Some(NOW - HOUR_MS)).await;
    person(&w, "556", Some(NOW - HOUR_MS)).await;
    let first = send(&w, follow_up("555", HELLO).h("idempotency-key", "order-42")).await;
    assert_eq!(first.status(), 202);
    let again = send(&w, follow_up("555", HELLO).h("idempotency-key", "order-42")).await;
    assert_eq!(again.status(), 202);
    assert_eq!(json_of(&again), json_of(&first));
    assert_eq!(w.follow_ups.all().len(), 1);
    // The replay of a not-yet-attempted follow-up queues its job again (the first may have been
    // lost); every job names the one follow-up, whose claim lets one send through.
    let ids: std::collections::BTreeSet<String> = jobs(&w)
        .into_iter()
        .map(|j| match j {
            Job::FollowUp(job) => job.id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 1);
    // Another body, or another person, with the same key: a mismatch, nothing written.
    let other = r#"{"text":"Your order is delayed"}"#;
    for (asid, body) in [("555", other), ("556", HELLO)] {
        let r = send(&w, follow_up(asid, body).h("idempotency-key", "order-42")).await;
        assert_eq!(
            (r.status().as_u16(), error_code(&r)),
            (409, "idempotency_mismatch".into())
        );
    }
    assert_eq!(w.follow_ups.all().len(), 1);
    // After 24 hours the key is free again.
    w.clock.advance(24 * HOUR_MS);
    let key = OptInKey::new(PAGE, expected_login_id("555"));
    let replied = NOW + 24 * HOUR_MS - 1_000;
    assert!(w.store.link_psid(&key, "psid-555", replied).await.unwrap());
    let r = send(&w, follow_up("555", other).h("idempotency-key", "order-42")).await;
    assert_eq!(r.status(), 202);
    assert_eq!(w.follow_ups.all().len(), 2);
}

/// A store whose reads yield first, so that two requests in one task interleave: both read "no
/// record", then both try to create.
struct Interleaving(Arc<MemoryFollowUps>);

#[async_trait]
impl FollowUpStore for Interleaving {
    async fn create_follow_up(
        &self,
        f: &FollowUp,
        i: Option<&IdempotencyRecord>,
        now: Millis,
    ) -> PortResult<CreatedFollowUp> {
        tokio::task::yield_now().await;
        self.0.create_follow_up(f, i, now).await
    }
    async fn idempotency_record(
        &self,
        k: &str,
        now: Millis,
    ) -> PortResult<Option<IdempotencyRecord>> {
        tokio::task::yield_now().await;
        self.0.idempotency_record(k, now).await
    }
    async fn get_follow_up(&self, k: &FollowUpKey) -> PortResult<Option<FollowUp>> {
        self.0.get_follow_up(k).await
    }
    async fn claim_follow_up(
        &self,
        k: &FollowUpKey,
        o: &str,
        now: Millis,
        until: Millis,
    ) -> PortResult<FollowUpChange> {
        self.0.claim_follow_up(k, o, now, until).await
    }
    async fn finish_follow_up(
        &self,
        k: &FollowUpKey,
        o: &str,
        out: &FollowUpOutcome,
        now: Millis,
    ) -> PortResult<FollowUpChange> {
        self.0.finish_follow_up(k, o, out, now).await
    }
    async fn erase_person(&self, page_id: &str, asid: &str) -> PortResult<u32> {
        self.0.erase_person(page_id, asid).await
    }
}

#[tokio::test]
async fn two_concurrent_identical_requests_create_one_follow_up() {
    let mut w = world();
    person(&w, "555", Some(NOW - HOUR_MS)).await;
    let ports = Ports {
        follow_ups: Arc::new(Interleaving(w.follow_ups.clone())),
        ..w.deps.ports.clone()
    };
    w.deps = http_api::Deps::from_ports(w.deps.config.clone(), secrets().into(), &ports);
    let request = || follow_up("555", HELLO).h("idempotency-key", "same");
    let (a, b) = futures::join!(send(&w, request()), send(&w, request()));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (202, 202));
    assert_eq!(json_of(&a)["id"], json_of(&b)["id"]);
    assert_eq!(w.follow_ups.all().len(), 1, "one follow-up");
    // The loser replays and may queue the not-yet-attempted follow-up again: every job names the
    // one follow-up, whose claim lets one send through (sender tests).
    let one = json_of(&a)["id"].as_str().unwrap_or_default().to_owned();
    assert!(!jobs(&w).is_empty());
    assert!(
        jobs(&w)
            .iter()
            .all(|j| matches!(j, Job::FollowUp(job) if job.id == one))
    );
}

#[tokio::test]
async fn a_replay_requeues_a_follow_up_whose_job_was_lost() {
    let w = world();
    person(&w, "555", Some(NOW - HOUR_MS)).await;
    w.queue.fail.store(true, Ordering::SeqCst);
    let r = send(&w, follow_up("555", HELLO).h("idempotency-key", "k1")).await;
    assert_eq!(r.status(), 503);
    w.queue.fail.store(false, Ordering::SeqCst);
    let stored = w.follow_ups.all();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].state, FollowUpState::Queued);
    // The client retries at once with the same key (a second later: a retry must not be told
    // "queued" while no job exists): the same id, and now a job.
    w.clock.advance(1_000);
    let r = send(&w, follow_up("555", HELLO).h("idempotency-key", "k1")).await;
    assert_eq!(r.status(), 202);
    assert_eq!(json_of(&r)["id"], stored[0].id.as_str());
    assert_eq!(jobs(&w).len(), 1);
}
