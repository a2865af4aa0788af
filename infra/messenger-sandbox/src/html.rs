//! HTML for the sandbox's browser pages: the one stylesheet (`shared/assets/style.css`, which the
//! HTTP API's pages use too) served at [`STYLE_PATH`], one page shell whose header links back to
//! the index, escaping (pages show what apps and people typed), and the HTML error page that
//! browser routes answer with. Graph routes keep Graph's JSON errors (`errors`).

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Where every sandbox page finds the stylesheet.
pub(crate) const STYLE_PATH: &str = "/_sandbox/style.css";

/// The project's one stylesheet, compiled in.
pub(crate) const STYLESHEET: &str = include_str!("../../../shared/assets/style.css");

/// Escape text for HTML element content and double- or single-quoted attributes.
pub(crate) fn escape_html(s: &str) -> String {
    const ENTITIES: [(char, &str); 5] = [
        ('&', "&amp;"),
        ('<', "&lt;"),
        ('>', "&gt;"),
        ('"', "&quot;"),
        ('\'', "&#39;"),
    ];
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match ENTITIES.iter().find(|(special, _)| *special == c) {
            Some((_, entity)) => out.push_str(entity),
            None => out.push(c),
        }
    }
    out
}

/// A whole page: `title` (plain text), extra `<head>` markup, the `<main>` class and its HTML.
pub(crate) fn page(title: &str, head: &str, main_class: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · Messenger sandbox</title>\
         <link rel=\"stylesheet\" href=\"{STYLE_PATH}\">{head}</head><body>\n\
         <header class=\"top\"><a id=\"back\" class=\"brand\" href=\"/\">← Messenger sandbox</a>\
         <span class=\"where\">a local stand-in for Facebook</span></header>\n\
         <main class=\"{main_class}\">\n{body}\n</main></body></html>\n",
        title = escape_html(title),
    )
}

/// The error page of a browser route: what went wrong and the way back.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<div class=\"card error\"><h1>{}</h1><p id=\"error\">{}</p>\
         <p><a href=\"/\">Back to the sandbox's start page</a></p></div>",
        escape_html(title),
        escape_html(message),
    );
    (status, Html(page(title, "", "narrow", &body))).into_response()
}

/// Whether the caller is a browser asking for a page (`Accept: text/html`).
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// `GET /_sandbox/style.css`.
pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLESHEET,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(
            escape_html(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
    }

    #[test]
    fn every_page_links_the_stylesheet_and_the_way_back() {
        let html = page("A <b>title</b>", "", "", "<p>x</p>");
        assert!(html.contains(&format!("href=\"{STYLE_PATH}\"")), "{html}");
        assert!(
            html.contains("id=\"back\" class=\"brand\" href=\"/\""),
            "{html}"
        );
        assert!(html.contains("A &lt;b&gt;title&lt;/b&gt;"), "{html}");
        assert!(
            STYLESHEET.contains("body {"),
            "the shared stylesheet is compiled in"
        );
    }
}
