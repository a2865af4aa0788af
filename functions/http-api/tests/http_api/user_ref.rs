//! The website's own reference for a person (`user_ref`): given at `/login/start` or in
//! `POST /v1/logins`, stored with the LOGIN, answered back by the API; a malformed one is refused
//! before anything is written, and a later login without one keeps it.

use crate::common::*;

const RETURN_TO: &str = "https://shop.example/account";
const REDIRECT_URI: &str = "https://api.example/login/callback";

fn body(r: &lambda_http::Response<lambda_http::Body>) -> serde_json::Value {
    json_of(r)
}

#[tokio::test]
async fn a_user_ref_given_at_login_start_is_stored_and_answered_back() {
    let w = world();
    let r = send(
        &w,
        Req::get("/login/start")
            .q("return_to", RETURN_TO)
            .q("user_ref", "cust_42-a"),
    )
    .await;
    assert_eq!(r.status(), 302);
    let state = query_of(header(&r, "location").unwrap())["state"].clone();
    let cookie = header(&r, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    w.facebook
        .issue("code-1", REDIRECT_URI, user("7654321", Some("Ana"), true));
    let r = send(&w, callback(&state, Some(&cookie), &[("code", "code-1")])).await;
    assert_eq!(r.status(), 302);
    assert_eq!(w.logins.logins()[0].user_ref.as_deref(), Some("cust_42-a"));
    let r = send(&w, Req::get("/v1/users/7654321").key(KEY_OLD)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r)["user_ref"], "cust_42-a");
}

#[tokio::test]
async fn a_malformed_user_ref_is_refused_before_anything_is_written() {
    let w = world();
    for bad in ["", "has space", "ü", &"x".repeat(65), "a/b"] {
        let r = send(
            &w,
            Req::get("/login/start")
                .q("return_to", RETURN_TO)
                .q("user_ref", bad),
        )
        .await;
        assert_eq!(r.status(), 400, "{bad:?}");
        assert_eq!(error_code(&r), "invalid_user_ref", "{bad:?}");
    }
    assert!(w.logins.states().is_empty());
    // The longest allowed one passes.
    let r = send(
        &w,
        Req::get("/login/start")
            .q("return_to", RETURN_TO)
            .q("user_ref", &"x".repeat(64)),
    )
    .await;
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn record_login_takes_a_user_ref_and_a_later_login_without_one_keeps_it() {
    let w = world();
    w.facebook.token_for("tok", user("111", Some("Ana"), true));
    let login = |user_ref: Option<&str>| {
        let mut json = serde_json::json!({ "user_access_token": "tok" });
        if let Some(r) = user_ref {
            json["user_ref"] = r.into();
        }
        Req::post("/v1/logins").key(KEY_OLD).json(&json.to_string())
    };
    let r = send(&w, login(Some("site-user-1"))).await;
    assert_eq!(r.status(), 201, "{:?}", r.body());
    assert_eq!(body(&r)["user_ref"], "site-user-1");
    w.clock.advance(1_000);
    let r = send(&w, login(None)).await;
    assert_eq!(r.status(), 201);
    assert_eq!(body(&r)["user_ref"], "site-user-1");
    let r = send(&w, login(Some("not ok"))).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r), "invalid_user_ref");
}
