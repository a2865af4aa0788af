//! The http-api's own defences: the routes only Facebook calls answer only under the configured
//! unguessable path segment, and a revoked API key stops working once the secret's TTL has passed
//! (issue 10, "Throttling is a shared bucket anyone can empty" and "Least privilege").

use crate::common::*;
use http_api::{Deps, LiveDeps};
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::secrets::{MemorySecretSource, RefreshingSecret};
use shared::config::env;
use shared::config::secrets::HttpApiSecrets;
use std::sync::Arc;

const SEGMENT: &str = "9f86d081884c7d659a2feaa0c55ad015";

fn verify(path: &str) -> Req {
    Req::get(path)
        .q("hub.mode", "subscribe")
        .q("hub.verify_token", "test-verify-token")
        .q("hub.challenge", "1158201444")
}

#[tokio::test]
async fn facebook_routes_without_the_segment_are_not_found_when_one_is_configured() {
    let w = world_with(&[(env::FACEBOOK_PATH_SEGMENT, SEGMENT)]);
    // Without the segment: not found, whatever the method (nothing reaches the handlers).
    for r in [
        verify("/webhooks/messenger"),
        Req::post("/webhooks/messenger").json("{}"),
        Req::post("/facebook/deauthorize"),
        Req::post("/facebook/data-deletion"),
        verify(&format!("/{}/webhooks/messenger", &SEGMENT[..31])),
        verify(&format!("/x{SEGMENT}/webhooks/messenger")),
    ] {
        let answer = send(&w, r.clone()).await;
        assert_eq!(answer.status(), 404, "{} {}", r.method, r.path);
        assert_eq!(error_code(&answer), "not_found");
    }
    // With it: the real handlers.
    let answer = send(&w, verify(&format!("/{SEGMENT}/webhooks/messenger"))).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.body().as_ref(), b"1158201444");
    let answer = send(&w, Req::post(&format!("/{SEGMENT}/facebook/deauthorize"))).await;
    assert!(
        answer.status().is_client_error() && error_code(&answer) != "not_found",
        "the deauthorize handler itself refused the empty form: {}",
        answer.status()
    );
    let answer = send(&w, Req::get(&format!("/{SEGMENT}/facebook/deauthorize"))).await;
    assert_eq!(answer.status(), 405);
    // The other routes keep their paths, and do not move under the segment.
    assert_eq!(send(&w, Req::get("/healthz")).await.status(), 200);
    assert_eq!(
        send(&w, Req::get(&format!("/{SEGMENT}/healthz")))
            .await
            .status(),
        404
    );
    assert_eq!(
        send(
            &w,
            Req::get(&format!("/{SEGMENT}/facebook/data-deletion/status"))
        )
        .await
        .status(),
        404
    );
    let answer = send(
        &w,
        Req::get("/facebook/data-deletion/status").q("code", "x"),
    )
    .await;
    assert_ne!(
        json_of(&answer)["error"]["message"],
        "no such route",
        "the status page stays public (its URL is shown to the person): the handler answered"
    );
}

#[tokio::test]
async fn without_a_segment_the_facebook_routes_keep_their_paths() {
    let w = world();
    let answer = send(&w, verify("/webhooks/messenger")).await;
    assert_eq!(answer.status(), 200);
    let answer = send(&w, Req::post("/facebook/deauthorize")).await;
    assert!(answer.status().is_client_error() && error_code(&answer) != "not_found");
}

/// The secret filled in with these website API keys.
pub(crate) fn secret_with(keys: &[&str]) -> String {
    let hashes: Vec<String> = keys.iter().map(|k| http_api::auth::key_hash(k)).collect();
    serde_json::json!({
        "app_secret": "test-app-secret",
        "client_token": CLIENT_TOKEN,
        "verify_token": "test-verify-token",
        "api_key_hashes": hashes,
    })
    .to_string()
}

#[tokio::test]
async fn a_revoked_api_key_stops_working_within_the_secret_ttl() {
    const TTL: i64 = 300_000;
    let source = MemorySecretSource::new(secret_with(&[KEY_OLD, KEY_NEW]));
    let clock = Arc::new(ManualClock::at(NOW));
    let secret = RefreshingSecret::<HttpApiSecrets>::load(source.clone(), clock.clone(), TTL)
        .await
        .unwrap();
    let live = LiveDeps::refreshing(
        secret,
        Box::new(|secrets: HttpApiSecrets| {
            let mut deps: Deps = world().deps;
            deps.secrets = secrets;
            Ok(deps)
        }),
    )
    .await
    .unwrap();
    let status = |key: &'static str| {
        let live = &live;
        async move {
            live.handle(Req::get("/v1/users/1234").key(key).build())
                .await
                .status()
        }
    };
    assert_ne!(status(KEY_OLD).await, 401);

    // The operator removes the old key's hash from the secret.
    source.set(secret_with(&[KEY_NEW]));
    clock.advance(TTL - 1_000);
    assert_ne!(status(KEY_OLD).await, 401, "cached until the TTL");
    clock.advance(1_000);
    assert_eq!(
        status(KEY_OLD).await,
        401,
        "revoked once the TTL has passed"
    );
    assert_ne!(status(KEY_NEW).await, 401);
    assert_eq!(source.reads(), 2, "one read at start, one after the TTL");
}
