//! The HTTP Lambda: the Messenger webhook (and, later, the login flow and the website-backend API).
//!
//! `handle` never fails and never panics: every error becomes a JSON `{"error":{"code","message"}}`
//! answer with the right status, and the detail goes to the logs.

mod conversation;
mod webhook;

use lambda_http::{Body, Request, Response, http::Method, http::StatusCode};
use shared::config::{Config, Secrets};
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
}

impl Deps {
    /// The production wiring: AWS adapters over one SDK config. Shared by the Lambda main and the
    /// local runner, so both run the same code.
    pub fn from_aws(config: Config, secrets: Secrets, sdk: &shared::bootstrap::SdkConfig) -> Self {
        let ports = shared::bootstrap::AwsPorts::new(&config, sdk);
        Self {
            config,
            secrets,
            conversations: ports.store.clone(),
            store: ports.store,
            queue: ports.queue,
            scheduler: ports.scheduler,
            alerts: ports.alerts,
            clock: Arc::new(SystemClock),
        }
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
        ("/healthz" | "/webhooks/messenger", _) => error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not accept that method",
        ),
        _ => error_response(StatusCode::NOT_FOUND, "not_found", "no such route"),
    }
}
