//! Configuration and secrets for tests: a complete configuration with overrides.

use crate::config::env;
use crate::config::secrets::Secrets;
use crate::config::settings::Config;

/// A complete configuration for tests, with `overrides` applied (name → value).
pub fn test_config(overrides: &[(&str, &str)]) -> Config {
    let base: &[(&str, &str)] = &[
        (env::TABLE_NAME, "optins"),
        (env::SEND_QUEUE_URL, "http://127.0.0.1/queue/send"),
        (env::SCHEDULE_GROUP, "deadlines"),
        (
            env::SCHEDULER_ROLE_ARN,
            "arn:aws:iam::123456789012:role/scheduler",
        ),
        (
            env::DEADLINE_FUNCTION_ARN,
            "arn:aws:lambda:us-east-1:123456789012:function:deadline-alerts",
        ),
        (
            env::ALERT_TOPIC_ARN,
            "arn:aws:sns:us-east-1:123456789012:alerts",
        ),
        (env::SECRET_ID, "secret"),
        (env::FB_APP_ID, "100000000000001"),
        (env::FB_PAGE_ID, "200000000000002"),
    ];
    let lookup = |name: &str| {
        overrides
            .iter()
            .chain(base.iter())
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    match Config::from_lookup(lookup) {
        Ok(config) => config,
        Err(e) => panic!("test configuration is invalid: {e}"),
    }
}

/// Secrets for tests.
pub fn test_secrets() -> Secrets {
    match Secrets::from_json(
        r#"{"app_secret":"test-app-secret","page_access_token":"test-page-token","client_token":"test-client-token","verify_token":"test-verify-token"}"#,
    ) {
        Ok(s) => s,
        Err(e) => panic!("test secrets are invalid: {e}"),
    }
}
