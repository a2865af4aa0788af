//! `make run`: moto (unless AWS_ENDPOINT_URL points at a running emulator), the Messenger sandbox
//! (unless GRAPH_API_BASE_URL points at one), and the local stack, all on 127.0.0.1.

use local_runner::{LocalSecrets, LocalSettings, LocalStack, moto::MotoServer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_or(name: &str, default: &str) -> String {
    env(name).unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    lambda_runtime::tracing::init_default_subscriber();
    use messenger_sandbox as sb;

    // AWS: an emulator already running, or our own moto.
    let (_moto, sdk) = match env("AWS_ENDPOINT_URL") {
        Some(endpoint) => (None, local_runner::moto::sdk_config_for(&endpoint).await),
        None => {
            let moto = MotoServer::start()?;
            let sdk = moto.sdk_config().await;
            (Some(moto), sdk)
        }
    };
    let aws_endpoint = sdk.endpoint_url().unwrap_or("").to_owned();

    let secrets = LocalSecrets {
        app_secret: env_or("FB_APP_SECRET", sb::DEFAULT_APP_SECRET),
        page_access_token: env_or("FB_PAGE_ACCESS_TOKEN", sb::DEFAULT_PAGE_ACCESS_TOKEN),
        client_token: env_or("FB_CLIENT_TOKEN", sb::DEFAULT_CLIENT_TOKEN),
        verify_token: env_or("WEBHOOK_VERIFY_TOKEN", sb::DEFAULT_VERIFY_TOKEN),
        api_keys: env("API_KEYS")
            .map(|k| {
                k.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let app_id = env_or("FB_APP_ID", sb::DEFAULT_APP_ID);
    let page_id = env_or("FB_PAGE_ID", sb::DEFAULT_PAGE_ID);
    let window_seconds: i64 = env_or("OPTIN_WINDOW_SECONDS", "86400").parse()?;

    // Facebook: a sandbox already running, or our own.
    let sandbox = match env("GRAPH_API_BASE_URL") {
        Some(_) => None,
        None => {
            let addr: SocketAddr = env_or("SANDBOX_ADDR", "127.0.0.1:4000").parse()?;
            let config = sb::SandboxConfig {
                app_id: app_id.clone(),
                app_secret: secrets.app_secret.clone(),
                page_id: page_id.clone(),
                page_access_token: secrets.page_access_token.clone(),
                client_token: secrets.client_token.clone(),
                webhook_url: None,
                optin_window_ms: window_seconds * 1000,
                // SANDBOX_RATE_LIMIT_PER_SECOND, SANDBOX_LATENCY_MS.
                ..sb::SandboxConfig::from_lookup(|k| std::env::var(k).ok())?
            };
            Some(sb::start(config, addr).await?)
        }
    };
    let graph_url = match &sandbox {
        Some(s) => s.base_url.clone(),
        None => env_or("GRAPH_API_BASE_URL", ""),
    };

    let http_addr: SocketAddr = env_or("LOCAL_HTTP_ADDR", "127.0.0.1:3000").parse()?;
    let mut settings = LocalSettings::new(
        PathBuf::from(env_or("TEMPLATE_PATH", "template.yaml")),
        env_or("STACK_NAME", "local"),
        http_addr,
    );
    settings.secrets = secrets;
    if let Some(seconds) = env("SWEEP_EVERY_SECONDS") {
        settings.sweep_every = Some(Duration::from_secs(seconds.parse()?));
    }
    settings = settings
        .with("FB_APP_ID", app_id)
        .with("FB_PAGE_ID", page_id)
        .with("GRAPH_API_BASE_URL", graph_url.clone())
        .with(
            "FACEBOOK_WEB_BASE_URL",
            env_or("FACEBOOK_WEB_BASE_URL", &graph_url),
        );
    for name in [
        "GRAPH_API_VERSION",
        "INITIAL_MESSAGE_TEXT",
        "MESSAGING_TYPE",
        "ALERT_LEAD_MINUTES",
        "OPTIN_WINDOW_SECONDS",
        "PUBLIC_BASE_URL",
        "GRAPH_TIMEOUT_MS",
        "SEND_LEASE_SECONDS",
        "SEND_RATE_PER_SECOND",
        "SENDER_MAX_IN_FLIGHT",
        "RETRY_BASE_SECONDS",
        "RETRY_MAX_SECONDS",
        "PAUSE_PROBE_SECONDS",
    ] {
        if let Some(value) = env(name) {
            settings = settings.with(name, value);
        }
    }
    let stack = LocalStack::start(settings, &sdk).await?;
    let webhook_url = format!("{}/webhooks/messenger", stack.api_base_url);
    if let Some(s) = &sandbox {
        s.set_webhook_url(&webhook_url);
    }

    println!();
    println!("  HTTP API (API Gateway)  {}", stack.api_base_url);
    println!("  Messenger webhook       {webhook_url}");
    println!("  AWS emulator (moto)     {aws_endpoint}");
    if let Some(s) = &sandbox {
        println!("  Messenger sandbox       {}", s.base_url);
        println!(
            "  Sandbox inbox           {}/_sandbox/inbox?format=html",
            s.base_url
        );
        println!();
        println!(
            "  Simulate an opt-in:     curl -s -X POST {}/_sandbox/optin",
            s.base_url
        );
        println!(
            "  See the message:        curl -s {}/_sandbox/inbox",
            s.base_url
        );
    }
    println!();
    println!("  Ctrl-C stops everything.");

    tokio::signal::ctrl_c().await?;
    stack.shutdown().await;
    if let Some(s) = sandbox {
        s.shutdown().await;
    }
    Ok(())
}
