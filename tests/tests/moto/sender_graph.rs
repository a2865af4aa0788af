//! The sender against the Messenger sandbox over real HTTP, one test per class of the Graph error
//! table: the terminal state, the item's evidence (attempts, last_error code/subcode/fbtrace_id),
//! the batch response, and that retried or paused records are sent once the fault clears. The
//! opt-in store is DynamoDB in moto; the clock is manual. The rows follow Messenger's "Common Error
//! Codes" (updated 2026-06-25) as docs/sender.md lists them.

use integration_tests::worlds::sender::{SenderWorld, sandbox_secrets, secrets_with};
use messenger_sandbox::{FaultKind, FaultRule};
use shared::config::env;
use shared::domain::alert::AlertKind;
use shared::domain::jobs::SendJob;
use shared::domain::opt_in::{HOUR_MS, OptInKey, State};
use shared::domain::page::PauseCause;
use std::collections::HashMap;
use std::sync::Arc;

fn failures(r: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

fn error(code: i64, subcode: Option<i64>, trace: &str) -> FaultRule {
    FaultRule {
        fbtrace_id: Some(trace.to_owned()),
        ..FaultRule::error(code, subcode)
    }
}

/// An error with Graph's own wording (the text decides some rows).
fn error_saying(code: i64, subcode: Option<i64>, trace: &str, message: &str) -> FaultRule {
    FaultRule {
        message: Some(message.to_owned()),
        ..error(code, subcode, trace)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_back_off_inside_the_deadline_and_are_sent_once_the_fault_clears() {
    let w = SenderWorld::with_moto(&[(env::GRAPH_TIMEOUT_MS, "400")]).await;
    // (name, fault, expected last_error (code, subcode, fbtrace_id))
    type Expected = (i64, Option<i64>, Option<&'static str>);
    let cases: Vec<(&str, FaultRule, Expected)> = vec![
        (
            "1200",
            error(1200, Some(2_018_024), "T1200"),
            (1200, Some(2_018_024), Some("T1200")),
        ),
        ("613", error(613, None, "T613"), (613, None, Some("T613"))),
        (
            "613/2534040",
            error(613, Some(2_534_040), "T613b"),
            (613, Some(2_534_040), Some("T613b")),
        ),
        ("341", error(341, None, "T341"), (341, None, Some("T341"))),
        (
            "4",
            error(4, Some(2_018_022), "T4"),
            (4, Some(2_018_022), Some("T4")),
        ),
        ("17", error(17, None, "T17"), (17, None, Some("T17"))),
        ("32", error(32, None, "T32"), (32, None, Some("T32"))),
        (
            "80004",
            error(80_004, None, "T80004"),
            (80_004, None, Some("T80004")),
        ),
        ("2", error(2, None, "T2"), (2, None, Some("T2"))),
        ("1/99", error(1, Some(99), "T1"), (1, Some(99), Some("T1"))),
        (
            "503",
            FaultRule {
                status: Some(503),
                ..error(12_345, None, "T503")
            },
            (12_345, None, Some("T503")),
        ),
        (
            "timeout",
            FaultRule {
                kind: FaultKind::Timeout,
                delay_ms: Some(1_500),
                ..FaultRule::default()
            },
            (0, None, None),
        ),
        (
            "closed",
            FaultRule {
                kind: FaultKind::Close,
                ..FaultRule::default()
            },
            (0, None, None),
        ),
    ];
    for (name, fault, (code, subcode, trace)) in cases {
        let key = w.opt_in().await;
        w.fault(fault);
        let message_id = format!("m-{name}");
        let r = w.run(&message_id, &key, 1).await;
        assert_eq!(failures(&r), [message_id.as_str()], "{name}: retried");
        let item = w.item(&key).await;
        assert_eq!((item.state, item.attempts), (State::Retrying, 1), "{name}");
        let last = item.last_error.clone().expect("last_error recorded");
        assert_eq!(
            (last.code, last.subcode, last.fbtrace_id.as_deref()),
            (code, subcode, trace),
            "{name}: {last:?}"
        );
        let (receipt, seconds) = w.retry.visibility().last().cloned().unwrap();
        assert_eq!(receipt, format!("receipt-{message_id}"));
        assert!(
            (3..=5).contains(&seconds),
            "{name}: first backoff {seconds} s"
        );
        assert!(w.inbox_for(&key).is_empty(), "{name}");

        // The fault has cleared (count 1): the record comes back and is sent, once.
        w.clock.advance(i64::from(seconds) * 1000);
        let r = w.run(&message_id, &key, 2).await;
        assert!(failures(&r).is_empty(), "{name}");
        let item = w.item(&key).await;
        assert_eq!((item.state, item.attempts), (State::Sent, 2), "{name}");
        let inbox = w.inbox_for(&key);
        assert_eq!(inbox.len(), 1, "{name}");
        assert_eq!(
            item.message_id.as_deref(),
            Some(inbox[0].message_id.as_str())
        );
    }
    assert!(
        w.alerts.published().is_empty(),
        "transient errors do not alert"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_people_end_the_opt_in_and_are_never_retried() {
    let w = SenderWorld::with_moto(&[]).await;
    let cases = [
        (
            "551",
            Some(error(551, Some(1_545_041), "T551")),
            551,
            Some(1_545_041),
        ),
        (
            "200",
            Some(error(200, Some(1_545_041), "T200")),
            200,
            Some(1_545_041),
        ),
        (
            "10",
            Some(error(10, Some(2_018_108), "T10")),
            10,
            Some(2_018_108),
        ),
        // Real: a login_id the sandbox (Facebook) does not know.
        ("2018001", None, 100, Some(2_018_001)),
        // A bare 100 naming the recipient (Meta's table of 2026-06-25).
        (
            "100 no matching user",
            Some(error_saying(
                100,
                None,
                "T100a",
                "(#100) No matching user found",
            )),
            100,
            None,
        ),
        (
            "100 invalid FBID",
            Some(error_saying(
                100,
                None,
                "T100b",
                "(#100) Bad Parameter Error: Invalid FBID",
            )),
            100,
            None,
        ),
        // The person stopped notification messages for this topic.
        (
            "10/1893015",
            Some(error(10, Some(1_893_015), "T1893015")),
            10,
            Some(1_893_015),
        ),
        // "This person isn't available right now" under another code.
        (
            "10/1545041",
            Some(error(10, Some(1_545_041), "T1545041")),
            10,
            Some(1_545_041),
        ),
    ];
    for (name, fault, code, subcode) in cases {
        let key = match fault {
            Some(f) => {
                let key = w.opt_in().await;
                w.fault(f);
                key
            }
            None => w.store_opt_in("unknown-to-facebook", 24 * HOUR_MS).await,
        };
        let r = w.run(name, &key, 1).await;
        assert!(failures(&r).is_empty(), "{name}: acknowledged");
        let item = w.item(&key).await;
        assert_eq!(
            (item.state, item.attempts),
            (State::Unreachable, 1),
            "{name}"
        );
        let last = item.last_error.unwrap();
        assert_eq!((last.code, last.subcode), (code, subcode), "{name}");
        assert!(last.fbtrace_id.is_some_and(|t| !t.is_empty()));
        assert!(item.terminal_at.is_some());
        // Another job for it never reaches Graph.
        let calls = w.sandbox.stats().send_requests;
        let r = w.run(&format!("{name}-again"), &key, 1).await;
        assert!(failures(&r).is_empty());
        assert_eq!(
            w.sandbox.stats().send_requests,
            calls,
            "{name}: not retried"
        );
        assert!(w.inbox_for(&key).is_empty());
        assert!(
            w.pages.get_page(&key.page_id).await.unwrap().is_none(),
            "{name}: one person's error never pauses the Page"
        );
    }
    assert!(w.alerts.published().is_empty());
    w.stop().await;
}

/// Issue 10: a bare `100` "No matching user found" paused the Page, and the resume re-queued the
/// same bad opt-in: a pause/resume loop until its deadline while every other opt-in waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_100_no_matching_user_is_unreachable_and_never_pauses_the_page() {
    let w = SenderWorld::in_memory(&[]).await;
    let bad = w.opt_in().await;
    let good = w.opt_in().await;
    w.fault(error_saying(
        100,
        None,
        "TNM",
        "(#100) No matching user found",
    ));
    assert!(failures(&w.run("bad", &bad, 1).await).is_empty());
    let item = w.item(&bad).await;
    assert_eq!((item.state, item.attempts), (State::Unreachable, 1));
    assert!(
        w.pages.get_page(&bad.page_id).await.unwrap().is_none(),
        "the Page is not paused"
    );
    assert!(w.retry.take_delayed().is_empty(), "no probe scheduled");
    assert!(w.alerts.published().is_empty(), "no configuration alert");
    // The next person is sent at once, not parked behind a pause.
    assert!(failures(&w.run("good", &good, 1).await).is_empty());
    assert_eq!(w.item(&good).await.state, State::Sent);
    assert_eq!(w.inbox_for(&good).len(), 1);
    // And the bad opt-in is never tried again.
    let calls = w.sandbox.stats().send_requests;
    assert!(failures(&w.run("bad-again", &bad, 2).await).is_empty());
    assert_eq!(w.sandbox.stats().send_requests, calls);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_errors_expire_the_opt_in_and_alert() {
    let w = SenderWorld::with_moto(&[]).await;
    let k1 = w.opt_in().await;
    w.fault(error(10, Some(2_018_278), "TW1"));
    let k2 = w.opt_in().await;
    // Real: Facebook saw the opt-in 25 hours ago while our record says now (a clock problem).
    let login = w.sandbox_opt_in(Some(w.now() - 25 * HOUR_MS)).await;
    let k3 = w.store_opt_in(&login, 24 * HOUR_MS).await;
    let r = w.run("w1", &k1, 1).await;
    assert!(failures(&r).is_empty());
    w.fault(error(10, Some(2_018_065), "TW2"));
    assert!(failures(&w.run("w2", &k2, 1).await).is_empty());
    assert!(failures(&w.run("w3", &k3, 1).await).is_empty());
    // Meta's table of 2026-06-25: 10/2534022, and the window text under any code.
    let k4 = w.opt_in().await;
    w.fault(error(10, Some(2_534_022), "TW4"));
    assert!(failures(&w.run("w4", &k4, 1).await).is_empty());
    let k5 = w.opt_in().await;
    w.fault(error_saying(
        100,
        None,
        "TW5",
        "(#100) This message is sent outside of allowed window.",
    ));
    assert!(failures(&w.run("w5", &k5, 1).await).is_empty());
    for (key, code, subcode) in [
        (&k1, 10, Some(2_018_278)),
        (&k2, 10, Some(2_018_065)),
        (&k3, 10, Some(2_018_278)),
        (&k4, 10, Some(2_534_022)),
        (&k5, 100, None),
    ] {
        let item = w.item(key).await;
        assert_eq!((item.state, item.attempts), (State::Expired, 1));
        let last = item.last_error.unwrap();
        assert_eq!((last.code, last.subcode), (code, subcode));
        assert!(
            item.terminal_at.unwrap() < item.deadline_at,
            "Graph said so before our deadline"
        );
    }
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 5);
    assert!(alerts.iter().all(|a| a.kind == AlertKind::WindowRejected));
    assert_eq!(w.sandbox.inbox().len(), 0);
    w.stop().await;
}

/// How the configuration gets broken, and how the operator fixes it.
enum Breakage {
    /// A fault rule (cleared to fix).
    Fault(FaultRule),
    /// Wrong credentials in the secret (the fix is a cold start with the right ones).
    Secrets(&'static str, &'static str),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_pause_the_page_alert_once_and_resume_when_fixed() {
    let cases: Vec<(&str, Breakage, i64, Option<i64>, PauseCause)> = vec![
        (
            "token",
            Breakage::Secrets("expired-token", "sandbox-app-secret"),
            190,
            None,
            PauseCause::Configuration,
        ),
        (
            "proof",
            Breakage::Secrets("sandbox-page-access-token", "wrong-app-secret"),
            100,
            None,
            PauseCause::Configuration,
        ),
        (
            "review",
            Breakage::Fault(error(200, Some(2_018_028), "TC1")),
            200,
            Some(2_018_028),
            PauseCause::Configuration,
        ),
        (
            "permission",
            Breakage::Fault(error(230, None, "TC2")),
            230,
            None,
            PauseCause::Configuration,
        ),
        (
            "payload",
            Breakage::Fault(error(100, None, "TC3")),
            100,
            None,
            PauseCause::Configuration,
        ),
        (
            "restricted",
            Breakage::Fault(error(10, Some(1_893_063), "TC4")),
            10,
            Some(1_893_063),
            PauseCause::PageRestricted,
        ),
        // Meta's table of 2026-06-25: the abuse warning (not a rate limit) and 368.
        (
            "abuse warning",
            Breakage::Fault(error(613, Some(2_018_338), "TC5")),
            613,
            Some(2_018_338),
            PauseCause::AbuseWarning,
        ),
        (
            "policy violation",
            Breakage::Fault(error(368, None, "TC6")),
            368,
            None,
            PauseCause::PageRestricted,
        ),
    ];
    for (name, breakage, code, subcode, cause) in cases {
        let mut w = SenderWorld::with_moto(&[(env::PAUSE_PROBE_SECONDS, "30")]).await;
        let k1 = w.opt_in().await;
        let k2 = w.opt_in().await;
        match &breakage {
            Breakage::Fault(f) => w.fault(FaultRule {
                fraction: Some(1.0),
                ..f.clone()
            }),
            Breakage::Secrets(token, secret) => w.use_secrets(&secrets_with(token, secret)),
        }
        let r = w.run("m1", &k1, 1).await;
        assert!(failures(&r).is_empty(), "{name}");
        let item = w.item(&k1).await;
        assert_eq!((item.state, item.attempts), (State::Paused, 1), "{name}");
        let last = item.last_error.unwrap();
        assert_eq!(
            (last.code, last.subcode),
            (code, subcode),
            "{name}: {last:?}"
        );
        let page = w
            .pages
            .get_page(&k1.page_id)
            .await
            .unwrap()
            .expect("Page state");
        assert!(page.is_paused(), "{name}");
        assert_eq!(page.cause, Some(cause));
        assert_eq!(page.probe_at, Some(w.now() + 30_000));
        let alerts = w.alerts.published();
        assert_eq!(alerts.len(), 1, "{name}");
        assert_eq!(alerts[0].kind, AlertKind::ConfigurationError);
        if cause == PauseCause::AbuseWarning {
            assert!(
                alerts[0].detail.contains("2018338") && alerts[0].detail.contains("abusive"),
                "the alert names the warning: {}",
                alerts[0].detail
            );
        }

        // The Page is paused: the next job parks its opt-in without calling Graph or alerting.
        let calls = w.sandbox.stats().send_requests;
        let r = w.run("m2", &k2, 1).await;
        assert!(failures(&r).is_empty());
        assert_eq!(w.item(&k2).await.state, State::Paused, "{name}");
        assert_eq!(
            w.sandbox.stats().send_requests,
            calls,
            "{name}: no Graph call while paused"
        );
        assert_eq!(w.alerts.published().len(), 1);

        // The operator fixes it; at the probe time, the queued probe job is sent and the Page
        // resumes, queueing its other paused opt-ins.
        match breakage {
            Breakage::Fault(_) => w.sandbox.clear_faults(),
            Breakage::Secrets(..) => w.use_secrets(&sandbox_secrets()),
        }
        let probe = w.retry.take_delayed();
        assert_eq!(probe, vec![(SendJob::for_key(&k1), 30)], "{name}");
        w.clock.advance(30_000);
        let r = w.run("probe", &k1, 1).await;
        assert!(failures(&r).is_empty());
        assert_eq!(w.item(&k1).await.state, State::Sent, "{name}");
        let page = w.pages.get_page(&k1.page_id).await.unwrap().unwrap();
        assert!(!page.is_paused(), "{name}: resumed");
        let requeued = w.queue.jobs();
        assert_eq!(requeued, vec![SendJob::for_key(&k2)], "{name}");
        let r = w.run("requeued", &k2, 1).await;
        assert!(failures(&r).is_empty());
        let item = w.item(&k2).await;
        assert_eq!((item.state, item.attempts), (State::Sent, 1), "{name}");
        assert_eq!(w.inbox_for(&k1).len() + w.inbox_for(&k2).len(), 2);
        assert_eq!(
            w.alerts.published().len(),
            1,
            "{name}: one alert for the whole pause"
        );
        w.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_errors_are_retried_a_bounded_number_of_times_then_alerted() {
    let w = SenderWorld::with_moto(&[]).await;
    let key = w.opt_in().await;
    w.fault(FaultRule {
        fraction: Some(1.0),
        ..error(12_345, Some(77), "TU")
    });
    for attempt in 1..=sender::MAX_UNKNOWN_ATTEMPTS {
        let r = w.run("u1", &key, 1).await;
        let item = w.item(&key).await;
        assert_eq!(item.attempts, attempt);
        if attempt < sender::MAX_UNKNOWN_ATTEMPTS {
            assert_eq!(failures(&r), ["u1"]);
            assert_eq!(item.state, State::Retrying);
            let (_, seconds) = w.retry.visibility().last().cloned().unwrap();
            w.clock.advance(i64::from(seconds) * 1000);
        } else {
            assert!(
                failures(&r).is_empty(),
                "not dropped silently: alerted and paused"
            );
            assert_eq!(item.state, State::Paused);
            let last = item.last_error.unwrap();
            assert_eq!(
                (last.code, last.subcode, last.fbtrace_id.as_deref()),
                (12_345, Some(77), Some("TU"))
            );
        }
    }
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::ConfigurationError);
    assert!(
        w.pages.get_page(&key.page_id).await.unwrap().is_none(),
        "one person's unknown error does not pause the Page"
    );
    // The operator sends the job again once the cause is known: it is resumed and sent.
    w.sandbox.clear_faults();
    let r = w.run("operator", &key, 1).await;
    assert!(failures(&r).is_empty());
    assert_eq!(w.item(&key).await.state, State::Sent);
    assert_eq!(w.inbox_for(&key).len(), 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_retried_until_the_deadline_nears_ends_expired_and_nothing_is_sent_at_or_after_it()
{
    let w = SenderWorld::in_memory(&[(env::GRAPH_TIMEOUT_MS, "1000")]).await;
    let margin = 1_000;
    let key = w.opt_in_with_window(90_000).await;
    let deadline = w.item(&key).await.deadline_at;
    w.fault(FaultRule {
        fraction: Some(1.0),
        ..error(1200, Some(2_018_024), "TD")
    });
    let mut sends_at = Vec::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 50);
        let calls = w.sandbox.stats().send_requests;
        let now = w.now();
        let r = w.run("d1", &key, 1).await;
        if w.sandbox.stats().send_requests > calls {
            sends_at.push(now);
        }
        if failures(&r).is_empty() {
            break;
        }
        let (_, seconds) = w.retry.visibility().last().cloned().unwrap();
        w.clock.advance(i64::from(seconds) * 1000);
    }
    let item = w.item(&key).await;
    assert_eq!(item.state, State::Expired);
    assert!(
        sends_at.len() >= 4,
        "backed off, not given up early: {sends_at:?}"
    );
    assert_eq!(item.attempts as usize, sends_at.len());
    for at in &sends_at {
        assert!(
            at + margin < deadline,
            "a send at {} ms before the deadline",
            deadline - at
        );
    }
    assert!(
        item.terminal_at.unwrap() < deadline,
        "expired before the deadline, not at it"
    );
    let alerts = w.alerts.published();
    assert_eq!(alerts.len(), 1);
    // Given up before the deadline (issue 10): not "missed" yet.
    assert_eq!(alerts[0].kind, AlertKind::GaveUpBeforeDeadline);
    assert_eq!(alerts[0].last_error.as_ref().map(|e| e.code), Some(1200));
    assert!(w.inbox_for(&key).is_empty());
    // Nothing more happens after the deadline, whatever arrives.
    w.sandbox.clear_faults();
    w.clock.set(deadline);
    let calls = w.sandbox.stats().send_requests;
    assert!(failures(&w.run("late", &key, 1).await).is_empty());
    assert_eq!(w.sandbox.stats().send_requests, calls);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_record_of_a_batch_gets_its_own_outcome() {
    let w = SenderWorld::with_moto(&[]).await;
    let mut keys: Vec<OptInKey> = Vec::new();
    for _ in 0..4 {
        keys.push(w.opt_in().await);
    }
    let unknown = w.store_opt_in("nobody-here", 24 * HOUR_MS).await;
    w.fault(FaultRule {
        page_id: Some("not-this-page".into()),
        ..error(1200, None, "x")
    });
    let ids = ["a", "b", "c", "d", "e"];
    let all: Vec<(&str, &OptInKey)> = ids
        .iter()
        .copied()
        .zip(keys.iter().chain(std::iter::once(&unknown)))
        .collect();
    let r = sender::handle_batch(
        &w.deps,
        integration_tests::worlds::sender::batch_event(&all, 1),
    )
    .await;
    assert!(failures(&r).is_empty());
    let states: HashMap<String, State> = {
        let mut m = HashMap::new();
        for (id, key) in &all {
            m.insert((*id).to_owned(), w.item(key).await.state);
        }
        m
    };
    assert_eq!(states["e"], State::Unreachable);
    for id in ["a", "b", "c", "d"] {
        assert_eq!(states[id], State::Sent, "{id}");
    }
    assert_eq!(w.sandbox.inbox().len(), 4);
    w.stop().await;
}

/// Graph names the version that served a call in `facebook-api-version`; when it is not
/// GRAPH_API_VERSION the client counts `GraphApiVersionMismatch` (alarmed in template.yaml), and
/// the send itself goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_answering_another_api_version_is_counted() {
    use shared::adapters::memory::metrics::MemoryMetrics;
    use shared::domain::metrics::Metric;
    let mut w = SenderWorld::in_memory(&[]).await;
    assert_eq!(w.deps.config.graph_api_version, "v27.0", "the default");
    let metrics = Arc::new(MemoryMetrics::default());
    let client = shared::adapters::graph::GraphClient::new(
        &w.deps.config,
        &integration_tests::worlds::sender::sandbox_secrets(),
    )
    .unwrap()
    .with_metrics(metrics.clone());
    w.deps.ports.messenger = Arc::new(client);

    // The asked version answers: nothing counted.
    let k1 = w.opt_in().await;
    assert!(failures(&w.run("v1", &k1, 1).await).is_empty());
    assert_eq!(w.item(&k1).await.state, State::Sent);
    assert_eq!(metrics.sum(Metric::GraphApiVersionMismatch), 0.0);

    // Graph serves another version (the asked one expired): counted, and still sent.
    w.sandbox.serve_api_version(Some("v26.0"));
    let k2 = w.opt_in().await;
    assert!(failures(&w.run("v2", &k2, 1).await).is_empty());
    assert_eq!(w.item(&k2).await.state, State::Sent);
    assert_eq!(metrics.sum(Metric::GraphApiVersionMismatch), 1.0);
    // Error answers carry the header too.
    let k3 = w.opt_in().await;
    w.fault(error(1200, None, "TV"));
    assert_eq!(failures(&w.run("v3", &k3, 1).await), ["v3"]);
    assert_eq!(metrics.sum(Metric::GraphApiVersionMismatch), 2.0);
    assert!(
        metrics
            .recorded()
            .iter()
            .all(|(page, _)| page == messenger_sandbox::DEFAULT_PAGE_ID)
    );
    w.stop().await;
}
