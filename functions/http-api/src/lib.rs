//! The HTTP Lambda: the Messenger webhook, Facebook Login's redirect flow (`login`), and the
//! website-backend API (`api`, keys checked in `auth`), described by `docs/openapi.json`.
//!
//! `handle` never fails and never panics: every error becomes a JSON `{"error":{"code","message"}}`
//! answer with the right status, and the detail goes to the logs.

pub mod api;
pub mod auth;
mod conversation;
pub mod facebook_callbacks;
pub mod login;
mod policy;
pub mod verify;
mod webhook;

use lambda_http::{Body, Request, Response, http::Method, http::StatusCode};
use shared::config::{Config, Secrets};
use shared::login::{FacebookLogin, LoginStore};
use shared::metrics::Metrics;
use shared::ports::{
    Alerts, Clock, ConversationStore, DeadlineScheduler, OptInStore, SendQueue, SystemClock,
};
use std::sync::Arc;

/// Largest request body accepted (Meta's batches can exceed 300 KB; API Gateway's limit is 10 MB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the handler needs, built once at cold start.
pub struct Deps {
    pub config: Config,
    pub secrets: Secrets,
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
        secrets: Secrets,
        sdk: &shared::bootstrap::SdkConfig,
    ) -> Result<Self, shared::adapters::graph::GraphInitError> {
        let ports = shared::bootstrap::AwsPorts::new(&config, sdk);
        let graph = shared::adapters::graph::GraphClient::new(&config, &secrets)?;
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
    match (path.as_str(), method) {
        ("/healthz", Method::GET) => {
            json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
        }
        ("/webhooks/messenger", Method::GET) => webhook::verify_subscription(deps, &request),
        ("/webhooks/messenger", Method::POST) => webhook::receive(deps, &request).await,
        ("/login/start", Method::GET) => login::start(deps, &request).await,
        ("/login/callback", Method::GET) => login::callback(deps, &request).await,
        ("/openapi.json", Method::GET) => openapi(),
        ("/facebook/deauthorize", Method::POST) => {
            facebook_callbacks::deauthorize(deps, &request).await
        }
        ("/facebook/data-deletion", Method::POST) => {
            facebook_callbacks::data_deletion(deps, &request).await
        }
        ("/facebook/data-deletion/status", Method::GET) => {
            facebook_callbacks::deletion_status(deps, &request).await
        }
        (p, _) if p.starts_with("/v1/") => api::route(deps, &request, p).await,
        (
            "/healthz"
            | "/webhooks/messenger"
            | "/login/start"
            | "/login/callback"
            | "/openapi.json"
            | "/facebook/deauthorize"
            | "/facebook/data-deletion"
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

fn openapi() -> Response<Body> {
    let mut response = Response::new(Body::Text(OPENAPI_JSON.to_owned()));
    response.headers_mut().insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    response
}
