//! No secret and no personal data in the logs: every tracing event of an end-to-end run (opt-in,
//! send, reply, login through the API, a refused webhook, data deletion) is captured, and none of
//! the secrets, tokens, login_ids, PSIDs, asids or first names appears in it.
//!
//! The lines are the functions' own JSON format (`shared::logging`, span fields included). The
//! product's crates are captured at DEBUG (stricter than production's INFO), everything else at
//! INFO. The Messenger sandbox (the fake Facebook, not the product) is left out. EMF metric lines
//! are printed to stdout, not through tracing, and hold only counts and the Page id.
//!
//! The test runs in a child process of its own (the end-to-end tests share one binary).

use integration_tests::worlds::stack::start_stack;
use lambda_runtime::tracing::subscriber as ts;
use messenger_sandbox as sb;
use shared::config::env;
use shared::domain::opt_in::State;
use shared::logging::Captured;

const API_KEY: &str = "log-check-site-key-6f1d";
const ASID: &str = "27182818284590";
const FIRST_NAME: &str = "Wilhelmina";

fn capture() -> Captured {
    let captured = Captured::default();
    let filter = ts::EnvFilter::new(
        "info,shared=debug,http_api=debug,sender=debug,deadline_alerts=debug,\
         local_runner=debug,integration_tests=debug,messenger_sandbox=off",
    );
    // The functions' own format (JSON, the spans' fields included), more levels.
    let settings = shared::logging::LogSettings { json: true, filter };
    if let Err(e) = shared::logging::try_init(settings, captured.clone()) {
        panic!("a global subscriber is already set: {e}");
    }
    captured
}

fn field<'a>(v: &'a serde_json::Value, name: &str) -> &'a str {
    match v[name].as_str() {
        Some(s) if !s.is_empty() => s,
        _ => panic!("no {name} in {v}"),
    }
}

/// Set in the child process that runs the test's body.
const IN_OWN_PROCESS: &str = "LOG_SECRETS_IN_OWN_PROCESS";

/// Runs this test again, alone, in a child process of this binary and passes on its output. The
/// capture is the process's global tracing subscriber: in a process of its own it sees this run
/// and nothing else, and no other test of the binary logs into it or has set a subscriber before.
async fn in_own_process(test: &str) {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => panic!("this test binary: {e}"),
    };
    let name = integration_tests::test_name(module_path!(), test);
    let out = match tokio::process::Command::new(exe)
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(IN_OWN_PROCESS, "1")
        .output()
        .await
    {
        Ok(out) => out,
        Err(e) => panic!("{name} in a child process: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed in its own process:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_end_to_end_run_logs_no_secret_token_or_personal_data() {
    if std::env::var_os(IN_OWN_PROCESS).is_none() {
        return in_own_process("an_end_to_end_run_logs_no_secret_token_or_personal_data").await;
    }
    let logs = capture();
    let s = start_stack(|mut settings| {
        settings.secrets.api_keys = vec![API_KEY.into()];
        settings.with(
            env::INITIAL_MESSAGE_TEXT,
            "Hi {first_name}! Thanks for connecting with us on Messenger.",
        )
    })
    .await;

    // 1. A person opts in through the sandbox; the initial message is sent; they reply (PSID).
    let login_id = s.opt_in().await;
    s.wait_for_state(&login_id, State::Sent).await;
    let reply = s
        .sandbox_post(
            "/_sandbox/message",
            serde_json::json!({"login_id": login_id, "text": "hello"}),
        )
        .await;
    assert_eq!(reply["webhook_status"], 200);
    let psid = field(&reply, "psid").to_owned();

    // 2. Another person logs in with the JavaScript SDK; the site records the login via the API.
    // (The sender is held until the login is recorded, so the message carries the first name.)
    s.local.pause_sender(true);
    let minted = s
        .sandbox_post(
            "/_sandbox/user_token",
            serde_json::json!({"asid": ASID, "first_name": FIRST_NAME}),
        )
        .await;
    let user_token = field(&minted, "access_token").to_owned();
    let login_id_2 = field(&minted, "login_id").to_owned();
    let recorded = match s
        .http
        .post(format!("{}/v1/logins", s.local.api_base_url))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({"user_access_token": user_token}))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("/v1/logins: {e}"),
    };
    assert_eq!(recorded.status(), 201);
    s.local.pause_sender(false);
    s.wait_for_state(&login_id_2, State::Sent).await;
    let inbox = s.inbox_for(&login_id_2);
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].text.contains(FIRST_NAME), "{}", inbox[0].text);
    let reply_2 = s
        .sandbox_post(
            "/_sandbox/message",
            serde_json::json!({"login_id": login_id_2, "text": "Thanks"}),
        )
        .await;
    let psid_2 = field(&reply_2, "psid").to_owned();
    let user = match s
        .http
        .get(format!("{}/v1/users/{ASID}", s.local.api_base_url))
        .bearer_auth(API_KEY)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("/v1/users: {e}"),
    };
    assert_eq!(user.status(), 200);

    // 3. Refusals log their reasons: a mis-signed webhook, a bad API key, an invalid user token.
    let body = r#"{"object":"page","entry":[]}"#;
    assert_eq!(s.post_webhook(body, Some("sha256=00")).await.as_u16(), 401);
    let refused = s
        .http
        .post(format!("{}/v1/logins", s.local.api_base_url))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({"user_access_token": format!("{user_token}x")}))
        .send()
        .await;
    assert!(refused.is_ok_and(|r| r.status() == 400));

    // 4. The second person asks for their data to be deleted.
    let deletion = s
        .sandbox_post("/_sandbox/data-deletion", serde_json::json!({"asid": ASID}))
        .await;
    assert_eq!(deletion["status"], 200);

    s.stop().await;
    let text = logs.text();
    if std::env::var_os("SHOW_CAPTURED_LOGS").is_some() {
        eprintln!("{text}");
    }

    // The capture works and saw the run (so the absence checks below mean something).
    for expected in [
        "initial message sent",
        "webhook processed",
        "webhook refused: bad signature",
    ] {
        assert!(text.contains(expected), "{expected:?} not logged:\n{text}");
    }
    assert!(
        text.contains(&login_id[..8]) || text.contains(&login_id_2[..8]),
        "the 8-character login_id prefix is expected in the logs:\n{text}"
    );

    let forbidden: Vec<(&str, String)> = vec![
        ("app secret", sb::DEFAULT_APP_SECRET.into()),
        ("page access token", sb::DEFAULT_PAGE_ACCESS_TOKEN.into()),
        ("client token", sb::DEFAULT_CLIENT_TOKEN.into()),
        ("verify token", sb::DEFAULT_VERIFY_TOKEN.into()),
        ("API key", API_KEY.into()),
        ("API key digest", http_api::auth::key_hash(API_KEY)),
        ("user access token", user_token.clone()),
        ("login_id", login_id.clone()),
        ("login_id (API login)", login_id_2.clone()),
        ("login_id prefix of 12", login_id[..12].to_owned()),
        ("PSID", psid.clone()),
        ("PSID (API login)", psid_2.clone()),
        ("asid", ASID.into()),
        ("first name", FIRST_NAME.into()),
    ];
    let leaks: Vec<String> = forbidden
        .iter()
        .filter(|(_, value)| text.contains(value.as_str()))
        .map(|(what, value)| {
            let line = text
                .lines()
                .find(|l| l.contains(value.as_str()))
                .unwrap_or_default();
            format!("{what} in: {line}")
        })
        .collect();
    assert!(leaks.is_empty(), "{leaks:#?}");
}
