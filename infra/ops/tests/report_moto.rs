//! `report` against a table provisioned from template.yaml in moto and seeded through the real
//! DynamoDB store: the JSON and the text carry the expected figures.

use local_runner::local_state::{LocalState, write_in};
use local_runner::moto::{MotoServer, workspace_root};
use local_runner::provision::provision;
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::domain::opt_in::SendOutcome;
use shared::domain::opt_in::{HOUR_MS, LastError, Millis, OptIn, OptInKey, utc};
use shared::ports::opt_ins::OptInStore;
use std::process::Command;

const PAGE: &str = "200000000000002";
const DAY: Millis = 24 * HOUR_MS;

fn opt_in(login: &str, at: Millis) -> OptIn {
    OptIn::new(OptInKey::new(PAGE, login), Some(at), at, DAY, 2 * HOUR_MS)
}

fn error(code: i64) -> LastError {
    LastError {
        code,
        subcode: None,
        fbtrace_id: Some("trace".into()),
        message: "Invalid OAuth access token.".into(),
    }
}

/// Seed, through the store's own conditional writes, a day that starts at `t0`: 20 opt-ins sent
/// after 1..=20 s (one of them opted out afterwards), one expired, one opted out, one unreachable,
/// one still RETRYING past its deadline, and two outside the day.
async fn seed(store: &DynamoOptInStore, t0: Millis) {
    for i in 0..20i64 {
        let o = opt_in(&format!("sent-login-{i:02}"), t0 + i * 60_000);
        let k = o.key();
        store.create_opt_in(&o).await.unwrap();
        let at = o.opted_in_at;
        assert!(
            store
                .claim_for_send(&k, "w", at + 500, at + 60_000)
                .await
                .unwrap()
                .is_done()
        );
        let sent = SendOutcome::Sent {
            message_id: format!("m_{i}"),
        };
        let done_at = at + (i + 1) * 1000;
        assert!(
            store
                .finish_send(&k, "w", &sent, done_at)
                .await
                .unwrap()
                .is_done()
        );
    }
    // One person stops after their message was sent: the opt-in stays SENT, with opted_out_at.
    let stopped = OptInKey::new(PAGE, "sent-login-00");
    assert!(
        store
            .opt_out_late(&stopped, "stop_keyword", t0 + HOUR_MS)
            .await
            .unwrap()
            .is_done()
    );

    let expired = opt_in("expired-login-000000", t0 + 100);
    store.create_opt_in(&expired).await.unwrap();
    store
        .mark_alerted(&expired.key(), expired.alert_at)
        .await
        .unwrap();
    assert!(
        store
            .expire(&expired.key(), expired.deadline_at)
            .await
            .unwrap()
            .is_done()
    );

    let out = opt_in("optout-login-000000", t0 + 200);
    store.create_opt_in(&out).await.unwrap();
    assert!(
        store
            .opt_out(&out.key(), "api", t0 + 300)
            .await
            .unwrap()
            .is_done()
    );

    let gone = opt_in("unreach-login-00000", t0 + 400);
    store.create_opt_in(&gone).await.unwrap();
    store
        .claim_for_send(&gone.key(), "w", t0 + 500, t0 + 60_000)
        .await
        .unwrap();
    let unreachable = SendOutcome::Unreachable { error: error(551) };
    store
        .finish_send(&gone.key(), "w", &unreachable, t0 + 600)
        .await
        .unwrap();

    let stuck = opt_in("retry-login-0000000", t0 + 700);
    store.create_opt_in(&stuck).await.unwrap();
    store
        .claim_for_send(&stuck.key(), "w", t0 + 800, t0 + 60_000)
        .await
        .unwrap();
    let retry = SendOutcome::Retry { error: error(190) };
    store
        .finish_send(&stuck.key(), "w", &retry, t0 + 900)
        .await
        .unwrap();

    for (login, at) in [("before-login", t0 - 1), ("after-login", t0 + DAY)] {
        store.create_opt_in(&opt_in(login, at)).await.unwrap();
    }
}

fn report_command(endpoint: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ops"));
    c.arg("report")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("TABLE_NAME")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_seeded_table() {
    let moto = MotoServer::shared().expect("moto starts");
    let sdk = moto.sdk_config().await;
    let stack = format!("r{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let p = provision(
        &workspace_root().join("template.yaml"),
        &sdk,
        &stack,
        r#"{"app_secret":"a","page_access_token":"p","verify_token":"v"}"#,
    )
    .await
    .expect("provisioned");
    let store = DynamoOptInStore::new(aws_sdk_dynamodb::Client::new(&sdk), &p.table_name);
    // Three days ago: every deadline of the day has passed.
    let t0 = (chrono::Utc::now().timestamp_millis() - 3 * DAY) / 1000 * 1000;
    seed(&store, t0).await;
    let (since, until) = (utc(t0), utc(t0 + DAY));

    // --table NAME, normal credentials (here: the emulator through AWS_ENDPOINT_URL), --json.
    let out = report_command(&moto.endpoint)
        .args([
            "--table",
            &p.table_name,
            "--since",
            &since,
            "--until",
            &until,
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["since"], since);
    assert_eq!(r["until"], until);
    assert_eq!(r["opt_ins"], 24);
    assert_eq!(r["states"]["SENT"], 20);
    assert_eq!(r["states"]["EXPIRED"], 1);
    assert_eq!(r["states"]["OPTED_OUT"], 1);
    assert_eq!(r["states"]["UNREACHABLE"], 1);
    assert_eq!(r["states"]["RETRYING"], 1);
    assert_eq!(r["open"], 0);
    assert_eq!(r["settled"], 23);
    assert_eq!(
        (
            r["sent"].clone(),
            r["sent_on_time"].clone(),
            r["sent_late"].clone()
        ),
        (20.into(), 20.into(), 0.into())
    );
    assert_eq!(r["sent_on_time_percent"], 87.0);
    let l = &r["opt_in_to_sent_seconds"];
    assert_eq!(
        (l["p50"].as_f64(), l["p95"].as_f64(), l["p99"].as_f64()),
        (Some(10.0), Some(19.0), Some(20.0))
    );
    assert_eq!(l["samples"], 20);
    assert_eq!(r["alerted"], 1);
    // Every opt-out, also the one recorded on a SENT opt-in.
    assert_eq!(
        r["opt_out_sources"],
        serde_json::json!({"api": 1, "stop_keyword": 1})
    );
    assert_eq!(
        r["opt_outs_after_end"],
        serde_json::json!({"stop_keyword": 1})
    );
    let missed = r["missed_deadlines"].as_array().unwrap();
    let prefixes: Vec<&str> = missed
        .iter()
        .map(|m| m["login_id_prefix"].as_str().unwrap())
        .collect();
    assert_eq!(prefixes, ["expired-", "retry-lo"]);
    assert_eq!(missed[0]["state"], "EXPIRED");
    assert_eq!(missed[0]["deadline"], utc(t0 + 100 + DAY));
    assert_eq!(missed[1]["state"], "RETRYING");
    assert_eq!(missed[1]["last_error"]["code"], 190);
    assert!(
        !stdout.contains("expired-login-000000"),
        "only login_id prefixes"
    );

    // No flag and no TABLE_NAME: the local stack's state file, text output.
    let dir = std::env::temp_dir().join(format!("report-{stack}"));
    write_in(
        &dir,
        &LocalState {
            aws_endpoint_url: moto.endpoint.clone(),
            region: "us-east-1".into(),
            table_name: p.table_name.clone(),
            alert_topic_arn: p.alert_topic_arn.clone(),
            api_base_url: "http://127.0.0.1:3000".into(),
            events_url: None,
        },
    )
    .unwrap();
    let out = report_command("http://127.0.0.1:9")
        .env_remove("AWS_ENDPOINT_URL")
        .current_dir(&dir)
        .args([
            "--since",
            &since,
            "--until",
            &until,
            "--html",
            "report.html",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Issue 13: `--html FILE` also writes the page, from the same figures.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap_or_default();
    assert!(html.contains("<dd id=\"p50\">10.000 s</dd>"), "{html}");
    assert!(
        html.contains("<span id=\"missed-count\">2</span>"),
        "{html}"
    );
    assert!(
        html.contains("<span id=\"opt-out-count\">2</span>")
            && html.contains("<span id=\"opt-out-after-end-count\">1</span>"),
        "{html}"
    );
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "opt-ins           24",
        "sent on time      87.0 % (20 of 23 settled; 0 still open)",
        "sent late         0",
        "p50 10.000 s  p95 19.000 s  p99 20.000 s  max 20.000 s (20 messages)",
        "OPTED_IN 0, SENDING 0, RETRYING 1, PAUSED 0, SENT 20, UNREACHABLE 1, EXPIRED 1, OPTED_OUT 1",
        "alerted at risk   1",
        "opted out by      api 1, stop_keyword 1\n",
        "after the end   stop_keyword 1 (recorded on SENT",
        "missed deadlines  2",
        "Invalid OAuth access token.",
        &format!("{} (local, {})", p.table_name, moto.endpoint),
        "html              report.html (open it in a browser)",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    assert!(!text.contains("retry-login-0000000"));

    // Issue 14: the README's example opts in 25 hours ago and is alerted as missed; the default
    // report (no --since) must list it, and say on its first line which opt-ins it counts.
    let now = chrono::Utc::now().timestamp_millis();
    let late = opt_in("late-expired-login", now - 25 * HOUR_MS);
    store.create_opt_in(&late).await.unwrap();
    assert!(
        store
            .expire(&late.key(), late.deadline_at)
            .await
            .unwrap()
            .is_done()
    );
    let out = report_command("http://127.0.0.1:9")
        .env_remove("AWS_ENDPOINT_URL")
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Login Connect compliance report: every opt-in in the table"),
        "{first}"
    );
    let row = text
        .lines()
        .find(|l| l.contains("late-exp"))
        .unwrap_or_else(|| panic!("the 25-hours-old expiry is missing:\n{text}"));
    assert!(row.contains("EXPIRED"), "{row}");
    // Every opt-in of the table: the day (24), the two around it and the late one.
    assert!(text.contains("opt-ins           27"), "{text}");
    // The day's two, the two around it (unsent past their deadlines) and the late one.
    assert!(text.contains("missed deadlines  5"), "{text}");
    assert!(
        text.contains("ALERTED yes when"),
        "the legend explains ALERTED:\n{text}"
    );
    std::fs::remove_dir_all(&dir).ok();

    // Mistakes are named.
    let out = report_command(&moto.endpoint)
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument"));
    let empty = std::env::temp_dir().join(format!("report-empty-{stack}"));
    std::fs::create_dir_all(&empty).unwrap();
    let out = report_command(&moto.endpoint)
        .current_dir(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("make run"));
    std::fs::remove_dir_all(&empty).ok();
}
