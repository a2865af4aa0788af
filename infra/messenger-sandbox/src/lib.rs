//! A local stand-in for `graph.facebook.com` for Login Connect with Messenger.
//!
//! It answers the Send API the way Graph does (same JSON bodies and error envelopes, see
//! `shared/reference/messenger.md` §3 and §7.6), lets tests and `make run` simulate a person
//! opting in (a signed `optin` webhook posted to the app), and keeps an inbox of every message
//! the app sent.
//!
//! Routes:
//! - `POST /{version}/{page_id}/messages`, `POST /{version}/me/messages` — the Send API.
//! - `GET|POST /{version}/dialog/oauth` — the login dialog ("Allow" / "Not now" / "Cancel").
//! - `GET /{version}/oauth/access_token`, `/debug_token`, `/me`, `/me/permissions` — Facebook
//!   Login's server-side calls; `POST /_sandbox/user_token` mints a user token directly.
//! - `POST /_sandbox/optin` — record an opt-in and deliver its signed webhook.
//! - `GET /` — the start page (links, state, controls); `GET /_sandbox/style.css` — the stylesheet
//!   of every page (`shared/assets/style.css`, shared with the HTTP API's pages).
//! - `GET /_sandbox/inbox` — messages received (JSON, or for browsers a page with the
//!   conversation per person and its state, refreshed every 2 s).
//! - `GET /_sandbox/healthz`, `POST /_sandbox/reset`, `GET|PUT /_sandbox/webhook_url`.
//! - `POST|GET|DELETE /_sandbox/faults`, `GET|PUT /_sandbox/limits`, `GET /_sandbox/stats` — the
//!   Send API's rate limit (rolling one-second window per Page, code 613 beyond it), added latency
//!   and fault injection (see `faults`).
//! - `GET|PUT|DELETE /_sandbox/api_version` — every `/{version}/…` answer carries Graph's
//!   `facebook-api-version` header (the asked version); this switch makes it name another one.
//! - `GET|POST /{version}/{page_id}/subscribed_apps`, `GET /{version}/{app_id}/subscriptions`, and
//!   `debug_token` of the Page token — what an operator's preflight checks read; `GET|PUT|DELETE
//!   /_sandbox/page_token` and `/_sandbox/subscriptions` break one thing each (see `page_setup`).
//! - `POST /_sandbox/hold`, `POST /_sandbox/release`, `GET /_sandbox/hold` — hold a person's Send
//!   API calls (or every call) unanswered until released, to try STOP by hand (see `hold`).
//!
//! Anything else answers 404 with a Graph-style error (a page with a way back for browsers, except
//! on `/{version}/…` paths, where Graph answers JSON to everyone).

// Bottom: no module imports a route module or the state.
mod errors;
mod html;
mod ids;
// The switches and records the state is made of.
mod api_version;
mod faults;
mod hold;
mod listener;
mod rate_limit;
mod setup;
mod state;
// Checks shared by the token-carrying Graph routes.
mod graph_calls;
// Routes and middlewares over the state.
mod controls;
mod dialog;
pub mod events;
mod gate;
mod inbox;
mod index;
mod oauth;
mod page_setup;
mod send_api;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use api_version::API_VERSION_HEADER;
pub use controls::Limits;
pub use faults::{FaultKind, FaultRule, TrafficStats};
pub use oauth::DEFAULT_FIRST_NAME;
pub use setup::PageTokenState;
pub use state::InboxMessage;
pub use webhooks::optin_webhook_body;

use oauth::OAuthState;
use state::AppState;

pub const DEFAULT_APP_ID: &str = "100000000000001";
pub const DEFAULT_APP_SECRET: &str = "sandbox-app-secret";
pub const DEFAULT_PAGE_ID: &str = "200000000000002";
pub const DEFAULT_PAGE_ACCESS_TOKEN: &str = "sandbox-page-access-token";
pub const DEFAULT_CLIENT_TOKEN: &str = "sandbox-client-token";
pub const DEFAULT_VERIFY_TOKEN: &str = "sandbox-verify-token";
/// The names the login dialog shows (a person never sees the numeric ids).
pub const DEFAULT_APP_NAME: &str = "Example Shop";
pub const DEFAULT_PAGE_NAME: &str = "Example Shop";

/// Twenty-four hours, the Login Connect window for the initial message.
pub const DEFAULT_OPTIN_WINDOW_MS: i64 = 86_400_000;

/// The identity of the fake app and Page, and the behaviour knobs of the sandbox.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub app_id: String,
    pub app_secret: String,
    pub page_id: String,
    pub page_access_token: String,
    pub client_token: String,
    /// The app's name in the login dialog.
    pub app_name: String,
    /// The Page's name in the login dialog.
    pub page_name: String,
    /// Where opt-in webhooks are posted. Can also be set after start.
    pub webhook_url: Option<String>,
    /// How long after an opt-in the initial message may be sent.
    pub optin_window_ms: i64,
    /// Send API calls per second and Page (rolling window; 613 beyond it). 0 turns it off.
    pub rate_limit_per_second: u32,
    /// Added to every Send API call.
    pub latency_ms: u64,
    /// Meta's standard messaging window: a message to a PSID (`recipient.id`) without the
    /// `HUMAN_AGENT` tag is refused this long after the person's last message (`10`/`2018278`).
    pub reply_window_ms: i64,
    /// The `HUMAN_AGENT` tag's window (`messaging_type: MESSAGE_TAG`, `tag: HUMAN_AGENT`).
    pub human_agent_window_ms: i64,
}

/// Meta's standard messaging window: 24 hours after the person's last message.
pub const DEFAULT_REPLY_WINDOW_MS: i64 = 86_400_000;
/// The `HUMAN_AGENT` tag's window: 7 days after the person's last message.
pub const DEFAULT_HUMAN_AGENT_WINDOW_MS: i64 = 7 * 86_400_000;

/// Meta's Send API limit for text messages, per Page.
pub const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 300;

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            app_id: DEFAULT_APP_ID.to_owned(),
            app_secret: DEFAULT_APP_SECRET.to_owned(),
            page_id: DEFAULT_PAGE_ID.to_owned(),
            page_access_token: DEFAULT_PAGE_ACCESS_TOKEN.to_owned(),
            client_token: DEFAULT_CLIENT_TOKEN.to_owned(),
            app_name: DEFAULT_APP_NAME.to_owned(),
            page_name: DEFAULT_PAGE_NAME.to_owned(),
            webhook_url: None,
            optin_window_ms: DEFAULT_OPTIN_WINDOW_MS,
            rate_limit_per_second: DEFAULT_RATE_LIMIT_PER_SECOND,
            latency_ms: 0,
            reply_window_ms: DEFAULT_REPLY_WINDOW_MS,
            human_agent_window_ms: DEFAULT_HUMAN_AGENT_WINDOW_MS,
        }
    }
}

impl SandboxConfig {
    /// Build a configuration from environment-like variables (`FB_APP_ID`, `FB_APP_SECRET`,
    /// `FB_PAGE_ID`, `FB_PAGE_ACCESS_TOKEN`, `FB_CLIENT_TOKEN`, `FB_APP_NAME`, `FB_PAGE_NAME`, `WEBHOOK_URL`,
    /// `OPTIN_WINDOW_SECONDS`, `SANDBOX_RATE_LIMIT_PER_SECOND`, `SANDBOX_LATENCY_MS`); unset or
    /// empty values keep the defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let mut config = Self::default();
        if let Some(v) = get("FB_APP_ID") {
            config.app_id = v;
        }
        if let Some(v) = get("FB_APP_SECRET") {
            config.app_secret = v;
        }
        if let Some(v) = get("FB_PAGE_ID") {
            config.page_id = v;
        }
        if let Some(v) = get("FB_PAGE_ACCESS_TOKEN") {
            config.page_access_token = v;
        }
        if let Some(v) = get("FB_CLIENT_TOKEN") {
            config.client_token = v;
        }
        if let Some(v) = get("FB_APP_NAME") {
            config.app_name = v;
        }
        if let Some(v) = get("FB_PAGE_NAME") {
            config.page_name = v;
        }
        config.webhook_url = get("WEBHOOK_URL");
        if let Some(v) = get("OPTIN_WINDOW_SECONDS") {
            let seconds: i64 = v.trim().parse().map_err(|_| {
                format!("OPTIN_WINDOW_SECONDS must be a whole number of seconds, got {v:?}")
            })?;
            config.optin_window_ms = seconds
                .checked_mul(1000)
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| format!("OPTIN_WINDOW_SECONDS out of range: {seconds}"))?;
        }
        if let Some(v) = get("SANDBOX_RATE_LIMIT_PER_SECOND") {
            config.rate_limit_per_second = v.trim().parse().map_err(|_| {
                format!("SANDBOX_RATE_LIMIT_PER_SECOND must be a whole number, got {v:?}")
            })?;
        }
        if let Some(v) = get("SANDBOX_LATENCY_MS") {
            config.latency_ms = v
                .trim()
                .parse()
                .ok()
                .filter(|ms| *ms <= faults::MAX_DELAY_MS)
                .ok_or_else(|| format!("SANDBOX_LATENCY_MS must be 0 to 300000, got {v:?}"))?;
        }
        Ok(config)
    }
}

/// A sandbox serving in the background. Dropping it also stops the server.
pub struct RunningSandbox {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
    pub addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningSandbox {
    /// Set (or, with an empty string, clear) the URL opt-in webhooks are posted to.
    pub fn set_webhook_url(&self, url: &str) {
        let url = url.trim();
        self.state
            .set_webhook_url((!url.is_empty()).then(|| url.to_owned()));
    }

    /// The URL opt-in webhooks are posted to, if any.
    pub fn webhook_url(&self) -> Option<String> {
        self.state.webhook_url()
    }

    /// Every message the app sent, in arrival order.
    pub fn inbox(&self) -> Vec<InboxMessage> {
        self.state.inbox(None)
    }

    /// The configuration the sandbox runs with (including the current webhook URL).
    pub fn config(&self) -> SandboxConfig {
        let mut config = self.state.config.clone();
        config.webhook_url = self.state.webhook_url();
        config
    }

    /// Stop accepting connections, let in-flight requests finish (at most 5 s), and stop.
    pub async fn shutdown(self) {
        let RunningSandbox {
            shutdown, mut task, ..
        } = self;
        let _ = shutdown.send(());
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "messenger sandbox stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "messenger sandbox task failed"),
            Err(_) => task.abort(),
        }
    }
}

/// Start the sandbox on `addr` (port 0 picks a free port) and serve it in the background.
pub async fn start(config: SandboxConfig, addr: SocketAddr) -> std::io::Result<RunningSandbox> {
    let state = Arc::new(AppState::new(config)?);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let app = router(state.clone()).into_make_service_with_connect_info::<listener::Conn>();
    let listener = listener::KillableListener(listener);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // Either an explicit shutdown or the handle being dropped.
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%addr, "messenger sandbox listening");
    Ok(RunningSandbox {
        base_url: format!("http://{addr}"),
        addr,
        state,
        shutdown,
        task,
    })
}

fn router(state: Arc<AppState>) -> Router {
    let oauth = Arc::new(OAuthState::new(state.clone()));
    Router::new()
        .merge(
            send_api::routes().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                gate::send_api_gate,
            )),
        )
        .merge(controls::routes())
        .merge(webhooks::routes())
        .merge(events::routes())
        .merge(inbox::routes())
        .merge(index::routes())
        .merge(oauth::routes(oauth.clone()))
        .merge(dialog::routes(oauth))
        .merge(page_setup::routes())
        .fallback(index::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        // Outermost: the rate limiter's and the faults' answers carry the header too, as Graph's.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::stamp,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn config_from_lookup_keeps_defaults_and_overrides() {
        let env: HashMap<&str, &str> = [
            ("FB_PAGE_ID", "42"),
            ("FB_APP_SECRET", ""),
            ("OPTIN_WINDOW_SECONDS", "60"),
            ("WEBHOOK_URL", "http://127.0.0.1:1/webhook"),
        ]
        .into_iter()
        .collect();
        let config = SandboxConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.page_id, "42");
        assert_eq!(config.app_secret, DEFAULT_APP_SECRET);
        assert_eq!(config.app_id, DEFAULT_APP_ID);
        assert_eq!(config.optin_window_ms, 60_000);
        assert_eq!(
            config.webhook_url.as_deref(),
            Some("http://127.0.0.1:1/webhook")
        );

        let bad =
            SandboxConfig::from_lookup(|k| (k == "OPTIN_WINDOW_SECONDS").then(|| "1h".to_string()));
        assert!(bad.is_err());
        let defaults = SandboxConfig::from_lookup(|_| None).unwrap();
        assert_eq!(defaults.optin_window_ms, 86_400_000);
        assert_eq!(defaults.webhook_url, None);
    }
}
