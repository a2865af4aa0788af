//! Deauthorize and Data Deletion callbacks (signed_request), over in-memory twins.

use crate::common::*;
use shared::config::env;
use shared::domain::opt_in::State;
use shared::facebook::crypto::derive_login_id;
use shared::facebook::signed_request::sign_request;
use shared::facebook::webhook::sign_webhook;
use shared::ports::conversations::ConversationStore;
use shared::ports::opt_ins::OptInStore;

const NOW_S: i64 = NOW / 1000;

fn signed(secret: &[u8], asid: &str, issued_at: i64) -> String {
    sign_request(
        secret,
        &serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":issued_at,"user_id":asid,"expires":issued_at+3600}),
    )
}

fn form(path: &str, signed_request: &str) -> Req {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("signed_request", signed_request)
        .finish();
    Req::post(path)
        .h("content-type", "application/x-www-form-urlencoded")
        .json(&body)
}

fn login_id_of(asid: &str) -> String {
    derive_login_id(CLIENT_TOKEN, asid, APP, PAGE)
}

async fn log_in(w: &World, asid: &str, name: &str) {
    log_in_with(w, asid, name, true).await;
}

async fn log_in_declined(w: &World, asid: &str) {
    log_in_with(w, asid, "Di", false).await;
}

async fn log_in_with(w: &World, asid: &str, name: &str, granted: bool) {
    let token = format!("tok-{asid}");
    w.facebook
        .token_for(&token, user(asid, Some(name), granted));
    let body = serde_json::json!({"user_access_token": token}).to_string();
    let r = send(w, Req::post("/v1/logins").key(KEY_OLD).json(&body)).await;
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
async fn deauthorize_opts_out_at_once() {
    let w = world();
    log_in(&w, "111", "Ana").await;
    assert_eq!(
        send(&w, optin_webhook(&login_id_of("111"), NOW))
            .await
            .status(),
        200
    );
    let r = send(
        &w,
        form(
            "/facebook/deauthorize",
            &signed(b"test-app-secret", "111", NOW_S),
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    let key = shared::domain::opt_in::OptInKey::new(PAGE, login_id_of("111"));
    let item = w.store.get_opt_in(&key).await.unwrap().unwrap();
    assert_eq!(
        (item.state, item.opt_out_source.as_deref()),
        (State::OptedOut, Some("deauthorize"))
    );
    assert!(w.scheduler.get(&key).is_none());
    assert!(
        !w.store
            .claim_for_send(&key, "s", NOW, NOW + 1000)
            .await
            .unwrap()
            .is_done()
    );
}

#[tokio::test]
async fn deauthorize_before_the_opt_in_blocks_it() {
    let w = world();
    // No LOGIN recorded: the opt-in is found by deriving the login_id from the asid.
    let r = send(
        &w,
        form(
            "/facebook/deauthorize",
            &signed(b"test-app-secret", "222", NOW_S),
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    send(&w, optin_webhook(&login_id_of("222"), NOW)).await;
    let key = shared::domain::opt_in::OptInKey::new(PAGE, login_id_of("222"));
    assert_eq!(
        w.store.get_opt_in(&key).await.unwrap().unwrap().state,
        State::OptedOut
    );
    assert!(w.queue.jobs().is_empty(), "nothing to send");
}

#[tokio::test]
async fn deletion_erases_everything_identifying_and_answers_the_status_url() {
    let w = world();
    log_in(&w, "333", "Hana").await;
    let login_id = login_id_of("333");
    send(&w, optin_webhook(&login_id, NOW)).await;
    let key = shared::domain::opt_in::OptInKey::new(PAGE, &login_id);
    w.store.link_psid(&key, "PSID333", NOW).await.unwrap();

    let sr = signed(b"test-app-secret", "333", NOW_S);
    let r = send(&w, form("/facebook/data-deletion", &sr)).await;
    assert_eq!(r.status(), 200);
    let answer = json_of(&r);
    let code = answer["confirmation_code"].as_str().unwrap().to_owned();
    assert_eq!(
        answer["url"],
        format!("{API}/facebook/data-deletion/status?code={code}")
    );

    assert!(w.store.all().is_empty(), "opt-in erased");
    assert!(w.logins.logins().is_empty(), "LOGIN erased");
    assert_eq!(
        w.store.opt_in_for_psid(PAGE, "PSID333").await.unwrap(),
        None,
        "PSID link erased"
    );
    assert!(w.scheduler.get(&key).is_none());

    // The same request again: same answer, harmless.
    let again = json_of(&send(&w, form("/facebook/data-deletion", &sr)).await);
    assert_eq!(again["confirmation_code"], code.as_str());

    // A redelivered old opt-in webhook does not bring the opt-in back.
    assert_eq!(
        send(&w, optin_webhook(&login_id, NOW - 1000))
            .await
            .status(),
        200
    );
    assert!(w.store.all().is_empty());
    // A new opt-in after the deletion is a new consent.
    w.clock.advance(5_000);
    send(&w, optin_webhook(&login_id, NOW + 5_000)).await;
    assert_eq!(w.store.all().len(), 1);

    // The status page, HTML and JSON.
    let page = send(
        &w,
        Req::get("/facebook/data-deletion/status").q("code", &code),
    )
    .await;
    assert_eq!(page.status(), 200);
    let html = String::from_utf8_lossy(page.body().as_ref()).into_owned();
    assert!(html.contains(&code) && html.contains("completed"));
    let json = send(
        &w,
        Req::get("/facebook/data-deletion/status")
            .q("code", &code)
            .h("accept", "application/json"),
    )
    .await;
    assert_eq!(json_of(&json)["status"], "completed");
    assert!(json_of(&json)["items_erased"].as_u64().unwrap() >= 3);
    let missing = send(
        &w,
        Req::get("/facebook/data-deletion/status").q("code", "abc123"),
    )
    .await;
    assert_eq!(missing.status(), 404);
    let bad = send(
        &w,
        Req::get("/facebook/data-deletion/status").q("code", "<script>"),
    )
    .await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn bad_signed_requests_change_nothing() {
    let w = world();
    log_in(&w, "444", "Li").await;
    send(&w, optin_webhook(&login_id_of("444"), NOW)).await;
    let before = w.store.all();
    let good = signed(b"test-app-secret", "444", NOW_S);
    let cases: Vec<(Req, u16, &str)> = vec![
        (
            form(
                "/facebook/data-deletion",
                &signed(b"wrong-secret", "444", NOW_S),
            ),
            400,
            "invalid_signed_request",
        ),
        (
            form(
                "/facebook/deauthorize",
                &signed(b"wrong-secret", "444", NOW_S),
            ),
            400,
            "invalid_signed_request",
        ),
        (
            form(
                "/facebook/data-deletion",
                &sign_request(
                    b"test-app-secret",
                    &serde_json::json!({"algorithm":"HMAC-SHA1","issued_at":NOW_S,"user_id":"444"}),
                ),
            ),
            400,
            "invalid_signed_request",
        ),
        (
            form("/facebook/data-deletion", &good[..good.len() - 4]),
            400,
            "invalid_signed_request",
        ),
        (
            form("/facebook/data-deletion", "not base64!.x"),
            400,
            "invalid_signed_request",
        ),
        (
            form("/facebook/data-deletion", &"A".repeat(20_000)),
            400,
            "invalid_signed_request",
        ),
        (
            form(
                "/facebook/data-deletion",
                &signed(b"test-app-secret", "444", NOW_S - 30 * 86_400),
            ),
            400,
            "invalid_signed_request",
        ),
        (
            Req::post("/facebook/data-deletion")
                .h("content-type", "application/x-www-form-urlencoded")
                .json("other=1"),
            400,
            "invalid_signed_request",
        ),
        (
            Req::post("/facebook/data-deletion").json(&format!(r#"{{"signed_request":"{good}"}}"#)),
            415,
            "unsupported_media_type",
        ),
    ];
    for (req, status, code) in cases {
        let r = send(&w, req).await;
        assert_eq!(
            (r.status().as_u16(), error_code(&r).as_str()),
            (status, code)
        );
    }
    assert_eq!(w.store.all(), before);
    assert_eq!(w.logins.logins().len(), 1);
}

/// Issue 10, "signed_request too lenient": the probe's requests — six days old with `expires` in
/// the past, a `user_id` of `../../x#y`, the JavaScript SDK's shape carrying `code` — were all
/// accepted. Each is now a 4xx JSON error on both callbacks, and nothing is written.
#[tokio::test]
async fn signed_request_too_lenient_requests_are_refused_and_change_nothing() {
    let w = world();
    log_in(&w, "555", "Mo").await;
    send(&w, optin_webhook(&login_id_of("555"), NOW)).await;
    let before = w.store.all();
    let sign = |payload: serde_json::Value| sign_request(b"test-app-secret", &payload);
    let six_days_ago = NOW_S - 6 * 86_400;
    let cases = [
        (
            "six days old, expired",
            sign(
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":six_days_ago,"expires":six_days_ago + 3600,"user_id":"555"}),
            ),
        ),
        (
            "issued two hours ago",
            sign(
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":NOW_S - 7200,"user_id":"555"}),
            ),
        ),
        (
            "expired a minute ago",
            sign(
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":NOW_S - 120,"expires":NOW_S - 60,"user_id":"555"}),
            ),
        ),
        (
            "path-like user_id",
            sign(
                serde_json::json!({"algorithm":"HMAC-SHA256","issued_at":NOW_S,"user_id":"../../x#y"}),
            ),
        ),
        (
            "the JavaScript SDK's signedRequest",
            sign(
                serde_json::json!({"algorithm":"HMAC-SHA256","code":"AQDx-login-code","issued_at":NOW_S,"user_id":"555"}),
            ),
        ),
        (
            "oauth_token",
            sign(
                serde_json::json!({"algorithm":"HMAC-SHA256","oauth_token":"EAAB","issued_at":NOW_S,"user_id":"555"}),
            ),
        ),
    ];
    for (name, sr) in &cases {
        for path in ["/facebook/data-deletion", "/facebook/deauthorize"] {
            let r = send(&w, form(path, sr)).await;
            assert_eq!(r.status(), 400, "{name} {path}");
            assert_eq!(error_code(&r), "invalid_signed_request", "{name} {path}");
        }
    }
    assert_eq!(w.store.all(), before, "nothing written");
    assert_eq!(w.logins.logins().len(), 1);
    // The same person's genuine request still works.
    let r = send(
        &w,
        form(
            "/facebook/deauthorize",
            &signed(b"test-app-secret", "555", NOW_S),
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
}

/// The status as JSON and as the page the person sees.
async fn status_of(w: &World, code: &str) -> (serde_json::Value, String) {
    let json = json_of(
        &send(
            w,
            Req::get("/facebook/data-deletion/status")
                .q("code", code)
                .h("accept", "application/json"),
        )
        .await,
    );
    let page = send(
        w,
        Req::get("/facebook/data-deletion/status").q("code", code),
    )
    .await;
    let html = String::from_utf8_lossy(page.body().as_ref()).into_owned();
    (json, html)
}

#[tokio::test]
async fn deletion_claims_full_erasure_when_it_erased_only_the_login() {
    let w = world_with(&[(env::DERIVE_LOGIN_ID, "false")]);
    log_in(&w, "555", "Ines").await;
    // Meta's opt-in carries a login_id this deployment cannot link to the asid.
    let login_id = login_id_of("555");
    send(&w, optin_webhook(&login_id, NOW)).await;
    let key = shared::domain::opt_in::OptInKey::new(PAGE, &login_id);
    w.store.link_psid(&key, "PSID555", NOW).await.unwrap();

    let r = send(
        &w,
        form(
            "/facebook/data-deletion",
            &signed(b"test-app-secret", "555", NOW_S),
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    let code = json_of(&r)["confirmation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(w.logins.logins().is_empty(), "the LOGIN is erased");
    let (json, html) = status_of(&w, &code).await;
    assert_eq!(json["status"], "partial", "{json}");
    let reason = json["partial_reason"].as_str().unwrap();
    assert!(reason.contains("DERIVE_LOGIN_ID=false"), "{reason}");
    assert!(html.contains("partial") && html.contains("DERIVE_LOGIN_ID=false"));
    assert!(
        !html.contains("Every record"),
        "the page must not claim a full erasure: {html}"
    );
}

#[tokio::test]
async fn deletion_with_an_empty_client_token_is_partial_too() {
    let mut w = world();
    w.deps.secrets = shared::config::secrets::Secrets::from_json(
        r#"{"app_secret":"test-app-secret","page_access_token":"p","client_token":"","verify_token":"v"}"#,
    )
    .unwrap()
    .into();
    let r = send(
        &w,
        form(
            "/facebook/data-deletion",
            &signed(b"test-app-secret", "556", NOW_S),
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    let code = json_of(&r)["confirmation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (json, _) = status_of(&w, &code).await;
    assert_eq!(json["status"], "partial");
    assert!(
        json["partial_reason"]
            .as_str()
            .unwrap()
            .contains("client token")
    );
}

#[tokio::test]
async fn deletion_finds_the_opt_in_through_the_login_recorded_login_id() {
    let mut w = world();
    log_in(&w, "557", "Jo").await;
    let login_id = login_id_of("557");
    send(&w, optin_webhook(&login_id, NOW)).await;
    let key = shared::domain::opt_in::OptInKey::new(PAGE, &login_id);
    w.store.link_psid(&key, "PSID557", NOW).await.unwrap();
    // Derivation is turned off after the login: the LOGIN still names the opt-in.
    w.deps.config.login.derive_login_id = false;
    let r = send(
        &w,
        form(
            "/facebook/data-deletion",
            &signed(b"test-app-secret", "557", NOW_S),
        ),
    )
    .await;
    let code = json_of(&r)["confirmation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(w.store.all().is_empty(), "opt-in erased");
    assert!(w.store.psid_links().is_empty(), "PSID link erased");
    let (json, html) = status_of(&w, &code).await;
    assert_eq!(json["status"], "completed");
    assert!(json.get("partial_reason").is_none());
    assert!(html.contains("Every record"));
}

#[tokio::test]
async fn deletion_erases_a_pending_stop_of_the_persons_psid() {
    let w = world();
    log_in(&w, "558", "Ky").await;
    let login_id = login_id_of("558");
    send(&w, optin_webhook(&login_id, NOW)).await;
    let key = shared::domain::opt_in::OptInKey::new(PAGE, &login_id);
    w.store.link_psid(&key, "PSID558", NOW).await.unwrap();
    w.store
        .keep_pending_stop(&shared::ports::conversations::PendingStop {
            page_id: PAGE.into(),
            psid: "PSID558".into(),
            source: "stop_keyword".into(),
            received_at: NOW,
        })
        .await
        .unwrap();
    send(
        &w,
        form(
            "/facebook/data-deletion",
            &signed(b"test-app-secret", "558", NOW_S),
        ),
    )
    .await;
    assert!(w.store.pending_stops().is_empty());
    // And the PSID cannot be linked again to the erased opt-in.
    assert!(!w.store.link_psid(&key, "PSID558", NOW + 1).await.unwrap());
    assert!(w.store.psid_links().is_empty());
}

/// Issue 10, promise 4: with derivation on but a login_id that does not match the app, the real
/// opt-in is stored under another key and survives; a granted LOGIN with no opt-in under the key
/// the product knows must not be reported as a full erasure.
#[tokio::test]
async fn deletion_of_a_granted_login_without_a_known_opt_in_says_partial() {
    let w = world();
    log_in(&w, "559", "Lu").await;
    // Meta delivered the opt-in under another login_id than the one derived for this person.
    send(
        &w,
        optin_webhook("a-login-id-the-formula-did-not-give", NOW),
    )
    .await;
    let r = send(
        &w,
        form(
            "/facebook/data-deletion",
            &signed(b"test-app-secret", "559", NOW_S),
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    let code = json_of(&r)["confirmation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(w.logins.logins().is_empty(), "the LOGIN is erased");
    let (json, html) = status_of(&w, &code).await;
    assert_eq!(json["status"], "partial", "{json}");
    assert!(
        json["partial_reason"]
            .as_str()
            .unwrap()
            .contains("no opt-in was found")
    );
    assert!(!html.contains("Every record"), "{html}");
}

/// A declined login expects no opt-in: deleting it is complete.
#[tokio::test]
async fn deletion_of_a_declined_login_without_opt_in_is_completed() {
    let w = world();
    log_in_declined(&w, "560").await;
    let r = send(
        &w,
        form(
            "/facebook/data-deletion",
            &signed(b"test-app-secret", "560", NOW_S),
        ),
    )
    .await;
    let code = json_of(&r)["confirmation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (json, _) = status_of(&w, &code).await;
    assert_eq!(json["status"], "completed", "{json}");
}

#[tokio::test]
async fn deletion_erases_the_persons_follow_ups_too() {
    let w = world();
    log_in(&w, "333", "Hana").await;
    let login_id = login_id_of("333");
    send(&w, optin_webhook(&login_id, NOW)).await;
    let key = shared::domain::opt_in::OptInKey::new(PAGE, &login_id);
    w.store.link_psid(&key, "PSID333", NOW).await.unwrap();
    let r = send(
        &w,
        Req::post("/v1/users/333/messages")
            .key(KEY_NEW)
            .json(r#"{"text":"Your order has shipped"}"#),
    )
    .await;
    assert_eq!(r.status(), 202, "{:?}", r.body());
    assert_eq!(w.follow_ups.all().len(), 1);

    let sr = signed(b"test-app-secret", "333", NOW_S);
    let r = send(&w, form("/facebook/data-deletion", &sr)).await;
    assert_eq!(r.status(), 200);
    assert!(
        w.follow_ups.all().is_empty(),
        "the follow-up (the person's asid and the text) is erased"
    );
    let code = json_of(&r)["confirmation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = json_of(
        &send(
            &w,
            Req::get("/facebook/data-deletion/status")
                .q("code", &code)
                .h("accept", "application/json"),
        )
        .await,
    );
    assert_eq!(status["status"], "completed", "{status}");
}
