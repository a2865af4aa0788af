//! A function binary run as its own process, the way Lambda runs it: a local Lambda Runtime API on
//! 127.0.0.1 hands it SQS batches received from the real queue (moto) and settles them from its
//! batch response, as the SQS event source mapping does. The process can be killed (SIGKILL) at
//! any moment: what it had received then stays invisible until the queue's visibility timeout,
//! and what it had claimed stays leased, exactly as when a Lambda instance dies mid-batch.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use shared::config::env;
use std::collections::HashMap;
use std::path::Path as FsPath;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A batch handed to the process.
#[derive(Debug, Clone)]
pub struct HandedBatch {
    /// SQS message ids of the records (the sender's lease owners start with them).
    pub message_ids: Vec<String>,
    /// The job bodies, as received.
    pub bodies: Vec<String>,
    pub handed_at: std::time::Instant,
}

struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
}

#[derive(Clone)]
struct Api {
    queue: Arc<Queue>,
    in_flight: Arc<Mutex<HashMap<String, Vec<Message>>>>,
    handed: mpsc::UnboundedSender<HandedBatch>,
    settled: Arc<Mutex<usize>>,
}

/// One function process behind its own Runtime API.
pub struct SqsLambdaProcess {
    child: Child,
    server: tokio::task::JoinHandle<()>,
    settled: Arc<Mutex<usize>>,
}

impl SqsLambdaProcess {
    /// Spawn `binary` with `env` (plus the Runtime API address) and feed it batches from the queue.
    /// Returns the process and a stream of the batches handed to it.
    pub async fn spawn(
        binary: &FsPath,
        env: &[(String, String)],
        sqs: aws_sdk_sqs::Client,
        queue_url: &str,
        queue_arn: &str,
    ) -> Result<(Self, mpsc::UnboundedReceiver<HandedBatch>), String> {
        let (handed, batches) = mpsc::unbounded_channel();
        let settled = Arc::new(Mutex::new(0));
        let api = Api {
            queue: Arc::new(Queue {
                sqs,
                url: queue_url.to_owned(),
                arn: queue_arn.to_owned(),
            }),
            in_flight: Arc::default(),
            handed,
            settled: settled.clone(),
        };
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("listen: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("listen: {e}"))?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "soak-sender")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/soak-sender")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "soak")
            .env(env::RUST_LOG, "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                server.abort();
                return Err(format!("spawn {}: {e}", binary.display()));
            }
        };
        Ok((
            Self {
                child,
                server,
                settled,
            },
            batches,
        ))
    }

    /// Invocations the process answered (batches settled).
    pub fn settled(&self) -> usize {
        *self.settled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// SIGKILL the process (its PID only) and stop its Runtime API.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
    }
}

impl Drop for SqsLambdaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn next(State(api): State<Api>) -> Result<(HeaderMap, String), StatusCode> {
    let q = &api.queue;
    let messages = loop {
        let received = q
            .sqs
            .receive_message()
            .queue_url(&q.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        match received {
            Ok(out) => {
                let messages = out.messages.unwrap_or_default();
                if !messages.is_empty() {
                    break messages;
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let event = local_runner::event_sources::sqs_event(&messages, &q.arn)
        .and_then(|e| serde_json::to_string(&e))
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let request_id = uuid::Uuid::new_v4().to_string();
    let _ = api.handed.send(HandedBatch {
        message_ids: messages
            .iter()
            .filter_map(|m| m.message_id().map(str::to_owned))
            .collect(),
        bodies: messages
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect(),
        handed_at: std::time::Instant::now(),
    });
    api.in_flight
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(request_id.clone(), messages);
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", &request_id);
    put("lambda-runtime-deadline-ms", &deadline.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:soak-sender",
    );
    put(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
    );
    put("content-type", "application/json");
    Ok((headers, event))
}

async fn response(State(api): State<Api>, Path(id): Path<String>, body: String) -> StatusCode {
    let messages = api
        .in_flight
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    let Some(messages) = messages else {
        return StatusCode::BAD_REQUEST;
    };
    // An unreadable batch response fails the whole batch, as Lambda does.
    if let Ok(batch) = serde_json::from_str::<SqsBatchResponse>(&body) {
        let q = &api.queue;
        local_runner::event_sources::settle_batch(&q.sqs, &q.url, &messages, &batch).await;
    }
    *api.settled.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    StatusCode::ACCEPTED
}

async fn invocation_error(State(api): State<Api>, Path(id): Path<String>) -> StatusCode {
    // The whole batch comes back after the visibility timeout.
    api.in_flight
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    StatusCode::ACCEPTED
}

async fn init_error() -> StatusCode {
    StatusCode::ACCEPTED
}
