//! The HTTP Lambda: the Messenger webhook, Facebook Login's redirect flow (`login`), and the
//! website-backend API (`api`, keys checked in `auth`), described by `docs/openapi.json`.
//!
//! `handle` never fails and never panics: every error becomes a JSON `{"error":{"code","message"}}`
//! answer with the right status, and the detail goes to the logs.
//!
//! The routes only Facebook calls (webhook, deauthorize, data deletion) live under an unguessable
//! first path segment when `FACEBOOK_PATH_SEGMENT` is set, so nobody else can reach them (or
//! empty their API Gateway throttle); [`LiveDeps`] re-reads the secret on a short TTL so a revoked
//! API key stops working within minutes.

pub mod api;
pub mod auth;
mod conversation;
pub mod facebook_callbacks;
pub mod login;
mod policy;
pub mod verify;
mod webhook;

use lambda_http::{Body, Request, Response, http::Method, http::StatusCode};
use shared::adapters::secrets::{RefreshingSecret, SecretsManagerSource};
use shared::config::{Config, ConfigError, HttpApiSecrets};
use shared::login::{FacebookLogin, LoginStore};
use shared::metrics::Metrics;
use shared::ports::{
    Alerts, Clock, ConversationStore, DeadlineScheduler, OptInStore, SendQueue, SystemClock,
};
use std::sync::Arc;

/// Largest request body accepted (Meta's batches can exceed 300 KB; API Gateway's limit is 10 MB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the handler needs, built once at cold start (and again when the secret changes).
pub struct Deps {
    pub config: Config,
    /// The http-api's view of the secret: no Page token.
    pub secrets: HttpApiSecrets,
    pub store: Arc<dyn OptInStore>,
    pub conversations: Arc<dyn ConversationStore>,
    pub queue: Arc<dyn SendQueue>,
    pub scheduler: Arc<dyn DeadlineScheduler>,
    pub alerts: Arc<dyn Alerts>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn Metrics>,
    pub logins: Arc<dyn LoginStore>,
    pub facebook: Arc<dyn FacebookLogin>,
    pub erasure: Arc<dyn shared::erasure::ErasureStore>,
    /// The Page state item (policy enforcement pauses and resumes the Page).
    pub pages: Arc<dyn shared::ports::send::PageStateStore>,
}

impl Deps {
    /// The production wiring: AWS adapters over one SDK config. Shared by the Lambda main and the
    /// local runner, so both run the same code.
    pub fn from_aws(
        config: Config,
        secrets: impl Into<HttpApiSecrets>,
        sdk: &shared::bootstrap::SdkConfig,
    ) -> Result<Self, shared::adapters::graph::GraphInitError> {
        let secrets = secrets.into();
        let ports = shared::bootstrap::AwsPorts::new(&config, sdk);
        let graph =
            shared::adapters::graph::GraphClient::for_login(&config, secrets.app_secret.clone())?;
        let logins =
            shared::adapters::dynamodb_login::DynamoLoginStore::from_sdk(sdk, &config.table_name);
        Ok(Self {
            config,
            secrets,
            conversations: ports.store.clone(),
            pages: ports.store.clone(),
            erasure: ports.erasure,
            store: ports.store,
            queue: ports.queue,
            scheduler: ports.scheduler,
            alerts: ports.alerts,
            clock: Arc::new(SystemClock),
            metrics: ports.metrics,
            logins: Arc::new(logins),
            facebook: Arc::new(graph),
        })
    }
}

/// Why the http-api could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Graph(#[from] shared::adapters::graph::GraphInitError),
}

/// Builds the handler's dependencies for a given secret value.
pub type Rebuild = Box<dyn Fn(HttpApiSecrets) -> Result<Deps, StartError> + Send + Sync>;

/// The dependencies to use for the next request. With a [`RefreshingSecret`], the secret is read
/// again once its TTL has passed and, when it changed, the dependencies are rebuilt from it (as a
/// cold start would), so a revoked API key, a new verify token or a reset app secret take effect
/// within the TTL.
pub struct LiveDeps {
    current: std::sync::Mutex<(u64, Arc<Deps>)>,
    refresh: Option<(RefreshingSecret<HttpApiSecrets>, Rebuild)>,
}

impl LiveDeps {
    /// Dependencies that never change (tests).
    pub fn fixed(deps: Deps) -> Self {
        Self {
            current: std::sync::Mutex::new((0, Arc::new(deps))),
            refresh: None,
        }
    }

    /// `deps` built from the secret's current value; `rebuild` makes new ones when it changes.
    pub async fn refreshing(
        secret: RefreshingSecret<HttpApiSecrets>,
        rebuild: Rebuild,
    ) -> Result<Self, StartError> {
        let (generation, value) = secret.current().await;
        let deps = rebuild((*value).clone())?;
        Ok(Self {
            current: std::sync::Mutex::new((generation, Arc::new(deps))),
            refresh: Some((secret, rebuild)),
        })
    }

    /// The production wiring: the secret named by `SECRET_ID`, re-read every `SECRET_TTL_SECONDS`.
    pub async fn from_aws(
        config: Config,
        sdk: &shared::bootstrap::SdkConfig,
    ) -> Result<Self, StartError> {
        let source = Arc::new(SecretsManagerSource::from_sdk(
            sdk,
            config.secret_id.clone(),
        ));
        let secret =
            RefreshingSecret::load(source, Arc::new(SystemClock), config.secret_ttl_ms).await?;
        let sdk = sdk.clone();
        Self::refreshing(
            secret,
            Box::new(move |secrets| Ok(Deps::from_aws(config.clone(), secrets, &sdk)?)),
        )
        .await
    }

    /// The dependencies for one request.
    pub async fn current(&self) -> Arc<Deps> {
        let Some((secret, rebuild)) = &self.refresh else {
            return self.snapshot().1;
        };
        let (generation, value) = secret.current().await;
        let (built, deps) = self.snapshot();
        if built == generation {
            return deps;
        }
        match rebuild((*value).clone()) {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
                *current = (generation, fresh.clone());
                fresh
            }
            Err(e) => {
                // Keep serving with the previous dependencies; the next request tries again.
                tracing::error!(error = %e, "could not rebuild the handler after a secret change");
                deps
            }
        }
    }

    fn snapshot(&self) -> (u64, Arc<Deps>) {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        (current.0, current.1.clone())
    }

    /// Route one request with the current dependencies. Infallible, like [`handle`].
    pub async fn handle(&self, request: Request) -> Response<Body> {
        handle(&*self.current().await, request).await
    }
}

/// A JSON error answer. `code` is stable and machine-readable; `message` is for people.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    json_response(status, &body)
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "cache-control",
        lambda_http::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The routes only Facebook calls. With `FACEBOOK_PATH_SEGMENT` set they answer only under
/// `/{segment}` (and nothing else does); without it, at their bare paths. The data-deletion
/// *status* page is not one of them: its URL is shown to the person, so it would reveal the
/// segment; its unguessable confirmation code protects it instead.
pub const FACEBOOK_ROUTES: &[&str] = &[
    "/webhooks/messenger",
    "/facebook/deauthorize",
    "/facebook/data-deletion",
];

/// `(is a Facebook route, the route's path)` of a request path (already without trailing `/`).
fn split_facebook_route<'a>(segment: Option<&str>, path: &'a str) -> (bool, &'a str) {
    match segment {
        None => (FACEBOOK_ROUTES.contains(&path), path),
        Some(segment) => match path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(segment))
            .filter(|rest| rest.starts_with('/'))
        {
            Some(rest) if FACEBOOK_ROUTES.contains(&rest) => (true, rest),
            // Under the segment but no Facebook route: unknown. Elsewhere: the other routes.
            Some(_) => (false, ""),
            None => (false, path),
        },
    }
}

/// Route one request. Infallible by design.
pub async fn handle(deps: &Deps, request: Request) -> Response<Body> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let method = request.method().clone();
    if request.body().len() > MAX_BODY_BYTES {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than 1 MiB",
        );
    }
    let (facebook, route) =
        split_facebook_route(deps.config.facebook_path_segment.as_deref(), &path);
    match (facebook, route, method) {
        (true, "/webhooks/messenger", Method::GET) => webhook::verify_subscription(deps, &request),
        (true, "/webhooks/messenger", Method::POST) => webhook::receive(deps, &request).await,
        (true, "/facebook/deauthorize", Method::POST) => {
            facebook_callbacks::deauthorize(deps, &request).await
        }
        (true, "/facebook/data-deletion", Method::POST) => {
            facebook_callbacks::data_deletion(deps, &request).await
        }
        (true, _, _) => error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not accept that method",
        ),
        (false, "/healthz", Method::GET) => {
            json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
        }
        (false, "/login/start", Method::GET) => login::start(deps, &request).await,
        (false, "/login/callback", Method::GET) => login::callback(deps, &request).await,
        (false, "/openapi.json", Method::GET) => openapi(deps.config.public_base_url.as_deref()),
        (false, "/facebook/data-deletion/status", Method::GET) => {
            facebook_callbacks::deletion_status(deps, &request).await
        }
        (false, p, _) if p.starts_with("/v1/") => api::route(deps, &request, p).await,
        (
            false,
            "/healthz"
            | "/login/start"
            | "/login/callback"
            | "/openapi.json"
            | "/facebook/data-deletion/status",
            _,
        ) => error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not accept that method",
        ),
        _ => error_response(StatusCode::NOT_FOUND, "not_found", "no such route"),
    }
}

/// The OpenAPI 3.1 document of this API (`docs/openapi.json`, compiled in).
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

/// The document as served: with `PUBLIC_BASE_URL` configured (the local runner sets it to the
/// address it really listens on), `servers` is that URL alone, so "try it" tools call this API and
/// not the placeholders of the compiled-in document (`127.0.0.1:3000`, `{api}.execute-api…`).
pub fn openapi_document(public_base_url: Option<&str>) -> String {
    let Some(base) = public_base_url else {
        return OPENAPI_JSON.to_owned();
    };
    match serde_json::from_str::<serde_json::Value>(OPENAPI_JSON) {
        Ok(mut doc) => {
            doc["servers"] = serde_json::json!([{
                "url": base.trim_end_matches('/'),
                "description": "This API (PUBLIC_BASE_URL)",
            }]);
            doc.to_string()
        }
        // Unreachable while docs/openapi.json parses (the api_contract test reads it).
        Err(_) => OPENAPI_JSON.to_owned(),
    }
}

fn openapi(public_base_url: Option<&str>) -> Response<Body> {
    let mut response = Response::new(Body::Text(openapi_document(public_base_url)));
    response.headers_mut().insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::{openapi_document, split_facebook_route};

    /// Issue 14, "Ports": the served document names the address the API really listens on.
    #[test]
    fn the_served_openapi_servers_entry_is_the_public_base_url() {
        let doc: serde_json::Value =
            serde_json::from_str(&openapi_document(Some("http://127.0.0.1:43123/"))).unwrap();
        assert_eq!(
            doc["servers"],
            serde_json::json!([{"url": "http://127.0.0.1:43123", "description": "This API (PUBLIC_BASE_URL)"}])
        );
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
        // Without a public URL the compiled-in document is served unchanged.
        assert_eq!(openapi_document(None), super::OPENAPI_JSON);
    }

    const SEGMENT: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn facebook_routes_answer_only_under_the_configured_segment() {
        assert_eq!(
            split_facebook_route(None, "/webhooks/messenger"),
            (true, "/webhooks/messenger")
        );
        assert_eq!(split_facebook_route(None, "/healthz"), (false, "/healthz"));
        let s = Some(SEGMENT);
        assert_eq!(
            split_facebook_route(s, &format!("/{SEGMENT}/facebook/deauthorize")),
            (true, "/facebook/deauthorize")
        );
        // The bare path is not a Facebook route any more (it falls through to 404).
        assert_eq!(
            split_facebook_route(s, "/webhooks/messenger"),
            (false, "/webhooks/messenger")
        );
        for other in [
            format!("/{SEGMENT}/healthz"),
            format!("/{SEGMENT}x/webhooks/messenger"),
            format!("/{}/webhooks/messenger", &SEGMENT[1..]),
            format!("/{SEGMENT}"),
        ] {
            assert!(!split_facebook_route(s, &other).0, "{other}");
        }
        assert_eq!(
            split_facebook_route(s, "/facebook/data-deletion/status"),
            (false, "/facebook/data-deletion/status")
        );
    }
}
