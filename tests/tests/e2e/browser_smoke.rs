//! Smoke test in a real browser: headless Chromium (Debian's `chromium`) opens the local stack's
//! example website, clicks "Continue with Facebook", types a first name and clicks "Allow" in the
//! sandbox dialog, comes back to the site with `messenger=granted`, and then sees the initial
//! message, greeting it by that name, in the sandbox's inbox page. Real cookies (`Secure;
//! HttpOnly; SameSite=Lax` on http://127.0.0.1), real redirects, real form posts.
//!
//! Skipped, with a message, when /usr/bin/chromium is absent (`make browser` installs it).

use integration_tests::cdp::{CHROMIUM, Chromium};
use integration_tests::shared_moto;
use local_runner::{LocalSettings, LocalStack};
use messenger_sandbox::SandboxConfig;
use shared::config::env;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_clicks_through_the_login_and_sees_the_message() {
    if !Chromium::available() {
        eprintln!(
            "SKIPPED chromium_clicks_through_the_login_and_sees_the_message: {CHROMIUM} is not installed (run `make browser`, or apt-get install chromium)"
        );
        return;
    }
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let sandbox =
        messenger_sandbox::start(SandboxConfig::default(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let settings = LocalSettings::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        format!(
            "chromium-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        "127.0.0.1:0".parse().unwrap(),
    )
    .with(env::GRAPH_API_BASE_URL, sandbox.base_url.clone())
    .with(env::FACEBOOK_WEB_BASE_URL, sandbox.base_url.clone())
    .with(
        env::INITIAL_MESSAGE_TEXT,
        "Hi {first_name}! Thanks for connecting with us on Messenger.",
    );
    let local = LocalStack::start(settings, &sdk).await.unwrap();
    sandbox.set_webhook_url(&format!("{}/webhooks/messenger", local.api_base_url));
    let site = format!("{}/", local.site_base_url);
    let inbox = format!("{}/_sandbox/inbox?format=html", sandbox.base_url);

    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let mut chrome = Chromium::launch()?;
        chrome.navigate(&site)?;
        chrome.click("#continue-with-facebook")?;
        // The sandbox dialog.
        chrome.wait_for("document.querySelector('#allow') !== null", Duration::from_secs(20))?;
        chrome.type_into("input[name=sandbox_first_name]", "Hana")?;
        chrome.click("#allow")?;
        // Back on the website, signed in with Messenger.
        let outcome = chrome.wait_for(
            "document.querySelector('#outcome') && document.querySelector('#outcome').dataset.messenger",
            Duration::from_secs(20),
        )?;
        if outcome != serde_json::json!("granted") {
            return Err(format!("the site says messenger={outcome}"));
        }
        // The initial message, in the inbox page (reloaded until it arrives).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            chrome.navigate(&inbox)?;
            let text = chrome
                .wait_for("document.readyState === 'complete' && document.body.innerText", Duration::from_secs(10))?;
            let text = text.as_str().unwrap_or_default().to_owned();
            if text.contains("Hi Hana!") {
                return Ok(text);
            }
            if Instant::now() > deadline {
                return Err(format!("no message in the inbox page: {text}"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    })
    .await
    .unwrap();
    let inbox_text = result.unwrap_or_else(|e| panic!("headless Chromium: {e}"));
    eprintln!(
        "Chromium: site → dialog → Allow → message in the inbox in {:?}",
        started.elapsed()
    );
    assert!(inbox_text.contains("Thanks for connecting with us on Messenger."));
    let messages = sandbox.inbox();
    assert_eq!(messages.len(), 1, "exactly one message");
    assert_eq!(
        messages[0].text,
        "Hi Hana! Thanks for connecting with us on Messenger."
    );
    local.shutdown().await;
    sandbox.shutdown().await;
}
