//! A fresh stack: the secret still holds the template's empty placeholders (issue 13, "Until the
//! secret is filled, every function exits at cold start"). The http-api starts anyway, alerts
//! once, answers `/healthz` and 503 `not_configured` (the `{"error":{…}}` shape) everywhere else,
//! and serves as soon as the operator fills the secret, without a new cold start.

use crate::common::*;
use crate::security::secret_with;
use http_api::{LiveDeps, Service};
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::secrets::{MemorySecretSource, RefreshingSecret};
use shared::bootstrap::{Unconfigured, UntilConfigured, build_deps};
use shared::config::secrets::HttpApiSecrets;
use shared::domain::alert::AlertKind;
use std::sync::Arc;
use std::time::Duration;

/// What template.yaml's `AppSecret` holds after the first deploy: empty placeholders and the
/// generated verify token.
const TEMPLATE_PLACEHOLDERS: &str = r#"{"app_secret":"","page_access_token":"","client_token":"","api_key_hashes":[],"verify_token":"generated0123456789"}"#;

/// The Lambda's wiring over a secret the test edits: [`LiveDeps`] over the twins of [`world`].
async fn service(
    source: Arc<MemorySecretSource>,
    alerts: &MemoryAlerts,
    retry_after: Duration,
) -> Service {
    let build = build_deps(move || {
        let source = source.clone();
        async move {
            let secret = RefreshingSecret::<HttpApiSecrets>::load(
                source,
                Arc::new(ManualClock::at(NOW)),
                300_000,
            )
            .await
            .map_err(|e| e.to_string())?;
            LiveDeps::refreshing(
                secret,
                Box::new(|secrets| {
                    let mut deps = world().deps;
                    deps.secrets = secrets;
                    Ok(deps)
                }),
            )
            .await
            .map_err(|e| e.to_string())
        }
    });
    Service::new(
        UntilConfigured::start(
            build,
            retry_after,
            Unconfigured {
                function: "http-api",
                meanwhile: http_api::deps::WHILE_NOT_CONFIGURED,
                page_id: PAGE,
                alerts,
            },
        )
        .await,
    )
}

fn routes() -> Vec<Req> {
    vec![
        Req::get("/v1/users/1234").key(KEY_OLD),
        Req::post("/v1/logins").key(KEY_OLD).json("{}"),
        Req::get("/webhooks/messenger")
            .q("hub.mode", "subscribe")
            .q("hub.verify_token", "generated0123456789")
            .q("hub.challenge", "1"),
        Req::post("/webhooks/messenger").json("{}"),
        Req::post("/facebook/deauthorize"),
        Req::get("/login/start"),
        Req::get("/openapi.json"),
        Req::get("/no/such/route"),
    ]
}

#[tokio::test]
async fn a_secret_with_the_templates_placeholders_answers_503_not_configured() {
    let source = MemorySecretSource::new(TEMPLATE_PLACEHOLDERS);
    let alerts = MemoryAlerts::default();
    let service = service(source.clone(), &alerts, Duration::from_secs(3600)).await;

    for r in routes() {
        let answer = service.handle(r.build()).await;
        assert_eq!(answer.status(), 503, "{} {}", r.method, r.path);
        let body = json_of(&answer);
        assert_eq!(body["error"]["code"], "not_configured", "{}", r.path);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // A browser gets a page, still 503.
    let page = service
        .handle(Req::get("/login/start").h("accept", "text/html").build())
        .await;
    assert_eq!(page.status(), 503);
    // Monitors still see the function run.
    let health = service.handle(Req::get("/healthz").build()).await;
    assert_eq!(health.status(), 200);
    assert_eq!(json_of(&health), serde_json::json!({"ok": true}));

    // Not read again on every request: only once the retry interval has passed.
    assert_eq!(source.reads(), 1);
    // One alert for the cold start, naming the empty field and never a value.
    let published = alerts.published();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].kind, AlertKind::NotConfigured);
    assert_eq!(published[0].page_id, PAGE);
    assert!(
        published[0].detail.contains("app_secret is empty"),
        "{}",
        published[0].detail
    );
    assert!(published[0].detail.contains("503 not_configured"));
    assert!(!published[0].detail.contains("generated0123456789"));
}

#[tokio::test]
async fn filling_the_secret_takes_effect_without_a_cold_start() {
    let source = MemorySecretSource::new(TEMPLATE_PLACEHOLDERS);
    let alerts = MemoryAlerts::default();
    let service = service(source.clone(), &alerts, Duration::ZERO).await;
    let get_user = || Req::get("/v1/users/1234").key(KEY_OLD).build();
    assert_eq!(service.handle(get_user()).await.status(), 503);

    source.set(secret_with(&[KEY_OLD]));
    let answer = service.handle(get_user()).await;
    // The route itself answers now (the key is accepted).
    assert!(
        ![503, 401].contains(&answer.status().as_u16()),
        "{} {:?}",
        answer.status(),
        answer.body()
    );
    // Still the one alert of the cold start; a filled secret is not read again per request.
    assert_eq!(alerts.published().len(), 1);
    let reads = source.reads();
    service.handle(get_user()).await;
    assert_eq!(source.reads(), reads);
}

#[tokio::test]
async fn a_filled_secret_starts_as_before_without_an_alert() {
    let source = MemorySecretSource::new(secret_with(&[KEY_OLD]));
    let alerts = MemoryAlerts::default();
    let service = service(source, &alerts, Duration::ZERO).await;
    let answer = service
        .handle(Req::get("/v1/users/1234").key(KEY_NEW).build())
        .await;
    assert_eq!(answer.status(), 401, "KEY_NEW is not in the secret");
    assert!(alerts.published().is_empty());
}
