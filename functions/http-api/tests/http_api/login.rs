//! `/login/start` and `/login/callback` with in-memory ports: the happy paths, and every refusal
//! asserted to write nothing.

use crate::common::*;
use shared::config::env;
use shared::domain::login::{LoginSource, Permission, STATE_TTL_MS};
use shared::ports::opt_ins::OptInStore;

const RETURN_TO: &str = "https://shop.example/account?tab=1";
const REDIRECT_URI: &str = "https://api.example/login/callback";

#[tokio::test]
async fn start_redirects_to_the_dialog_with_a_bound_single_use_state() {
    let w = world_with(&[(env::LOGIN_EXTRA_SCOPES, "email")]);
    let r = send(&w, Req::get("/login/start").q("return_to", RETURN_TO)).await;
    assert_eq!(r.status(), 302);
    let location = header(&r, "location").unwrap();
    assert!(
        location.starts_with("https://www.facebook.com/v27.0/dialog/oauth?"),
        "{location}"
    );
    let q = query_of(location);
    assert_eq!(q["client_id"], APP);
    assert_eq!(q["redirect_uri"], REDIRECT_URI);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "public_profile,user_messenger_contact,email");
    assert_eq!(q["messenger_page_id"], PAGE);
    assert_eq!(q["auth_type"], "rerequest");
    let state = &q["state"];
    assert_eq!(state.len(), 64, "256 random bits, hex");
    assert!(state.bytes().all(|b| b.is_ascii_hexdigit()));

    let cookie = header(&r, "set-cookie").unwrap();
    for attribute in [
        "Path=/login/callback",
        "Max-Age=600",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
    ] {
        assert!(cookie.contains(attribute), "{attribute} not in {cookie}");
    }
    assert!(cookie.starts_with("lcm_login_state="));
    assert!(
        !cookie.contains(state.as_str()),
        "the cookie holds a keyed hash, not the state"
    );
    assert_eq!(header(&r, "cache-control"), Some("no-store"));

    let stored = w.logins.states();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].return_to, RETURN_TO);
    assert_eq!(stored[0].redirect_uri, REDIRECT_URI);
    assert_eq!(stored[0].expires_at_ms, NOW + STATE_TTL_MS);
    assert_ne!(&stored[0].state_hash, state, "stored by hash");

    // A second start gets a different state.
    let (other, _) = start(&w, RETURN_TO).await;
    assert_ne!(&other, state);
}

#[tokio::test]
async fn return_to_outside_the_allowed_origins_is_400_and_writes_nothing() {
    let w = world();
    for bad in [
        None,
        Some(""),
        Some("//evil.example/"),
        Some("/account"),
        Some("https://shop.example.evil/"),
        Some("https://evil.example/"),
        Some("https://shop.example@evil.example/"),
        Some("https://evil.example\\@shop.example/"),
        Some("http://shop.example/"),
        Some("javascript:alert(document.cookie)"),
        Some("data:text/html,<script>alert(1)</script>"),
    ] {
        let mut req = Req::get("/login/start");
        if let Some(v) = bad {
            req = req.q("return_to", v);
        }
        let r = send(&w, req).await;
        assert_eq!(r.status(), 400, "{bad:?}");
        assert_eq!(error_code(&r), "invalid_return_to", "{bad:?}");
        assert!(header(&r, "location").is_none());
        assert!(header(&r, "set-cookie").is_none());
    }
    assert_eq!(w.logins.item_count(), 0);
}

#[tokio::test]
async fn no_allowed_origin_means_the_flow_is_not_configured() {
    let w = world_with(&[(env::ALLOWED_RETURN_ORIGINS, "")]);
    let r = send(&w, Req::get("/login/start").q("return_to", RETURN_TO)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(error_code(&r), "login_not_configured");
    assert_eq!(w.logins.item_count(), 0);
}

#[tokio::test]
async fn allow_records_the_login_with_its_expected_login_id_and_returns_granted() {
    let w = world();
    let (state, cookie) = start(&w, RETURN_TO).await;
    w.facebook
        .issue("code-1", REDIRECT_URI, user("1234567", Some("Ana"), true));
    let r = send(&w, callback(&state, Some(&cookie), &[("code", "code-1")])).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        header(&r, "location"),
        Some("https://shop.example/account?tab=1&messenger=granted")
    );
    let clear = header(&r, "set-cookie").unwrap();
    assert!(clear.starts_with("lcm_login_state=;") && clear.contains("Max-Age=0"));

    let logins = w.logins.logins();
    assert_eq!(logins.len(), 1);
    let l = &logins[0];
    assert_eq!(
        (
            l.asid.as_str(),
            l.first_name.as_deref(),
            l.permission,
            l.source
        ),
        (
            "1234567",
            Some("Ana"),
            Permission::Granted,
            LoginSource::Callback
        )
    );
    assert_eq!(l.expected_login_id, Some(expected_login_id("1234567")));
    assert_eq!((l.login_at, l.last_login_at), (NOW, NOW));
    assert!(w.logins.states().is_empty(), "state consumed");
    assert_eq!(
        w.facebook.calls(),
        ["exchange_code", "debug_token", "me", "permissions"]
    );
    // The sender finds the first name from the opt-in's login_id.
    use shared::ports::logins::LoginStore;
    let link = w
        .logins
        .link_for(&shared::domain::opt_in::OptInKey::new(
            PAGE,
            expected_login_id("1234567"),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.first_name.as_deref(), Some("Ana"));

    // Replaying the same callback: the state is gone → 400, nothing more written.
    let before = w.logins.item_count();
    let r = send(&w, callback(&state, Some(&cookie), &[("code", "code-1")])).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r), "state_unknown");
    assert_eq!(w.logins.item_count(), before);
    assert_eq!(w.facebook.calls().len(), 4, "Graph not called again");
}

#[tokio::test]
async fn not_now_records_a_declined_login() {
    let w = world();
    let (state, cookie) = start(&w, RETURN_TO).await;
    w.facebook
        .issue("code-2", REDIRECT_URI, user("7654321", None, false));
    let r = send(&w, callback(&state, Some(&cookie), &[("code", "code-2")])).await;
    assert_eq!(
        header(&r, "location"),
        Some("https://shop.example/account?tab=1&messenger=declined")
    );
    let l = &w.logins.logins()[0];
    assert_eq!(
        (l.permission, l.first_name.as_deref()),
        (Permission::Declined, None)
    );
}

#[tokio::test]
async fn cancel_goes_back_cancelled_without_a_login() {
    let w = world();
    let (state, cookie) = start(&w, RETURN_TO).await;
    let r = send(
        &w,
        callback(
            &state,
            Some(&cookie),
            &[
                ("error", "access_denied"),
                ("error_reason", "user_denied"),
                ("error_description", "Permissions error"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        header(&r, "location"),
        Some("https://shop.example/account?tab=1&messenger=cancelled")
    );
    assert_eq!(w.logins.item_count(), 0, "state consumed, nothing recorded");
    assert!(w.facebook.calls().is_empty());
}

#[tokio::test]
async fn an_expired_state_is_refused_and_nothing_is_written() {
    let w = world();
    let (state, cookie) = start(&w, RETURN_TO).await;
    w.facebook
        .issue("c", REDIRECT_URI, user("1", Some("A"), true));
    w.clock.advance(STATE_TTL_MS);
    let r = send(&w, callback(&state, Some(&cookie), &[("code", "c")])).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r), "state_expired");
    assert!(w.logins.logins().is_empty());
    assert!(w.facebook.calls().is_empty());
}

#[tokio::test]
async fn a_state_from_another_browser_is_refused_and_not_consumed() {
    let w = world();
    let (state, _cookie) = start(&w, RETURN_TO).await;
    let (_other_state, other_cookie) = start(&w, RETURN_TO).await;
    w.facebook
        .issue("c", REDIRECT_URI, user("1", Some("A"), true));
    for cookie in [
        None,
        Some(other_cookie.as_str()),
        Some("lcm_login_state=forged"),
    ] {
        let r = send(&w, callback(&state, cookie, &[("code", "c")])).await;
        assert_eq!(r.status(), 400, "{cookie:?}");
        assert_eq!(error_code(&r), "state_mismatch");
    }
    assert_eq!(w.logins.states().len(), 2, "nothing consumed");
    assert!(w.logins.logins().is_empty());
    assert!(w.facebook.calls().is_empty());
    // Without a state at all.
    let r = send(&w, Req::get("/login/callback").q("code", "c")).await;
    assert_eq!(error_code(&r), "missing_state");
}

#[tokio::test]
async fn browsers_get_an_html_error_page() {
    let w = world();
    let r = send(
        &w,
        callback("0".repeat(64).as_str(), None, &[]).h("accept", "text/html,*/*"),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
    let body = String::from_utf8_lossy(r.body().as_ref()).into_owned();
    assert!(body.contains("state_mismatch"), "{body}");
    assert!(header(&r, "set-cookie").unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn a_reused_or_unknown_code_goes_back_with_error_and_writes_nothing() {
    let w = world();
    let (state, cookie) = start(&w, RETURN_TO).await;
    // The memory Graph answers an unknown code as Graph does for a used one (100/36009).
    let r = send(
        &w,
        callback(&state, Some(&cookie), &[("code", "used-code")]),
    )
    .await;
    assert_eq!(
        header(&r, "location"),
        Some("https://shop.example/account?tab=1&messenger=error")
    );
    assert_eq!(w.facebook.calls(), ["exchange_code"]);
    assert!(w.logins.logins().is_empty());
}

#[tokio::test]
async fn a_token_of_another_app_goes_back_with_error_and_writes_nothing() {
    let w = world();
    let (state, cookie) = start(&w, RETURN_TO).await;
    let mut other = user("1", Some("A"), true);
    other.app_id = "999".into();
    w.facebook.issue("c", REDIRECT_URI, other);
    let r = send(&w, callback(&state, Some(&cookie), &[("code", "c")])).await;
    assert!(header(&r, "location").unwrap().ends_with("messenger=error"));
    assert_eq!(w.facebook.calls(), ["exchange_code", "debug_token"]);
    assert!(w.logins.logins().is_empty());
}

#[tokio::test]
async fn facebook_down_or_store_down_goes_back_with_error() {
    let w = world();
    let (state, cookie) = start(&w, RETURN_TO).await;
    w.facebook
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = send(&w, callback(&state, Some(&cookie), &[("code", "c")])).await;
    assert!(header(&r, "location").unwrap().ends_with("messenger=error"));
    assert!(w.logins.logins().is_empty());

    // The store failing at start: 503, no cookie.
    w.logins
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = send(&w, Req::get("/login/start").q("return_to", RETURN_TO)).await;
    assert_eq!(r.status(), 503);
    assert!(header(&r, "set-cookie").is_none());
}

#[tokio::test]
async fn with_derivation_off_no_login_id_is_stored() {
    let w = world_with(&[(env::DERIVE_LOGIN_ID, "false")]);
    let (state, cookie) = start(&w, RETURN_TO).await;
    w.facebook
        .issue("c", REDIRECT_URI, user("5", Some("A"), true));
    let r = send(&w, callback(&state, Some(&cookie), &[("code", "c")])).await;
    assert!(
        header(&r, "location")
            .unwrap()
            .ends_with("messenger=granted")
    );
    let logins = w.logins.logins();
    assert_eq!(logins[0].expected_login_id, None);
    assert_eq!(w.logins.item_count(), 1, "no link item");
    assert!(w.store.all().is_empty());
    let _ = w
        .store
        .get_opt_in(&shared::domain::opt_in::OptInKey::new(PAGE, "x"))
        .await;
}

#[tokio::test]
async fn without_a_public_base_url_the_callback_is_on_the_api_domain() {
    let w = world_with(&[(env::PUBLIC_BASE_URL, "")]);
    let r = send(&w, Req::get("/login/start").q("return_to", RETURN_TO)).await;
    let q = query_of(header(&r, "location").unwrap());
    assert_eq!(
        q["redirect_uri"],
        "https://abc123.execute-api.us-east-1.amazonaws.com/login/callback"
    );
}
