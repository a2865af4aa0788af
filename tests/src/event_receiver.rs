//! A website backend's event receiver for the tests and the benches (issue 12): an HTTP server on
//! 127.0.0.1 (a random port) that records every delivery (headers, body, when) and answers 204, or
//! 503 while it is "down"; and the check of a delivery with the Standard Webhooks reference
//! package (Python, `infra/python/verify_standard_webhooks.py` in the workspace's `.venv`).

use axum::http::{HeaderMap, StatusCode};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The path the example site's receiver uses too (`/backend/events`).
pub const RECEIVER_PATH: &str = "/backend/events";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: Instant,
    /// What the receiver answered.
    pub status: u16,
}

impl Delivery {
    pub fn webhook_id(&self) -> &str {
        self.headers.get("webhook-id").map_or("", String::as_str)
    }
}

#[derive(Default)]
struct State {
    deliveries: Mutex<Vec<Delivery>>,
    down: AtomicBool,
}

/// The running receiver (stops when dropped).
pub struct EventReceiver {
    /// `http://127.0.0.1:{port}/backend/events`.
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EventReceiver {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let seen = state.clone();
        let app = axum::Router::new().route(
            RECEIVER_PATH,
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let status = if seen.down.load(Ordering::SeqCst) {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::NO_CONTENT
                    };
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    seen.deliveries.lock().unwrap().push(Delivery {
                        headers,
                        body,
                        at: Instant::now(),
                        status: status.as_u16(),
                    });
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}{RECEIVER_PATH}"),
            state,
            task,
        }
    }

    /// While down, every request is answered 503 (and still recorded).
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Every request so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.deliveries.lock().unwrap().clone()
    }

    /// The requests answered 2xx.
    pub fn delivered(&self) -> Vec<Delivery> {
        let mut d = self.deliveries();
        d.retain(|d| (200..300).contains(&d.status));
        d
    }

    /// Wait until `count` deliveries were answered 2xx (or `timeout`); returns them.
    pub async fn wait_for_delivered(&self, count: usize, timeout: Duration) -> Vec<Delivery> {
        let until = Instant::now() + timeout;
        loop {
            let d = self.delivered();
            if d.len() >= count || Instant::now() >= until {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Verify `delivery` with the Standard Webhooks reference package (Python) and `secret`. `Err`
/// holds the package's reason.
pub fn verify_with_reference_package(secret: &str, delivery: &Delivery) -> Result<(), String> {
    use std::io::Write;
    let root = local_runner::moto::workspace_root();
    let mut child = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("infra/python/verify_standard_webhooks.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the venv's python (make venv): {e}"))?;
    let input = serde_json::json!({
        "secret": secret,
        "headers": delivery.headers,
        "body": delivery.body,
    });
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}
