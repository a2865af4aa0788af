//! Doctor's Meta side: the Graph checks (through `shared::adapters::graph_admin`: the Page
//! token's `debug_token`, the Page's `subscribed_apps`, the app's `subscriptions`, the served
//! version), `--fix`'s subscription of the Page, and Meta's webhook handshake against the
//! stack's public URL (not a Graph call: a GET to our own API, as Meta makes it).

use super::Facts;
use super::aws::SecretDocs;
use shared::adapters::graph_admin::GraphAdmin;
use shared::domain::opt_in::Millis;
use shared::domain::preflight::{self, Check, Handshake, Status, Target};
use shared::facebook::page_setup::REQUIRED_WEBHOOK_FIELDS;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Every Meta-side line, in order: Page token, Page subscription, app subscription, handshake,
/// Graph version.
pub async fn checks(
    facts: &Facts,
    target: &Target,
    secrets: &SecretDocs,
    fix: bool,
    fixed: &mut Vec<String>,
    now: Millis,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let (Some(app_secret), Some(page_token)) = (secrets.app_secret(), secrets.page_token()) else {
        checks.push(Check::not_checked(
            "the Page token and the webhook subscriptions (Graph)",
            "they need the secret's app_secret and page_access_token: fill the secret first",
        ));
        checks.push(handshake(target, secrets).await);
        return checks;
    };
    let graph = match GraphAdmin::new(
        &facts.graph_api_base_url,
        &facts.graph_api_version,
        &facts.fb_app_id,
        app_secret,
        TIMEOUT,
    ) {
        Ok(g) => g,
        Err(e) => {
            checks.push(Check::fail(format!("Graph client: {e}"), "see the error"));
            return checks;
        }
    };
    let debug = graph.debug_token(&page_token).await;
    checks.extend(preflight::page_token(
        target,
        debug.as_ref().map(|d| &d.value),
        now,
    ));
    let mut served = debug.ok().and_then(|d| d.version);

    let page_id = &facts.fb_page_id;
    let mut apps = graph.subscribed_apps(page_id, &page_token).await;
    let mut line = preflight::page_subscription(target, apps.as_ref().map(|a| a.value.as_slice()));
    if fix
        && line.status == Status::Fail
        && let Ok(current) = &apps
    {
        // Keep the fields the Page already had for this app, add the product's.
        let mut fields: Vec<&str> = current
            .value
            .iter()
            .filter(|a| a.id == facts.fb_app_id)
            .flat_map(|a| a.subscribed_fields.iter().map(String::as_str))
            .collect();
        for f in REQUIRED_WEBHOOK_FIELDS {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        match graph.subscribe_page(page_id, &page_token, &fields).await {
            Ok(true) => {
                fixed.push(format!(
                    "subscribed Page {page_id} to app {} with {} (POST /{page_id}/subscribed_apps)",
                    facts.fb_app_id,
                    fields.join(",")
                ));
                apps = graph.subscribed_apps(page_id, &page_token).await;
                line =
                    preflight::page_subscription(target, apps.as_ref().map(|a| a.value.as_slice()));
            }
            Ok(false) => fixed.push("POST subscribed_apps answered success: false".to_owned()),
            Err(e) => fixed.push(format!("POST subscribed_apps failed: {e}")),
        }
    }
    checks.push(line);
    served = served.or_else(|| apps.ok().and_then(|a| a.version));

    let subs = graph.app_subscriptions().await;
    checks.extend(preflight::app_subscription(
        target,
        subs.as_ref().map(|s| s.value.as_slice()),
    ));
    served = served.or_else(|| subs.ok().and_then(|s| s.version));

    checks.push(handshake(target, secrets).await);
    checks.push(preflight::graph_version(
        graph.version(),
        served.as_deref(),
        now,
    ));
    checks
}

/// Meta's verification GET at the public webhook URL, with the stored verify token.
async fn handshake(target: &Target, secrets: &SecretDocs) -> Check {
    let Some(verify_token) = secrets.verify_token() else {
        return Check::not_checked(
            format!(
                "the webhook {} answers Meta's handshake",
                target.webhook_url
            ),
            "the secret has no verify_token",
        );
    };
    let challenge = uuid::Uuid::new_v4().simple().to_string();
    let outcome = async {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| e.without_url().to_string())?;
        let mut url = reqwest::Url::parse(&target.webhook_url).map_err(|e| e.to_string())?;
        url.query_pairs_mut()
            .append_pair("hub.mode", "subscribe")
            .append_pair("hub.verify_token", verify_token.expose())
            .append_pair("hub.challenge", &challenge);
        let response = http
            .get(url)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok::<_, String>(Handshake::Answered { status, body })
    }
    .await
    .unwrap_or_else(Handshake::Unreachable);
    preflight::webhook_handshake(target, &challenge, &outcome)
}
