//! Meta's wire formats for the app's and the Page's setup, read by the operator's preflight checks
//! (`ops doctor`): `debug_token` of a Page token, `GET /{page-id}/subscribed_apps` and
//! `GET /{app-id}/subscriptions`. Pure: the calls are in `adapters::graph_admin`, the verdicts in
//! `domain::preflight`.

use serde::{Deserialize, Serialize};

/// The `page` webhook fields the product needs: opt-ins, replies (stop words) and Messenger's
/// policy enforcement (block / unblock), shared/reference/messenger.md "Webhooks".
pub const REQUIRED_WEBHOOK_FIELDS: [&str; 3] = [
    "messages",
    "messaging_optins",
    "messaging_policy_enforcement",
];

/// The permission the Send API needs on a Page token.
pub const PAGES_MESSAGING: &str = "pages_messaging";

/// `debug_token`'s `data` for any token (a Page token has `type: PAGE` and `profile_id`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenDebug {
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default, rename = "type")]
    pub token_type: Option<String>,
    #[serde(default)]
    pub is_valid: bool,
    /// Unix seconds; `0` (or absent): never.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// The Page of a Page token.
    #[serde(default)]
    pub profile_id: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Why the token is not valid, when it is not.
    #[serde(default)]
    pub error: Option<TokenDebugError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenDebugError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub subcode: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenDebugResponse {
    pub data: TokenDebug,
}

/// One app a Page subscribed (`GET /{page-id}/subscribed_apps`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubscribedApp {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub subscribed_fields: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscribedAppsResponse {
    #[serde(default)]
    pub data: Vec<SubscribedApp>,
}

/// One of the app's webhook subscriptions (`GET /{app-id}/subscriptions`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppSubscription {
    pub object: String,
    #[serde(default)]
    pub callback_url: String,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub fields: Vec<SubscriptionField>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubscriptionField {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AppSubscriptionsResponse {
    #[serde(default)]
    pub data: Vec<AppSubscription>,
}

/// `{"success": true}` (Graph sometimes writes `"true"`).
#[derive(Debug, Clone, Deserialize)]
pub struct SuccessResponse {
    pub success: serde_json::Value,
}

impl SuccessResponse {
    pub fn succeeded(&self) -> bool {
        self.success == serde_json::Value::Bool(true) || self.success == "true"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_shapes_parse() {
        let page: TokenDebugResponse = serde_json::from_str(
            r#"{"data":{"app_id":"1","type":"PAGE","application":"Shop","data_access_expires_at":1,
            "expires_at":0,"is_valid":true,"issued_at":1,"profile_id":"2",
            "scopes":["pages_messaging"],"granular_scopes":[{"scope":"pages_messaging","target_ids":["2"]}],
            "user_id":"3"}}"#,
        )
        .unwrap();
        assert_eq!(page.data.token_type.as_deref(), Some("PAGE"));
        assert_eq!(page.data.profile_id.as_deref(), Some("2"));
        let invalid: TokenDebugResponse = serde_json::from_str(
            r#"{"data":{"app_id":"1","is_valid":false,"error":{"code":190,"message":"m","subcode":460},"scopes":[]}}"#,
        )
        .unwrap();
        assert_eq!(invalid.data.error.unwrap().subcode, Some(460));
        let apps: SubscribedAppsResponse = serde_json::from_str(
            r#"{"data":[{"category":"Business","link":"l","name":"Shop","id":"1","subscribed_fields":["messages"]}]}"#,
        )
        .unwrap();
        assert_eq!(apps.data[0].subscribed_fields, ["messages"]);
        let subs: AppSubscriptionsResponse = serde_json::from_str(
            r#"{"data":[{"object":"page","callback_url":"https://x/w","active":true,"fields":[{"name":"messages","version":"v27.0"}]}]}"#,
        )
        .unwrap();
        assert!(subs.data[0].active);
        for ok in [r#"{"success":true}"#, r#"{"success":"true"}"#] {
            assert!(
                serde_json::from_str::<SuccessResponse>(ok)
                    .unwrap()
                    .succeeded()
            );
        }
        assert!(
            !serde_json::from_str::<SuccessResponse>(r#"{"success":false}"#)
                .unwrap()
                .succeeded()
        );
    }
}
