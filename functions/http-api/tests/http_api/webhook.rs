//! The HTTP handler, driven with API Gateway HTTP API (payload 2.0) fixtures and in-memory ports.

use crate::common::twin_ports;
use base64::Engine;
use http_api::{Deps, handle};
use lambda_http::Body;
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::memory::config::{test_config, test_secrets};
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::adapters::memory::queue::MemorySendQueue;
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::domain::opt_in::{HOUR_MS, OptInKey, State};
use shared::facebook::webhook::sign_webhook;
use shared::logging::Captured;
use shared::ports::bundle::Ports;
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
    metrics: Arc<shared::adapters::memory::metrics::MemoryMetrics>,
}

fn world() -> World {
    let store = Arc::new(MemoryOptInStore::new());
    let queue = Arc::new(MemorySendQueue::default());
    let scheduler = Arc::new(MemoryScheduler::default());
    let alerts = Arc::new(MemoryAlerts::default());
    let metrics = Arc::new(shared::adapters::memory::metrics::MemoryMetrics::default());
    let ports = Ports {
        opt_ins: store.clone(),
        conversations: store.clone(),
        pages: store.clone(),
        erasure: Arc::new(shared::adapters::memory::erasure::MemoryErasure::new(
            store.clone(),
            Arc::new(shared::adapters::memory::logins::MemoryLoginStore::new()),
        )),
        queue: queue.clone(),
        scheduler: scheduler.clone(),
        events: Arc::new(shared::adapters::memory::events::MemoryEvents::default()),
        follow_ups: Arc::new(shared::adapters::memory::follow_ups::MemoryFollowUps::default()),
        alerts: alerts.clone(),
        metrics: metrics.clone(),
        ..twin_ports()
    };
    let deps = Deps::from_ports(test_config(&[]), test_secrets().into(), &ports);
    World {
        deps,
        store,
        queue,
        scheduler,
        alerts,
        metrics,
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
    let mut fixture = include_str!("../fixtures/apigw_v2_post_webhook.json")
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

/// Production's log format and level (JSON, INFO) on this thread while the guard lives.
fn capture(logs: &Captured) -> shared::logging::CaptureGuard {
    match shared::logging::capture_this_thread(logs) {
        Ok(guard) => guard,
        Err(e) => panic!("no log capture: {e}"),
    }
}

/// The `message` of each JSON line written.
fn messages(logs: &Captured) -> Vec<String> {
    logs.text()
        .lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) => v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Err(e) => panic!("not a JSON line ({e}): {l}"),
        })
        .collect()
}

/// One opt-in, one INFO line from the http-api: "opt-in recorded" says it all; the webhook's
/// summary repeats it (new=1) and is DEBUG then. Anything else keeps the summary at INFO.
#[tokio::test]
async fn a_webhook_of_new_opt_ins_logs_one_info_line_per_opt_in() {
    let w = world();
    let logs = Captured::default();
    let guard = capture(&logs);
    let body = optin_body(&["L1", "L2"], NOW);
    assert_eq!(handle(&w.deps, signed(&body)).await.status(), 200);
    assert_eq!(messages(&logs), ["opt-in recorded", "opt-in recorded"]);
    // A redelivery: duplicates are worth a line.
    assert_eq!(handle(&w.deps, signed(&body)).await.status(), 200);
    drop(guard);
    let messages = messages(&logs);
    assert_eq!(
        messages.last().map(String::as_str),
        Some("webhook processed")
    );
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
    use shared::ports::opt_ins::OptInStore;
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
    assert_eq!(
        alerts[0].kind,
        shared::domain::alert::AlertKind::DeadlineAtRisk
    );
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
async fn an_opt_in_webhook_racing_a_deletion_never_recreates_the_person() {
    let w = world();
    let key = OptInKey::new(PAGE, "L1");
    let marker = shared::domain::erasure::erasure_marker("test-app-secret", &key);
    // The deletion writes its marker while the webhook is being handled, after any read the
    // webhook could have made of it and before the opt-in is written.
    *w.store.before_next_create.lock().unwrap() = Some(Box::new(move |store| {
        store.mark_erased(&marker, NOW);
    }));
    let response = handle(&w.deps, signed(&optin_body(&["L1"], NOW - 1_000))).await;
    assert_eq!(response.status(), 200);
    assert!(w.store.all().is_empty(), "the person's opt-in came back");
    assert!(w.queue.jobs().is_empty());
    assert!(w.scheduler.get(&key).is_none());
}

#[tokio::test]
async fn a_new_consent_after_an_opt_out_is_honoured() {
    use shared::domain::opt_in::REDELIVERY_HORIZON_MS;
    use shared::ports::opt_ins::OptInStore;
    let mut w = world();
    let clock = Arc::new(ManualClock::at(NOW));
    w.deps.ports.clock = clock.clone();
    let key = OptInKey::new(PAGE, "L1");
    handle(&w.deps, signed(&optin_body(&["L1"], NOW - 1_000))).await;
    w.store.opt_out(&key, "api", NOW).await.unwrap();
    w.deps
        .ports
        .scheduler
        .cancel_deadline_check(&key)
        .await
        .unwrap();
    let jobs_before = w.queue.jobs().len();

    // Within Meta's redelivery horizon an opt-in may be the withdrawn consent again: ignored.
    let within = NOW + REDELIVERY_HORIZON_MS;
    clock.set(within + 1_000);
    handle(&w.deps, signed(&optin_body(&["L1"], within))).await;
    // A redelivery of the original webhook, however late, never revives the opt-in.
    clock.set(NOW + 2 * REDELIVERY_HORIZON_MS);
    handle(&w.deps, signed(&optin_body(&["L1"], NOW - 1_000))).await;
    let still = w.store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!((still.state, still.generation), (State::OptedOut, 0));
    assert_eq!(w.queue.jobs().len(), jobs_before, "nothing to send");

    // A consent given after the horizon is new: its own generation, window, job and schedule.
    let again = NOW + 2 * REDELIVERY_HORIZON_MS;
    clock.set(again + 1_000);
    handle(&w.deps, signed(&optin_body(&["L1"], again))).await;
    let renewed = w.store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!((renewed.state, renewed.generation), (State::OptedIn, 1));
    assert_eq!(
        (renewed.opted_in_at, renewed.deadline_at),
        (again, again + 24 * HOUR_MS)
    );
    let evidence = &renewed.previous_generations[0];
    assert_eq!(
        (evidence.state, evidence.opted_out_at, evidence.opted_in_at),
        (State::OptedOut, Some(NOW), NOW - 1_000)
    );
    assert_eq!(w.queue.jobs().len(), jobs_before + 1);
    let (check, _) = w
        .scheduler
        .get(&key)
        .expect("the new generation is scheduled");
    assert_eq!(check.deadline_at, renewed.deadline_at);
    // Its own redelivery is a duplicate of the new generation.
    handle(&w.deps, signed(&optin_body(&["L1"], again))).await;
    let same = w.store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(same.generation, 1);
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
    let fixture = include_str!("../fixtures/apigw_v2_get_verify.json")
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
    use shared::ports::conversations::ConversationStore;
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
    // A link to an unknown opt-in is not created either (a plain message; a stop with a
    // login_id is an opt-out, see stop_before_the_opt_in_is_not_lost).
    handle(
        &w.deps,
        signed(&message_body("PSID9", "hello", Some("UNKNOWN"), NOW)),
    )
    .await;
    assert_eq!(w.store.all(), before);
    assert!(w.store.psid_links().is_empty());
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
    use shared::ports::pages::PageStateStore;
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
    assert_eq!(
        page.cause,
        Some(shared::domain::page::PauseCause::PolicyBlock)
    );
    assert_eq!(page.probe_at, None, "no probe while blocked");
    assert!(!page.probe_due(i64::MAX), "no probe while blocked");
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1, "one alert per block");
    assert_eq!(
        alerts[0].kind,
        shared::domain::alert::AlertKind::PolicyEnforcement
    );
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

fn stop_notifications_item(psid: Option<&str>, login_id: Option<&str>) -> String {
    let sender = psid
        .map(|p| format!(r#""sender":{{"id":"{p}"}},"#))
        .unwrap_or_default();
    let login = login_id
        .map(|l| format!(r#","login_id":"{l}""#))
        .unwrap_or_default();
    format!(
        r#"{{{sender}"recipient":{{"id":"{PAGE}"}},"timestamp":{NOW},"optin":{{"type":"notification_messages","notification_messages_status":"STOP NOTIFICATIONS"{login}}}}}"#
    )
}

fn message_item(psid: &str, text: &str, linked: Option<&str>) -> String {
    let link = linked
        .map(|l| format!(r#","prior_message":{{"source":"login_connect","identifier":"{l}"}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"sender":{{"id":"{psid}"}},"recipient":{{"id":"{PAGE}"}},"timestamp":{NOW},"message":{{"mid":"m","text":"{text}"}}{link}}}"#
    )
}

fn optin_item(login_id: &str) -> String {
    format!(
        r#"{{"recipient":{{"id":"{PAGE}"}},"timestamp":{NOW},"optin":{{"login_id":"{login_id}"}}}}"#
    )
}

fn batch(items: &[String]) -> String {
    format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{NOW},"messaging":[{}]}}]}}"#,
        items.join(",")
    )
}

/// Nothing can be sent for `login_id`: OPTED_OUT, and a sender's claim is refused.
async fn assert_silenced(w: &World, login_id: &str, source: &str) {
    use shared::ports::opt_ins::OptInStore;
    let key = OptInKey::new(PAGE, login_id);
    let item = w.store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(item.state, State::OptedOut, "{login_id}");
    assert!(
        item.opt_out_source
            .as_deref()
            .is_some_and(|s| s.starts_with(source)),
        "{login_id}: {:?}",
        item.opt_out_source
    );
    assert!(
        !w.store
            .claim_for_send(&key, "sender", NOW + 1, NOW + 60_000)
            .await
            .unwrap()
            .is_done(),
        "{login_id}: claimable after an opt-out"
    );
}

#[tokio::test]
async fn stop_before_the_opt_in_is_not_lost() {
    let w = world();
    // The stop word arrives first (Facebook's deliveries are not ordered), linked to L1.
    let r = handle(
        &w.deps,
        signed(&message_body("PSID1", "STOP", Some("L1"), NOW)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(body_json(&r)["received"], 1);
    // Then the opt-in webhook: it finds the opt-out; nothing is queued or scheduled.
    let r = handle(&w.deps, signed(&optin_body(&["L1"], NOW - 1_000))).await;
    assert_eq!(r.status(), 200);
    assert!(w.queue.jobs().is_empty(), "nothing to send");
    assert!(w.scheduler.get(&OptInKey::new(PAGE, "L1")).is_none());
    assert_silenced(&w, "L1", "stop_keyword").await;
    // Later messages by PSID alone find it (the PSID is linked to the placeholder).
    use shared::ports::conversations::ConversationStore;
    assert_eq!(
        w.store.opt_in_for_psid(PAGE, "PSID1").await.unwrap(),
        Some(OptInKey::new(PAGE, "L1"))
    );
}

#[tokio::test]
async fn stop_notifications_before_the_opt_in_is_not_lost() {
    let w = world();
    let r = handle(
        &w.deps,
        signed(&batch(&[stop_notifications_item(
            Some("PSID2"),
            Some("L2"),
        )])),
    )
    .await;
    assert_eq!(r.status(), 200);
    handle(&w.deps, signed(&optin_body(&["L2"], NOW))).await;
    assert!(w.queue.jobs().is_empty(), "nothing to send");
    assert_silenced(&w, "L2", "stop_notifications").await;
}

#[tokio::test]
async fn stop_before_the_opt_in_in_the_same_batch_is_not_lost() {
    let w = world();
    // One delivery; its items run concurrently. Both orders, both kinds of stop.
    let body = batch(&[
        message_item("PSID1", "stop", Some("L1")),
        optin_item("L1"),
        optin_item("L2"),
        message_item("PSID2", "Unsubscribe!", Some("L2")),
        stop_notifications_item(Some("PSID3"), Some("L3")),
        optin_item("L3"),
    ]);
    let r = handle(&w.deps, signed(&body)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(body_json(&r)["received"], 6);
    assert_silenced(&w, "L1", "stop_keyword").await;
    assert_silenced(&w, "L2", "stop_keyword").await;
    assert_silenced(&w, "L3", "stop_notifications").await;
    // The same delivery again (Facebook redelivers): still nothing sendable.
    assert_eq!(handle(&w.deps, signed(&body)).await.status(), 200);
    for l in ["L1", "L2", "L3"] {
        assert_silenced(&w, l, "stop").await;
    }
}

#[tokio::test]
async fn an_unlinked_stop_is_kept_counted_alerted_and_applied_when_the_psid_is_linked() {
    let w = world();
    handle(&w.deps, signed(&optin_body(&["L1"], NOW))).await;
    // A stop from a PSID nothing is linked to yet (no login_id on the message).
    let r = handle(&w.deps, signed(&message_body("PSID7", "stop", None, NOW))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        w.store.all().pop().unwrap().state,
        State::OptedIn,
        "not known yet"
    );
    assert_eq!(w.store.pending_stops().len(), 1, "kept, not dropped");
    assert_eq!(
        w.metrics
            .sum(shared::domain::metrics::Metric::UnmatchedStops),
        1.0,
        "counted"
    );
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1, "operators alerted");
    assert_eq!(
        alerts[0].kind,
        shared::domain::alert::AlertKind::UnmatchedStop
    );
    // The person writes again, now linked to the opt-in: the kept stop applies.
    let r = handle(
        &w.deps,
        signed(&message_body("PSID7", "hello?", Some("L1"), NOW)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_silenced(&w, "L1", "stop_keyword").await;
    assert!(w.store.pending_stops().is_empty(), "applied once");
    assert_eq!(w.alerts.published().len(), 1);
}

#[tokio::test]
async fn an_unlinked_stop_notifications_is_kept_too() {
    let w = world();
    let r = handle(
        &w.deps,
        signed(&batch(&[stop_notifications_item(Some("PSID8"), None)])),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(w.store.pending_stops().len(), 1);
    assert_eq!(
        w.metrics
            .sum(shared::domain::metrics::Metric::UnmatchedStops),
        1.0
    );
    // A store failure while keeping it asks Facebook to redeliver.
    w.store.fail.store(true, Ordering::SeqCst);
    let r = handle(
        &w.deps,
        signed(&batch(&[stop_notifications_item(Some("PSID9"), None)])),
    )
    .await;
    assert_eq!(r.status(), 503, "a stop must not be lost");
}

fn config_error() -> shared::domain::opt_in::LastError {
    shared::domain::opt_in::LastError {
        code: 190,
        ..Default::default()
    }
}

#[tokio::test]
async fn meta_block_on_a_page_paused_for_configuration_is_recorded_and_alerted() {
    use shared::ports::pages::PageStateStore;
    let w = world();
    w.store
        .pause_page(
            PAGE,
            shared::domain::page::PauseCause::Configuration,
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
    assert_eq!(
        page.cause,
        Some(shared::domain::page::PauseCause::PolicyBlock)
    );
    assert!(page.is_blocked());
    assert!(
        !page.probe_due(NOW + 3_600_000),
        "the configuration pause's probe no longer comes"
    );
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].kind,
        shared::domain::alert::AlertKind::PolicyEnforcement
    );
}

#[tokio::test]
async fn unblock_does_not_lift_a_pause_of_ours() {
    use shared::ports::pages::PageStateStore;
    let w = world();
    w.store
        .pause_page(
            PAGE,
            shared::domain::page::PauseCause::Configuration,
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
    assert_eq!(
        page.cause,
        Some(shared::domain::page::PauseCause::Configuration)
    );
    assert_eq!(
        w.queue.jobs().len(),
        jobs_before,
        "nothing queued while paused"
    );
}

#[tokio::test]
async fn unblock_redelivered_after_a_queue_failure_still_requeues_the_paused_opt_ins() {
    use shared::ports::pages::PageStateStore;
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
