//! The sweep's query over the sparse, sharded due index, at scale, against moto: 10,000 unsent
//! opt-ins spread over a day (and 2,000 terminal ones) — one sweep reads exactly the due ones and
//! attends to them, and the next sweep reads nothing. Then promise 3 through the real handlers on
//! moto: Meta's block holds over a pause of ours until the unblock, and the sweep queues what a
//! Page resume left behind.

use integration_tests::population::population;
use integration_tests::worlds::moto::world;
use shared::adapters::dynamodb::table;
use shared::domain::metrics::Metric;
use std::collections::BTreeSet;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_unsent_opt_ins_one_sweep_reads_exactly_the_due_ones() {
    let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    let w = world(now, &[]).await;
    let p = population(10_000, 2_000, now);
    let expected = p.expected_due();
    let seeding = p
        .seed(&aws_sdk_dynamodb::Client::new(&w.sdk), &w.p.table_name)
        .await
        .unwrap();
    eprintln!(
        "seeded {} items into moto with BatchWriteItem in {seeding:.2?}",
        p.items.len()
    );

    // The query: exactly the due ones, and nothing else read.
    let started = Instant::now();
    let (due, cost) = w
        .store
        .due_for_attention_measured(now, 100_000)
        .await
        .unwrap();
    eprintln!(
        "due-index query: {} due of {} unsent in {:.2?}; {cost:?}",
        due.len(),
        p.unsent(),
        started.elapsed()
    );
    let got: BTreeSet<String> = due.iter().map(|o| o.login_id.clone()).collect();
    assert_eq!(got.len(), due.len(), "no duplicates");
    assert_eq!(got, expected);
    assert_eq!(
        cost.items_read,
        expected.len() as u64,
        "no item read in vain"
    );
    assert_eq!(cost.requests, table::DUE_SHARDS, "one query per shard");

    // The sweep attends to them: expires what passed its deadline, alerts once what passed its
    // alert time, re-enqueues what is stuck in OPTED_IN.
    let expired = p
        .items
        .iter()
        .filter(|s| !s.opt_in.state.is_terminal() && s.opt_in.deadline_at <= now)
        .count();
    let alerts = p
        .items
        .iter()
        .map(|s| &s.opt_in)
        .filter(|o| {
            !o.state.is_terminal()
                && o.deadline_at > now
                && o.alerted_at.is_none()
                && o.alert_at <= now
        })
        .count();
    let stuck = p
        .items
        .iter()
        .map(|s| &s.opt_in)
        .filter(|o| {
            o.state == shared::domain::opt_in::State::OptedIn
                && o.deadline_at > now
                && o.created_at + shared::domain::attention::STUCK_AFTER_MS <= now
        })
        .count();
    let started = Instant::now();
    let s = w.sweep().await;
    eprintln!("sweep over moto: {s:?} in {:.2?}", started.elapsed());
    assert_eq!(s.checked, expected.len());
    assert_eq!((s.expired, s.alerted, s.requeued), (expired, alerts, stuck));
    assert_eq!(w.metrics.sum(Metric::DeadlinesMissed) as usize, expired);
    assert_eq!(w.metrics.sum(Metric::OptInsAtRisk) as usize, alerts);
    let published = w.published_alerts().await;
    assert_eq!(published.len(), expired + alerts);

    // Everything due was handled and moved on: the next sweep at the same time reads nothing.
    let (again, cost) = w
        .store
        .due_for_attention_measured(now, 100_000)
        .await
        .unwrap();
    assert!(again.is_empty(), "{} still due", again.len());
    assert_eq!(cost.items_read, 0);
}

mod page_pause {
    use integration_tests::worlds::moto::{APP_SECRET, PAGE, World, world};
    use shared::config::env;
    use shared::domain::opt_in::{Millis, State};
    use shared::facebook::graph_error::{GraphError, GraphErrorBody};
    use shared::ports::clock::Clock;
    use shared::ports::pages::PageStateStore;
    use std::time::Duration;

    fn now() -> Millis {
        chrono::Utc::now().timestamp_millis() / 1000 * 1000
    }

    fn token_expired() -> GraphError {
        GraphError::Api {
            status: 400,
            body: GraphErrorBody {
                code: 190,
                error_subcode: Some(463),
                message: "token expired".into(),
                ..Default::default()
            },
        }
    }

    /// Meta's `messaging_policy_enforcement` webhook, signed, as API Gateway hands it over.
    async fn policy(w: &World, action: &str) -> u16 {
        let t = now();
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{t},"messaging":[{{"recipient":{{"id":"{PAGE}"}},"timestamp":{t},"policy_enforcement":{{"action":"{action}","reason":"spam"}}}}]}}]}}"#
        );
        let signature =
            shared::facebook::webhook::sign_webhook(APP_SECRET.as_bytes(), body.as_bytes());
        let mut request = lambda_http::Request::new(lambda_http::Body::from(body));
        *request.method_mut() = lambda_http::http::Method::POST;
        *request.uri_mut() = lambda_http::http::Uri::from_static("/webhooks/messenger");
        let headers = request.headers_mut();
        headers.insert(
            "content-type",
            lambda_http::http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            shared::facebook::webhook::SIGNATURE_HEADER,
            lambda_http::http::HeaderValue::from_str(&signature).unwrap(),
        );
        http_api::handle(&w.http, request).await.status().as_u16()
    }

    /// Deliver send jobs until the queue has none visible.
    async fn drain(w: &World) -> usize {
        let mut delivered = 0;
        loop {
            let n = w.deliver_send_jobs().await;
            if n == 0 {
                return delivered;
            }
            delivered += n;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn meta_block_during_a_configuration_pause_holds_until_unblock_on_moto() {
        let t0 = now();
        let w = world(t0, &[(env::PAUSE_PROBE_SECONDS, "1")]).await;
        assert_eq!(w.webhook("L1", t0).await, 200);
        // The first send meets an expired token: the Page is paused by us, a probe queued.
        w.messenger.then_fail(token_expired());
        assert_eq!(drain(&w).await, 1);
        let page = w.store.get_page(PAGE).await.unwrap().unwrap();
        assert_eq!(
            page.cause,
            Some(shared::domain::page::PauseCause::Configuration)
        );
        assert_eq!(w.webhook("L2", t0).await, 200);

        // Meta blocks the Page during the pause; then the probe time passes.
        assert_eq!(policy(&w, "block").await, 200);
        w.clock.advance(600_000);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(
            drain(&w).await >= 2,
            "the probe job and L2's job were delivered"
        );
        assert!(
            w.messenger.sent().is_empty(),
            "no message to a blocked Page"
        );
        assert!(w.store.get_page(PAGE).await.unwrap().unwrap().is_blocked());
        assert_eq!(w.item("L1").await.state, State::Paused);
        assert_eq!(w.item("L2").await.state, State::Paused);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(drain(&w).await, 0, "no job comes back while blocked");

        // Meta unblocks: both are queued again and sent.
        assert_eq!(policy(&w, "unblock").await, 200);
        assert_eq!(drain(&w).await, 2);
        assert_eq!(w.item("L1").await.state, State::Sent);
        assert_eq!(w.item("L2").await.state, State::Sent);
        assert_eq!(w.messenger.sent().len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sweep_requeues_paused_opt_ins_a_resume_left_behind_on_moto() {
        let t0 = now();
        let w = world(t0, &[]).await;
        let error = shared::domain::opt_in::LastError {
            code: 190,
            ..Default::default()
        };
        assert!(
            w.store
                .pause_page(
                    PAGE,
                    shared::domain::page::PauseCause::Configuration,
                    &error,
                    t0,
                    t0 + 300_000
                )
                .await
                .unwrap()
        );
        assert_eq!(w.webhook("L1", t0).await, 200);
        assert_eq!(drain(&w).await, 1);
        assert_eq!(w.item("L1").await.state, State::Paused);
        // The Page resumes, and the process stops before queueing its paused opt-ins.
        w.clock.advance(1_000);
        assert!(w.store.resume_page(PAGE, w.clock.now()).await.unwrap());
        w.clock.advance(10_000);
        let s = w.sweep().await;
        assert_eq!(s.requeued_paused, 1);
        assert_eq!(drain(&w).await, 1);
        assert_eq!(w.item("L1").await.state, State::Sent);
        // Nothing left behind any more.
        assert_eq!(w.sweep().await.requeued_paused, 0);
    }
}
