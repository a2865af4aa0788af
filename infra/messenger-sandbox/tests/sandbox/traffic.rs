//! The Send API's rate limit, latency and fault injection, over HTTP on 127.0.0.1 random ports.

use std::time::{Duration, Instant};

use messenger_sandbox::{
    DEFAULT_APP_SECRET, DEFAULT_PAGE_ACCESS_TOKEN, DEFAULT_PAGE_ID, RunningSandbox, SandboxConfig,
};
use serde_json::{Value, json};

async fn sandbox(config: SandboxConfig) -> RunningSandbox {
    messenger_sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox starts")
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// Record an opt-in (no webhook) and return its login_id.
async fn optin(sb: &RunningSandbox) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/_sandbox/optin", sb.base_url))
        .json(&json!({"deliver": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["login_id"].as_str().unwrap().to_owned()
}

async fn send_with(
    http: &reqwest::Client,
    sb: &RunningSandbox,
    login_id: &str,
) -> reqwest::Result<(u16, Value)> {
    let proof =
        shared::facebook::crypto::appsecret_proof(DEFAULT_APP_SECRET, DEFAULT_PAGE_ACCESS_TOKEN);
    let url = reqwest::Url::parse_with_params(
        &format!("{}/v25.0/{DEFAULT_PAGE_ID}/messages", sb.base_url),
        &[
            ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
            ("appsecret_proof", proof.as_str()),
        ],
    )
    .unwrap();
    let response = http
        .post(url)
        .json(&json!({
            "recipient": {"login_id": login_id},
            "messaging_type": "UPDATE",
            "message": {"text": "hi"},
        }))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

async fn send(sb: &RunningSandbox, login_id: &str) -> (u16, Value) {
    send_with(&reqwest::Client::new(), sb, login_id)
        .await
        .unwrap()
}

async fn control(
    sb: &RunningSandbox,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", sb.base_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_rate_limit_is_a_rolling_second_per_page_answering_613() {
    let sb = sandbox(SandboxConfig {
        rate_limit_per_second: 3,
        ..SandboxConfig::default()
    })
    .await;
    let login = optin(&sb).await;
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(send(&sb, &login).await.0, 200);
    }
    let (status, answer) = send(&sb, &login).await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "test too slow to be meaningful"
    );
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], 613);
    assert_eq!(
        answer["error"]["message"],
        "(#613) Calls to this api have exceeded the rate limit."
    );
    tokio::time::sleep(Duration::from_millis(1_050).saturating_sub(started.elapsed())).await;
    assert_eq!(send(&sb, &login).await.0, 200, "the window rolled");
    let stats = sb.stats();
    assert_eq!(
        (
            stats.send_requests,
            stats.accepted,
            stats.rate_limited,
            stats.max_in_window
        ),
        (5, 4, 1, 3)
    );
    // Off, at run time.
    let (status, limits) = control(
        &sb,
        reqwest::Method::PUT,
        "/_sandbox/limits",
        json!({"rate_limit_per_second": 0}),
    )
    .await;
    assert_eq!(
        (status, limits["rate_limit_per_second"].as_u64()),
        (200, Some(0))
    );
    for _ in 0..5 {
        assert_eq!(send(&sb, &login).await.0, 200);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_to_every_send() {
    let sb = sandbox(SandboxConfig {
        latency_ms: 150,
        ..SandboxConfig::default()
    })
    .await;
    let login = optin(&sb).await;
    let started = Instant::now();
    assert_eq!(send(&sb, &login).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let (_, limits) = control(&sb, reqwest::Method::GET, "/_sandbox/limits", Value::Null).await;
    assert_eq!(
        limits,
        json!({"rate_limit_per_second": 300, "latency_ms": 150})
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn the_next_n_sends_answer_any_error_of_the_table() {
    let sb = sandbox(SandboxConfig::default()).await;
    let login = optin(&sb).await;
    let (status, listed) = control(
        &sb,
        reqwest::Method::POST,
        "/_sandbox/faults",
        json!({"code": 1200, "subcode": 2018024, "count": 2, "fbtrace_id": "TRACE1"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed["faults"][0]["count"], 2);
    for _ in 0..2 {
        let (status, answer) = send(&sb, &login).await;
        assert_eq!(status, 500, "Graph's status for 1200");
        assert_eq!(
            answer,
            json!({"error": {
                "message": "(#1200) Temporary send message failure. Please try again later.",
                "type": "OAuthException", "code": 1200, "error_subcode": 2018024,
                "fbtrace_id": "TRACE1"}})
        );
    }
    assert_eq!(send(&sb, &login).await.0, 200, "the fault cleared");
    assert_eq!(sb.inbox().len(), 1);

    // Overrides, and a fraction that stays until cleared.
    control(
        &sb,
        reqwest::Method::POST,
        "/_sandbox/faults",
        json!({"code": 4, "status": 429, "fraction": 1.0}),
    )
    .await;
    for _ in 0..3 {
        let (status, answer) = send(&sb, &login).await;
        assert_eq!(status, 429);
        assert_eq!(answer["error"]["code"], 4);
        assert_eq!(answer["error"]["is_transient"], true);
        assert_eq!(answer["error"]["fbtrace_id"].as_str().unwrap().len(), 23);
    }
    let (status, cleared) = control(
        &sb,
        reqwest::Method::DELETE,
        "/_sandbox/faults",
        Value::Null,
    )
    .await;
    assert_eq!((status, cleared), (200, json!({"faults": []})));
    assert_eq!(send(&sb, &login).await.0, 200);
    assert_eq!(sb.stats().faults_injected, 5);

    // Rules for another Page do not apply.
    control(
        &sb,
        reqwest::Method::POST,
        "/_sandbox/faults",
        json!({"code": 551, "subcode": 1545041, "page_id": "999"}),
    )
    .await;
    assert_eq!(send(&sb, &login).await.0, 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn bad_fault_requests_are_refused_and_reset_clears_rules() {
    let sb = sandbox(SandboxConfig::default()).await;
    for body in [
        json!({}),
        json!({"code": 1, "count": 0}),
        json!({"code": 1, "count": 1, "fraction": 0.5}),
        json!({"code": 1, "fraction": 0}),
        json!({"kind": "timeout", "code": 1}),
        json!({"kind": "explode"}),
        json!({"code": 1, "status": 200}),
        json!({"code": 1, "unknown": true}),
    ] {
        let (status, answer) =
            control(&sb, reqwest::Method::POST, "/_sandbox/faults", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["type"], "SandboxError");
    }
    control(
        &sb,
        reqwest::Method::POST,
        "/_sandbox/faults",
        json!({"code": 2, "fraction": 1.0}),
    )
    .await;
    control(&sb, reqwest::Method::POST, "/_sandbox/reset", Value::Null).await;
    let (_, listed) = control(&sb, reqwest::Method::GET, "/_sandbox/faults", Value::Null).await;
    assert_eq!(listed, json!({"faults": []}));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_timeout_fault_outlasts_the_client_and_may_still_deliver() {
    let sb = sandbox(SandboxConfig::default()).await;
    let login = optin(&sb).await;
    let http = client(Duration::from_millis(300));
    control(
        &sb,
        reqwest::Method::POST,
        "/_sandbox/faults",
        json!({"kind": "timeout", "delay_ms": 1000}),
    )
    .await;
    let err = send_with(&http, &sb, &login).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // Processed but the answer was lost: the ambiguous case a sender cannot tell apart.
    control(
        &sb,
        reqwest::Method::POST,
        "/_sandbox/faults",
        json!({"kind": "timeout", "delay_ms": 600, "deliver": true}),
    )
    .await;
    let err = send_with(&http, &sb, &login).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sb.inbox().len(), 1, "delivered although the client gave up");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_close_fault_drops_the_connection_without_an_answer() {
    let sb = sandbox(SandboxConfig::default()).await;
    let login = optin(&sb).await;
    let http = client(Duration::from_secs(5));
    sb.add_fault(messenger_sandbox::FaultRule {
        kind: messenger_sandbox::FaultKind::Close,
        count: Some(1),
        ..Default::default()
    })
    .unwrap();
    let started = Instant::now();
    let err = send_with(&http, &sb, &login).await.unwrap_err();
    assert!(!err.is_timeout(), "closed, not timed out: {err}");
    assert!(
        err.is_request() || err.is_body() || err.is_connect(),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(sb.inbox().is_empty());
    // The same client recovers on a new connection.
    assert_eq!(send_with(&http, &sb, &login).await.unwrap().0, 200);
    sb.shutdown().await;
}

/// Graph names the serving version in `facebook-api-version`: the asked one by default, another
/// one with the switch (so the app's `GraphApiVersionMismatch` can be tested end to end).
#[tokio::test]
async fn every_graph_answer_names_its_version_and_the_switch_names_another() {
    let sb = sandbox(SandboxConfig::default()).await;
    let http = reqwest::Client::new();
    let header = |r: &reqwest::Response| {
        r.headers()
            .get(messenger_sandbox::API_VERSION_HEADER)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let login_id = optin(&sb).await;
    let proof =
        shared::facebook::crypto::appsecret_proof(DEFAULT_APP_SECRET, DEFAULT_PAGE_ACCESS_TOKEN);
    let send = |version: &'static str| {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/{version}/{DEFAULT_PAGE_ID}/messages", sb.base_url),
            &[
                ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
                ("appsecret_proof", proof.as_str()),
            ],
        )
        .unwrap();
        http.post(url).json(&json!({
            "recipient": {"login_id": login_id},
            "messaging_type": "UPDATE",
            "message": {"text": "hi"},
        }))
    };

    // By default: the asked version, on successes and on errors alike.
    let r = send("v27.0").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r).as_deref(), Some("v27.0"));
    let r = http
        .get(format!("{}/v25.0/me", sb.base_url))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(header(&r).as_deref(), Some("v25.0"));
    // Not on the sandbox's own routes.
    let r = http
        .get(format!("{}/_sandbox/healthz", sb.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r), None);

    // The switch: every versioned answer names v26.0, fault answers included.
    let r = http
        .put(format!("{}/_sandbox/api_version", sb.base_url))
        .json(&json!({"serve": "v26.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"serve": "v26.0"}));
    let r = send("v27.0").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r).as_deref(), Some("v26.0"));
    sb.add_fault(messenger_sandbox::FaultRule::error(1200, None))
        .unwrap();
    let r = send("v27.0").send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(header(&r).as_deref(), Some("v26.0"));

    // A switch to something that is not a version is refused and changes nothing.
    let r = http
        .put(format!("{}/_sandbox/api_version", sb.base_url))
        .json(&json!({"serve": "latest"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        header(&send("v27.0").send().await.unwrap()).as_deref(),
        Some("v26.0")
    );

    // Cleared (DELETE, or from Rust): the asked version again.
    let r = http
        .delete(format!("{}/_sandbox/api_version", sb.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"serve": null}));
    assert_eq!(
        header(&send("v27.0").send().await.unwrap()).as_deref(),
        Some("v27.0")
    );
    sb.serve_api_version(Some("v24.0"));
    assert_eq!(
        header(&send("v27.0").send().await.unwrap()).as_deref(),
        Some("v24.0")
    );
    sb.serve_api_version(None);
    assert_eq!(
        header(&send("v25.0").send().await.unwrap()).as_deref(),
        Some("v25.0")
    );
    sb.shutdown().await;
}
