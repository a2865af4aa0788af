//! The example website of the local stack: one static page (`infra/local/example/index.html`)
//! with a "Continue with Facebook" link to the API's `/login/start?return_to=<this page>`, so a
//! person can click the whole flow in a browser. Served on its own origin, like a real website.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(!html.contains("{{"));
    }
}
