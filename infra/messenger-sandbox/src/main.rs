//! `messenger-sandbox`: serve the local stand-in for graph.facebook.com until Ctrl-C.
//!
//! Environment: `SANDBOX_ADDR` (default `127.0.0.1:4000`), `FB_APP_ID`, `FB_APP_SECRET`,
//! `FB_PAGE_ID`, `FB_PAGE_ACCESS_TOKEN`, `FB_CLIENT_TOKEN`, `WEBHOOK_URL`, `OPTIN_WINDOW_SECONDS`.

use std::net::SocketAddr;
use std::process::ExitCode;

use messenger_sandbox::SandboxConfig;

const DEFAULT_ADDR: &str = "127.0.0.1:4000";

#[tokio::main]
async fn main() -> ExitCode {
    let env = |key: &str| std::env::var(key).ok();
    let config = match SandboxConfig::from_lookup(env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("messenger-sandbox: {e}");
            return ExitCode::from(2);
        }
    };
    let addr_text = env("SANDBOX_ADDR")
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let addr: SocketAddr = match addr_text.trim().parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("messenger-sandbox: SANDBOX_ADDR must be IP:PORT, got {addr_text:?}");
            return ExitCode::from(2);
        }
    };
    let sandbox = match messenger_sandbox::start(config.clone(), addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("messenger-sandbox: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Identifiers only; never the secret or the tokens.
    println!("messenger-sandbox listening on {}", sandbox.base_url);
    eprintln!(
        "messenger-sandbox: app {} page {}, webhook {}, opt-in window {} s; start page {}/ (links, inbox, controls)",
        config.app_id,
        config.page_id,
        config.webhook_url.as_deref().unwrap_or("(not set)"),
        config.optin_window_ms / 1000,
        sandbox.base_url,
    );
    wait_for_stop().await;
    eprintln!("messenger-sandbox: stopping");
    sandbox.shutdown().await;
    ExitCode::SUCCESS
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
