//! The Graph calls about the app's and the Page's setup: `debug_token` of the Page token, the
//! Page's `subscribed_apps` (read, and subscribe with `--fix`) and the app's webhook
//! `subscriptions`. Made by the operator's preflight checks (`ops doctor`) and, once a day, by the
//! sender's drift check ([`PageSetupReader`], the [`MetaSetup`] port: the sender holds the Page
//! token and the app secret the calls need; issue 13 §2).
//!
//! Like [`super::graph::GraphClient`], every call carries `appsecret_proof` and errors lose their
//! URL (tokens travel in the query). Each answer comes with the version Graph says served it
//! (`facebook-api-version`), for the version check.

use crate::adapters::graph::{API_VERSION_HEADER, GraphInitError, error_from, transport_error};
use crate::config::secrets::SecretString;
use crate::domain::drift::SetupAnswers;
use crate::facebook::crypto::appsecret_proof;
use crate::facebook::graph_error::GraphError;
use crate::facebook::page_setup::{
    AppSubscription, AppSubscriptionsResponse, SubscribedApp, SubscribedAppsResponse,
    SuccessResponse, TokenDebug, TokenDebugResponse,
};
use crate::ports::drift::MetaSetup;
use async_trait::async_trait;
use std::time::Duration;

/// An answer and the version Graph says served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served<T> {
    pub value: T,
    pub version: Option<String>,
}

impl<T> Served<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Served<U> {
        Served {
            value: f(self.value),
            version: self.version,
        }
    }
}

pub struct GraphAdmin {
    http: reqwest::Client,
    base_url: String,
    version: String,
    app_id: String,
    app_secret: SecretString,
}

impl GraphAdmin {
    pub fn new(
        base_url: &str,
        version: &str,
        app_id: &str,
        app_secret: SecretString,
        timeout: Duration,
    ) -> Result<Self, GraphInitError> {
        let tls = crate::adapters::tls::web_tls().map_err(|e| GraphInitError(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .user_agent(concat!("login-connect-ops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphInitError(e.without_url().to_string()))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            version: version.to_owned(),
            app_id: app_id.to_owned(),
            app_secret,
        })
    }

    /// The version asked for in every path.
    pub fn version(&self) -> &str {
        &self.version
    }

    fn app_token(&self) -> String {
        format!("{}|{}", self.app_id, self.app_secret.expose())
    }

    fn url(
        &self,
        path: &str,
        token: &str,
        extra: &[(&str, &str)],
    ) -> Result<reqwest::Url, GraphError> {
        let mut url = reqwest::Url::parse(&format!("{}/{}/{path}", self.base_url, self.version))
            .map_err(|e| GraphError::BadResponse(format!("bad Graph URL: {e}")))?;
        url.query_pairs_mut()
            .extend_pairs(extra.iter().copied())
            .append_pair("access_token", token)
            .append_pair(
                "appsecret_proof",
                &appsecret_proof(self.app_secret.expose(), token),
            );
        Ok(url)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Served<T>, GraphError> {
        let response = request.send().await.map_err(transport_error)?;
        let version = response
            .headers()
            .get(API_VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().chars().take(16).collect());
        if !response.status().is_success() {
            return Err(error_from(response).await);
        }
        let bytes = response.bytes().await.map_err(transport_error)?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|_| GraphError::BadResponse(format!("unexpected {what} answer")))?;
        Ok(Served { value, version })
    }

    /// `debug_token` of `token`, asked with the app token.
    pub async fn debug_token(
        &self,
        token: &SecretString,
    ) -> Result<Served<TokenDebug>, GraphError> {
        let url = self.url(
            "debug_token",
            &self.app_token(),
            &[("input_token", token.expose())],
        )?;
        let answer: Served<TokenDebugResponse> =
            self.call(self.http.get(url), "debug_token").await?;
        Ok(answer.map(|a| a.data))
    }

    /// The apps `page_id` subscribed, with their fields (Page token).
    pub async fn subscribed_apps(
        &self,
        page_id: &str,
        page_token: &SecretString,
    ) -> Result<Served<Vec<SubscribedApp>>, GraphError> {
        let url = self.url(
            &format!("{page_id}/subscribed_apps"),
            page_token.expose(),
            &[],
        )?;
        let answer: Served<SubscribedAppsResponse> =
            self.call(self.http.get(url), "subscribed_apps").await?;
        Ok(answer.map(|a| a.data))
    }

    /// Subscribe the app to `page_id`'s webhooks with exactly `fields` (Page token).
    pub async fn subscribe_page(
        &self,
        page_id: &str,
        page_token: &SecretString,
        fields: &[&str],
    ) -> Result<bool, GraphError> {
        let joined = fields.join(",");
        let url = self.url(
            &format!("{page_id}/subscribed_apps"),
            page_token.expose(),
            &[("subscribed_fields", joined.as_str())],
        )?;
        let answer: Served<SuccessResponse> =
            self.call(self.http.post(url), "subscribed_apps").await?;
        Ok(answer.value.succeeded())
    }

    /// The app's webhook subscriptions (app token).
    pub async fn app_subscriptions(&self) -> Result<Served<Vec<AppSubscription>>, GraphError> {
        let url = self.url(
            &format!("{}/subscriptions", self.app_id),
            &self.app_token(),
            &[],
        )?;
        let answer: Served<AppSubscriptionsResponse> =
            self.call(self.http.get(url), "subscriptions").await?;
        Ok(answer.map(|a| a.data))
    }
}

impl GraphAdmin {
    /// The three reads the Graph checks judge, and the version Graph says served them.
    pub async fn setup_answers(&self, page_id: &str, page_token: &SecretString) -> SetupAnswers {
        let token = self.debug_token(page_token).await;
        let page_apps = self.subscribed_apps(page_id, page_token).await;
        let app_subscriptions = self.app_subscriptions().await;
        let served_version = [
            token.as_ref().ok().and_then(|a| a.version.clone()),
            page_apps.as_ref().ok().and_then(|a| a.version.clone()),
            app_subscriptions
                .as_ref()
                .ok()
                .and_then(|a| a.version.clone()),
        ]
        .into_iter()
        .flatten()
        .next();
        SetupAnswers {
            token: token.map(|a| a.value),
            page_apps: page_apps.map(|a| a.value),
            app_subscriptions: app_subscriptions.map(|a| a.value),
            served_version,
        }
    }
}

/// The sender's [`MetaSetup`]: a [`GraphAdmin`] with the Page token.
pub struct PageSetupReader {
    admin: GraphAdmin,
    page_token: SecretString,
}

impl PageSetupReader {
    pub fn new(admin: GraphAdmin, page_token: SecretString) -> Self {
        Self { admin, page_token }
    }
}

#[async_trait]
impl MetaSetup for PageSetupReader {
    async fn read_setup(&self, page_id: &str) -> Option<SetupAnswers> {
        Some(self.admin.setup_answers(page_id, &self.page_token).await)
    }
}
