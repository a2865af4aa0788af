//! Facebook Login's dialog URL: where `/login/start` sends the person. Built here, not by the Graph
//! client: the browser goes there, the product never calls it.

use crate::config::settings::Config;
use crate::facebook::graph_error::GraphError;

/// The login dialog URL: `{FACEBOOK_WEB_BASE_URL}/{version}/dialog/oauth` with `client_id`,
/// `redirect_uri`, `response_type=code`, the scopes, `messenger_page_id`, `auth_type=rerequest`
/// and `state`.
pub fn login_dialog_url(
    config: &Config,
    redirect_uri: &str,
    state: &str,
) -> Result<String, GraphError> {
    let mut url = url::Url::parse(&format!(
        "{}/{}/dialog/oauth",
        config.facebook_web_base_url, config.graph_api_version
    ))
    .map_err(|e| GraphError::BadResponse(format!("bad dialog URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("client_id", &config.fb_app_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", &config.login.scope())
        .append_pair("messenger_page_id", &config.fb_page_id)
        .append_pair("auth_type", "rerequest")
        .append_pair("state", state);
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::config::test_config;

    #[test]
    fn dialog_url_carries_every_parameter() {
        let config = test_config(&[
            ("FACEBOOK_WEB_BASE_URL", "https://www.facebook.com/"),
            ("LOGIN_EXTRA_SCOPES", "email"),
        ]);
        let url = login_dialog_url(&config, "https://api.example/login/callback", "S+/=").unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(parsed.path(), "/v27.0/dialog/oauth");
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "100000000000001");
        assert_eq!(q["redirect_uri"], "https://api.example/login/callback");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "public_profile,user_messenger_contact,email");
        assert_eq!(q["messenger_page_id"], "200000000000002");
        assert_eq!(q["auth_type"], "rerequest");
        assert_eq!(q["state"], "S+/=");
    }
}
