//! The Page setup's Graph twins over HTTP: `debug_token` of the Page token (valid, expired,
//! invalidated), `GET|POST /{page-id}/subscribed_apps`, `GET /{app-id}/subscriptions`, with Graph's
//! bodies and errors, and the `/_sandbox/page_token` and `/_sandbox/subscriptions` switches.

use std::net::SocketAddr;

use messenger_sandbox::{
    DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_PAGE_ACCESS_TOKEN, DEFAULT_PAGE_ID, RunningSandbox,
    SandboxConfig,
};
use serde_json::{Value, json};

const WEBHOOK: &str = "https://stack.example/seg/webhooks/messenger";

async fn sandbox() -> (RunningSandbox, reqwest::Client) {
    let sb = messenger_sandbox::start(
        SandboxConfig {
            webhook_url: Some(WEBHOOK.into()),
            ..SandboxConfig::default()
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    (sb, reqwest::Client::new())
}

fn app_token() -> String {
    format!("{DEFAULT_APP_ID}|{DEFAULT_APP_SECRET}")
}

/// `url` with `query` (reqwest's `query` needs a feature the workspace does not enable).
fn with(url: &str, query: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(url, query).unwrap()
}

async fn get(http: &reqwest::Client, url: String, query: &[(&str, &str)]) -> (u16, Value) {
    let r = http.get(with(&url, query)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn put(http: &reqwest::Client, url: String, body: Value) -> Value {
    let r = http.put(url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn debug_token_of_the_page_token_follows_its_state() {
    let (sb, http) = sandbox().await;
    let debug = |http: reqwest::Client, base: String| async move {
        get(
            &http,
            format!("{base}/v27.0/debug_token"),
            &[
                ("input_token", DEFAULT_PAGE_ACCESS_TOKEN),
                ("access_token", &app_token()),
            ],
        )
        .await
    };
    let (status, body) = debug(http.clone(), sb.base_url.clone()).await;
    assert_eq!(status, 200);
    let d = &body["data"];
    assert_eq!(d["type"], "PAGE");
    assert_eq!(d["profile_id"], DEFAULT_PAGE_ID);
    assert_eq!(d["app_id"], DEFAULT_APP_ID);
    assert_eq!(d["is_valid"], true);
    assert_eq!(d["expires_at"], 0);
    assert!(
        d["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("pages_messaging"))
    );

    for (state, subcode) in [("expired", 463), ("invalidated", 460)] {
        put(
            &http,
            format!("{}/_sandbox/page_token", sb.base_url),
            json!({"state": state}),
        )
        .await;
        let (status, body) = debug(http.clone(), sb.base_url.clone()).await;
        assert_eq!(
            status, 200,
            "debug_token answers 200 about an invalid token"
        );
        assert_eq!(body["data"]["is_valid"], false);
        assert_eq!(body["data"]["error"]["code"], 190);
        assert_eq!(body["data"]["error"]["subcode"], subcode);
        // The Send API refuses it as Graph does.
        let send = http
            .post(with(
                &format!("{}/v27.0/me/messages", sb.base_url),
                &[("access_token", DEFAULT_PAGE_ACCESS_TOKEN)],
            ))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(send.status(), 400);
        let e: Value = send.json().await.unwrap();
        assert_eq!(
            (
                e["error"]["code"].clone(),
                e["error"]["error_subcode"].clone()
            ),
            (json!(190), json!(subcode))
        );
    }
    let view = put(
        &http,
        format!("{}/_sandbox/page_token", sb.base_url),
        json!({"state": "valid", "expires_in_seconds": 3600}),
    )
    .await;
    assert_eq!(view["expires_in_seconds"], 3600);
    let (_, body) = debug(http.clone(), sb.base_url.clone()).await;
    assert!(body["data"]["expires_at"].as_i64().unwrap() > 0);
    // A wrong app token is refused before the token is looked at.
    let (status, body) = get(
        &http,
        format!("{}/v27.0/debug_token", sb.base_url),
        &[
            ("input_token", DEFAULT_PAGE_ACCESS_TOKEN),
            ("access_token", "1|wrong"),
        ],
    )
    .await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!(190)));
    sb.shutdown().await;
}

#[tokio::test]
async fn the_page_subscribes_the_app_and_the_switches_break_it() {
    let (sb, http) = sandbox().await;
    let url = format!("{}/v27.0/{DEFAULT_PAGE_ID}/subscribed_apps", sb.base_url);
    let token = [("access_token", DEFAULT_PAGE_ACCESS_TOKEN)];
    let (status, body) = get(&http, url.clone(), &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["id"], DEFAULT_APP_ID);
    assert_eq!(
        body["data"][0]["subscribed_fields"],
        json!([
            "messages",
            "messaging_optins",
            "messaging_policy_enforcement"
        ])
    );

    put(
        &http,
        format!("{}/_sandbox/subscriptions", sb.base_url),
        json!({"page_subscribed": false}),
    )
    .await;
    assert_eq!(get(&http, url.clone(), &token).await.1, json!({"data": []}));

    // POST without fields, with an unknown field, then right.
    let post = |q: Vec<(&'static str, &'static str)>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http.post(with(&url, &q)).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = post(vec![("access_token", DEFAULT_PAGE_ACCESS_TOKEN)]).await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!(100)));
    let (status, body) = post(vec![
        ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
        ("subscribed_fields", "messages,nope"),
    ])
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("subscribed_fields[1]")
    );
    let (status, body) = post(vec![
        ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
        ("subscribed_fields", "messages,messaging_optins"),
    ])
    .await;
    assert_eq!((status, body), (200, json!({"success": true})));
    let (_, body) = get(&http, url.clone(), &token).await;
    assert_eq!(
        body["data"][0]["subscribed_fields"],
        json!(["messages", "messaging_optins"])
    );

    // The app token is not a Page token; another Page is unknown.
    let (status, body) = get(&http, url.clone(), &[("access_token", &app_token())]).await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!(190)));
    let (status, _) = get(
        &http,
        format!("{}/v27.0/42/subscribed_apps", sb.base_url),
        &token,
    )
    .await;
    assert_eq!(status, 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn the_app_subscription_reports_the_callback_url_state_and_fields() {
    let (sb, http) = sandbox().await;
    let url = format!("{}/v27.0/{DEFAULT_APP_ID}/subscriptions", sb.base_url);
    let (status, body) = get(&http, url.clone(), &[("access_token", &app_token())]).await;
    assert_eq!(status, 200);
    let s = &body["data"][0];
    assert_eq!(s["object"], "page");
    assert_eq!(s["callback_url"], WEBHOOK);
    assert_eq!(s["active"], true);
    assert_eq!(
        s["fields"][0],
        json!({"name": "messages", "version": "v27.0"})
    );

    put(
        &http,
        format!("{}/_sandbox/subscriptions", sb.base_url),
        json!({"callback_url": "https://old.example/w", "app_active": false, "app_fields": ["messages"]}),
    )
    .await;
    let (_, body) = get(&http, url.clone(), &[("access_token", &app_token())]).await;
    assert_eq!(body["data"][0]["callback_url"], "https://old.example/w");
    assert_eq!(body["data"][0]["active"], false);
    assert_eq!(body["data"][0]["fields"].as_array().unwrap().len(), 1);
    assert_eq!(
        sb.webhook_url().as_deref(),
        Some("https://old.example/w"),
        "deliveries follow it"
    );

    // A Page token where Graph wants the app's: (#15).
    let (status, body) = get(
        &http,
        url.clone(),
        &[("access_token", DEFAULT_PAGE_ACCESS_TOKEN)],
    )
    .await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!(15)));
    // DELETE restores the product's subscription.
    http.delete(format!("{}/_sandbox/subscriptions", sb.base_url))
        .send()
        .await
        .unwrap();
    let (_, body) = get(&http, url, &[("access_token", &app_token())]).await;
    assert_eq!(body["data"][0]["active"], true);
    assert_eq!(body["data"][0]["fields"].as_array().unwrap().len(), 3);
    sb.shutdown().await;
}
