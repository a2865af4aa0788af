//! The example website of the local stack: one static page (`infra/local/example/index.html`)
//! with a "Continue with Facebook" link to the API's `/login/start?return_to=<this page>`, so a
//! person can click the whole flow in a browser. Served on its own origin, like a real website.
//! It also links the shop's backend page (`/backend`, `example_backend`: the events it receives and
//! a reply box) and `GET /report.html`: the compliance report of the local table, rendered live by the
//! same function as `make report ARGS="--html FILE"`.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use shared::domain::opt_in::Millis;
use shared::domain::report::compute;
use shared::domain::report_html::render_html;
use shared::ports::history::OptInHistory;
use std::sync::Arc;

const PAGE: &str = include_str!("../example/index.html");

/// The page with its links filled in.
pub fn render(site_base_url: &str, api_base_url: &str, inbox_url: &str) -> String {
    let return_to = format!("{site_base_url}/");
    let login_url = format!(
        "{api_base_url}/login/start?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &return_to)
            .finish()
    );
    PAGE.replace("{{LOGIN_URL}}", &escape(&login_url))
        .replace("{{INBOX_URL}}", &escape(inbox_url))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn router(page: String) -> axum::Router {
    let page = Arc::new(page);
    axum::Router::new().route(
        "/",
        get(move || {
            let page = page.clone();
            async move {
                (
                    [(header::CACHE_CONTROL, "no-store")],
                    Html(page.as_str().to_owned()),
                )
                    .into_response()
            }
        }),
    )
}

/// The report page of every opt-in `history` holds before `now` (as `make report`'s default).
pub async fn report_page(history: &dyn OptInHistory, now: Millis) -> Result<String, String> {
    let opt_ins = history
        .opt_ins_between(0, now)
        .await
        .map_err(|e| format!("could not read the opt-ins: {e}"))?;
    Ok(render_html(&compute(&opt_ins, 0, now, now)))
}

/// `GET /report.html`, over the local stack's table.
pub fn report_router(history: Arc<dyn OptInHistory>) -> axum::Router {
    axum::Router::new().route(
        "/report.html",
        get(move || {
            let history = history.clone();
            async move {
                let now = chrono::Utc::now().timestamp_millis();
                match report_page(history.as_ref(), now).await {
                    Ok(page) => ([(header::CACHE_CONTROL, "no-store")], Html(page)).into_response(),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
                }
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_report_page_counts_the_opt_ins_of_the_table() {
        use shared::adapters::memory::opt_ins::MemoryOptInStore;
        use shared::domain::opt_in::{OptIn, OptInKey};
        let store = MemoryOptInStore::new();
        let at = 1_795_536_000_000;
        for login in ["a", "b"] {
            store.insert(OptIn::new(
                OptInKey::new("200", login),
                Some(at),
                at,
                1000,
                0,
            ));
        }
        let html = report_page(&store, at + 60_000).await.unwrap();
        assert!(html.starts_with("<!doctype html>"), "{html}");
        assert!(html.contains("id=\"figure-opt-ins\">2<"), "{html}");
        // Both are past their 1-second deadline, unsent.
        assert!(
            html.contains("<span id=\"missed-count\">2</span>"),
            "{html}"
        );
    }

    #[test]
    fn the_link_starts_the_login_with_this_page_as_return_to() {
        let html = render(
            "http://127.0.0.1:8080",
            "http://127.0.0.1:3000",
            "http://127.0.0.1:4000/_sandbox/inbox?format=html",
        );
        assert!(html.contains(
            "href=\"http://127.0.0.1:3000/login/start?return_to=http%3A%2F%2F127.0.0.1%3A8080%2F\""
        ));
        assert!(html.contains("Continue with Facebook"));
        assert!(html.contains("href=\"http://127.0.0.1:4000/_sandbox/inbox?format=html\""));
        assert!(html.contains("<a id=\"report\" href=\"/report.html\">"));
        assert!(html.contains("<a id=\"backend\" href=\"/backend\">"));
        assert!(!html.contains("{{"));
    }
}
