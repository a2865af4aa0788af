//! Issue 12: the http-api's producers of events to the website backend, over in-memory twins —
//! each emits exactly its event, carrying the person's asid, `user_ref` and state, with the same
//! `webhook-id` when Meta redelivers; an event that cannot be queued makes a webhook answer 503
//! (Meta redelivers) and never undoes what was recorded; a STOP after the initial message is
//! recorded, answered truthfully by the API and emitted.

use crate::common::*;
use shared::domain::events::{EventType, OutboundEvent};
use shared::domain::opt_in::{HOUR_MS, OptInKey, SendOutcome, State};
use shared::facebook::signed_request::sign_request;
use shared::facebook::webhook::sign_webhook;
use shared::ports::opt_ins::OptInStore;
use std::sync::atomic::Ordering;

const ASID: &str = "7654321";

fn webhook(body: String) -> Req {
    Req::post("/webhooks/messenger")
        .h(
            "x-hub-signature-256",
            &sign_webhook(b"test-app-secret", body.as_bytes()),
        )
        .json(&body)
}

fn messaging(item: String, ts: i64) -> Req {
    webhook(format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{ts},"messaging":[{item}]}}]}}"#
    ))
}

fn opt_in(login_id: &str, ts: i64) -> Req {
    messaging(
        format!(
            r#"{{"recipient":{{"id":"{PAGE}"}},"timestamp":{ts},"optin":{{"login_id":"{login_id}"}}}}"#
        ),
        ts,
    )
}

fn message(psid: &str, text: &str, linked: Option<&str>, ts: i64) -> Req {
    let link = linked
        .map(|l| format!(r#","prior_message":{{"source":"login_connect","identifier":"{l}"}}"#))
        .unwrap_or_default();
    messaging(
        format!(
            r#"{{"sender":{{"id":"{psid}"}},"recipient":{{"id":"{PAGE}"}},"timestamp":{ts},"message":{{"mid":"m-{ts}","text":"{text}"}}{link}}}"#
        ),
        ts,
    )
}

/// `POST /v1/logins` for [`ASID`] with the website's `user_ref`.
async fn log_in(w: &World) {
    w.facebook.token_for("tok", user(ASID, Some("Ana"), true));
    let body = serde_json::json!({"user_access_token": "tok", "user_ref": "cust_42"}).to_string();
    let r = send(w, Req::post("/v1/logins").key(KEY_OLD).json(&body)).await;
    assert_eq!(r.status(), 201);
}

fn only(w: &World, t: EventType) -> OutboundEvent {
    let of_type = w.events.of_type(t);
    assert_eq!(of_type.len(), 1, "{t:?}: {of_type:?}");
    of_type[0].clone()
}

fn key() -> OptInKey {
    OptInKey::new(PAGE, expected_login_id(ASID))
}

/// The person's opt-in, its initial message sent at `NOW + 1000`.
async fn sent(w: &World) {
    let key = key();
    w.store
        .claim_for_send(&key, "s", NOW, NOW + 60_000)
        .await
        .unwrap();
    let outcome = SendOutcome::Sent {
        message_id: "m.1".into(),
    };
    let done = w.store.finish_send(&key, "s", &outcome, NOW + 1_000).await;
    assert!(done.unwrap().is_done());
}

#[tokio::test]
async fn a_login_emits_login_completed_with_the_user_ref() {
    let w = world();
    log_in(&w).await;
    let e = only(&w, EventType::LoginCompleted);
    assert_eq!(e.data["asid"], ASID);
    assert_eq!(e.data["permission"], "granted");
    assert_eq!(e.data["user_ref"], "cust_42");
    assert_eq!(e.data["state"], serde_json::Value::Null, "no opt-in yet");
    assert_eq!(e.occurred_at, NOW);
}

#[tokio::test]
async fn an_opt_in_emits_optin_received_and_a_redelivery_the_same_id() {
    let w = world();
    log_in(&w).await;
    let login_id = expected_login_id(ASID);
    assert_eq!(send(&w, opt_in(&login_id, NOW - 1_000)).await.status(), 200);
    let e = only(&w, EventType::OptInReceived);
    assert_eq!(e.data["asid"], ASID);
    assert_eq!(e.data["user_ref"], "cust_42");
    assert_eq!(e.data["state"], "OPTED_IN");
    assert_eq!(e.data["opted_in_at"], "2026-11-24T15:59:59.000Z");
    assert_eq!(e.data["deadline_at"], "2026-11-25T15:59:59.000Z");
    assert!(!e.body().contains(&login_id), "no login_id in clear");
    // Meta redelivers (also after the initial message was sent): the same event id.
    sent(&w).await;
    assert_eq!(send(&w, opt_in(&login_id, NOW - 1_000)).await.status(), 200);
    let again = w.events.of_type(EventType::OptInReceived);
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].id, e.id);
}

#[tokio::test]
async fn an_event_not_queued_makes_the_webhook_ask_for_redelivery_and_keeps_the_opt_in() {
    let w = world();
    w.events.fail.store(true, Ordering::SeqCst);
    let r = send(&w, opt_in("L1", NOW)).await;
    assert_eq!(r.status(), 503, "Meta must redeliver");
    let stored = w
        .store
        .get_opt_in(&OptInKey::new(PAGE, "L1"))
        .await
        .unwrap();
    assert_eq!(
        stored.unwrap().state,
        State::OptedIn,
        "recorded all the same"
    );
    assert_eq!(w.queue.jobs().len(), 1, "the send is queued all the same");
    w.events.fail.store(false, Ordering::SeqCst);
    assert_eq!(send(&w, opt_in("L1", NOW)).await.status(), 200);
    let e = only(&w, EventType::OptInReceived);
    assert_eq!(e.data["asid"], serde_json::Value::Null, "no login linked");
}

#[tokio::test]
async fn stop_after_the_initial_message_is_recorded_answered_and_emitted() {
    let w = world();
    log_in(&w).await;
    let login_id = expected_login_id(ASID);
    send(&w, opt_in(&login_id, NOW)).await;
    sent(&w).await;
    w.clock.set(NOW + HOUR_MS);
    let r = send(&w, message("PSID1", "STOP", Some(&login_id), NOW + HOUR_MS)).await;
    assert_eq!(r.status(), 200);
    let item = w.store.get_opt_in(&key()).await.unwrap().unwrap();
    assert!(item.has_opted_out());
    assert_eq!(
        (item.state, item.message_id.as_deref()),
        (State::Sent, Some("m.1"))
    );
    let e = only(&w, EventType::PersonOptedOut);
    assert_eq!(e.data["source"], "stop_keyword");
    assert_eq!(e.data["state"], "SENT");
    assert_eq!(e.data["user_ref"], "cust_42");
    // The API shows it, and an opt-out through it is answered truthfully: nothing in flight.
    let r = send(&w, Req::get(&format!("/v1/users/{ASID}")).key(KEY_OLD)).await;
    let user = json_of(&r);
    assert_eq!(user["state"], "SENT");
    assert_eq!(user["opted_out_at"], "2026-11-24T17:00:00.000Z");
    let r = send(
        &w,
        Req::post(&format!("/v1/users/{ASID}/opt-out")).key(KEY_OLD),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(&r)["in_flight"], false);
    assert_eq!(json_of(&r)["opted_out_at"], "2026-11-24T17:00:00.000Z");
    let repeats = w.events.of_type(EventType::PersonOptedOut);
    assert!(repeats.iter().all(|r| r.id == e.id), "one opt-out, one id");
}

#[tokio::test]
async fn a_reply_becomes_person_replied_with_its_window() {
    let w = world();
    log_in(&w).await;
    let login_id = expected_login_id(ASID);
    send(&w, opt_in(&login_id, NOW)).await;
    w.clock.set(NOW + 60_000);
    let r = send(
        &w,
        message("PSID1", "Is it in blue?", Some(&login_id), NOW + 5),
    )
    .await;
    assert_eq!(r.status(), 200);
    let e = only(&w, EventType::PersonReplied);
    assert_eq!(e.data["text"], "Is it in blue?");
    assert_eq!(e.data["asid"], ASID);
    assert_eq!(e.data["received_at"], "2026-11-24T16:00:00.005Z");
    assert_eq!(e.data["window_ends_at"], "2026-11-25T16:00:00.005Z");
    // Later messages carry only the PSID; a redelivery repeats the id.
    send(
        &w,
        message("PSID1", "Is it in blue?", Some(&login_id), NOW + 5),
    )
    .await;
    send(&w, message("PSID1", "thanks", None, NOW + 9)).await;
    let all = w.events.of_type(EventType::PersonReplied);
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].id, e.id);
    assert_ne!(all[2].id, e.id);
    // Someone who never came through Login Connect: nothing.
    send(&w, message("STRANGER", "hi", None, NOW + 10)).await;
    assert_eq!(w.events.of_type(EventType::PersonReplied).len(), 3);
}

#[tokio::test]
async fn a_data_deletion_emits_opted_out_then_deleted_with_the_user_ref() {
    let w = world();
    log_in(&w).await;
    send(&w, opt_in(&expected_login_id(ASID), NOW)).await;
    let signed = sign_request(
        b"test-app-secret",
        &serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":NOW / 1000,"user_id":ASID}),
    );
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("signed_request", &signed)
        .finish();
    let r = send(
        &w,
        Req::post("/facebook/data-deletion")
            .h("content-type", "application/x-www-form-urlencoded")
            .json(&body),
    )
    .await;
    assert_eq!(r.status(), 200);
    let code = json_of(&r)["confirmation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = only(&w, EventType::PersonOptedOut);
    assert_eq!(out.data["source"], "data_deletion");
    let deleted = only(&w, EventType::PersonDeleted);
    assert_eq!(deleted.data["confirmation_code"], code.as_str());
    assert_eq!(deleted.data["asid"], ASID);
    assert_eq!(deleted.data["user_ref"], "cust_42");
    assert_eq!(deleted.data["state"], serde_json::Value::Null);
}
