//! The sandbox's Facebook Login over HTTP on 127.0.0.1 random ports: the dialog, the code
//! exchange with Graph's error bodies, debug_token, /me and /me/permissions, and the opt-in
//! webhook sent after "Allow".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use messenger_sandbox::{
    DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_CLIENT_TOKEN, DEFAULT_PAGE_ID, RunningSandbox,
    SandboxConfig,
};
use serde_json::{Value, json};

const REDIRECT: &str = "https://app.example/login/callback";

type Received = Arc<Mutex<Vec<String>>>;

struct World {
    sb: RunningSandbox,
    webhooks: Received,
    http: reqwest::Client,
}

async fn world() -> World {
    async fn webhook(
        State(bodies): State<Received>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let signature = headers
            .get(shared::facebook::webhook::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        if shared::facebook::webhook::verify_webhook_signature(
            DEFAULT_APP_SECRET.as_bytes(),
            &body,
            signature,
        )
        .is_err()
        {
            return StatusCode::UNAUTHORIZED;
        }
        bodies
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&body).into_owned());
        StatusCode::OK
    }
    let webhooks: Received = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/webhook", post(webhook))
        .with_state(webhooks.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sb = messenger_sandbox::start(
        SandboxConfig {
            webhook_url: Some(format!("http://{addr}/webhook")),
            ..SandboxConfig::default()
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    World {
        sb,
        webhooks,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

fn proof(token: &str) -> String {
    shared::facebook::crypto::appsecret_proof(DEFAULT_APP_SECRET, token)
}

impl World {
    fn dialog_url(&self, extra: &[(&str, &str)]) -> reqwest::Url {
        let mut url =
            reqwest::Url::parse(&format!("{}/v25.0/dialog/oauth", self.sb.base_url)).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", DEFAULT_APP_ID)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", "public_profile,user_messenger_contact")
            .append_pair("messenger_page_id", DEFAULT_PAGE_ID)
            .append_pair("auth_type", "rerequest")
            .append_pair("state", "st-1");
        for (k, v) in extra {
            url.query_pairs_mut().append_pair(k, v);
        }
        url
    }

    /// GET the dialog with `extra`; the 302's Location, parsed.
    async fn choose(&self, extra: &[(&str, &str)]) -> reqwest::Url {
        let response = self.http.get(self.dialog_url(extra)).send().await.unwrap();
        assert_eq!(response.status(), 302);
        let location = response.headers()["location"].to_str().unwrap();
        reqwest::Url::parse(location).unwrap()
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let url =
            reqwest::Url::parse_with_params(&format!("{}{path}", self.sb.base_url), query).unwrap();
        let response = self.http.get(url).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn exchange(&self, code: &str, redirect: &str) -> (u16, Value) {
        self.get(
            "/v25.0/oauth/access_token",
            &[
                ("client_id", DEFAULT_APP_ID),
                ("redirect_uri", redirect),
                ("client_secret", DEFAULT_APP_SECRET),
                ("code", code),
            ],
        )
        .await
    }

    async fn debug(&self, token: &str) -> (u16, Value) {
        let app_token = format!("{DEFAULT_APP_ID}|{DEFAULT_APP_SECRET}");
        let p = proof(&app_token);
        self.get(
            "/v25.0/debug_token",
            &[
                ("input_token", token),
                ("access_token", &app_token),
                ("appsecret_proof", &p),
            ],
        )
        .await
    }

    async fn with_token(&self, path: &str, token: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let p = proof(token);
        let mut q = vec![("access_token", token), ("appsecret_proof", p.as_str())];
        q.extend_from_slice(extra);
        self.get(path, &q).await
    }

    async fn wait_for_webhooks(&self, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let got = self.webhooks.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("fewer than {n} webhooks arrived");
    }
}

fn query(url: &reqwest::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn graph_error(status: u16, answer: &Value, code: i64, subcode: Option<i64>, message: &str) {
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], json!(code), "{answer}");
    assert_eq!(answer["error"]["type"], "OAuthException", "{answer}");
    assert_eq!(answer["error"]["message"], message, "{answer}");
    match subcode {
        Some(s) => assert_eq!(answer["error"]["error_subcode"], json!(s), "{answer}"),
        None => assert!(answer["error"].get("error_subcode").is_none(), "{answer}"),
    }
    assert!(answer["error"]["fbtrace_id"].is_string(), "{answer}");
}

#[tokio::test]
async fn the_dialog_page_offers_allow_not_now_and_cancel() {
    let w = world().await;
    let response = w.http.get(w.dialog_url(&[])).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    for needle in [
        "id=\"allow\"",
        "id=\"not-now\"",
        "id=\"cancel\"",
        ">Allow<",
        ">Not now<",
        "public_profile,user_messenger_contact",
        "would like to contact you on Messenger",
        "name=\"state\" value=\"st-1\"",
        "action=\"/v25.0/dialog/oauth\"",
    ] {
        assert!(html.contains(needle), "{needle} not in {html}");
    }
    // Submitting the form as a browser does.
    let form = format!(
        "client_id={DEFAULT_APP_ID}&redirect_uri={}&scope=public_profile%2Cuser_messenger_contact&state=st-2&sandbox_first_name=Zo%C3%AB&sandbox_asid=1234567890123456&sandbox_webhook=before&choice=allow",
        url_escape(REDIRECT)
    );
    let response = w
        .http
        .post(format!("{}/v25.0/dialog/oauth", w.sb.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let back = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back)["state"], "st-2");
    let (_, token) = w.exchange(&query(&back)["code"], REDIRECT).await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    let (status, me) = w
        .with_token("/v25.0/me", &token, &[("fields", "id,first_name")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(me, json!({"id": "1234567890123456", "first_name": "Zoë"}));
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn allow_issues_a_single_use_code_and_sends_the_opt_in_with_the_formula_login_id() {
    let w = world().await;
    let asid = "1000000000000042";
    let back = w
        .choose(&[
            ("sandbox_choice", "allow"),
            ("sandbox_asid", asid),
            ("sandbox_first_name", "Ana"),
            ("sandbox_webhook", "before"),
        ])
        .await;
    assert_eq!(
        back.as_str().split('?').next(),
        Some(REDIRECT),
        "back to the redirect_uri"
    );
    assert_eq!(back.fragment(), Some("_=_"));
    let q = query(&back);
    assert_eq!(q["state"], "st-1");
    let code = q["code"].clone();

    // The webhook was delivered before the redirect, with the formula's login_id.
    let expected = shared::facebook::crypto::derive_login_id(
        DEFAULT_CLIENT_TOKEN,
        asid,
        DEFAULT_APP_ID,
        DEFAULT_PAGE_ID,
    );
    let webhooks = w.webhooks.lock().unwrap().clone();
    assert_eq!(webhooks.len(), 1);
    let (_, events) = shared::facebook::webhook::parse_webhook(webhooks[0].as_bytes()).unwrap();
    assert!(matches!(
        &events[..],
        [shared::facebook::webhook::MessagingEvent::OptIn { page_id, login_id, .. }]
            if page_id == DEFAULT_PAGE_ID && *login_id == expected
    ));

    // Wrong redirect_uri first: refused, the code stays usable.
    let (status, answer) = w.exchange(&code, "https://app.example/other").await;
    graph_error(
        status,
        &answer,
        100,
        Some(36_008),
        "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
    );
    let (status, answer) = w.exchange(&code, REDIRECT).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "bearer");
    assert!(answer["expires_in"].as_i64().unwrap() > 0);
    let token = answer["access_token"].as_str().unwrap().to_owned();
    // Used.
    let (status, answer) = w.exchange(&code, REDIRECT).await;
    graph_error(
        status,
        &answer,
        100,
        Some(36_009),
        "This authorization code has been used.",
    );
    // Unknown, wrong secret, wrong app.
    let (status, answer) = w.exchange("AQnope", REDIRECT).await;
    graph_error(
        status,
        &answer,
        100,
        None,
        "Invalid verification code format.",
    );
    let (status, answer) = w
        .get(
            "/v25.0/oauth/access_token",
            &[
                ("client_id", DEFAULT_APP_ID),
                ("redirect_uri", REDIRECT),
                ("client_secret", "wrong"),
                ("code", &code),
            ],
        )
        .await;
    graph_error(status, &answer, 1, None, "Error validating client secret.");

    // debug_token: valid, our app, the person.
    let (status, info) = w.debug(&token).await;
    assert_eq!(status, 200);
    let data = &info["data"];
    assert_eq!(data["is_valid"], true);
    assert_eq!(data["app_id"], DEFAULT_APP_ID);
    assert_eq!(data["user_id"], asid);
    assert_eq!(data["type"], "USER");
    assert_eq!(
        data["scopes"],
        json!(["public_profile", "user_messenger_contact"])
    );
    let (_, info) = w.debug("EAAnot-a-token").await;
    assert_eq!(info["data"]["is_valid"], false);
    assert_eq!(info["data"]["error"]["code"], 190);

    // /me and /me/permissions need the token and its appsecret_proof.
    let (_, me) = w
        .with_token("/v25.0/me", &token, &[("fields", "id,first_name")])
        .await;
    assert_eq!(me, json!({"id": asid, "first_name": "Ana"}));
    let (_, perms) = w.with_token("/v25.0/me/permissions", &token, &[]).await;
    assert_eq!(
        perms,
        json!({"data": [
            {"permission": "public_profile", "status": "granted"},
            {"permission": "user_messenger_contact", "status": "granted"},
        ]})
    );
    let (status, answer) = w.get("/v25.0/me", &[("access_token", &token)]).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"]["message"],
        "API calls from the server require an appsecret_proof argument"
    );
    assert_eq!(answer["error"]["type"], "GraphMethodException");
    let (status, answer) = w
        .get(
            "/v25.0/me/permissions",
            &[("access_token", &token), ("appsecret_proof", "00")],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"]["message"],
        "Invalid appsecret_proof provided in the API argument"
    );
    let (status, answer) = w.with_token("/v25.0/me", "EAAnope", &[]).await;
    graph_error(status, &answer, 190, None, "Invalid OAuth access token.");
}

#[tokio::test]
async fn codes_expire() {
    let w = world().await;
    let back = w
        .choose(&[
            ("sandbox_choice", "allow"),
            ("sandbox_webhook", "none"),
            ("sandbox_code_ttl_ms", "1"),
        ])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, answer) = w.exchange(&query(&back)["code"], REDIRECT).await;
    graph_error(
        status,
        &answer,
        100,
        Some(36_007),
        "This authorization code has expired.",
    );
}

#[tokio::test]
async fn not_now_logs_in_without_messenger_and_sends_no_webhook() {
    let w = world().await;
    let back = w
        .choose(&[("sandbox_choice", "decline"), ("sandbox_webhook", "before")])
        .await;
    let (_, answer) = w.exchange(&query(&back)["code"], REDIRECT).await;
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let (_, perms) = w.with_token("/v25.0/me/permissions", &token, &[]).await;
    assert_eq!(
        perms["data"][1],
        json!({"permission": "user_messenger_contact", "status": "declined"})
    );
    let (_, info) = w.debug(&token).await;
    assert_eq!(info["data"]["scopes"], json!(["public_profile"]));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(w.webhooks.lock().unwrap().is_empty());
}

#[tokio::test]
async fn cancel_returns_access_denied_with_the_state() {
    let w = world().await;
    let back = w.choose(&[("sandbox_choice", "cancel")]).await;
    let q = query(&back);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["error_reason"], "user_denied");
    assert_eq!(q["state"], "st-1");
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn the_webhook_follows_allow_asynchronously_by_default() {
    let w = world().await;
    let back = w
        .choose(&[
            ("sandbox_choice", "allow"),
            ("sandbox_webhook_delay_ms", "50"),
        ])
        .await;
    assert!(query(&back).contains_key("code"));
    assert_eq!(w.wait_for_webhooks(1).await.len(), 1);
}

#[tokio::test]
async fn bad_dialog_requests_get_an_error_page_not_a_redirect() {
    let w = world().await;
    for (name, value) in [
        ("client_id", "999"),
        ("redirect_uri", "javascript:alert(1)"),
        ("messenger_page_id", "1"),
        ("response_type", "token"),
        ("sandbox_choice", "maybe"),
    ] {
        let mut url = w.dialog_url(&[]);
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .into_owned()
            .filter(|(k, _)| k != name)
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(pairs)
            .append_pair(name, value);
        let response = w.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{name}={value}");
        assert!(response.headers().get("location").is_none());
    }
}

#[tokio::test]
async fn tokens_of_another_app_and_js_sdk_tokens() {
    let w = world().await;
    let (status, other) = post_json(
        &w,
        "/_sandbox/user_token",
        json!({"app_id": "999", "asid": "77"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(other["login_id"], Value::Null, "no opt-in for another app");
    let (status, answer) = w.debug(other["access_token"].as_str().unwrap()).await;
    graph_error(
        status,
        &answer,
        100,
        None,
        "(#100) The App_id in the input_token did not match the Viewing App",
    );

    let (_, ours) = post_json(
        &w,
        "/_sandbox/user_token",
        json!({"asid": "78", "first_name": "Bo"}),
    )
    .await;
    assert_eq!(ours["webhook_status"], 200);
    assert_eq!(
        ours["login_id"],
        shared::facebook::crypto::derive_login_id(
            DEFAULT_CLIENT_TOKEN,
            "78",
            DEFAULT_APP_ID,
            DEFAULT_PAGE_ID
        )
    );
    let (_, info) = w.debug(ours["access_token"].as_str().unwrap()).await;
    assert_eq!(info["data"]["user_id"], "78");
    let (_, declined) =
        post_json(&w, "/_sandbox/user_token", json!({"messenger": "decline"})).await;
    assert_eq!(declined["login_id"], Value::Null);
    let (status, _) = post_json(&w, "/_sandbox/user_token", json!({"nope": 1})).await;
    assert_eq!(status, 400);
    assert_eq!(w.webhooks.lock().unwrap().len(), 1);
}

async fn post_json(w: &World, path: &str, body: Value) -> (u16, Value) {
    let response = w
        .http
        .post(format!("{}{path}", w.sb.base_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}
