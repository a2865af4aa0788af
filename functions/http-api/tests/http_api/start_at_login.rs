//! `START_AT_LOGIN=true` (issue 12, section 3): a login that granted the permission creates the
//! opt-in at the callback's time and queues the send; the `messaging_optins` webhook is then a
//! duplicate. Whatever the order (webhook first, login first, both at once): exactly one opt-in and
//! one send job. Off by default, and never without the permission or a derived login_id.

use crate::common::*;
use shared::domain::opt_in::{OptInKey, State};
use std::sync::Arc;

const RETURN_TO: &str = "https://shop.example/account";
const REDIRECT_URI: &str = "https://api.example/login/callback";
const ASID: &str = "7654321";
const ON: &[(&str, &str)] = &[("START_AT_LOGIN", "true")];

/// `/login/start`, the dialog's code for a person who granted (or not) the permission, and the
/// callback request the browser then makes.
async fn login_callback(w: &World, code: &str, granted: bool) -> Req {
    let (state, cookie) = start(w, RETURN_TO).await;
    w.facebook
        .issue(code, REDIRECT_URI, user(ASID, Some("Ana"), granted));
    callback(&state, Some(&cookie), &[("code", code)])
}

/// The signed `messaging_optins` webhook for the derived login_id, dated `timestamp`.
fn opt_in_webhook(timestamp: i64) -> Req {
    let login_id = expected_login_id(ASID);
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{timestamp},"messaging":[{{"recipient":{{"id":"{PAGE}"}},"timestamp":{timestamp},"optin":{{"login_id":"{login_id}"}}}}]}}]}}"#
    );
    let signature = shared::facebook::webhook::sign_webhook(b"test-app-secret", body.as_bytes());
    Req::post("/webhooks/messenger")
        .h("x-hub-signature-256", &signature)
        .json(&body)
}

/// Exactly one opt-in (OPTED_IN, for the derived login_id) and one send job.
fn assert_one_opt_in_and_one_job(w: &World) -> shared::domain::opt_in::OptIn {
    let items = w.store.all();
    assert_eq!(items.len(), 1, "{items:?}");
    let item = items[0].clone();
    assert_eq!(item.key(), OptInKey::new(PAGE, expected_login_id(ASID)));
    assert_eq!(item.state, State::OptedIn);
    let jobs = w.queue.jobs();
    assert_eq!(jobs.len(), 1, "one send job: {jobs:?}");
    assert_eq!(jobs[0].login_id, item.login_id);
    item
}

#[tokio::test]
async fn with_start_at_login_the_callback_creates_the_opt_in_and_the_webhook_after_it_is_a_duplicate()
 {
    let w = world_with(ON);
    let r = send(&w, login_callback(&w, "code-1", true).await).await;
    assert_eq!(r.status(), 302);
    assert!(
        header(&r, "location")
            .unwrap()
            .contains("messenger=granted")
    );
    let item = assert_one_opt_in_and_one_job(&w);
    assert!(item.started_at_login);
    assert_eq!(item.opted_in_at, NOW, "opted in at the callback's time");
    assert_eq!(item.deadline_at, NOW + 24 * 3_600_000);
    assert!(w.scheduler.get(&item.key()).is_some(), "the deadline alert");

    w.clock.advance(3_000);
    let r = send(&w, opt_in_webhook(NOW + 1_000)).await;
    assert_eq!(r.status(), 200);
    let after = assert_one_opt_in_and_one_job(&w);
    assert_eq!(after.opted_in_at, NOW, "the webhook changes nothing");
}

#[tokio::test]
async fn with_start_at_login_a_login_after_the_webhook_is_a_duplicate() {
    let w = world_with(ON);
    let r = send(&w, opt_in_webhook(NOW - 1_000)).await;
    assert_eq!(r.status(), 200);
    let r = send(&w, login_callback(&w, "code-1", true).await).await;
    assert_eq!(r.status(), 302);
    let item = assert_one_opt_in_and_one_job(&w);
    assert!(!item.started_at_login);
    assert_eq!(item.opted_in_at, NOW - 1_000, "the webhook's own time");
}

#[tokio::test]
async fn with_start_at_login_a_token_login_through_the_api_starts_the_opt_in_too() {
    let w = world_with(ON);
    w.facebook.token_for("tok", user(ASID, Some("Ana"), true));
    let r = send(
        &w,
        Req::post("/v1/logins")
            .key(KEY_OLD)
            .json(r#"{"user_access_token":"tok"}"#),
    )
    .await;
    assert_eq!(r.status(), 201, "{:?}", r.body());
    assert_eq!(json_of(&r)["state"], "OPTED_IN");
    assert_one_opt_in_and_one_job(&w);
    send(&w, opt_in_webhook(NOW)).await;
    assert_one_opt_in_and_one_job(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_start_at_login_a_login_and_a_webhook_at_once_make_one_opt_in_and_one_job() {
    for round in 0..20 {
        let w = Arc::new(world_with(ON));
        let login = login_callback(&w, &format!("code-{round}"), true).await;
        let (a, b) = (w.clone(), w.clone());
        let login = tokio::spawn(async move { send(&a, login).await.status() });
        let webhook = tokio::spawn(async move { send(&b, opt_in_webhook(NOW)).await.status() });
        let (login, webhook) = (login.await.unwrap(), webhook.await.unwrap());
        assert_eq!((login.as_u16(), webhook.as_u16()), (302, 200));
        assert_one_opt_in_and_one_job(&w);
    }
}

#[tokio::test]
async fn start_at_login_is_off_by_default_and_needs_the_permission_and_a_login_id() {
    // Off by default: the login records the LOGIN only.
    let w = world();
    send(&w, login_callback(&w, "code-1", true).await).await;
    assert_eq!(w.logins.logins().len(), 1);
    assert!(w.store.all().is_empty() && w.queue.jobs().is_empty());

    // On, but the permission declined.
    let w = world_with(ON);
    send(&w, login_callback(&w, "code-1", false).await).await;
    assert!(w.store.all().is_empty() && w.queue.jobs().is_empty());

    // On, but no login_id derived (the secret has no client_token).
    let mut w = world_with(ON);
    w.deps.secrets.client_token = shared::config::secrets::SecretString::new("");
    send(&w, login_callback(&w, "code-1", true).await).await;
    assert_eq!(w.logins.logins().len(), 1);
    assert!(w.store.all().is_empty() && w.queue.jobs().is_empty());
}

#[tokio::test]
async fn with_start_at_login_an_api_opt_out_before_the_login_is_kept() {
    let w = world_with(ON);
    w.facebook.token_for("tok", user(ASID, Some("Ana"), true));
    let login = Req::post("/v1/logins")
        .key(KEY_OLD)
        .json(r#"{"user_access_token":"tok"}"#);
    send(&w, login.clone()).await;
    let r = send(
        &w,
        Req::post(&format!("/v1/users/{ASID}/opt-out")).key(KEY_OLD),
    )
    .await;
    assert_eq!(r.status(), 200);
    // A later login does not revive the opted-out opt-in (only a dated webhook can be a new consent).
    w.clock.advance(60_000);
    send(&w, login).await;
    let items = w.store.all();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].state, State::OptedOut);
    assert_eq!(w.queue.jobs().len(), 1, "no job after the opt-out");
}
