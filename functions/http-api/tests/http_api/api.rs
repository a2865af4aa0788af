//! The website-backend API with in-memory ports: keys, every 4xx (each asserted to write
//! nothing), the user view, and the opt-out before and after the opt-in.

use crate::common::*;
use shared::config::env;
use shared::domain::opt_in::{HOUR_MS, OptIn, OptInKey, State};
use shared::facebook::webhook::sign_webhook;
use shared::ports::opt_ins::OptInStore;

fn login_body(token: &str) -> String {
    serde_json::json!({ "user_access_token": token }).to_string()
}

/// Everything stored, of every kind.
fn written(w: &World) -> usize {
    w.logins.item_count() + w.store.all().len()
}

#[tokio::test]
async fn every_v1_route_needs_one_of_the_configured_keys() {
    let w = world();
    let routes = [
        Req::post("/v1/logins").json(&login_body("t")),
        Req::get("/v1/users/123"),
        Req::post("/v1/users/123/opt-out"),
        Req::get("/v1/nothing-here"),
    ];
    for route in &routes {
        for auth in [
            None,
            Some("Bearer wrong-key"),
            Some("Basic c2l0ZS1rZXktb2xk"),
            Some(KEY_OLD),
            Some("Bearer "),
        ] {
            let mut r = route.clone();
            if let Some(a) = auth {
                r = r.h("authorization", a);
            }
            let response = send(&w, r).await;
            assert_eq!(response.status(), 401, "{} {auth:?}", route.path);
            assert_eq!(error_code(&response), "unauthorized");
            assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
        }
    }
    // Both keys of a rotation work.
    for key in [KEY_OLD, KEY_NEW] {
        let r = send(&w, Req::get("/v1/users/123").key(key)).await;
        assert_eq!(r.status(), 404, "{key}");
    }
    assert_eq!(written(&w), 0);
    assert!(w.facebook.calls().is_empty());
}

#[tokio::test]
async fn record_login_verifies_the_token_and_records() {
    let w = world();
    w.facebook
        .token_for("tok-granted", user("111", Some("Ana"), true));
    w.facebook
        .token_for("tok-declined", user("222", None, false));
    let r = send(
        &w,
        Req::post("/v1/logins")
            .key(KEY_NEW)
            .json(&login_body("tok-granted")),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        json_of(&r),
        serde_json::json!({"asid": "111", "permission": "granted", "state": "AWAITING_OPT_IN", "user_ref": null})
    );
    let r = send(
        &w,
        Req::post("/v1/logins")
            .key(KEY_OLD)
            .h("content-type", "application/json; charset=utf-8")
            .json(&login_body("tok-declined")),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        json_of(&r),
        serde_json::json!({"asid": "222", "permission": "declined", "state": "DECLINED", "user_ref": null})
    );
    let mut logins = w.logins.logins();
    logins.sort_by(|a, b| a.asid.cmp(&b.asid));
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0].source, shared::domain::login::LoginSource::Api);
    assert_eq!(logins[0].expected_login_id, Some(expected_login_id("111")));
}

#[tokio::test]
async fn record_login_refusals_write_nothing() {
    let w = world();
    let mut other_app = user("333", Some("X"), true);
    other_app.app_id = "999".into();
    w.facebook.token_for("tok-other-app", other_app);
    let big = login_body(&"x".repeat(17 * 1024));
    let cases: Vec<(Req, u16, &str)> = vec![
        (
            Req::post("/v1/logins")
                .key(KEY_OLD)
                .h("content-type", "text/plain")
                .json(&login_body("t")),
            415,
            "unsupported_media_type",
        ),
        (
            {
                let mut r = Req::post("/v1/logins").key(KEY_OLD);
                r.body = Some(login_body("t"));
                r
            },
            415,
            "unsupported_media_type",
        ),
        (
            Req::post("/v1/logins").key(KEY_OLD).json(&big),
            413,
            "body_too_large",
        ),
        (
            Req::post("/v1/logins").key(KEY_OLD).json("{not json"),
            400,
            "invalid_json",
        ),
        (
            Req::post("/v1/logins").key(KEY_OLD).json("{}"),
            400,
            "invalid_request",
        ),
        (
            Req::post("/v1/logins")
                .key(KEY_OLD)
                .json(r#"{"user_access_token":"t","extra":1}"#),
            400,
            "invalid_request",
        ),
        (
            Req::post("/v1/logins")
                .key(KEY_OLD)
                .json(r#"{"user_access_token":"  "}"#),
            400,
            "invalid_request",
        ),
        (
            Req::post("/v1/logins")
                .key(KEY_OLD)
                .json(&login_body("unknown-token")),
            400,
            "invalid_user_token",
        ),
        (
            Req::post("/v1/logins")
                .key(KEY_OLD)
                .json(&login_body("tok-other-app")),
            400,
            "token_of_another_app",
        ),
        (
            Req::get("/v1/logins").key(KEY_OLD),
            405,
            "method_not_allowed",
        ),
    ];
    for (req, status, code) in cases {
        let r = send(&w, req).await;
        assert_eq!(r.status(), status, "{code}");
        assert_eq!(error_code(&r), code);
        assert_eq!(header(&r, "content-type"), Some("application/json"));
    }
    assert_eq!(written(&w), 0);

    // Graph unreachable: our answer is 502, still nothing written.
    w.facebook
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = send(
        &w,
        Req::post("/v1/logins").key(KEY_OLD).json(&login_body("t")),
    )
    .await;
    assert_eq!(r.status(), 502);
    assert_eq!(error_code(&r), "facebook_unavailable");
    assert_eq!(written(&w), 0);
}

async fn login(w: &World, asid: &str, name: &str) {
    let token = format!("tok-{asid}");
    w.facebook.token_for(&token, user(asid, Some(name), true));
    let r = send(
        w,
        Req::post("/v1/logins")
            .key(KEY_OLD)
            .json(&login_body(&token)),
    )
    .await;
    assert_eq!(r.status(), 201);
}

fn optin_webhook(login_id: &str, ts: i64) -> Req {
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{ts},"messaging":[{{"recipient":{{"id":"{PAGE}"}},"timestamp":{ts},"optin":{{"login_id":"{login_id}"}}}}]}}]}}"#
    );
    Req::post("/webhooks/messenger")
        .h(
            "x-hub-signature-256",
            &sign_webhook(b"test-app-secret", body.as_bytes()),
        )
        .json(&body)
}

#[tokio::test]
async fn users_show_state_and_timestamps_once_linked() {
    let w = world();
    for bad in ["abc", "12a", &"1".repeat(40)] {
        let r = send(&w, Req::get(&format!("/v1/users/{bad}")).key(KEY_OLD)).await;
        assert_eq!(
            (r.status().as_u16(), error_code(&r)),
            (400, "invalid_asid".into())
        );
    }
    let r = send(&w, Req::get("/v1/users/404404").key(KEY_OLD)).await;
    assert_eq!(
        (r.status().as_u16(), error_code(&r)),
        (404, "unknown_person".into())
    );

    login(&w, "555", "Ana").await;
    let r = send(&w, Req::get("/v1/users/555").key(KEY_OLD)).await;
    assert_eq!(r.status(), 200);
    let v = json_of(&r);
    assert_eq!(v["state"], "AWAITING_OPT_IN");
    assert_eq!(v["login_at"], "2026-11-24T16:00:00.000Z");
    assert_eq!(v["opted_in_at"], serde_json::Value::Null);
    assert!(v.get("first_name").is_none() && v.get("login_id").is_none());

    // The webhook arrives (after the login): the view follows the opt-in.
    w.clock.advance(1_000);
    let r = send(&w, optin_webhook(&expected_login_id("555"), NOW + 1_000)).await;
    assert_eq!(r.status(), 200);
    let v = json_of(&send(&w, Req::get("/v1/users/555").key(KEY_OLD)).await);
    assert_eq!(v["state"], "OPTED_IN");
    assert_eq!(v["opted_in_at"], "2026-11-24T16:00:01.000Z");
    assert_eq!(v["deadline_at"], "2026-11-25T16:00:01.000Z");
    assert_eq!(v["sent_at"], serde_json::Value::Null);
}

#[tokio::test]
async fn opt_out_is_idempotent_and_stops_a_queued_opt_in() {
    let w = world();
    login(&w, "600", "Bo").await;
    let key = OptInKey::new(PAGE, expected_login_id("600"));
    assert_eq!(
        send(&w, optin_webhook(&key.login_id, NOW)).await.status(),
        200
    );
    assert!(w.scheduler.get(&key).is_some());
    assert_eq!(w.queue.jobs().len(), 1);

    for _ in 0..2 {
        let r = send(&w, Req::post("/v1/users/600/opt-out").key(KEY_NEW)).await;
        assert_eq!(r.status(), 200);
        let v = json_of(&r);
        assert_eq!(v["state"], "OPTED_OUT");
        assert_eq!(v["opted_out_at"], "2026-11-24T16:00:00.000Z");
        assert_eq!(v["opted_in_at"], "2026-11-24T16:00:00.000Z");
    }
    let item = w.store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(item.state, State::OptedOut);
    assert_eq!(item.opt_out_source.as_deref(), Some("api"));
    assert!(
        w.scheduler.get(&key).is_none(),
        "deadline schedule cancelled"
    );
    // The queued job can no longer be claimed.
    let claim = w
        .store
        .claim_for_send(&key, "sender", NOW + 5, NOW + 60_000)
        .await;
    assert!(!claim.unwrap().is_done());
}

#[tokio::test]
async fn opt_out_during_an_in_flight_send_says_in_flight() {
    let w = world();
    login(&w, "650", "Fa").await;
    let key = OptInKey::new(PAGE, expected_login_id("650"));
    send(&w, optin_webhook(&key.login_id, NOW)).await;
    // A sender has claimed it and is talking to Graph.
    assert!(
        w.store
            .claim_for_send(&key, "sender", NOW + 1, NOW + 30_000)
            .await
            .unwrap()
            .is_done()
    );
    for _ in 0..2 {
        let r = send(&w, Req::post("/v1/users/650/opt-out").key(KEY_OLD)).await;
        assert_eq!(r.status(), 200);
        let v = json_of(&r);
        assert_eq!(v["state"], "OPTED_OUT");
        assert_eq!(
            v["in_flight"], true,
            "the caller is told a send was under way"
        );
    }
    let item = w.store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(item.opted_out_from, Some(State::Sending));
    let v = json_of(&send(&w, Req::get("/v1/users/650").key(KEY_OLD)).await);
    assert_eq!(v["in_flight"], true);
    // A queued (not yet claimed) opt-in: not in flight.
    login(&w, "651", "Ge").await;
    send(&w, optin_webhook(&expected_login_id("651"), NOW)).await;
    let r = send(&w, Req::post("/v1/users/651/opt-out").key(KEY_OLD)).await;
    assert_eq!(json_of(&r)["in_flight"], false);
}

#[tokio::test]
async fn opt_out_before_the_opt_in_arrives_wins() {
    let w = world();
    login(&w, "700", "Cy").await;
    let r = send(
        &w,
        Req::post("/v1/users/700/opt-out").key(KEY_OLD).json("{}"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v = json_of(&r);
    assert_eq!(v["state"], "OPTED_OUT");
    assert_eq!(v["opted_in_at"], serde_json::Value::Null, "no opt-in yet");
    // The opt-in webhook arrives afterwards: nothing is enqueued or scheduled.
    let key = OptInKey::new(PAGE, expected_login_id("700"));
    assert_eq!(
        send(&w, optin_webhook(&key.login_id, NOW)).await.status(),
        200
    );
    assert!(w.queue.jobs().is_empty());
    assert!(w.scheduler.get(&key).is_none());
    assert_eq!(
        w.store.get_opt_in(&key).await.unwrap().unwrap().state,
        State::OptedOut
    );
}

#[tokio::test]
async fn opt_out_after_the_message_keeps_sent_and_refusals_write_nothing() {
    let w = world();
    login(&w, "800", "Di").await;
    let key = OptInKey::new(PAGE, expected_login_id("800"));
    let mut sent = OptIn::new(key.clone(), Some(NOW), NOW, 24 * HOUR_MS, 2 * HOUR_MS);
    sent.state = State::Sent;
    sent.sent_at = Some(NOW + 500);
    sent.terminal_at = Some(NOW + 500);
    w.store.insert(sent);
    let r = send(&w, Req::post("/v1/users/800/opt-out").key(KEY_OLD)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(&r)["state"], "SENT");
    assert_eq!(json_of(&r)["sent_at"], "2026-11-24T16:00:00.500Z");

    let before = written(&w);
    for (req, status, code) in [
        (
            Req::post("/v1/users/900/opt-out").key(KEY_OLD),
            404,
            "unknown_person",
        ),
        (
            Req::post("/v1/users/x/opt-out").key(KEY_OLD),
            400,
            "invalid_asid",
        ),
        (
            Req::post("/v1/users/800/opt-out")
                .key(KEY_OLD)
                .json(r#"{"why":1}"#),
            400,
            "invalid_request",
        ),
        (
            Req::post("/v1/users/800/opt-out")
                .key(KEY_OLD)
                .h("content-type", "text/plain")
                .json("stop"),
            415,
            "unsupported_media_type",
        ),
        (
            Req::get("/v1/users/800/opt-out").key(KEY_OLD),
            405,
            "method_not_allowed",
        ),
        (
            Req::post("/v1/users/800").key(KEY_OLD),
            405,
            "method_not_allowed",
        ),
    ] {
        let r = send(&w, req).await;
        assert_eq!((r.status().as_u16(), error_code(&r)), (status, code.into()));
    }
    assert_eq!(written(&w), before);
}

#[tokio::test]
async fn opt_out_without_derivation_is_a_conflict() {
    let w = world_with(&[(env::DERIVE_LOGIN_ID, "false")]);
    login(&w, "901", "Ed").await;
    let v = json_of(&send(&w, Req::get("/v1/users/901").key(KEY_OLD)).await);
    assert_eq!(v["state"], "UNCORRELATED");
    let r = send(&w, Req::post("/v1/users/901/opt-out").key(KEY_OLD)).await;
    assert_eq!(
        (r.status().as_u16(), error_code(&r)),
        (409, "not_correlated".into())
    );
    assert!(w.store.all().is_empty());
}

#[tokio::test]
async fn openapi_document_is_served_and_lists_every_route() {
    let w = world();
    let r = send(&w, Req::get("/openapi.json")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    let doc = json_of(&r);
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/healthz", "get"),
        ("/openapi.json", "get"),
        ("/login/start", "get"),
        ("/login/callback", "get"),
        ("/{segment}/webhooks/messenger", "get"),
        ("/{segment}/webhooks/messenger", "post"),
        ("/{segment}/facebook/deauthorize", "post"),
        ("/{segment}/facebook/data-deletion", "post"),
        ("/facebook/data-deletion/status", "get"),
        ("/v1/logins", "post"),
        ("/v1/users/{asid}", "get"),
        ("/v1/users/{asid}/opt-out", "post"),
        ("/v1/users/{asid}/messages", "post"),
        ("/v1/users/{asid}/messages/{id}", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert_eq!(
        doc["components"]["responses"]["Throttled"]["content"]["application/json"]["example"],
        serde_json::json!({"message": "Too Many Requests"})
    );
}
