//! The Graph API client: the only code that knows Graph URLs.
//!
//! One `reqwest::Client` is built at init (connection pool, TLS config, timeouts) and reused.
//! Every call carries `appsecret_proof`. Tokens travel in the query string, as Meta documents, so
//! every error is stripped of its URL before it can reach a log line.

use crate::config::{Config, MessagingType, SecretString, Secrets};
use crate::facebook::{GraphError, GraphErrorEnvelope, appsecret_proof};
use crate::ports::{Messenger, SentMessage};
use async_trait::async_trait;
use serde::Deserialize;
use std::time::Duration;

pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    version: String,
    app_secret: SecretString,
    page_access_token: SecretString,
    messaging_type: MessagingType,
}

#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client for Graph: {0}")]
pub struct GraphInitError(String);

#[derive(Deserialize)]
struct SendResponse {
    message_id: String,
}

impl GraphClient {
    pub fn new(config: &Config, secrets: &Secrets) -> Result<Self, GraphInitError> {
        let http = reqwest::Client::builder()
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
            app_secret: secrets.app_secret.clone(),
            page_access_token: secrets.page_access_token.clone(),
            messaging_type: config.messaging_type,
        })
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

fn transport_error(e: reqwest::Error) -> GraphError {
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
async fn error_from(response: reqwest::Response) -> GraphError {
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

#[async_trait]
impl Messenger for GraphClient {
    async fn send_initial_message(
        &self,
        page_id: &str,
        login_id: &str,
        text: &str,
    ) -> Result<SentMessage, GraphError> {
        let url = self.url(
            &format!("{page_id}/messages"),
            self.page_access_token.expose(),
        )?;
        // Never a tag: the initial Login Connect message must be UPDATE or RESPONSE.
        let body = serde_json::json!({
            "recipient": { "login_id": login_id },
            "messaging_type": self.messaging_type.as_str(),
            "message": { "text": text },
        });
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
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
