//! `START_AT_LOGIN=true` through the real adapters on moto (issue 12, section 3): the login's opt-in
//! and the `messaging_optins` webhook meet in DynamoDB's conditional write, whatever their order —
//! webhook first, login first, both at once — and the person gets exactly one opt-in, one send job
//! on the SQS queue and one initial message.

use integration_tests::worlds::moto::{PAGE, world};
use shared::domain::login::{LoginSource, Permission};
use shared::domain::opt_in::State;
use shared::facebook::crypto::derive_login_id;

/// The moto world's client token and app id (`worlds::moto`).
const CLIENT_TOKEN: &str = "client-token";
const APP: &str = "100000000000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_start_at_login_login_and_webhook_in_any_order_make_one_opt_in_one_job_one_message() {
    let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    let w = world(now, &[("START_AT_LOGIN", "true")]).await;
    let login = |asid: &str| {
        let verified = http_api::login::verify::Verified {
            asid: asid.to_owned(),
            first_name: Some("Ana".into()),
            permission: Permission::Granted,
        };
        let http = &w.http;
        async move {
            http_api::login::verify::record(http, &verified, LoginSource::Callback, None)
                .await
                .unwrap_or_else(|e| panic!("login not recorded: {e}"));
        }
    };
    let login_id = |asid: &str| derive_login_id(CLIENT_TOKEN, asid, APP, PAGE);

    // Webhook first, then the login.
    assert_eq!(w.webhook(&login_id("1001"), now - 1_000).await, 200);
    login("1001").await;
    // Login first, then the webhook.
    login("1002").await;
    assert_eq!(w.webhook(&login_id("1002"), now).await, 200);
    // Both at once.
    let id = login_id("1003");
    let (_, status) = futures::join!(login("1003"), w.webhook(&id, now));
    assert_eq!(status, 200);

    for asid in ["1001", "1002", "1003"] {
        let item = w.item(&login_id(asid)).await;
        assert_eq!(item.state, State::OptedIn, "{asid}");
    }
    assert_eq!(w.item(&login_id("1002")).await.opted_in_at, now);
    assert!(w.item(&login_id("1002")).await.started_at_login);

    // The queue holds exactly three jobs, and the sender sends three messages, one per person.
    let mut delivered = 0;
    loop {
        let n = w.deliver_send_jobs().await;
        if n == 0 {
            break;
        }
        delivered += n;
    }
    assert_eq!(delivered, 3, "one send job per person");
    let mut sent: Vec<String> = w.messenger.sent().into_iter().map(|(_, l, _)| l).collect();
    sent.sort();
    let mut expected: Vec<String> = ["1001", "1002", "1003"].map(login_id).to_vec();
    expected.sort();
    assert_eq!(sent, expected, "one initial message per person");
    for asid in ["1001", "1002", "1003"] {
        assert_eq!(w.item(&login_id(asid)).await.state, State::Sent, "{asid}");
    }
}
