//! One delivery attempt: POST the event's Standard Webhooks body with `webhook-id`,
//! `webhook-timestamp` (the attempt's Unix seconds), `webhook-signature` and
//! `content-type: application/json`. 2xx is delivered; any other status, a redirect (not
//! followed), a connection error or the timeout is a failure to retry.
//!
//! Nothing here logs the body or the URL: reqwest's errors carry the URL (with its query, which
//! may hold a receiver's token), so they are stripped of it before they are kept.

use crate::signing::Signer;
use shared::domain::events::OutboundEvent;

/// What an attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered { status: u16 },
    /// Anything else: the status when there was an answer, and why (without the URL).
    Failed { status: Option<u16>, reason: String },
}

/// POST `event` to `url`, signed by `signer` at `timestamp` (Unix seconds).
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    signer: &Signer,
    event: &OutboundEvent,
    timestamp: i64,
) -> Attempt {
    let body = event.body();
    let signature = signer.sign(&event.id, timestamp, &body);
    let sent = http
        .post(url)
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => Attempt::Delivered {
            status: response.status().as_u16(),
        },
        Ok(response) => Attempt::Failed {
            status: Some(response.status().as_u16()),
            reason: format!("the receiver answered {}", response.status().as_u16()),
        },
        Err(e) => Attempt::Failed {
            status: None,
            reason: if e.is_timeout() {
                "no answer within the timeout".to_owned()
            } else {
                e.without_url().to_string()
            },
        },
    }
}

/// The HTTP client of the event sender: `timeout` per attempt (10 s in production), redirects
/// not followed (a 3xx is a failure: the receiver's URL is configured, not discovered).
pub fn client(timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    let tls = shared::adapters::tls::web_tls()
        .map_err(|e| format!("could not build the TLS configuration: {e}"))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeout.min(std::time::Duration::from_secs(5)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(50))
        .user_agent(concat!("login-connect-events/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("could not build the HTTP client: {}", e.without_url()))
}
