//! The Messenger sandbox's browser pages in a real browser (issue 14, items 8 and 9): headless
//! Chromium opens the start page, the login dialog, the inbox with a conversation, and a page that
//! does not exist; each is saved as a PNG under `target/screens/` (look at them) and checked for
//! what a person would notice: the shared stylesheet applied (not the browser's defaults), a link
//! back to the start page, no raw JSON, no numeric ids or prefilled name in the dialog, and an inbox
//! that shows both sides of the conversation with the person's state and refreshes by itself.
//!
//! The HTTP API's pages (`functions/http-api/src/pages.rs`: sign-in status, error, bad
//! `return_to`, API root) are rendered and served here with their Content-Security-Policy, which
//! must let the inlined shared stylesheet through. The API's own routes answer with these pages
//! (`functions/http-api/tests/http_api/pages.rs` checks which route answers which).
//!
//! Only the sandbox runs (no AWS emulator): the person's replies go to a stub webhook that answers
//! 200. Skipped, with a message, when /usr/bin/chromium is absent (`make browser` installs it).

use http_api::pages as http_api_pages;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use integration_tests::cdp::{CHROMIUM, CdpResult, Chromium};
use messenger_sandbox::{
    DEFAULT_APP_ID, DEFAULT_APP_NAME, DEFAULT_APP_SECRET, DEFAULT_PAGE_ACCESS_TOKEN,
    DEFAULT_PAGE_ID, RunningSandbox, SandboxConfig,
};
use serde_json::{Value, json};

/// One Chromium at a time: the machine has few cores and each browser wants one.
static BROWSER: Mutex<()> = Mutex::new(());

/// The page background of `shared/assets/style.css` (`--bg: #f0f2f5`); a browser default page is
/// transparent (white).
pub(crate) const STYLED_BACKGROUND: &str = "rgb(240, 242, 245)";

pub(crate) fn skip(test: &str) -> bool {
    if Chromium::available() {
        return false;
    }
    eprintln!(
        "SKIPPED {test}: {CHROMIUM} is not installed (run `make browser`, or apt-get install chromium)"
    );
    true
}

async fn sandbox() -> RunningSandbox {
    messenger_sandbox::start(SandboxConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A server that answers every request with `answer` (a whole HTTP/1.1 response); its address.
async fn serve_always(answer: Vec<u8>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                // One request per connection (the answer closes it).
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(&answer).await;
            });
        }
    });
    addr
}

/// A webhook receiver that answers 200 to everything (the person's replies need one).
async fn stub_webhook() -> String {
    let addr =
        serve_always(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec())
            .await;
    format!("http://{addr}/webhooks/messenger")
}

/// `html` served as the HTTP API serves its pages: with `pages::CONTENT_SECURITY_POLICY`.
async fn serve_api_page(html: String) -> String {
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-security-policy: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
        *http_api_pages::CONTENT_SECURITY_POLICY,
        html.len()
    );
    format!("http://{}/", serve_always(answer.into_bytes()).await)
}

async fn post(url: String, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// The Page sends `text` to `login_id` through the Send API, as the app's sender does.
async fn page_sends(sb: &RunningSandbox, login_id: &str, text: &str) {
    let proof =
        shared::facebook::crypto::appsecret_proof(DEFAULT_APP_SECRET, DEFAULT_PAGE_ACCESS_TOKEN);
    let url = reqwest::Url::parse_with_params(
        &format!("{}/v25.0/{DEFAULT_PAGE_ID}/messages", sb.base_url),
        &[
            ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
            ("appsecret_proof", proof.as_str()),
        ],
    )
    .unwrap();
    post(
        url.to_string(),
        json!({"recipient": {"login_id": login_id}, "messaging_type": "UPDATE", "message": {"text": text}}),
    )
    .await;
}

/// Where the screenshots go: the workspace's `target/screens/`.
pub(crate) fn screens_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screens");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Save a PNG of the current page as `target/screens/{name}.png`.
pub(crate) fn screenshot(chrome: &mut Chromium, name: &str) -> CdpResult<PathBuf> {
    let shot = chrome.call(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true}),
    )?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().ok_or("no screenshot data")?)
        .map_err(|e| e.to_string())?;
    if !png.starts_with(b"\x89PNG") {
        return Err(format!("{name}: not a PNG"));
    }
    let path = screens_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).map_err(|e| e.to_string())?;
    eprintln!("screenshot: {}", path.display());
    Ok(path)
}

/// Open `url` at a desktop size and wait for it to be loaded.
pub(crate) fn open(chrome: &mut Chromium, url: &str) -> CdpResult<()> {
    chrome.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1000, "height": 760, "deviceScaleFactor": 1, "mobile": false}),
    )?;
    chrome.navigate(url)?;
    chrome.wait_for(
        "document.readyState === 'complete' && document.body !== null",
        Duration::from_secs(15),
    )?;
    Ok(())
}

/// What every page must have: the shared stylesheet applied, the way back, and no raw JSON.
fn check_common(chrome: &mut Chromium, page: &str) -> CdpResult<String> {
    let background = chrome.eval("getComputedStyle(document.body).backgroundColor")?;
    if background != json!(STYLED_BACKGROUND) {
        return Err(format!(
            "{page}: the stylesheet is not applied (body background {background})"
        ));
    }
    let back = chrome.eval("(document.querySelector('a#back') || {}).getAttribute ? document.querySelector('a#back').getAttribute('href') : null")?;
    if back != json!("/") {
        return Err(format!("{page}: no link back to the start page ({back})"));
    }
    let text = chrome.eval("document.body.innerText")?;
    let text = text.as_str().unwrap_or_default().to_owned();
    if text.trim_start().starts_with('{') || text.contains("\"error\":") {
        return Err(format!("{page}: raw JSON shown: {text}"));
    }
    Ok(text)
}

/// Run `f` with a fresh Chromium, one browser at a time, off the async runtime.
pub(crate) async fn with_chromium<T: Send + 'static>(
    f: impl FnOnce(&mut Chromium) -> CdpResult<T> + Send + 'static,
) -> T {
    let result = tokio::task::spawn_blocking(move || {
        let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
        let mut chrome = Chromium::launch()?;
        f(&mut chrome)
    })
    .await
    .unwrap();
    match result {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Runs of 6 or more digits in `text` (app, Page, person ids are all longer).
fn digit_runs(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() >= 6)
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_page_is_a_styled_page_with_links_not_a_json_error() {
    if skip("the_start_page_is_a_styled_page_with_links_not_a_json_error") {
        return;
    }
    let sb = sandbox().await;
    sb.set_links(&[("OpenAPI document", "http://127.0.0.1:3000/openapi.json")]);
    let url = format!("{}/", sb.base_url);
    let text = with_chromium(move |chrome| {
        open(chrome, &url)?;
        let text = check_common(chrome, "start page")?;
        for selector in ["a#inbox-link", "a#dialog-link", "#state", "#controls"] {
            let found = chrome.eval(&format!("document.querySelector('{selector}') !== null"))?;
            if found != json!(true) {
                return Err(format!("start page: no {selector}"));
            }
        }
        screenshot(chrome, "sandbox-start")?;
        Ok(text)
    })
    .await;
    assert!(
        text.contains("http://127.0.0.1:3000/openapi.json"),
        "the links named by the runner: {text}"
    );
    assert!(text.contains("Opt-ins"), "{text}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialog_shows_names_not_numeric_ids_or_a_prefilled_name() {
    if skip("the_dialog_shows_names_not_numeric_ids_or_a_prefilled_name") {
        return;
    }
    let sb = sandbox().await;
    let url = format!("{}/", sb.base_url);
    let (text, name_value) = with_chromium(move |chrome| {
        open(chrome, &url)?;
        // The start page's own link to the dialog, as a person would follow it.
        chrome.click("a#dialog-link")?;
        chrome.wait_for(
            "document.querySelector('#allow') !== null && document.readyState === 'complete'",
            Duration::from_secs(15),
        )?;
        let text = check_common(chrome, "dialog")?;
        let name = chrome.eval("document.querySelector('input[name=sandbox_first_name]').value")?;
        screenshot(chrome, "sandbox-dialog")?;
        // The hidden fields the flow needs are still posted: "Cancel" comes back to the start page.
        chrome.click("#cancel")?;
        chrome.wait_for(
            "document.querySelector('#preview-outcome') !== null",
            Duration::from_secs(15),
        )?;
        Ok((text, name))
    })
    .await;
    assert!(text.contains(DEFAULT_APP_NAME), "{text}");
    assert!(!text.contains(DEFAULT_APP_ID), "{text}");
    assert!(!text.contains(DEFAULT_PAGE_ID), "{text}");
    assert_eq!(digit_runs(&text), Vec::<String>::new(), "{text}");
    assert!(text.contains("contact you on Messenger"), "{text}");
    assert_eq!(name_value, json!(""), "the name field starts empty");
    assert!(
        !text.contains(messenger_sandbox::DEFAULT_FIRST_NAME),
        "{text}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_shows_the_conversation_with_its_state_and_refreshes() {
    if skip("the_inbox_shows_the_conversation_with_its_state_and_refreshes") {
        return;
    }
    let sb = sandbox().await;
    sb.set_webhook_url(&stub_webhook().await);
    let optin = post(
        format!("{}/_sandbox/optin", sb.base_url),
        json!({"deliver": false}),
    )
    .await;
    let login_id = optin["login_id"].as_str().unwrap().to_owned();
    page_sends(
        &sb,
        &login_id,
        "Hi Hana! Thanks for connecting with us on Messenger.",
    )
    .await;
    post(
        format!("{}/_sandbox/message", sb.base_url),
        json!({"login_id": login_id, "text": "When does my order ship?"}),
    )
    .await;
    // A second person who opted in and got nothing yet.
    post(
        format!("{}/_sandbox/optin", sb.base_url),
        json!({"deliver": false}),
    )
    .await;

    let url = format!("{}/_sandbox/inbox?format=html", sb.base_url);
    let (text, states) = with_chromium(move |chrome| {
        open(chrome, &url)?;
        let text = check_common(chrome, "inbox")?;
        let states = chrome.eval(
            "Array.from(document.querySelectorAll('.person .badge')).map(b => b.dataset.state)",
        )?;
        screenshot(chrome, "sandbox-inbox")?;
        Ok((text, states))
    })
    .await;
    assert!(text.contains("Hi Hana! Thanks for connecting"), "{text}");
    assert!(
        text.contains("When does my order ship?"),
        "the reply: {text}"
    );
    // The most recent conversation first: the second person opted in last.
    assert_eq!(
        states,
        json!(["opted in, waiting for the message", "message sent"]),
        "{text}"
    );

    // The page refreshes by itself: a message sent after it loaded shows up without navigating.
    let url = format!("{}/_sandbox/inbox?format=html", sb.base_url);
    let sb = std::sync::Arc::new(sb);
    let sender = {
        let sb = sb.clone();
        let login_id = login_id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            page_sends(&sb, &login_id, "Your order shipped today.").await;
        })
    };
    with_chromium(move |chrome| {
        open(chrome, &url)?;
        chrome.wait_for(
            "document.body && document.body.innerText.includes('Your order shipped today.')",
            Duration::from_secs(10),
        )?;
        Ok(())
    })
    .await;
    sender.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_page_is_a_styled_page_with_a_way_back_not_json() {
    if skip("a_missing_page_is_a_styled_page_with_a_way_back_not_json") {
        return;
    }
    let sb = sandbox().await;
    let url = format!("{}/no/such/page", sb.base_url);
    let text = with_chromium(move |chrome| {
        open(chrome, &url)?;
        let text = check_common(chrome, "missing page")?;
        screenshot(chrome, "sandbox-not-found")?;
        Ok(text)
    })
    .await;
    assert!(text.contains("Page not found"), "{text}");
    // Graph's paths keep Graph's JSON, for browsers too.
    let response = reqwest::Client::new()
        .get(format!("{}/v25.0/me/feed", sb.base_url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], 803, "{answer}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_pages_are_styled_under_their_content_security_policy() {
    if skip("the_api_pages_are_styled_under_their_content_security_policy") {
        return;
    }
    use http_api_pages::{Outcome, api_index, bad_return_to_page, error_page, status_page};
    let pages = [
        ("api-status-granted", status_page(Outcome::Granted, None)),
        (
            "api-status-cancelled",
            status_page(Outcome::Cancelled, None),
        ),
        (
            "api-error-state-expired",
            error_page(
                "This sign-in link is not valid",
                "This sign-in took longer than 10 minutes.",
                "state_expired",
                None,
            ),
        ),
        (
            "api-bad-return-to",
            bad_return_to_page("the origin is not allowed"),
        ),
        ("api-root", api_index(Some("http://127.0.0.1:3000"))),
    ];
    let mut served = Vec::new();
    for (name, html) in pages {
        served.push((name, serve_api_page(html).await));
    }
    let texts = with_chromium(move |chrome| {
        let mut texts = Vec::new();
        for (name, url) in served {
            open(chrome, &url)?;
            texts.push(check_common(chrome, name)?);
            screenshot(chrome, name)?;
        }
        Ok(texts)
    })
    .await;
    assert!(texts[0].contains("You're signed in"), "{}", texts[0]);
    assert!(texts[4].contains("OpenAPI document"), "{}", texts[4]);
}
