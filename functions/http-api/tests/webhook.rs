//! The HTTP handler, driven with API Gateway HTTP API (payload 2.0) fixtures and in-memory ports.

use base64::Engine;
use http_api::{Deps, handle};
use lambda_http::Body;
use shared::adapters::memory::{
    ManualClock, MemoryAlerts, MemoryOptInStore, MemoryScheduler, MemorySendQueue, test_config,
    test_secrets,
};
use shared::domain::{HOUR_MS, OptInKey, State};
use shared::facebook::sign_webhook;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const NOW: i64 = 1_795_536_000_000;
const PAGE: &str = "200000000000002";

struct World {
    deps: Deps,
    store: Arc<MemoryOptInStore>,
    queue: Arc<MemorySendQueue>,
    scheduler: Arc<MemoryScheduler>,
    alerts: Arc<MemoryAlerts>,
}

fn world() -> World {
    let store = Arc::new(MemoryOptInStore::new());
    let queue = Arc::new(MemorySendQueue::default());
    let scheduler = Arc::new(MemoryScheduler::default());
    let alerts = Arc::new(MemoryAlerts::default());
    let deps = Deps {
        config: test_config(&[]),
        secrets: test_secrets(),
        store: store.clone(),
        conversations: store.clone(),
        pages: store.clone(),
        erasure: Arc::new(shared::adapters::memory::MemoryErasure::new(
            store.clone(),
            Arc::new(shared::adapters::memory_login::MemoryLoginStore::new()),
        )),
        queue: queue.clone(),
        scheduler: scheduler.clone(),
        alerts: alerts.clone(),
        clock: Arc::new(ManualClock::at(NOW)),
        metrics: Arc::new(shared::metrics::MemoryMetrics::default()),
        logins: Arc::new(shared::adapters::memory_login::MemoryLoginStore::new()),
        facebook: Arc::new(shared::adapters::memory_login::MemoryFacebookLogin::default()),
    };
    World {
        deps,
        store,
        queue,
        scheduler,
        alerts,
    }
}

fn post(body: &str, signature: Option<&str>, base64: bool) -> lambda_http::Request {
    let encoded = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        serde_json::to_string(body)
            .unwrap()
            .trim_matches('"')
            .to_owned()
    };
    let mut fixture = include_str!("fixtures/apigw_v2_post_webhook.json")
        .replace("__BODY__", &encoded)
        .replace("__BASE64__", if base64 { "true" } else { "false" });
    fixture = match signature {
        Some(sig) => fixture.replace("__SIGNATURE__", sig),
        None => fixture.replace(
            "\"x-hub-signature-256\": \"__SIGNATURE__\"",
            "\"x-none\": \"\"",
        ),
    };
    lambda_http::request::from_str(&fixture).unwrap()
}

fn signed(body: &str) -> lambda_http::Request {
    post(
        body,
        Some(&sign_webhook(b"test-app-secret", body.as_bytes())),
        true,
    )
}

fn optin_body(login_ids: &[&str], timestamp: i64) -> String {
    let items: Vec<String> = login_ids
        .iter()
        .map(|l| {
            format!(
                r#"{{"recipient":{{"id":"{PAGE}"}},"timestamp":{timestamp},"optin":{{"login_id":"{l}"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{timestamp},"messaging":[{}]}}]}}"#,
        items.join(",")
    )
}

fn body_json(response: &lambda_http::Response<Body>) -> serde_json::Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

#[tokio::test]
async fn signed_opt_in_is_recorded_enqueued_and_scheduled() {
    let w = world();
    let ts = NOW - 1_000;
    let response = handle(&w.deps, signed(&optin_body(&["L1"], ts))).await;
    assert_eq!(response.status(), 200);
    let items = w.store.all();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!((item.state, item.opted_in_at), (State::OptedIn, ts));
    assert_eq!(item.deadline_at, ts + 24 * HOUR_MS);
    assert_eq!(item.alert_at, item.deadline_at - 2 * HOUR_MS);
    assert_eq!(w.queue.jobs().len(), 1);
    assert_eq!(w.queue.jobs()[0].login_id, "L1");
    let (check, at) = w.scheduler.get(&OptInKey::new(PAGE, "L1")).unwrap();
    assert_eq!((check.deadline_at, at), (item.deadline_at, item.alert_at));
    assert!(w.alerts.published().is_empty());
}

#[tokio::test]
async fn plain_text_bodies_work_too() {
    let w = world();
    let body = optin_body(&["L1"], NOW);
    let sig = sign_webhook(b"test-app-secret", body.as_bytes());
    let response = handle(&w.deps, post(&body, Some(&sig), false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(w.store.all().len(), 1);
}

#[tokio::test]
async fn redelivery_is_harmless() {
    let w = world();
    let body = optin_body(&["L1"], NOW);
    for _ in 0..3 {
        assert_eq!(handle(&w.deps, signed(&body)).await.status(), 200);
    }
    assert_eq!(w.store.all().len(), 1);
    assert_eq!(w.scheduler.schedules.lock().unwrap().len(), 1);
    // Every job points at the same opt-in; the sender's claim lets one through.
    assert!(w.queue.jobs().iter().all(|j| j.login_id == "L1"));
}

#[tokio::test]
async fn duplicates_of_a_claimed_opt_in_are_not_re_enqueued() {
    let w = world();
    let body = optin_body(&["L1"], NOW);
    handle(&w.deps, signed(&body)).await;
    let key = OptInKey::new(PAGE, "L1");
    use shared::ports::OptInStore;
    w.store
        .claim_for_send(&key, "x", NOW, NOW + 1000)
        .await
        .unwrap();
    handle(&w.deps, signed(&body)).await;
    assert_eq!(w.queue.jobs().len(), 1);
}

#[tokio::test]
async fn batched_entries_and_items_are_all_handled() {
    let w = world();
    let body = format!(
        r#"{{"object":"page","entry":[
        {{"id":"{PAGE}","time":{NOW},"messaging":[
          {{"recipient":{{"id":"{PAGE}"}},"timestamp":{NOW},"optin":{{"login_id":"A"}}}},
          {{"sender":{{"id":"123"}},"recipient":{{"id":"{PAGE}"}},"timestamp":{NOW},"message":{{"mid":"m","text":"hi"}}}}]}},
        {{"id":"{PAGE}","time":{NOW},"messaging":[
          {{"recipient":{{"id":"{PAGE}"}},"timestamp":{NOW},"optin":{{"login_id":"B"}}}},
          {{"recipient":{{"id":"{PAGE}"}},"timestamp":{NOW},"optin":{{"login_id":"C"}}}}]}}]}}"#
    );
    let response = handle(&w.deps, signed(&body)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_json(&response)["received"], 4);
    let mut ids: Vec<String> = w.store.all().into_iter().map(|o| o.login_id).collect();
    ids.sort();
    assert_eq!(ids, ["A", "B", "C"]);
    assert_eq!(w.queue.jobs().len(), 3);
}

#[tokio::test]
async fn missing_or_wrong_signature_is_401_and_writes_nothing() {
    let w = world();
    let body = optin_body(&["L1"], NOW);
    for sig in [
        None,
        Some("sha256=00".to_owned()),
        Some(sign_webhook(b"wrong-secret", body.as_bytes())),
        Some(sign_webhook(
            b"test-app-secret",
            format!("{body} ").as_bytes(),
        )),
        Some("md5=abc".to_owned()),
    ] {
        let response = handle(&w.deps, post(&body, sig.as_deref(), true)).await;
        assert_eq!(response.status(), 401, "{sig:?}");
        assert_eq!(body_json(&response)["error"]["code"], "invalid_signature");
    }
    assert!(w.store.all().is_empty());
    assert!(w.queue.jobs().is_empty());
    assert!(w.scheduler.schedules.lock().unwrap().is_empty());
}

#[tokio::test]
async fn malformed_but_signed_body_is_400_and_writes_nothing() {
    let w = world();
    for body in [
        "not json",
        r#"{"object":"page"}"#,
        r#"{"object":"page","entry":"x"}"#,
        "[]",
    ] {
        let response = handle(&w.deps, signed(body)).await;
        assert_eq!(response.status(), 400, "{body}");
        let json = body_json(&response);
        assert_eq!(json["error"]["code"], "malformed_webhook");
        assert!(json["error"]["message"].is_string());
    }
    assert!(w.store.all().is_empty());
    assert!(w.queue.jobs().is_empty());
}

#[tokio::test]
async fn opt_in_for_another_page_is_ignored() {
    let w = world();
    let body = optin_body(&["L1"], NOW).replace(PAGE, "999");
    assert_eq!(handle(&w.deps, signed(&body)).await.status(), 200);
    assert!(w.store.all().is_empty());
}

#[tokio::test]
async fn late_webhook_alerts_at_once_instead_of_scheduling_in_the_past() {
    let w = world();
    let ts = NOW - 23 * HOUR_MS;
    assert_eq!(
        handle(&w.deps, signed(&optin_body(&["L1"], ts)))
            .await
            .status(),
        200
    );
    assert!(w.scheduler.schedules.lock().unwrap().is_empty());
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, shared::domain::AlertKind::DeadlineAtRisk);
    // A redelivery does not alert again.
    handle(&w.deps, signed(&optin_body(&["L1"], ts))).await;
    assert_eq!(w.alerts.published().len(), 1);
    assert_eq!(
        w.queue.jobs().len(),
        2,
        "still sendable: enqueued each time while OPTED_IN"
    );
}

#[tokio::test]
async fn store_failure_asks_for_redelivery() {
    let w = world();
    w.store.fail.store(true, Ordering::SeqCst);
    let response = handle(&w.deps, signed(&optin_body(&["L1"], NOW))).await;
    assert_eq!(response.status(), 503);
    assert!(w.queue.jobs().is_empty());
}

#[tokio::test]
async fn queue_failure_still_answers_200_with_the_opt_in_recorded() {
    let w = world();
    w.queue.fail.store(true, Ordering::SeqCst);
    let response = handle(&w.deps, signed(&optin_body(&["L1"], NOW))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(w.store.all().len(), 1, "the sweep re-enqueues it");
}

fn verify(mode: &str, token: &str) -> lambda_http::Request {
    let fixture = include_str!("fixtures/apigw_v2_get_verify.json")
        .replace("__MODE__", mode)
        .replace("__TOKEN__", token);
    lambda_http::request::from_str(&fixture).unwrap()
}

#[tokio::test]
async fn subscription_handshake() {
    let w = world();
    let ok = handle(&w.deps, verify("subscribe", "test-verify-token")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.body().as_ref(), b"1158201444");
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    for (mode, token) in [
        ("subscribe", "wrong"),
        ("unsubscribe", "test-verify-token"),
        ("subscribe", ""),
    ] {
        let refused = handle(&w.deps, verify(mode, token)).await;
        assert_eq!(refused.status(), 403, "{mode}/{token}");
        assert_eq!(body_json(&refused)["error"]["code"], "verification_failed");
    }
}

#[tokio::test]
async fn health_unknown_routes_methods_and_size_limit() {
    let w = world();
    let mut request = signed("{}");
    *request.uri_mut() = "https://x/healthz".parse().unwrap();
    *request.method_mut() = lambda_http::http::Method::GET;
    assert_eq!(handle(&w.deps, request).await.status(), 200);

    let mut request = signed("{}");
    *request.uri_mut() = "https://x/nope".parse().unwrap();
    let response = handle(&w.deps, request).await;
    assert_eq!(response.status(), 404);
    assert_eq!(body_json(&response)["error"]["code"], "not_found");

    let mut request = signed("{}");
    *request.method_mut() = lambda_http::http::Method::PUT;
    assert_eq!(handle(&w.deps, request).await.status(), 405);

    let huge = "x".repeat(http_api::MAX_BODY_BYTES + 1);
    let response = handle(&w.deps, signed(&huge)).await;
    assert_eq!(response.status(), 413);
    assert!(w.store.all().is_empty());
}

fn message_body(psid: &str, text: &str, linked: Option<&str>, timestamp: i64) -> String {
    let link = linked
        .map(|l| format!(r#","prior_message":{{"source":"login_connect","identifier":"{l}"}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{timestamp},"messaging":[{{"sender":{{"id":"{psid}"}},"recipient":{{"id":"{PAGE}"}},"timestamp":{timestamp},"message":{{"mid":"m","text":"{text}"}}{link}}}]}}]}}"#
    )
}

#[tokio::test]
async fn a_reply_links_the_psid_and_later_messages_find_the_opt_in_by_it() {
    use shared::ports::ConversationStore;
    let w = world();
    handle(&w.deps, signed(&optin_body(&["L1"], NOW))).await;
    let key = OptInKey::new(PAGE, "L1");
    let r = handle(
        &w.deps,
        signed(&message_body("PSID1", "hello", Some("L1"), NOW - 10)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let item = w.store.all().pop().unwrap();
    assert_eq!(item.psid.as_deref(), Some("PSID1"));
    assert_eq!(item.last_user_message_at, Some(NOW - 10));
    assert_eq!(
        item.state,
        State::OptedIn,
        "a normal message changes nothing else"
    );
    assert_eq!(
        w.store.opt_in_for_psid(PAGE, "PSID1").await.unwrap(),
        Some(key)
    );
    // A later message without the link, by PSID alone.
    handle(
        &w.deps,
        signed(&message_body("PSID1", "more", None, NOW - 5)),
    )
    .await;
    assert_eq!(
        w.store.all().pop().unwrap().last_user_message_at,
        Some(NOW - 5)
    );
}

#[tokio::test]
async fn a_stop_message_opts_out_at_once_and_cancels_the_schedule() {
    let w = world();
    handle(&w.deps, signed(&optin_body(&["L1"], NOW))).await;
    handle(
        &w.deps,
        signed(&message_body("PSID1", "hi", Some("L1"), NOW)),
    )
    .await;
    let r = handle(
        &w.deps,
        signed(&message_body("PSID1", " STOP! ", None, NOW)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let item = w.store.all().pop().unwrap();
    assert_eq!(item.state, State::OptedOut);
    assert_eq!(item.opt_out_source.as_deref(), Some("stop_keyword"));
    assert!(w.scheduler.get(&OptInKey::new(PAGE, "L1")).is_none());
}

#[tokio::test]
async fn stop_notifications_status_opts_a_known_person_out() {
    let w = world();
    handle(&w.deps, signed(&optin_body(&["L1"], NOW))).await;
    handle(
        &w.deps,
        signed(&message_body("PSID1", "hi", Some("L1"), NOW)),
    )
    .await;
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{NOW},"messaging":[{{"sender":{{"id":"PSID1"}},"recipient":{{"id":"{PAGE}"}},"timestamp":{NOW},"optin":{{"type":"notification_messages","notification_messages_status":"STOP NOTIFICATIONS"}}}}]}}]}}"#
    );
    assert_eq!(handle(&w.deps, signed(&body)).await.status(), 200);
    let item = w.store.all().pop().unwrap();
    assert_eq!(
        (item.state, item.opt_out_source.as_deref()),
        (State::OptedOut, Some("stop_notifications"))
    );
}

#[tokio::test]
async fn messages_from_strangers_and_echoes_change_nothing() {
    let w = world();
    handle(&w.deps, signed(&optin_body(&["L1"], NOW))).await;
    let before = w.store.all();
    assert_eq!(
        handle(
            &w.deps,
            signed(&message_body("STRANGER", "stop", None, NOW))
        )
        .await
        .status(),
        200
    );
    let echo = format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","messaging":[{{"sender":{{"id":"{PAGE}"}},"recipient":{{"id":"PSID1"}},"timestamp":{NOW},"message":{{"mid":"m","is_echo":true,"text":"stop"}}}}]}}]}}"#
    );
    assert_eq!(handle(&w.deps, signed(&echo)).await.status(), 200);
    // A link to an unknown opt-in is not created either.
    handle(
        &w.deps,
        signed(&message_body("PSID9", "stop", Some("UNKNOWN"), NOW)),
    )
    .await;
    assert_eq!(w.store.all(), before);
}

#[tokio::test]
async fn a_store_failure_on_stop_asks_for_redelivery() {
    let w = world();
    handle(&w.deps, signed(&optin_body(&["L1"], NOW))).await;
    w.store.fail.store(true, Ordering::SeqCst);
    let r = handle(
        &w.deps,
        signed(&message_body("PSID1", "stop", Some("L1"), NOW)),
    )
    .await;
    assert_eq!(r.status(), 503, "an opt-out must not be lost");
}

fn policy_body(action: &str) -> String {
    format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{NOW},"messaging":[{{"recipient":{{"id":"{PAGE}"}},"timestamp":{NOW},"policy_enforcement":{{"action":"{action}","reason":"spam"}}}}]}}]}}"#
    )
}

#[tokio::test]
async fn policy_block_pauses_the_page_once_and_unblock_requeues_what_is_still_sendable() {
    use shared::ports::send::PageStateStore;
    let w = world();
    handle(&w.deps, signed(&optin_body(&["L1"], NOW))).await;
    assert_eq!(
        handle(&w.deps, signed(&policy_body("block")))
            .await
            .status(),
        200
    );
    assert_eq!(
        handle(&w.deps, signed(&policy_body("block")))
            .await
            .status(),
        200
    );
    let page = w.store.get_page(PAGE).await.unwrap().unwrap();
    assert_eq!(page.cause, Some(shared::page::PauseCause::PolicyBlock));
    assert_eq!(page.probe_at, None, "no probe while blocked");
    assert!(!page.probe_due(i64::MAX), "no probe while blocked");
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1, "one alert per block");
    assert_eq!(alerts[0].kind, shared::domain::AlertKind::PolicyEnforcement);
    // A job while blocked parks the opt-in (the sender's own check); simulate the park here.
    let key = OptInKey::new(PAGE, "L1");
    assert!(w.store.park_opt_in(&key, NOW).await.unwrap().is_done());
    let jobs_before = w.queue.jobs().len();
    assert_eq!(
        handle(&w.deps, signed(&policy_body("unblock")))
            .await
            .status(),
        200
    );
    assert!(
        w.store
            .get_page(PAGE)
            .await
            .unwrap()
            .is_none_or(|p| p.probe_at.is_none())
    );
    let jobs = w.queue.jobs();
    assert_eq!(jobs.len(), jobs_before + 1);
    assert_eq!(jobs.last().unwrap().login_id, "L1");
    assert_eq!(w.alerts.published().len(), 2);
    // A warning only alerts.
    handle(&w.deps, signed(&policy_body("warning"))).await;
    assert_eq!(w.alerts.published().len(), 3);
}

fn config_error() -> shared::domain::LastError {
    shared::domain::LastError {
        code: 190,
        ..Default::default()
    }
}

#[tokio::test]
async fn meta_block_on_a_page_paused_for_configuration_is_recorded_and_alerted() {
    use shared::ports::send::PageStateStore;
    let w = world();
    w.store
        .pause_page(
            PAGE,
            shared::page::PauseCause::Configuration,
            &config_error(),
            NOW,
            NOW + 60_000,
        )
        .await
        .unwrap();
    assert_eq!(
        handle(&w.deps, signed(&policy_body("block")))
            .await
            .status(),
        200
    );
    let page = w.store.get_page(PAGE).await.unwrap().unwrap();
    assert_eq!(page.cause, Some(shared::page::PauseCause::PolicyBlock));
    assert!(page.is_blocked());
    assert!(
        !page.probe_due(NOW + 3_600_000),
        "the configuration pause's probe no longer comes"
    );
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, shared::domain::AlertKind::PolicyEnforcement);
}

#[tokio::test]
async fn unblock_does_not_lift_a_pause_of_ours() {
    use shared::ports::send::PageStateStore;
    let w = world();
    w.store
        .pause_page(
            PAGE,
            shared::page::PauseCause::Configuration,
            &config_error(),
            NOW,
            NOW + 60_000,
        )
        .await
        .unwrap();
    handle(&w.deps, signed(&optin_body(&["L1"], NOW))).await;
    let key = OptInKey::new(PAGE, "L1");
    assert!(w.store.park_opt_in(&key, NOW).await.unwrap().is_done());
    let jobs_before = w.queue.jobs().len();
    assert_eq!(
        handle(&w.deps, signed(&policy_body("unblock")))
            .await
            .status(),
        200
    );
    let page = w.store.get_page(PAGE).await.unwrap().unwrap();
    assert!(page.is_paused(), "still paused for our configuration error");
    assert_eq!(page.cause, Some(shared::page::PauseCause::Configuration));
    assert_eq!(
        w.queue.jobs().len(),
        jobs_before,
        "nothing queued while paused"
    );
}

#[tokio::test]
async fn unblock_redelivered_after_a_queue_failure_still_requeues_the_paused_opt_ins() {
    use shared::ports::send::PageStateStore;
    let w = world();
    handle(&w.deps, signed(&optin_body(&["L1", "L2"], NOW))).await;
    handle(&w.deps, signed(&policy_body("block"))).await;
    for login in ["L1", "L2"] {
        let key = OptInKey::new(PAGE, login);
        assert!(w.store.park_opt_in(&key, NOW).await.unwrap().is_done());
    }
    let jobs_before = w.queue.jobs().len();
    // The queue fails: the Page is ACTIVE already, but Meta must redeliver.
    w.queue.fail.store(true, Ordering::SeqCst);
    assert_eq!(
        handle(&w.deps, signed(&policy_body("unblock")))
            .await
            .status(),
        503
    );
    assert!(!w.store.get_page(PAGE).await.unwrap().unwrap().is_paused());
    // Meta redelivers the unblock: the opt-ins are queued although the Page is already ACTIVE.
    w.queue.fail.store(false, Ordering::SeqCst);
    assert_eq!(
        handle(&w.deps, signed(&policy_body("unblock")))
            .await
            .status(),
        200
    );
    let mut queued: Vec<String> = w.queue.jobs()[jobs_before..]
        .iter()
        .map(|j| j.login_id.clone())
        .collect();
    queued.sort();
    assert_eq!(queued, ["L1", "L2"]);
}
