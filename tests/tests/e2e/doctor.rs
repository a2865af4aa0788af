//! `ops doctor` against a started local stack (issue 13 §1): a fresh stack is all ✔ (what
//! `make doctor` prints after `make run`), and each ✘ line is produced by breaking that one thing
//! in the sandbox (Meta's side) or in moto (the AWS side), with its printed fix asserted.
//! Doctor reads the stack through the state file the local runner writes (`.local/doctor.json`).

use integration_tests::worlds::stack::{TestStack, start_stack};
use local_runner::alert_inbox::AlertInbox;
use ops::doctor::{self, Report};
use shared::domain::preflight::{Check, Status};
use std::sync::atomic::{AtomicU32, Ordering};

/// A stack as `make run` leaves it: someone (the console's alert inbox) subscribed to the topic.
async fn ready_stack() -> TestStack {
    let stack = start_stack(|settings| settings).await;
    let inbox = format!("{}-alert-inbox", stack.local.stack_name);
    if let Err(e) =
        AlertInbox::subscribe(&stack.sdk, &stack.local.provisioned.alert_topic_arn, &inbox).await
    {
        panic!("{e}");
    }
    stack
}

/// Run doctor as `make doctor` does: through the local state file.
async fn run_doctor(stack: &TestStack, fix: bool) -> Report {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "doctor-{}-{}",
        stack.local.stack_name,
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let endpoint = stack.sdk.endpoint_url().unwrap_or_default().to_owned();
    local_runner::local_state::write_doctor_in(&dir, &stack.local.doctor_state(&endpoint))
        .unwrap_or_else(|e| panic!("{e}"));
    let facts = doctor::locate::local(&dir).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(facts.fix_command, "make doctor ARGS=--fix");
    let sdk = doctor::locate::sdk_config(&facts).await;
    doctor::check(&facts, &sdk, fix, chrono::Utc::now().timestamp_millis()).await
}

fn failures(report: &Report) -> Vec<&Check> {
    report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .collect()
}

/// Exactly one ✘, whose line starts with `what` and whose fix contains `fix`; printed as such.
fn assert_only_failure<'a>(report: &'a Report, what: &str, fix: &str) -> &'a Check {
    let text = report.render();
    let failed = failures(report);
    assert_eq!(failed.len(), 1, "one ✘ expected:\n{text}");
    let check = failed[0];
    assert!(
        check.what.contains(what),
        "{what:?} not in {:?}\n{text}",
        check.what
    );
    let printed_fix = check.fix.as_deref().unwrap_or_default();
    assert!(
        printed_fix.contains(fix),
        "{fix:?} not in the fix {printed_fix:?}"
    );
    assert!(
        text.contains(&format!("✘ {}\n    fix: {printed_fix}", check.what)),
        "{text}"
    );
    assert!(report.blocks_go_live());
    check
}

async fn sandbox_put(stack: &TestStack, path: &str, body: serde_json::Value) {
    let response = stack
        .http
        .put(format!("{}{path}", stack.sandbox.base_url))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(response.status(), 200, "{path}");
}

async fn put_secret(stack: &TestStack, id: &str, json: &str) {
    aws_sdk_secretsmanager::Client::new(&stack.sdk)
        .put_secret_value()
        .secret_id(id)
        .secret_string(json)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutSecretValue: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn make_doctor_on_a_fresh_local_stack_is_all_ticks() {
    let stack = ready_stack().await;
    let report = run_doctor(&stack, false).await;
    let text = report.render();
    println!("{text}");
    assert!(!report.blocks_go_live(), "{text}");
    assert!(report.fixed.is_empty());
    for line in [
        "✔ the secret holds app_secret, client_token, verify_token, page_access_token and 1 hashed API key(s)",
        "✔ Page token is valid (debug_token)",
        "✔ Page token is a PAGE token of Page 200000000000002 for app 100000000000001",
        "✔ Page token has pages_messaging",
        "✔ Page token never expires",
        "✔ Page 200000000000002 subscribed app 100000000000001 to messages, messaging_optins, messaging_policy_enforcement",
        "✔ App 100000000000001's page webhook calls",
        "answers Meta's handshake with the stored verify token",
        "✔ Graph serves v27.0 as asked",
        "✔ the alert topic has 1 confirmed subscription(s) (sqs)",
        "✔ the send dead-letter queue is empty",
        "✔ the scheduler dead-letter queue is empty",
        "✔ the events dead-letter queue is empty",
        "is ENABLED",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    // moto does not answer the Rust SDK's CloudWatch protocol (CBOR): said, not failed.
    let alarms = report
        .checks
        .iter()
        .find(|c| c.what.contains("alarms"))
        .unwrap_or_else(|| panic!("no alarms line in\n{text}"));
    assert_ne!(alarms.status, Status::Fail, "{text}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_or_invalidated_page_token_is_a_cross_with_the_way_to_replace_it() {
    let stack = ready_stack().await;
    for (state, code) in [("expired", "190/463"), ("invalidated", "190/460")] {
        sandbox_put(
            &stack,
            "/_sandbox/page_token",
            serde_json::json!({"state": state}),
        )
        .await;
        let report = run_doctor(&stack, false).await;
        let text = report.render();
        let failed = failures(&report);
        // The token's own line, and the Page-token call that could not be made with it.
        assert_eq!(failed.len(), 2, "{text}");
        assert!(
            failed[0]
                .what
                .starts_with(&format!("Page token is not valid ({code}")),
            "{text}"
        );
        assert!(
            failed[1].what.contains("Graph refused the token (190"),
            "{text}"
        );
        for check in failed {
            let fix = check.fix.as_deref().unwrap_or_default();
            assert!(
                fix.contains("Messenger → Settings → Access Tokens"),
                "{fix}"
            );
            assert!(
                fix.contains(&format!(
                    "--secret-id {}",
                    stack
                        .local
                        .provisioned
                        .page_token_secret_id
                        .clone()
                        .unwrap_or_default()
                )),
                "{fix}"
            );
        }
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_token_without_pages_messaging_or_about_to_expire_is_a_cross() {
    let stack = ready_stack().await;
    sandbox_put(
        &stack,
        "/_sandbox/page_token",
        serde_json::json!({"scopes": ["pages_show_list"]}),
    )
    .await;
    assert_only_failure(
        &run_doctor(&stack, false).await,
        "Page token lacks pages_messaging (scopes: pages_show_list)",
        "App Review",
    );
    sandbox_put(
        &stack,
        "/_sandbox/page_token",
        serde_json::json!({"scopes": ["pages_messaging"], "expires_in_seconds": 2 * 86_400 + 3_600}),
    )
    .await;
    assert_only_failure(
        &run_doctor(&stack, false).await,
        "(2 days left)",
        "Access Tokens",
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_token_stored_as_the_page_token_is_a_cross() {
    let stack = ready_stack().await;
    let minted = stack
        .sandbox_post(
            "/_sandbox/user_token",
            serde_json::json!({"webhook": "none"}),
        )
        .await;
    let user_token = minted["access_token"].as_str().unwrap_or_default();
    let id = stack
        .local
        .provisioned
        .page_token_secret_id
        .clone()
        .unwrap_or_default();
    put_secret(
        &stack,
        &id,
        &serde_json::json!({"page_access_token": user_token}).to_string(),
    )
    .await;
    let report = run_doctor(&stack, false).await;
    let text = report.render();
    let failed = failures(&report);
    assert!(failed[0].what.starts_with("Page token is a USER token, not a PAGE token, for Page none, not FB_PAGE_ID 200000000000002"), "{text}");
    assert!(
        failed[0]
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("Generate a token for Page 200000000000002"),
        "{text}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unsubscribed_page_is_a_cross_and_doctor_fix_subscribes_it() {
    let stack = ready_stack().await;
    sandbox_put(
        &stack,
        "/_sandbox/subscriptions",
        serde_json::json!({"page_subscribed": false}),
    )
    .await;
    assert_only_failure(
        &run_doctor(&stack, false).await,
        "Page 200000000000002 has not subscribed app 100000000000001 to its webhooks",
        "make doctor ARGS=--fix (POST /200000000000002/subscribed_apps?subscribed_fields=messages,messaging_optins,messaging_policy_enforcement)",
    );
    let fixed = run_doctor(&stack, true).await;
    assert_eq!(
        fixed.fixed,
        [
            "subscribed Page 200000000000002 to app 100000000000001 with messages,messaging_optins,messaging_policy_enforcement (POST /200000000000002/subscribed_apps)"
        ]
    );
    assert!(!fixed.blocks_go_live(), "{}", fixed.render());
    assert!(fixed.render().starts_with("fixed: subscribed Page"));

    // A Page subscribed without one field: --fix adds it and keeps the others.
    sandbox_put(
        &stack,
        "/_sandbox/subscriptions",
        serde_json::json!({"page_fields": ["messages", "messaging_optins", "message_reads"]}),
    )
    .await;
    assert_only_failure(
        &run_doctor(&stack, false).await,
        "without messaging_policy_enforcement",
        "--fix",
    );
    let fixed = run_doctor(&stack, true).await;
    assert!(
        fixed.fixed[0]
            .contains("with messages,messaging_optins,message_reads,messaging_policy_enforcement"),
        "{:?}",
        fixed.fixed
    );
    assert!(!fixed.blocks_go_live(), "{}", fixed.render());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_app_subscription_calling_elsewhere_inactive_or_short_of_a_field_is_a_cross() {
    let stack = ready_stack().await;
    let webhook = format!("{}/webhooks/messenger", stack.local.facebook_base_url());
    sandbox_put(
        &stack,
        "/_sandbox/subscriptions",
        serde_json::json!({"callback_url": "https://old.example/webhooks/messenger"}),
    )
    .await;
    assert_only_failure(
        &run_doctor(&stack, false).await,
        &format!(
            "page webhook calls https://old.example/webhooks/messenger, not this stack's {webhook}"
        ),
        &format!("Callback URL {webhook}"),
    );
    sandbox_put(
        &stack,
        "/_sandbox/subscriptions",
        serde_json::json!({"callback_url": webhook}),
    )
    .await;
    sandbox_put(
        &stack,
        "/_sandbox/subscriptions",
        serde_json::json!({"app_active": false}),
    )
    .await;
    assert_only_failure(
        &run_doctor(&stack, false).await,
        "page webhook subscription is inactive",
        "make the handshake line pass",
    );
    sandbox_put(
        &stack,
        "/_sandbox/subscriptions",
        serde_json::json!({"app_active": true, "app_fields": ["messages", "messaging_optins"]}),
    )
    .await;
    assert_only_failure(
        &run_doctor(&stack, false).await,
        "page webhook subscription lacks messaging_policy_enforcement",
        "Webhooks → Page → Edit subscription",
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verify_token_the_webhook_does_not_know_is_a_cross() {
    let stack = ready_stack().await;
    // The stored token changes; the running http-api keeps the one it read (SecretTtlSeconds),
    // as after a put-secret-value that did not reach the dashboard.
    let mut secret: serde_json::Value =
        serde_json::from_str(&local_runner::LocalSecrets::default().to_json()).unwrap_or_default();
    secret["verify_token"] = "a-token-the-webhook-does-not-know".into();
    put_secret(
        &stack,
        &stack.local.provisioned.secret_id,
        &secret.to_string(),
    )
    .await;
    assert_only_failure(
        &run_doctor(&stack, false).await,
        "answered the handshake with HTTP 403",
        "verify_token",
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graph_version_served_instead_of_the_asked_one_is_a_cross() {
    let stack = ready_stack().await;
    stack.sandbox.serve_api_version(Some("v28.0"));
    assert_only_failure(
        &run_doctor(&stack, false).await,
        "Graph served v28.0 when asked for v27.0",
        "GraphApiVersion=v28.0",
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_secret_with_placeholders_or_a_plain_api_key_is_a_cross() {
    let stack = ready_stack().await;
    let mut secret: serde_json::Value =
        serde_json::from_str(&local_runner::LocalSecrets::default().to_json()).unwrap_or_default();
    secret["client_token"] = "…".into();
    secret["api_key_hashes"] = serde_json::json!(["local-dev-key-not-secret"]);
    put_secret(
        &stack,
        &stack.local.provisioned.secret_id,
        &secret.to_string(),
    )
    .await;
    let report = run_doctor(&stack, false).await;
    let check = assert_only_failure(
        &report,
        "the secret: client_token is empty or a placeholder; api_key_hashes holds a value that is not a SHA-256 hex digest",
        &format!(
            "put-secret-value --secret-id {}",
            stack.local.provisioned.secret_id
        ),
    );
    assert!(
        check
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("sha256sum")
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_topic_nobody_receives_is_a_cross() {
    let stack = ready_stack().await;
    let sns = aws_sdk_sns::Client::new(&stack.sdk);
    let topic = &stack.local.provisioned.alert_topic_arn;
    let subs = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for s in subs.subscriptions() {
        sns.unsubscribe()
            .subscription_arn(s.subscription_arn().unwrap_or_default())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_only_failure(
        &run_doctor(&stack, false).await,
        "nobody receives the alerts: the alert topic has no confirmed subscription",
        &format!("aws sns subscribe --topic-arn {topic} --protocol email"),
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_in_any_dead_letter_queue_is_a_cross() {
    let stack = ready_stack().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let p = &stack.local.provisioned;
    let events = p
        .events
        .as_ref()
        .unwrap_or_else(|| panic!("the local stack provisions the events queues"));
    for (url, what, fix) in [
        (
            &p.send_dlq_url,
            "the send dead-letter queue holds 1 message(s)",
            "start-message-move-task",
        ),
        (
            &p.scheduler_dlq_url,
            "the scheduler dead-letter queue holds 1 message(s)",
            "purge-queue",
        ),
        (
            &events.dlq_url,
            "the events dead-letter queue holds 1 message(s)",
            "move them back with ops redrive",
        ),
    ] {
        sqs.send_message()
            .queue_url(url)
            .message_body("{}")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_only_failure(&run_doctor(&stack, false).await, what, fix);
        sqs.purge_queue()
            .queue_url(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_sweep_schedule_is_a_cross() {
    use aws_sdk_scheduler::types::ScheduleState;
    let stack = ready_stack().await;
    let scheduler = aws_sdk_scheduler::Client::new(&stack.sdk);
    let name = stack
        .local
        .provisioned
        .sweep_schedule
        .clone()
        .unwrap_or_default();
    let current = scheduler
        .get_schedule()
        .name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    scheduler
        .update_schedule()
        .name(&name)
        .schedule_expression(current.schedule_expression().unwrap_or_default())
        .set_flexible_time_window(current.flexible_time_window().cloned())
        .set_target(current.target().cloned())
        .state(ScheduleState::Disabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_only_failure(
        &run_doctor(&stack, false).await,
        &format!("the sweep schedule {name} is DISABLED"),
        &format!("Schedules → {name} → Enable"),
    );
    stack.stop().await;
}
