//! The world of the model-based test: the three real handlers (http-api's `handle`, the sender's
//! `handle_batch`, deadline-alerts' `handle`) wired to ONE set of in-memory twins, ONE manual
//! clock and ONE Graph twin ([`ModelMessenger`]), plus a small SQS model (visibility, receive
//! counts, delays, redelivery, crash) so that jobs come back exactly as the queue would bring them.
//!
//! Requests are built as Facebook and API Gateway send them: signed webhooks, API calls with an
//! API key, `signed_request` callbacks. Nothing here knows the product's internals beyond its ports.

use super::messenger::{Answer, Hold, ModelMessenger, Ticks};
use aws_lambda_events::event::sqs::SqsEvent;
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::memory::config::test_config;
use shared::adapters::memory::erasure::MemoryErasure;
use shared::adapters::memory::logins::{MemoryFacebookLogin, MemoryLoginStore, ScriptedUser};
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::adapters::memory::queue::MemoryRetryQueue;
use shared::adapters::memory::queue::MemorySendQueue;
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::config::env;
use shared::config::secrets::Secrets;
use shared::domain::jobs::SendJob;
use shared::domain::opt_in::{HOUR_MS, Millis, OptInKey};
use shared::facebook::crypto::derive_login_id;
use shared::facebook::webhook::sign_webhook;
use shared::ports::clock::Clock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::oneshot;

pub const PAGE: &str = "200000000000002";
pub const APP: &str = "100000000000001";
pub const APP_SECRET: &str = "model-app-secret";
pub const CLIENT_TOKEN: &str = "model-client-token";
pub const API_KEY: &str = "model-api-key";
/// 2026-11-24T16:00:00Z.
pub const T0: Millis = 1_795_536_000_000;
/// The send queue's visibility timeout and `maxReceiveCount` (template.yaml).
pub const VISIBILITY_MS: Millis = 180_000;
pub const MAX_RECEIVES: u32 = 5;

/// One person of the model, by index (the trace names people by index, never by id).
#[derive(Debug, Clone)]
pub struct Person {
    pub asid: String,
    pub name: String,
    pub psid: String,
    /// The login_id Facebook puts in this person's opt-in webhook.
    pub login_id: String,
}

impl Person {
    pub fn new(i: usize) -> Self {
        let asid = format!("{}", 10_000_000_000_000u64 + i as u64);
        Self {
            login_id: derive_login_id(CLIENT_TOKEN, &asid, APP, PAGE),
            name: ["Ana", "Bruno", "Chen"][i % 3].to_owned(),
            psid: format!("{}", 70_000_000_000_000u64 + i as u64),
            asid,
        }
    }

    pub fn key(&self) -> OptInKey {
        OptInKey::new(PAGE, &self.login_id)
    }
}

/// Another handler's work, run while a Send API call is in flight.
pub type During<'w> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'w>>;
pub type DuringFn<'f> = dyn for<'w> Fn(&'w World) -> During<'w> + 'f;

/// Gives a closure the higher-ranked signature [`World::deliver`] expects.
pub fn during<F>(f: F) -> F
where
    F: for<'w> Fn(&'w World) -> During<'w>,
{
    f
}

/// One SQS message of the send queue.
#[derive(Debug, Clone)]
pub struct QueuedJob {
    /// This copy in the model (a redelivered message is a second copy of the same message).
    pub uid: u64,
    /// The SQS message (its id and receipt handles derive from it).
    pub seq: u64,
    pub key: OptInKey,
    pub visible_at: Millis,
    pub receives: u32,
}

/// What became of an invocation of the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEnd {
    Returned,
    /// The process died after Graph accepted (no SENT write, no acknowledgement).
    Crashed,
}

pub struct World {
    pub clock: Arc<ManualClock>,
    pub ticks: Arc<Ticks>,
    pub messenger: Arc<ModelMessenger>,
    pub store: Arc<MemoryOptInStore>,
    pub logins: Arc<MemoryLoginStore>,
    pub facebook: Arc<MemoryFacebookLogin>,
    pub send_queue: Arc<MemorySendQueue>,
    pub retry: Arc<MemoryRetryQueue>,
    pub scheduler: Arc<MemoryScheduler>,
    pub alerts: Arc<MemoryAlerts>,
    pub http: http_api::Deps,
    pub sender: sender::Deps,
    pub deadlines: deadline_alerts::Deps,
    pub people: Vec<Person>,
    pub derive_login_id: bool,
    /// The send queue: messages not deleted yet.
    pub queue: Vec<QueuedJob>,
    /// Every message ever queued (SQS may deliver any of them again).
    pub history: Vec<QueuedJob>,
    next_seq: u64,
    next_uid: u64,
    /// Messages moved to the dead-letter queue.
    pub dead_letters: usize,
    /// Sender invocations that carried a job for each opt-in, at the model's clock.
    pub deliveries: HashMap<OptInKey, Vec<Millis>>,
}

fn secrets() -> Secrets {
    let json = serde_json::json!({
        "app_secret": APP_SECRET,
        "page_access_token": "model-page-token",
        "client_token": CLIENT_TOKEN,
        "verify_token": "model-verify-token",
        "api_key_hashes": [http_api::auth::key_hash(API_KEY)],
    });
    match Secrets::from_json(&json.to_string()) {
        Ok(s) => s,
        Err(e) => panic!("model secrets: {e}"),
    }
}

impl World {
    pub fn new(people: usize, derive_login_id: bool) -> Self {
        let config = || {
            test_config(&[
                (
                    env::DERIVE_LOGIN_ID,
                    if derive_login_id { "true" } else { "false" },
                ),
                (
                    env::INITIAL_MESSAGE_TEXT,
                    "Hi {first_name}, thanks for opting in.",
                ),
                (env::GRAPH_TIMEOUT_MS, "10000"),
                (env::SEND_LEASE_SECONDS, "60"),
                (env::PAUSE_PROBE_SECONDS, "300"),
                (env::ALLOWED_RETURN_ORIGINS, "https://shop.example"),
                (env::PUBLIC_BASE_URL, "https://api.example"),
            ])
        };
        let clock = Arc::new(ManualClock::at(T0));
        let ticks = Arc::new(Ticks::default());
        let messenger = Arc::new(ModelMessenger::new(clock.clone(), ticks.clone()));
        let store = Arc::new(MemoryOptInStore::new());
        let logins = Arc::new(MemoryLoginStore::new());
        let facebook = Arc::new(MemoryFacebookLogin::default());
        let send_queue = Arc::new(MemorySendQueue::default());
        let retry = Arc::new(MemoryRetryQueue::default());
        let scheduler = Arc::new(MemoryScheduler::default());
        let alerts = Arc::new(MemoryAlerts::default());
        let metrics = Arc::new(shared::adapters::memory::metrics::MemoryMetrics::default());
        let ports = shared::ports::bundle::Ports {
            opt_ins: store.clone(),
            conversations: store.clone(),
            pages: store.clone(),
            erasure: Arc::new(MemoryErasure::new(store.clone(), logins.clone())),
            logins: logins.clone(),
            queue: send_queue.clone(),
            retry: retry.clone(),
            scheduler: scheduler.clone(),
            events: Arc::new(shared::adapters::memory::events::MemoryEvents::default()),
            follow_ups: Arc::new(shared::adapters::memory::follow_ups::MemoryFollowUps::default()),
            alerts: alerts.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            facebook: facebook.clone(),
            messenger: messenger.clone(),
        };
        let http = http_api::Deps::from_ports(config(), secrets().into(), &ports);
        let sender = sender::Deps {
            // Pacing is about throughput in real time; the model's time is the manual clock.
            pacer: Arc::new(sender::Pacer::new(1_000_000, 1_000_000)),
            ..sender::Deps::from_ports(config(), &ports)
        };
        let deadlines = deadline_alerts::Deps::from_ports(config(), &ports);
        Self {
            clock,
            ticks,
            messenger,
            store,
            logins,
            facebook,
            send_queue,
            retry,
            scheduler,
            alerts,
            http,
            sender,
            deadlines,
            people: (0..people).map(Person::new).collect(),
            derive_login_id,
            queue: Vec::new(),
            history: Vec::new(),
            next_seq: 0,
            next_uid: 0,
            dead_letters: 0,
            deliveries: HashMap::new(),
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    // ---- HTTP -------------------------------------------------------------------------------

    /// Send one request through http-api's handler: (status, JSON body or null).
    pub async fn http(&self, request: HttpRequest) -> (u16, serde_json::Value) {
        let response = http_api::handle(&self.http, request.build(self.now())).await;
        let status = response.status().as_u16();
        let body = serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
        (status, body)
    }

    /// A signed webhook delivery with these messaging items.
    pub fn webhook(&self, items: Vec<serde_json::Value>) -> HttpRequest {
        let now = self.now();
        let body = serde_json::json!({
            "object": "page",
            "entry": [{"id": PAGE, "time": now, "messaging": items}],
        })
        .to_string();
        HttpRequest::post("/webhooks/messenger")
            .header(
                "x-hub-signature-256",
                &sign_webhook(APP_SECRET.as_bytes(), body.as_bytes()),
            )
            .body("application/json", body)
    }

    pub fn optin_item(&self, p: usize, timestamp: Millis) -> serde_json::Value {
        serde_json::json!({
            "recipient": {"id": PAGE},
            "timestamp": timestamp,
            "optin": {"type": "user_messenger_contact", "login_id": self.people[p].login_id},
        })
    }

    pub fn message_item(&self, p: usize, text: &str, linked: bool) -> serde_json::Value {
        let person = &self.people[p];
        let mut item = serde_json::json!({
            "sender": {"id": person.psid},
            "recipient": {"id": PAGE},
            "timestamp": self.now(),
            "message": {"mid": format!("mid.{}", self.ticks.next()), "text": text},
        });
        if linked {
            item["prior_message"] =
                serde_json::json!({"source": "login_connect", "identifier": person.login_id});
        }
        item
    }

    pub fn stop_notifications_item(&self, p: usize, linked: bool) -> serde_json::Value {
        let person = &self.people[p];
        let mut optin = serde_json::json!({
            "type": "notification_messages",
            "notification_messages_status": "STOP NOTIFICATIONS",
        });
        if linked {
            optin["login_id"] = person.login_id.clone().into();
        }
        serde_json::json!({
            "sender": {"id": person.psid},
            "recipient": {"id": PAGE},
            "timestamp": self.now(),
            "optin": optin,
        })
    }

    pub fn policy_item(&self, action: &str) -> serde_json::Value {
        serde_json::json!({
            "recipient": {"id": PAGE},
            "timestamp": self.now(),
            "policy_enforcement": {"action": action, "reason": "model: policy"},
        })
    }

    /// `POST /v1/logins` with a user token Facebook knows for person `p` (granted).
    pub fn login_request(&self, p: usize) -> HttpRequest {
        let person = &self.people[p];
        let token = format!("model-token-{p}");
        self.facebook.token_for(
            &token,
            ScriptedUser {
                app_id: APP.into(),
                asid: person.asid.clone(),
                first_name: Some(person.name.clone()),
                messenger_granted: true,
            },
        );
        HttpRequest::post("/v1/logins").api_key().body(
            "application/json",
            serde_json::json!({ "user_access_token": token }).to_string(),
        )
    }

    pub fn api_opt_out_request(&self, p: usize) -> HttpRequest {
        HttpRequest::post(&format!("/v1/users/{}/opt-out", self.people[p].asid)).api_key()
    }

    /// A Deauthorize or Data Deletion callback for person `p`, signed now.
    pub fn callback_request(&self, path: &str, p: usize) -> HttpRequest {
        let issued_at = self.now() / 1000;
        let signed = shared::facebook::signed_request::sign_request(
            APP_SECRET.as_bytes(),
            &serde_json::json!({
                "algorithm": "HMAC-SHA256",
                "issued_at": issued_at,
                "expires": issued_at + 3600,
                "user_id": self.people[p].asid,
            }),
        );
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("signed_request", &signed)
            .finish();
        HttpRequest::post(path).body("application/x-www-form-urlencoded", form)
    }

    /// The status a deletion's confirmation code shows (`completed`, `partial`, …).
    pub async fn deletion_status(&self, code: &str) -> Option<String> {
        let (status, body) = self
            .http(
                HttpRequest::get("/facebook/data-deletion/status")
                    .query("code", code)
                    .header("accept", "application/json"),
            )
            .await;
        (status == 200).then(|| body["status"].as_str().unwrap_or_default().to_owned())
    }

    // ---- deadline-alerts --------------------------------------------------------------------

    pub async fn sweep(&self) -> bool {
        deadline_alerts::handle(&self.deadlines, serde_json::json!({"kind": "sweep"}))
            .await
            .is_ok()
    }

    /// Fire every per-opt-in schedule whose time has come (EventBridge Scheduler), then delete it
    /// (one-time schedules delete themselves after they run). An invocation that failed keeps
    /// its schedule: Scheduler retries it (then its DLQ, alarmed, keeps it).
    pub async fn fire_schedules(&self) -> usize {
        let now = self.now();
        let due: Vec<(String, shared::domain::jobs::DeadlineCheck)> = {
            let schedules = self
                .scheduler
                .schedules
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            schedules
                .iter()
                .filter(|(_, (_, at))| *at <= now)
                .map(|(name, (check, _))| (name.clone(), check.clone()))
                .collect()
        };
        for (name, check) in &due {
            let input = serde_json::to_value(shared::domain::jobs::AlertInput::DeadlineCheck(
                check.clone(),
            ))
            .unwrap_or_default();
            if deadline_alerts::handle(&self.deadlines, input)
                .await
                .is_err()
            {
                continue;
            }
            self.scheduler
                .schedules
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
        }
        due.len()
    }

    // ---- SQS --------------------------------------------------------------------------------

    /// Move what the handlers queued (new jobs, delayed jobs) into the queue model.
    pub fn absorb_jobs(&mut self) {
        let now = self.now();
        let fresh: Vec<SendJob> = self
            .send_queue
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for job in fresh {
            self.push_job(job.key(), now);
        }
        for (job, delay) in self.retry.take_delayed() {
            self.push_job(job.key(), now + Millis::from(delay) * 1000);
        }
    }

    fn push_job(&mut self, key: OptInKey, visible_at: Millis) {
        self.next_seq += 1;
        self.next_uid += 1;
        let job = QueuedJob {
            uid: self.next_uid,
            seq: self.next_seq,
            key,
            visible_at,
            receives: 0,
        };
        self.history.push(job.clone());
        self.queue.push(job);
    }

    /// Indexes (into `queue`) of the messages visible now.
    pub fn visible(&self) -> Vec<usize> {
        let now = self.now();
        (0..self.queue.len())
            .filter(|i| self.queue[*i].visible_at <= now)
            .collect()
    }

    /// Deliver these queued messages (indexes into `queue`) as one SQS batch. `hold`: hold the
    /// first Send API call open and run `during` while it is in flight.
    pub async fn deliver(&mut self, picks: &[usize], during: Option<&DuringFn<'_>>) -> BatchEnd {
        let now = self.now();
        let mut records = Vec::new();
        for &i in picks {
            let job = &mut self.queue[i];
            job.receives += 1;
            self.deliveries
                .entry(job.key.clone())
                .or_default()
                .push(now);
            records.push(job.clone());
        }
        let (end, failures) = self.invoke(&records, during).await;
        self.settle(&records, end, failures);
        end
    }

    /// SQS delivers an old message again (at-least-once): a copy of it, visible now, with the
    /// next receive count. Returns the index of the copy in `queue`.
    pub fn redelivery(&mut self, history_pick: usize) -> Option<usize> {
        if self.history.is_empty() {
            return None;
        }
        let mut copy = self.history[history_pick % self.history.len()].clone();
        copy.receives = self
            .queue
            .iter()
            .filter(|q| q.seq == copy.seq)
            .map(|q| q.receives)
            .max()
            .unwrap_or(copy.receives.max(1));
        self.next_uid += 1;
        copy.uid = self.next_uid;
        copy.visible_at = self.now();
        self.queue.push(copy);
        Some(self.queue.len() - 1)
    }

    async fn invoke(
        &self,
        records: &[QueuedJob],
        during: Option<&DuringFn<'_>>,
    ) -> (BatchEnd, Vec<String>) {
        use futures::future::{Either, select};
        let event = sqs_event(records);
        let (crash_tx, crash_rx) = oneshot::channel();
        self.messenger.on_crash(crash_tx);
        let batch = async {
            let batch = std::pin::pin!(sender::handle_batch(&self.sender, event));
            match select(batch, crash_rx).await {
                Either::Left((response, _)) => Some(response),
                Either::Right((Ok(()), _)) => None,
                Either::Right((Err(_), batch)) => Some(batch.await),
            }
        };
        let outcome = match during {
            None => batch.await,
            Some(during) => {
                let (entered_tx, entered_rx) = oneshot::channel();
                let (proceed_tx, proceed_rx) = oneshot::channel();
                self.messenger.hold_next(Hold {
                    entered: entered_tx,
                    proceed: proceed_rx,
                });
                let batch = std::pin::pin!(batch);
                match select(batch, entered_rx).await {
                    Either::Left((outcome, _)) => {
                        // Graph was never called: the other handler runs after the batch.
                        self.messenger.clear_hold();
                        during(self).await;
                        outcome
                    }
                    Either::Right((_, batch)) => {
                        during(self).await;
                        let _ = proceed_tx.send(());
                        batch.await
                    }
                }
            }
        };
        match outcome {
            Some(response) => (
                BatchEnd::Returned,
                response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.clone())
                    .collect(),
            ),
            None => (BatchEnd::Crashed, Vec::new()),
        }
    }

    /// Apply SQS's rules to the records of an invocation: deleted unless reported as failures;
    /// a failure comes back when its visibility says (or after the timeout); the last receive
    /// goes to the dead-letter queue; a crash leaves every record for the visibility timeout.
    fn settle(&mut self, records: &[QueuedJob], end: BatchEnd, failures: Vec<String>) {
        let now = self.now();
        let failures: Vec<String> = match end {
            BatchEnd::Crashed => records.iter().map(|r| message_id(r.seq)).collect(),
            BatchEnd::Returned => failures,
        };
        let visibility: Vec<(String, u32)> = std::mem::take(
            &mut *self
                .retry
                .visibility
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for record in records {
            let Some(pos) = self.queue.iter().position(|q| q.uid == record.uid) else {
                continue;
            };
            if !failures.contains(&message_id(record.seq)) {
                self.queue.remove(pos);
                continue;
            }
            if record.receives >= MAX_RECEIVES {
                self.queue.remove(pos);
                self.dead_letters += 1;
                continue;
            }
            let handle = receipt_handle(record);
            let delay = visibility
                .iter()
                .rev()
                .find(|(h, _)| *h == handle)
                .map_or(VISIBILITY_MS, |(_, s)| Millis::from(*s) * 1000);
            self.queue[pos].visible_at = now + delay;
        }
        self.absorb_jobs();
    }

    /// The Graph answer class for the next sends.
    pub fn graph(&self, answer: Answer) {
        self.messenger.answer_with(answer);
    }

    /// Make every send-queue write fail (or work again).
    pub fn queue_outage(&self, on: bool) {
        self.send_queue.fail.store(on, Ordering::SeqCst);
    }

    /// Make every schedule creation fail (or work again).
    pub fn scheduler_outage(&self, on: bool) {
        self.scheduler.fail.store(on, Ordering::SeqCst);
    }

    /// Make every due-index write fail (or work again).
    pub fn index_outage(&self, on: bool) {
        self.store.fail_watch.store(on, Ordering::SeqCst);
    }

    /// How long an opt-in may wait: its 24 h window.
    pub fn window_ms(&self) -> Millis {
        24 * HOUR_MS
    }
}

fn message_id(seq: u64) -> String {
    format!("msg-{seq}")
}

fn receipt_handle(job: &QueuedJob) -> String {
    format!("rh-{}-{}", job.seq, job.receives)
}

fn sqs_event(records: &[QueuedJob]) -> SqsEvent {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|job| {
            serde_json::json!({
                "messageId": message_id(job.seq),
                "receiptHandle": receipt_handle(job),
                "body": serde_json::to_string(&SendJob::for_key(&job.key)).unwrap_or_default(),
                "attributes": {"ApproximateReceiveCount": job.receives.to_string()},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:send",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap_or_default()
}

/// An HTTP request, as API Gateway (HTTP API, payload 2.0) hands it to the function.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: &'static str,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl HttpRequest {
    pub fn get(path: &str) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            ..Self::default()
        }
    }

    pub fn post(path: &str) -> Self {
        Self {
            method: "POST",
            path: path.into(),
            ..Self::default()
        }
    }

    pub fn query(mut self, k: &str, v: &str) -> Self {
        self.query.push((k.into(), v.into()));
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn api_key(self) -> Self {
        self.header("authorization", &format!("Bearer {API_KEY}"))
    }

    pub fn body(mut self, content_type: &str, body: String) -> Self {
        self.headers
            .push(("content-type".into(), content_type.into()));
        self.body = Some(body);
        self
    }

    pub fn build(&self, now: Millis) -> lambda_http::Request {
        let raw_query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        let mut headers = serde_json::Map::new();
        headers.insert("host".into(), "api.example".into());
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone().into());
        }
        let mut event = serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "model",
                "domainName": "api.example",
                "domainPrefix": "api",
                "http": {
                    "method": self.method,
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.9",
                    "userAgent": "model"
                },
                "requestId": "r",
                "routeKey": "$default",
                "stage": "$default",
                "time": "24/Nov/2026:00:00:00 +0000",
                "timeEpoch": now
            },
            "isBase64Encoded": false
        });
        if !self.query.is_empty() {
            let query: serde_json::Map<String, serde_json::Value> = self
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            event["queryStringParameters"] = serde_json::Value::Object(query);
        }
        if let Some(b) = &self.body {
            event["body"] = b.clone().into();
        }
        match lambda_http::request::from_str(&event.to_string()) {
            Ok(r) => r,
            Err(e) => panic!("model request does not parse: {e}"),
        }
    }
}
