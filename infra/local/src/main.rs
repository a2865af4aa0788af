//! `make run`: moto (unless AWS_ENDPOINT_URL points at a running emulator), the Messenger sandbox
//! (unless GRAPH_API_BASE_URL points at one), and the local stack, all on 127.0.0.1.
//! Errors are printed as sentences that name the setting to change, never as Rust debug output.

use local_runner::{LocalSecrets, LocalSettings, LocalStack, moto::MotoServer};
use shared::config::env;
use shared::ports::clock::Clock;
use shared::ports::logins::LoginStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The asid of the demo person `make run` records, so the banner's first API call finds someone.
const DEMO_ASID: &str = "1234567890";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_or(name: &str, default: &str) -> String {
    env(name).unwrap_or_else(|| default.to_owned())
}

/// An address setting: `name` or `default`; a malformed value names the variable.
fn addr_var(name: &str, default: &str) -> Result<SocketAddr, String> {
    let value = env_or(name, default);
    value
        .parse()
        .map_err(|_| format!("{name}={value} is not an address like {default}"))
}

/// A numeric setting; a malformed value names the variable.
fn number_var<T: std::str::FromStr>(name: &str, default: &str) -> Result<T, String> {
    let value = env_or(name, default);
    value
        .parse()
        .map_err(|_| format!("{name}={value} is not a whole number"))
}

#[tokio::main]
async fn main() {
    // `main` returning an error would print its Debug form; a sentence is what a person needs.
    if let Err(e) = run().await {
        eprintln!("make run: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    shared::bootstrap::init_logging();
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
            .unwrap_or_else(|| vec![local_runner::DEFAULT_LOCAL_API_KEY.to_owned()]),
        // The key that signs events (Standard Webhooks, whsec_…), as the Facebook secrets are taken.
        events_signing_secret: env_or(
            "EVENTS_SIGNING_SECRET",
            local_runner::DEFAULT_LOCAL_EVENTS_SIGNING_SECRET,
        ),
    };
    let app_id = env_or(env::FB_APP_ID, sb::DEFAULT_APP_ID);
    let page_id = env_or(env::FB_PAGE_ID, sb::DEFAULT_PAGE_ID);
    let window_seconds: i64 = number_var(env::OPTIN_WINDOW_SECONDS, "86400")?;

    // Facebook: a sandbox already running, or our own.
    let sandbox = match env(env::GRAPH_API_BASE_URL) {
        Some(_) => None,
        None => {
            let addr = addr_var("SANDBOX_ADDR", "127.0.0.1:4000")?;
            let config = sb::SandboxConfig {
                app_id: app_id.clone(),
                app_secret: secrets.app_secret.clone(),
                page_id: page_id.clone(),
                // SANDBOX_PAGE_ACCESS_TOKEN: a token other than the stack's makes every send fail
                // (Graph error 190), to watch alerts and expiries (docs/alerts.md).
                page_access_token: env_or("SANDBOX_PAGE_ACCESS_TOKEN", &secrets.page_access_token),
                client_token: secrets.client_token.clone(),
                webhook_url: None,
                optin_window_ms: window_seconds * 1000,
                // SANDBOX_RATE_LIMIT_PER_SECOND, SANDBOX_LATENCY_MS.
                ..sb::SandboxConfig::from_lookup(|k| std::env::var(k).ok())?
            };
            match sb::start(config, addr).await {
                Ok(s) => Some(s),
                Err(e) => {
                    let hint = local_runner::listen_hint("SANDBOX_ADDR", &addr, &e);
                    return Err(format!("the Messenger sandbox {hint}").into());
                }
            }
        }
    };
    let graph_url = match &sandbox {
        Some(s) => s.base_url.clone(),
        None => env_or(env::GRAPH_API_BASE_URL, ""),
    };

    let http_addr = addr_var("LOCAL_HTTP_ADDR", "127.0.0.1:3000")?;
    let mut settings = LocalSettings::new(
        PathBuf::from(env_or("TEMPLATE_PATH", "template.yaml")),
        env_or("STACK_NAME", "local"),
        http_addr,
    );
    settings.site_addr = addr_var("LOCAL_SITE_ADDR", "127.0.0.1:8080")?;
    let api_key = secrets.api_keys.first().cloned().unwrap_or_default();
    let key_is_default = api_key == local_runner::DEFAULT_LOCAL_API_KEY;
    settings.secrets = secrets;
    // EVENTS_URL: where events go; by default the example site's receiver (/backend/events).
    if let Some(url) = env(env::EVENTS_URL) {
        settings = settings.with(env::EVENTS_URL, url);
    }
    if let Some(seconds) = env("SWEEP_EVERY_SECONDS") {
        let seconds = seconds
            .parse()
            .map_err(|_| format!("SWEEP_EVERY_SECONDS={seconds} is not a whole number"))?;
        settings.sweep_every = Some(Duration::from_secs(seconds));
    }
    settings = settings
        .with(env::FB_APP_ID, app_id)
        .with(env::FB_PAGE_ID, page_id)
        .with(env::GRAPH_API_BASE_URL, graph_url.clone())
        .with(
            env::FACEBOOK_WEB_BASE_URL,
            env_or(env::FACEBOOK_WEB_BASE_URL, &graph_url),
        )
        // Locally the initial message greets the person by the name given in the sandbox dialog.
        .with(
            env::INITIAL_MESSAGE_TEXT,
            env_or(
                env::INITIAL_MESSAGE_TEXT,
                "Hi {first_name}! Thanks for connecting with us on Messenger. Reply here any time if you have a question.",
            ),
        );
    for name in [
        env::GRAPH_API_VERSION,
        env::MESSAGING_TYPE,
        env::ALERT_LEAD_MINUTES,
        env::ALERT_LEAD_SECONDS,
        env::ORPHAN_LOGIN_ALERT_AFTER_MINUTES,
        env::OPTIN_WINDOW_SECONDS,
        env::PUBLIC_BASE_URL,
        env::ALLOWED_RETURN_ORIGINS,
        env::LOGIN_EXTRA_SCOPES,
        env::DERIVE_LOGIN_ID,
        env::START_AT_LOGIN,
        env::FIRST_NAME_FALLBACK,
        env::GRAPH_TIMEOUT_MS,
        env::SEND_LEASE_SECONDS,
        env::SEND_RATE_PER_SECOND,
        env::SENDER_MAX_IN_FLIGHT,
        env::RETRY_BASE_SECONDS,
        env::RETRY_MAX_SECONDS,
        env::PAUSE_PROBE_SECONDS,
        env::FACEBOOK_PATH_SEGMENT,
        env::SECRET_TTL_SECONDS,
        env::HUMAN_AGENT_TAG,
    ] {
        if let Some(value) = env(name) {
            settings = settings.with(name, value);
        }
    }
    let stack = LocalStack::start(settings, &sdk).await?;
    let webhook_url = format!("{}/webhooks/messenger", stack.facebook_base_url());
    // One list for the banner and the sandbox's start page.
    let links = [
        ("Example website", format!("{}/", stack.site_base_url)),
        (
            "Example site backend",
            format!("{}/backend", stack.site_base_url),
        ),
        (
            "Compliance report page",
            format!("{}/report.html", stack.site_base_url),
        ),
        (
            "Login start",
            format!(
                "{}/login/start?return_to={}/",
                stack.api_base_url, stack.site_base_url
            ),
        ),
        ("HTTP API (API Gateway)", format!("{}/", stack.api_base_url)),
        (
            "OpenAPI document",
            format!("{}/openapi.json", stack.api_base_url),
        ),
        ("Messenger webhook", webhook_url.clone()),
    ];
    if let Some(s) = &sandbox {
        s.set_webhook_url(&webhook_url);
        let named: Vec<(&str, &str)> = links.iter().map(|(l, u)| (*l, u.as_str())).collect();
        s.set_links(&named);
    }

    // One demo person, so the banner's first API call answers 200 with a person (declined: no
    // opt-in is expected, so no alert follows; log in on the example website for a real one).
    let demo = shared::domain::login::Login {
        page_id: stack.config.fb_page_id.clone(),
        asid: DEMO_ASID.into(),
        first_name: Some("Demo".into()),
        permission: shared::domain::login::Permission::Declined,
        expected_login_id: None,
        login_at: shared::adapters::clock::SystemClock.now(),
        last_login_at: shared::adapters::clock::SystemClock.now(),
        source: shared::domain::login::LoginSource::Api,
        user_ref: None,
    };
    let logins = shared::adapters::dynamodb::logins::DynamoLoginStore::from_sdk(
        &sdk,
        stack.config.table_name.clone(),
    );
    if let Err(e) = logins.record_login(&demo).await {
        eprintln!("could not record the demo person: {e}");
    }

    println!();
    for (label, url) in &links {
        println!("  {label:<23} {url}");
    }
    if key_is_default {
        println!(
            "  API key (local only)    {api_key}   (set API_KEYS=key1,key2 to choose your own)"
        );
    } else {
        println!("  API key                 the first of API_KEYS");
    }
    println!(
        "  Try the website API:    curl -s -H \"Authorization: Bearer {}\" {}/v1/users/{DEMO_ASID}",
        if key_is_default {
            api_key.as_str()
        } else {
            "$KEY"
        },
        stack.api_base_url
    );
    println!(
        "                          (200: the local demo person; 401: wrong key; a real asid after a login)"
    );
    println!("  AWS emulator (moto)     {aws_endpoint}");
    if let Some(url) = &stack.config.events.url {
        // Without its query: an operator's EVENTS_URL may carry the receiver's token there.
        let shown = url.split(['?', '#']).next().unwrap_or_default();
        println!("  Events delivered to     {shown}   (signed, Standard Webhooks: docs/events.md)");
    }
    if let Some(s) = &sandbox {
        println!(
            "  Messenger sandbox       {}/   (start page: links, state, controls)",
            s.base_url
        );
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
    println!("  Alerts (SNS topic)      printed below as they are published");
    println!(
        "  Compliance report       make report   (or ARGS=\"--since 1h --json\", ARGS=\"--html target/report.html\")"
    );
    println!("  Preflight checklist     make doctor");
    println!();
    println!("  Ctrl-C stops everything.");

    // Where `make report` finds the local table (removed on Ctrl-C).
    let state_file = local_runner::local_state::write(&local_runner::local_state::LocalState {
        aws_endpoint_url: aws_endpoint.clone(),
        region: "us-east-1".into(),
        table_name: stack.provisioned.table_name.clone(),
        alert_topic_arn: stack.provisioned.alert_topic_arn.clone(),
        api_base_url: stack.api_base_url.clone(),
        events_url: stack.config.events.url.clone(),
    });
    if let Err(e) = &state_file {
        eprintln!("  (could not write the local state file: {e})");
    }
    // Where `make doctor` finds the names it checks (removed on Ctrl-C too).
    let doctor_file = local_runner::local_state::write_doctor_in(
        std::path::Path::new("."),
        &stack.doctor_state(&aws_endpoint),
    );
    if let Err(e) = &doctor_file {
        eprintln!("  (could not write the doctor's state file: {e})");
    }
    // Print every alert published on the topic, as an operator's e-mail would show it.
    let inbox = local_runner::alert_inbox::AlertInbox::subscribe(
        &sdk,
        &stack.provisioned.alert_topic_arn,
        &format!("{}-alert-inbox", env_or("STACK_NAME", "local")),
    )
    .await?;
    let printer = tokio::spawn(async move {
        loop {
            // A 1 s long poll: the SDK clients carry the production timeouts (2 s an attempt,
            // shared::adapters::aws), so a longer wait ended every poll in a timeout error on the console.
            match inbox.receive(Duration::from_secs(1)).await {
                Ok(alerts) => {
                    for alert in alerts {
                        println!("{}", local_runner::alert_inbox::render(&alert));
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });

    tokio::signal::ctrl_c().await?;
    printer.abort();
    for path in [state_file, doctor_file].into_iter().flatten() {
        let _ = std::fs::remove_file(path);
    }
    stack.shutdown().await;
    if let Some(s) = sandbox {
        s.shutdown().await;
    }
    Ok(())
}
