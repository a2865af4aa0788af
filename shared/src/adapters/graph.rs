//! The Graph API client: with `graph_admin` (the operator's setup calls), the only code that calls
//! Graph (the login dialog, a browser URL, is built in [`crate::facebook::dialog`]).
//!
//! One `reqwest::Client` is built at init (connection pool, TLS config, timeouts) and reused.
//! Every call carries `appsecret_proof`. Tokens travel in the query string, as Meta documents, so
//! every error is stripped of its URL before it can reach a log line.
//!
//! Graph names the version that served each call in the `facebook-api-version` header. When it is
//! not the one asked for (Graph serves an expired version's calls with the oldest live one), the
//! client counts `GraphApiVersionMismatch` so an alarm fires before the asked version's behaviour
//! silently changes (docs/alerts.md).

use crate::adapters::emf::EmfStdout;
use crate::config::secrets::{SecretString, Secrets};
use crate::config::settings::{Config, MessagingType};
use crate::domain::follow_up::{Delivery, FollowUpMessage};
use crate::domain::login::{PermissionRow, Profile, TokenInfo, UserToken};
use crate::facebook::crypto::appsecret_proof;
use crate::facebook::graph_error::{GraphError, GraphErrorEnvelope};
use crate::ports::logins::FacebookLogin;
use crate::ports::messenger::{Messenger, SentMessage};
use crate::ports::metrics::Metrics;
use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::warn;

/// The response header in which Graph names the version that served the call.
pub const API_VERSION_HEADER: &str = "facebook-api-version";

pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    version: String,
    app_secret: SecretString,
    page_access_token: SecretString,
    messaging_type: MessagingType,
    app_id: String,
    /// The Page the metrics are about (one deployment serves one Page).
    page_id: String,
    metrics: Arc<dyn Metrics>,
    /// A version mismatch is logged once per client (it is counted every time).
    mismatch_logged: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client for Graph: {0}")]
pub struct GraphInitError(pub(crate) String);

#[derive(Deserialize)]
struct SendResponse {
    message_id: String,
}

impl GraphClient {
    pub fn new(config: &Config, secrets: &Secrets) -> Result<Self, GraphInitError> {
        Self::with_tokens(
            config,
            secrets.app_secret.clone(),
            secrets.page_access_token.clone(),
        )
    }

    /// The Facebook Login client of the http-api: it holds no Page token (it never sends).
    pub fn for_login(config: &Config, app_secret: SecretString) -> Result<Self, GraphInitError> {
        Self::with_tokens(config, app_secret, SecretString::default())
    }

    /// The sender's client: the Page token and the app secret only.
    pub fn for_page(
        config: &Config,
        secrets: &crate::config::secrets::SenderSecrets,
    ) -> Result<Self, GraphInitError> {
        Self::with_tokens(
            config,
            secrets.app_secret.clone(),
            secrets.page_access_token.clone(),
        )
    }

    fn with_tokens(
        config: &Config,
        app_secret: SecretString,
        page_access_token: SecretString,
    ) -> Result<Self, GraphInitError> {
        let tls = crate::adapters::tls::web_tls().map_err(|e| GraphInitError(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_millis(config.graph_timeout_ms.min(3_000)))
            .timeout(Duration::from_millis(config.graph_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(concat!(
                "login-connect-messenger/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| GraphInitError(e.without_url().to_string()))?;
        Ok(Self {
            http,
            base_url: config.graph_api_base_url.clone(),
            version: config.graph_api_version.clone(),
            app_secret,
            page_access_token,
            messaging_type: config.messaging_type,
            app_id: config.fb_app_id.clone(),
            page_id: config.fb_page_id.clone(),
            metrics: Arc::new(EmfStdout),
            mismatch_logged: AtomicBool::new(false),
        })
    }

    /// Record metrics elsewhere than EMF on stdout (tests).
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Compare the version Graph says served the call with the one asked for.
    fn check_version(&self, response: &reqwest::Response) {
        let Some(served) = response
            .headers()
            .get(API_VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        let served = served.trim();
        if served.is_empty() || served == self.version {
            return;
        }
        crate::ports::metrics::record_graph_version_mismatch(self.metrics.as_ref(), &self.page_id);
        if !self.mismatch_logged.swap(true, Ordering::Relaxed) {
            // Header values are Graph's, not a person's: safe to log (bounded).
            let served: String = served.chars().take(16).collect();
            warn!(
                asked = %self.version,
                served = %served,
                "Graph served another API version than the one asked for: update GRAPH_API_VERSION"
            );
        }
    }

    fn url(&self, path: &str, access_token: &str) -> Result<reqwest::Url, GraphError> {
        let mut url = reqwest::Url::parse(&format!("{}/{}/{}", self.base_url, self.version, path))
            .map_err(|e| GraphError::BadResponse(format!("bad Graph URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("access_token", access_token)
            .append_pair(
                "appsecret_proof",
                &appsecret_proof(self.app_secret.expose(), access_token),
            );
        Ok(url)
    }
}

pub(crate) fn transport_error(e: reqwest::Error) -> GraphError {
    let e = e.without_url();
    if e.is_timeout() {
        GraphError::Timeout
    } else if e.is_connect() || e.is_request() || e.is_body() {
        // Refused, reset, or closed before (or while) the answer came: a connection error.
        GraphError::Connection
    } else {
        GraphError::BadResponse(e.to_string())
    }
}

/// Turn a non-2xx answer into a [`GraphError`], keeping Graph's own code/subcode when present.
pub(crate) async fn error_from(response: reqwest::Response) -> GraphError {
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(bytes) => match serde_json::from_slice::<GraphErrorEnvelope>(&bytes) {
            Ok(envelope) => GraphError::Api {
                status,
                body: envelope.error,
            },
            Err(_) => GraphError::Http { status },
        },
        Err(e) => transport_error(e),
    }
}

impl GraphClient {
    /// `POST /{page_id}/messages` with `body`: the message id, or Graph's error.
    async fn post_message(
        &self,
        page_id: &str,
        body: &serde_json::Value,
    ) -> Result<SentMessage, GraphError> {
        let url = self.url(
            &format!("{page_id}/messages"),
            self.page_access_token.expose(),
        )?;
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(transport_error)?;
        self.check_version(&response);
        if !response.status().is_success() {
            return Err(error_from(response).await);
        }
        let bytes = response.bytes().await.map_err(transport_error)?;
        let sent: SendResponse = serde_json::from_slice(&bytes)
            .map_err(|_| GraphError::BadResponse("the send answer has no message_id".into()))?;
        Ok(SentMessage {
            message_id: sent.message_id,
        })
    }
}

#[async_trait]
impl Messenger for GraphClient {
    async fn send_initial_message(
        &self,
        page_id: &str,
        login_id: &str,
        text: &str,
    ) -> Result<SentMessage, GraphError> {
        // Never a tag: the initial Login Connect message must be UPDATE or RESPONSE.
        let body = serde_json::json!({
            "recipient": { "login_id": login_id },
            "messaging_type": self.messaging_type.as_str(),
            "message": { "text": text },
        });
        self.post_message(page_id, &body).await
    }

    async fn send_follow_up(
        &self,
        page_id: &str,
        psid: &str,
        message: &FollowUpMessage,
        delivery: Delivery,
    ) -> Result<SentMessage, GraphError> {
        let mut body = serde_json::json!({
            "recipient": { "id": psid },
            "messaging_type": delivery.messaging_type(),
            "message": message.to_graph(),
        });
        // A tag only when the guard chose HUMAN_AGENT (HUMAN_AGENT_TAG=true, past 24 hours).
        if let Some(tag) = delivery.tag() {
            body["tag"] = serde_json::Value::from(tag);
        }
        self.post_message(page_id, &body).await
    }
}

// ---------------------------------------------------------------------------------------------
// Facebook Login: the dialog URL and the server-side calls (§2 of the reference notes)
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct AccessTokenResponse {
    access_token: String,
}

#[derive(Deserialize)]
struct DebugTokenResponse {
    data: TokenInfo,
}

#[derive(Deserialize)]
struct PermissionsResponse {
    #[serde(default)]
    data: Vec<PermissionRow>,
}

impl GraphClient {
    /// A Graph URL without a token (the code exchange authenticates with the client secret).
    fn bare_url(&self, path: &str) -> Result<reqwest::Url, GraphError> {
        reqwest::Url::parse(&format!("{}/{}/{}", self.base_url, self.version, path))
            .map_err(|e| GraphError::BadResponse(format!("bad Graph URL: {e}")))
    }

    /// GET `url` and decode a 2xx JSON answer; anything else is a [`GraphError`].
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: reqwest::Url,
        what: &str,
    ) -> Result<T, GraphError> {
        let response = self.http.get(url).send().await.map_err(transport_error)?;
        self.check_version(&response);
        if !response.status().is_success() {
            return Err(error_from(response).await);
        }
        let bytes = response.bytes().await.map_err(transport_error)?;
        serde_json::from_slice(&bytes)
            .map_err(|_| GraphError::BadResponse(format!("unexpected {what} answer")))
    }
}

#[async_trait]
impl FacebookLogin for GraphClient {
    async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<UserToken, GraphError> {
        let mut url = self.bare_url("oauth/access_token")?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.app_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("client_secret", self.app_secret.expose())
            .append_pair("code", code);
        let answer: AccessTokenResponse = self.get_json(url, "access_token").await?;
        Ok(UserToken::new(answer.access_token))
    }

    async fn debug_token(&self, token: &UserToken) -> Result<TokenInfo, GraphError> {
        // Checked with the app access token, so a token of another app is seen as such.
        let app_token = format!("{}|{}", self.app_id, self.app_secret.expose());
        let mut url = self.url("debug_token", &app_token)?;
        url.query_pairs_mut()
            .append_pair("input_token", token.expose());
        let answer: DebugTokenResponse = self.get_json(url, "debug_token").await?;
        Ok(answer.data)
    }

    async fn me(&self, token: &UserToken) -> Result<Profile, GraphError> {
        let mut url = self.url("me", token.expose())?;
        url.query_pairs_mut().append_pair("fields", "id,first_name");
        self.get_json(url, "/me").await
    }

    async fn permissions(&self, token: &UserToken) -> Result<Vec<PermissionRow>, GraphError> {
        let url = self.url("me/permissions", token.expose())?;
        let answer: PermissionsResponse = self.get_json(url, "/me/permissions").await?;
        Ok(answer.data)
    }
}
