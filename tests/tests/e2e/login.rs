//! Facebook Login end to end through the local stack (API Gateway stand-in, moto, the sandbox's
//! dialog and Graph), with a test browser that follows redirects and keeps cookies:
//! Allow → LOGIN → opt-in webhook → one message carrying the first name; Not now; Cancel; every
//! refusal asserted to write nothing; the website API, including an opt-out before the send.

use integration_tests::browser::{Browser, Page, attribute_of, hidden_fields};
use integration_tests::shared_moto;
use local_runner::{LocalSettings, LocalStack, moto::MotoServer};
use messenger_sandbox::{self as sb, InboxMessage, RunningSandbox, SandboxConfig};
use shared::adapters::dynamodb::logins::DynamoLoginStore;
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::config::env;
use shared::domain::login::{Login, Permission};
use shared::domain::opt_in::{OptIn, OptInKey, State};
use shared::ports::logins::LoginStore;
use shared::ports::opt_ins::OptInStore;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const API_KEY: &str = "e2e-site-key";
const TEMPLATE_TEXT: &str = "Hi {first_name}! Thanks for connecting with us on Messenger.";

struct Stack {
    _moto: std::sync::Arc<MotoServer>,
    sdk: aws_config::SdkConfig,
    sandbox: RunningSandbox,
    local: LocalStack,
    store: DynamoOptInStore,
    logins: DynamoLoginStore,
    http: reqwest::Client,
}

async fn stack() -> Stack {
    let moto = shared_moto();
    let sdk = moto.sdk_config().await;
    let sandbox = sb::start(SandboxConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox starts");
    let mut settings = LocalSettings::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        format!("login-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        "127.0.0.1:0".parse().unwrap(),
    )
    .with(env::GRAPH_API_BASE_URL, sandbox.base_url.clone())
    .with(env::FACEBOOK_WEB_BASE_URL, sandbox.base_url.clone())
    .with(env::INITIAL_MESSAGE_TEXT, TEMPLATE_TEXT);
    settings.secrets.api_keys = vec![API_KEY.to_owned()];
    let local = LocalStack::start(settings, &sdk)
        .await
        .expect("local stack starts");
    sandbox.set_webhook_url(&format!("{}/webhooks/messenger", local.api_base_url));
    let table = local.provisioned.table_name.clone();
    Stack {
        _moto: moto,
        store: DynamoOptInStore::new(aws_sdk_dynamodb::Client::new(&sdk), table.clone()),
        logins: DynamoLoginStore::from_sdk(&sdk, table),
        sdk,
        sandbox,
        local,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

fn login_id(asid: &str) -> String {
    shared::facebook::crypto::derive_login_id(
        sb::DEFAULT_CLIENT_TOKEN,
        asid,
        sb::DEFAULT_APP_ID,
        sb::DEFAULT_PAGE_ID,
    )
}

fn key(asid: &str) -> OptInKey {
    OptInKey::new(sb::DEFAULT_PAGE_ID, login_id(asid))
}

fn random_asid() -> String {
    format!("1{:015}", rand_u64() % 1_000_000_000_000_000)
}

fn rand_u64() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap())
}

impl Stack {
    /// Open the example site and follow its "Continue with Facebook" link to the dialog.
    async fn open_dialog(&self, browser: &Browser) -> Page {
        let site = browser.get(&format!("{}/", self.local.site_base_url)).await;
        assert_eq!(site.status, 200);
        let link = attribute_of(&site.body, "id=\"continue-with-facebook\"", "href")
            .expect("the example page has the login link");
        let dialog = browser.get(&link).await;
        assert_eq!(dialog.status, 200, "{}", dialog.body);
        assert!(
            dialog.url.path().ends_with("/dialog/oauth"),
            "{}",
            dialog.url
        );
        assert!(dialog.body.contains(">Allow<") && dialog.body.contains(">Not now<"));
        dialog
    }

    /// Press a button of the dialog (`allow`, `decline`, `cancel`) as a person named `name`.
    async fn press(
        &self,
        browser: &Browser,
        dialog: &Page,
        choice: &str,
        name: &str,
        asid: &str,
    ) -> Page {
        let action = attribute_of(&dialog.body, "<form", "action").expect("form");
        let mut fields = hidden_fields(&dialog.body);
        fields.push(("sandbox_first_name".into(), name.into()));
        fields.push(("sandbox_asid".into(), asid.into()));
        fields.push(("choice".into(), choice.into()));
        let url = dialog.url.join(&action).unwrap();
        browser.post_form(url.as_str(), &fields).await
    }

    async fn item_count(&self) -> usize {
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .scan()
            .table_name(&self.local.provisioned.table_name)
            .send()
            .await
            .unwrap()
            .items()
            .len()
    }

    async fn wait_for_state(&self, key: &OptInKey, state: State) -> OptIn {
        let started = Instant::now();
        loop {
            if let Some(item) = self.store.get_opt_in(key).await.unwrap()
                && item.state == state
            {
                return item;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never reached {state}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn inbox_for(&self, login_id: &str) -> Vec<InboxMessage> {
        self.sandbox
            .inbox()
            .into_iter()
            .filter(|m| m.login_id == login_id)
            .collect()
    }

    async fn login(&self, asid: &str) -> Option<Login> {
        self.logins
            .get_login(sb::DEFAULT_PAGE_ID, asid)
            .await
            .unwrap()
    }

    fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.local.api_base_url))
            .bearer_auth(API_KEY)
    }

    async fn user(&self, asid: &str) -> serde_json::Value {
        let r = self
            .api(reqwest::Method::GET, &format!("/v1/users/{asid}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn sandbox_token(&self, body: serde_json::Value) -> serde_json::Value {
        self.http
            .post(format!("{}/_sandbox/user_token", self.sandbox.base_url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.local.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

fn site_outcome(page: &Page, stack: &Stack) -> Option<String> {
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.url.as_str().starts_with(&stack.local.site_base_url),
        "ended on {}",
        page.url
    );
    page.query("messenger")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allow_records_the_login_then_one_message_carries_the_first_name() {
    let s = stack().await;
    s.local.pause_sender(true);
    let browser = Browser::new();
    let asid = random_asid();
    let dialog = s.open_dialog(&browser).await;
    let cookie = browser
        .cookies()
        .into_iter()
        .find(|c| c.name == "lcm_login_state")
        .expect("state cookie set by /login/start");
    assert!(cookie.secure && cookie.http_only);
    assert_eq!(cookie.same_site.as_deref(), Some("Lax"));

    let back = s.press(&browser, &dialog, "allow", "Ana", &asid).await;
    assert_eq!(site_outcome(&back, &s).as_deref(), Some("granted"));
    assert!(
        back.hops.iter().any(|u| u.path() == "/login/callback"),
        "{:?}",
        back.hops
    );
    assert!(
        browser
            .cookies()
            .iter()
            .all(|c| c.name != "lcm_login_state"),
        "state cookie cleared"
    );

    // The LOGIN is recorded (with the login_id the webhook will carry) before the webhook.
    let login = s.login(&asid).await.expect("LOGIN recorded");
    assert_eq!(login.first_name.as_deref(), Some("Ana"));
    assert_eq!(login.permission, Permission::Granted);
    assert_eq!(login.expected_login_id, Some(login_id(&asid)));
    assert_eq!(s.user(&asid).await["state"], "AWAITING_OPT_IN");

    // The sandbox sends the signed opt-in webhook (about a second after "Allow").
    let k = key(&asid);
    // (Its order relative to the callback does not matter: the sender is held until both are in.)
    s.wait_for_state(&k, State::OptedIn).await;
    assert!(s.inbox_for(&k.login_id).is_empty(), "sender held");
    s.local.pause_sender(false);
    let sent = s.wait_for_state(&k, State::Sent).await;
    let inbox = s.inbox_for(&k.login_id);
    assert_eq!(inbox.len(), 1);
    assert_eq!(
        inbox[0].text,
        "Hi Ana! Thanks for connecting with us on Messenger."
    );
    assert_eq!(
        sent.message_id.as_deref(),
        Some(inbox[0].message_id.as_str())
    );
    let user = s.user(&asid).await;
    assert_eq!(user["state"], "SENT");
    assert!(user["sent_at"].is_string() && user["opted_in_at"].is_string());

    // Replaying the callback (same URL, same cookie as then): refused, nothing written.
    let callback = back
        .hops
        .iter()
        .find(|u| u.path() == "/login/callback")
        .unwrap()
        .clone();
    let before = s.item_count().await;
    let replay = s
        .http
        .get(callback)
        .header("cookie", format!("{}={}", cookie.name, cookie.value))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    let body: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(body["error"]["code"], "state_unknown");
    assert_eq!(s.item_count().await, before);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_before_the_callback_is_linked_too() {
    let s = stack().await;
    s.local.pause_sender(true);
    let browser = Browser::new();
    let asid = random_asid();
    let dialog = s.open_dialog(&browser).await;
    // The query switch: choose "Allow" and deliver the webhook before redirecting back.
    let url = format!(
        "{}&sandbox_choice=allow&sandbox_webhook=before&sandbox_first_name=Bea&sandbox_asid={asid}",
        dialog.url
    );
    let back = browser.get(&url).await;
    assert_eq!(site_outcome(&back, &s).as_deref(), Some("granted"));
    let k = key(&asid);
    let opt_in = s.store.get_opt_in(&k).await.unwrap().expect("opt-in first");
    let login = s.login(&asid).await.unwrap();
    assert!(
        opt_in.created_at <= login.login_at,
        "the opt-in arrived first"
    );
    s.local.pause_sender(false);
    s.wait_for_state(&k, State::Sent).await;
    assert_eq!(
        s.inbox_for(&k.login_id)[0].text,
        "Hi Bea! Thanks for connecting with us on Messenger."
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn not_now_is_declined_and_nothing_is_sent() {
    let s = stack().await;
    let browser = Browser::new();
    let asid = random_asid();
    let dialog = s.open_dialog(&browser).await;
    let back = s.press(&browser, &dialog, "decline", "Cy", &asid).await;
    assert_eq!(site_outcome(&back, &s).as_deref(), Some("declined"));
    assert!(back.body.contains("Signed in, without Messenger") || back.body.contains("declined"));
    let login = s.login(&asid).await.unwrap();
    assert_eq!(login.permission, Permission::Declined);
    assert_eq!(s.user(&asid).await["state"], "DECLINED");
    // Longer than the sandbox's webhook delay: no opt-in, no message.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(s.store.get_opt_in(&key(&asid)).await.unwrap(), None);
    assert!(s.sandbox.inbox().is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_is_cancelled_and_writes_nothing() {
    let s = stack().await;
    let browser = Browser::new();
    let dialog = s.open_dialog(&browser).await;
    assert_eq!(s.item_count().await, 1, "the login state");
    let back = s
        .press(&browser, &dialog, "cancel", "Di", &random_asid())
        .await;
    assert_eq!(site_outcome(&back, &s).as_deref(), Some("cancelled"));
    assert_eq!(s.item_count().await, 0, "state consumed, nothing recorded");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_callbacks_and_starts_write_nothing() {
    let s = stack().await;

    // return_to on a foreign origin, or an open-redirect trick: 400 at the start.
    let site = s.local.site_base_url.clone();
    let port = site.rsplit(':').next().unwrap().to_owned();
    for bad in [
        "https://evil.example/".to_owned(),
        "//evil.example/".to_owned(),
        format!("{site}.evil.example/"),
        format!("http://127.0.0.1.evil.example:{port}/"),
        format!("http://evil.example@127.0.0.1:{port}/"),
        "javascript:alert(1)".to_owned(),
    ] {
        let start = reqwest::Url::parse_with_params(
            &format!("{}/login/start", s.local.api_base_url),
            &[("return_to", &bad)],
        )
        .unwrap();
        let r = s.http.get(start).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("set-cookie").is_none());
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_return_to");
    }
    assert_eq!(s.item_count().await, 0);

    // A state from another browser: B submits A's dialog.
    let a = Browser::new();
    let b = Browser::new();
    let dialog = s.open_dialog(&a).await;
    let back = s.press(&b, &dialog, "allow", "Eve", &random_asid()).await;
    assert_eq!(back.status, 400);
    assert!(back.body.contains("state_mismatch"), "{}", back.body);
    assert_eq!(s.item_count().await, 1, "only A's unused state");

    // An expired state: A's state is made 10 minutes old.
    let ddb = aws_sdk_dynamodb::Client::new(&s.sdk);
    let items = ddb
        .scan()
        .table_name(&s.local.provisioned.table_name)
        .send()
        .await
        .unwrap();
    let state_item = &items.items()[0];
    ddb.update_item()
        .table_name(&s.local.provisioned.table_name)
        .key("pk", state_item["pk"].clone())
        .key("sk", state_item["sk"].clone())
        .update_expression("SET expires_at_ms = :past")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::N(
                (chrono::Utc::now().timestamp_millis() - 1).to_string(),
            ),
        )
        .send()
        .await
        .unwrap();
    let asid = random_asid();
    let back = s.press(&a, &dialog, "allow", "Fay", &asid).await;
    assert_eq!(back.status, 400);
    assert!(back.body.contains("state_expired"), "{}", back.body);
    assert!(s.login(&asid).await.is_none());
    assert_eq!(s.item_count().await, 1, "nothing written");

    // A code used twice: a complete login, then its code with a fresh state.
    let c = Browser::new();
    let first = s.open_dialog(&c).await;
    let asid = random_asid();
    let url = format!(
        "{}&sandbox_choice=allow&sandbox_webhook=none&sandbox_asid={asid}",
        first.url
    );
    let done = c.get(&url).await;
    assert_eq!(site_outcome(&done, &s).as_deref(), Some("granted"));
    let used_code = done
        .hops
        .iter()
        .find(|u| u.path() == "/login/callback")
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap();
    let second = s.open_dialog(&c).await;
    let fresh_state = second
        .url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let before = s.item_count().await;
    let mut replay =
        reqwest::Url::parse(&format!("{}/login/callback", s.local.api_base_url)).unwrap();
    replay
        .query_pairs_mut()
        .append_pair("code", &used_code)
        .append_pair("state", &fresh_state);
    let back = c.get(replay.as_str()).await;
    assert_eq!(site_outcome(&back, &s).as_deref(), Some("error"));
    assert_eq!(s.item_count().await, before - 1, "only the state consumed");
    let login = s.login(&asid).await.unwrap();
    assert_eq!(login.login_at, login.last_login_at, "not recorded again");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_website_api_refuses_without_writing() {
    let s = stack().await;
    let url = |p: &str| format!("{}{p}", s.local.api_base_url);
    let ours = s
        .sandbox_token(serde_json::json!({"webhook": "none"}))
        .await;
    let token = ours["access_token"].as_str().unwrap();
    let other = s
        .sandbox_token(serde_json::json!({"app_id": "999999"}))
        .await;
    let body = |t: &str| serde_json::json!({"user_access_token": t}).to_string();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            s.http
                .post(url("/v1/logins"))
                .header("content-type", "application/json")
                .body(body(token)),
            401,
            "unauthorized",
        ),
        (
            s.http
                .post(url("/v1/logins"))
                .bearer_auth("wrong")
                .header("content-type", "application/json")
                .body(body(token)),
            401,
            "unauthorized",
        ),
        (
            s.api(reqwest::Method::POST, "/v1/logins")
                .header("content-type", "text/plain")
                .body(body(token)),
            415,
            "unsupported_media_type",
        ),
        (
            s.api(reqwest::Method::POST, "/v1/logins")
                .header("content-type", "application/json")
                .body(body(&"x".repeat(20_000))),
            413,
            "body_too_large",
        ),
        (
            s.api(reqwest::Method::POST, "/v1/logins")
                .header("content-type", "application/json")
                .body("{"),
            400,
            "invalid_json",
        ),
        (
            s.api(reqwest::Method::POST, "/v1/logins")
                .header("content-type", "application/json")
                .body(body(other["access_token"].as_str().unwrap())),
            400,
            "token_of_another_app",
        ),
        (
            s.api(reqwest::Method::POST, "/v1/logins")
                .header("content-type", "application/json")
                .body(body("EAAnot-a-token")),
            400,
            "invalid_user_token",
        ),
        (
            s.api(reqwest::Method::GET, "/v1/users/123456"),
            404,
            "unknown_person",
        ),
        (
            s.api(reqwest::Method::POST, "/v1/users/123456/opt-out"),
            404,
            "unknown_person",
        ),
    ];
    for (request, status, code) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{code}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code);
    }
    assert_eq!(s.item_count().await, 0);

    // The same token, correctly sent: recorded.
    let r = s
        .api(reqwest::Method::POST, "/v1/logins")
        .json(&serde_json::json!({"user_access_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["asid"], ours["asid"]);
    assert_eq!(v["permission"], "granted");

    let doc: serde_json::Value = s
        .http
        .get(url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_opt_out_through_the_api_before_the_sender_runs_sends_nothing() {
    let s = stack().await;
    s.local.pause_sender(true);
    // A JavaScript SDK login: the sandbox delivers the opt-in webhook, the site records the login.
    let token = s
        .sandbox_token(serde_json::json!({"first_name": "Gus", "webhook": "before"}))
        .await;
    assert_eq!(token["webhook_status"], 200);
    let asid = token["asid"].as_str().unwrap().to_owned();
    let r = s
        .api(reqwest::Method::POST, "/v1/logins")
        .json(&serde_json::json!({"user_access_token": token["access_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["state"], "OPTED_IN");

    for _ in 0..2 {
        let r = s
            .api(reqwest::Method::POST, &format!("/v1/users/{asid}/opt-out"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["state"], "OPTED_OUT");
    }
    s.local.pause_sender(false);
    // Long enough for the held job to be received and refused by the claim.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let k = key(&asid);
    assert!(s.inbox_for(&k.login_id).is_empty());
    let item = s.store.get_opt_in(&k).await.unwrap().unwrap();
    assert_eq!(item.state, State::OptedOut);
    assert_eq!(item.message_id, None);
    assert_eq!(s.user(&asid).await["state"], "OPTED_OUT");
    s.stop().await;
}

/// Issue 12 §2 end to end: a follow-up before the person wrote is refused (`no_conversation`);
/// after they write, it reaches their PSID with RESPONSE through the queue and the sender, and its
/// state reads `sent` with Graph's message id.
#[tokio::test]
async fn a_follow_up_reaches_the_person_after_they_wrote_and_not_before() {
    let s = stack().await;
    let token = s
        .sandbox_token(serde_json::json!({"first_name": "Gus", "webhook": "before"}))
        .await;
    let asid = token["asid"].as_str().unwrap().to_owned();
    let r = s
        .api(reqwest::Method::POST, "/v1/logins")
        .json(&serde_json::json!({"user_access_token": token["access_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    s.wait_for_state(&key(&asid), State::Sent).await;
    let follow_up = || {
        s.api(reqwest::Method::POST, &format!("/v1/users/{asid}/messages"))
            .json(&serde_json::json!({"text": "Your order has shipped"}))
    };
    let r = follow_up().send().await.unwrap();
    assert_eq!(r.status(), 409);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "no_conversation");

    // The person writes to the Page: the webhook links their PSID.
    let wrote: serde_json::Value = s
        .http
        .post(format!("{}/_sandbox/message", s.sandbox.base_url))
        .json(&serde_json::json!({"login_id": login_id(&asid), "text": "Where is my order?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(wrote["webhook_status"], 200, "{wrote}");

    let r = follow_up().send().await.unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let state = loop {
        let r = s
            .api(
                reqwest::Method::GET,
                &format!("/v1/users/{asid}/messages/{id}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        if v["state"] != "queued" {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state["state"], "sent", "{state}");
    let inbox = s.inbox_for(&login_id(&asid));
    assert_eq!(inbox.len(), 2, "the initial message and the follow-up");
    assert_eq!(inbox[1].text, "Your order has shipped");
    assert_eq!(inbox[1].messaging_type, "RESPONSE");
    assert_eq!(
        state["message_id"].as_str(),
        Some(inbox[1].message_id.as_str())
    );
    s.stop().await;
}

/// Issue 12's "done when", from both sides, through the local stack: the website's `user_ref` on
/// the login → the opt-in → the initial message → `message.sent` at the example site's backend
/// (verified there with the Standard Webhooks crate) carrying the `user_ref`; the person replies →
/// `person.replied`; a follow-up inside the window → sent to the PSID with RESPONSE; 25 hours after
/// the person's last message → 409 `outside_window`, nothing sent; after STOP → 409 `opted_out`
/// and `person.opted_out`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_conversation_reaches_the_website_and_stays_inside_metas_windows() {
    let s = stack().await;
    let token = s
        .sandbox_token(serde_json::json!({"first_name": "Ada", "webhook": "before"}))
        .await;
    let asid = token["asid"].as_str().unwrap().to_owned();
    let r = s
        .api(reqwest::Method::POST, "/v1/logins")
        .json(&serde_json::json!({
            "user_access_token": token["access_token"],
            "user_ref": "customer_42",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    s.wait_for_state(&key(&asid), State::Sent).await;

    let event = |event_type: &'static str, kind: Option<&'static str>| {
        let backend = s.local.example_backend.clone();
        let asid = asid.clone();
        async move {
            let started = Instant::now();
            loop {
                if let Some(e) = backend.events().into_iter().find(|e| {
                    e.event_type == event_type
                        && e.data.get("asid").and_then(|v| v.as_str()) == Some(asid.as_str())
                        && kind
                            .is_none_or(|k| e.data.get("kind").and_then(|v| v.as_str()) == Some(k))
                }) {
                    return e;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no {event_type} event reached the website: {:?}",
                    backend
                        .events()
                        .iter()
                        .map(|e| e.event_type.clone())
                        .collect::<Vec<_>>()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let sent = event("message.sent", Some("initial")).await;
    assert_eq!(sent.data["user_ref"], "customer_42", "{:?}", sent.data);
    let login_completed = event("login.completed", None).await;
    assert_eq!(login_completed.data["permission"], "granted");
    assert_eq!(login_completed.data["user_ref"], "customer_42");

    // The person replies on Messenger.
    let wrote = person_writes(&s, &asid, "Where is my order?").await;
    assert_eq!(wrote["webhook_status"], 200, "{wrote}");
    let replied = event("person.replied", None).await;
    assert_eq!(replied.data["text"], "Where is my order?");
    assert_eq!(replied.data["user_ref"], "customer_42");
    assert!(replied.data["window_ends_at"].is_string());

    // A follow-up inside the window: sent to the PSID with RESPONSE.
    let follow_up = |text: &'static str| {
        s.api(reqwest::Method::POST, &format!("/v1/users/{asid}/messages"))
            .json(&serde_json::json!({ "text": text }))
    };
    let r = follow_up("Your order has shipped").send().await.unwrap();
    assert_eq!(r.status(), 202);
    let follow_up_sent = event("message.sent", Some("follow_up")).await;
    assert_eq!(follow_up_sent.data["user_ref"], "customer_42");
    let inbox = s.inbox_for(&login_id(&asid));
    assert_eq!(inbox.len(), 2, "the initial message and the follow-up");
    assert_eq!(inbox[1].messaging_type, "RESPONSE");
    assert_eq!(
        follow_up_sent.data["message_id"].as_str(),
        Some(inbox[1].message_id.as_str())
    );

    // 25 hours after the person's last message (the reply is dated back in the table).
    let now = chrono::Utc::now().timestamp_millis();
    aws_sdk_dynamodb::Client::new(&s.sdk)
        .update_item()
        .table_name(&s.local.provisioned.table_name)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "OPTIN#{}#{}",
                sb::DEFAULT_PAGE_ID,
                login_id(&asid)
            )),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("OPTIN".into()),
        )
        .update_expression("SET last_user_message_at = :at")
        .expression_attribute_values(
            ":at",
            aws_sdk_dynamodb::types::AttributeValue::N((now - 25 * 3_600_000).to_string()),
        )
        .send()
        .await
        .unwrap();
    let r = follow_up("Are you still there?").send().await.unwrap();
    assert_eq!(r.status(), 409);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "outside_window", "{v}");
    assert!(
        v["error"]["window_ended_at"].is_string() || v["window_ended_at"].is_string(),
        "{v}"
    );

    // The person writes again (the window reopens), then says STOP.
    for text in ["One more question", "STOP"] {
        let wrote = person_writes(&s, &asid, text).await;
        assert_eq!(wrote["webhook_status"], 200, "{wrote}");
    }
    let opted_out = event("person.opted_out", None).await;
    assert_eq!(opted_out.data["source"], "stop_keyword");
    assert_eq!(opted_out.data["user_ref"], "customer_42");
    let r = follow_up("Last chance!").send().await.unwrap();
    assert_eq!(r.status(), 409);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "opted_out", "{v}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        s.inbox_for(&login_id(&asid)).len(),
        2,
        "nothing sent outside the window or after the opt-out"
    );
    s.stop().await;
}

/// The person writes to the Page in the sandbox (its webhook reaches the stack).
async fn person_writes(s: &Stack, asid: &str, text: &str) -> serde_json::Value {
    s.http
        .post(format!("{}/_sandbox/message", s.sandbox.base_url))
        .json(&serde_json::json!({"login_id": login_id(asid), "text": text}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
