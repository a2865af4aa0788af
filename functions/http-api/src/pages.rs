//! The HTTP API's browser pages as pure functions: the sign-in status page (granted / declined /
//! cancelled / error), the error page of a refused sign-in or a bad `return_to` (with a way back),
//! and the API's root page (links to `/openapi.json`, the docs, health). Handlers keep deciding
//! status codes and headers; these only render.
//!
//! Every page carries the project's one stylesheet (`shared/assets/style.css`, which the Messenger
//! sandbox serves too) inline, because the API answers with a strict Content-Security-Policy and
//! has no static files: [`CONTENT_SECURITY_POLICY`] allows exactly that stylesheet (by its
//! SHA-256) and nothing else — no script, no image, no form.

use crate::response::HttpError;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};

/// The project's one stylesheet, compiled in.
pub const STYLESHEET: &str = include_str!("../../../shared/assets/style.css");

/// The header value to send with every page of this module (`Content-Security-Policy`).
pub static CONTENT_SECURITY_POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src 'sha256-{}'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        base64_standard(&Sha256::digest(STYLESHEET.as_bytes()))
    )
});

/// How a sign-in ended, as the callback tells the website (`?messenger=…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Granted,
    Declined,
    Cancelled,
    Error,
}

impl Outcome {
    /// The `messenger` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }

    /// The value of `?messenger=`; anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Granted, Self::Declined, Self::Cancelled, Self::Error]
            .into_iter()
            .find(|o| o.as_str() == value)
    }
}

/// Text for HTML element content and quoted attributes.
pub fn escape(text: &str) -> String {
    text.chars()
        .fold(String::with_capacity(text.len()), |mut out, c| {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
            out
        })
}

/// A whole page: `title` (plain text) and the `<main>` HTML; the header links `back` (a URL and its
/// label), or the API's root page when there is nowhere better to go.
pub fn page(title: &str, main: &str, back: Option<(&str, &str)>) -> String {
    let (href, label) = back.unwrap_or(("/", "Sign in with Messenger"));
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLESHEET}</style></head><body>\n\
         <header class=\"top\"><a id=\"back\" class=\"brand\" href=\"{href}\">← {label}</a></header>\n\
         <main class=\"narrow\">\n{main}\n</main></body></html>\n",
        title = escape(title),
        href = escape(href),
        label = escape(label),
    )
}

/// The page after a sign-in, for a browser that has no website to go back to (or to show while
/// going back): what happened, in words, and the link back when there is one.
pub fn status_page(outcome: Outcome, back_to: Option<&str>) -> String {
    let (title, text) = match outcome {
        Outcome::Granted => (
            "You're signed in",
            "You are signed in, and the Page can send you a message on Messenger.",
        ),
        Outcome::Declined => (
            "You're signed in",
            "You are signed in. You chose not to receive messages on Messenger; nothing will be \
             sent there.",
        ),
        Outcome::Cancelled => (
            "Sign-in cancelled",
            "You cancelled the sign-in with Facebook. Nothing was shared.",
        ),
        Outcome::Error => (
            "Sign-in did not work",
            "Something went wrong while signing you in. Please try again from the website.",
        ),
    };
    let class = match outcome {
        Outcome::Granted | Outcome::Declined => "good",
        Outcome::Cancelled => "",
        Outcome::Error => "bad",
    };
    let link = back_to.map_or(String::new(), |url| {
        format!(
            "<p class=\"actions\"><a class=\"button primary\" id=\"continue\" href=\"{}\">Back to the website</a></p>",
            escape(url)
        )
    });
    let main = format!(
        "<div class=\"card\"><h1>{title} <span class=\"badge {class}\" id=\"outcome\" \
         data-messenger=\"{value}\">{value}</span></h1><p>{text}</p>{link}</div>",
        title = escape(title),
        value = outcome.as_str(),
    );
    page(
        title,
        &main,
        back_to.map(|url| (url, "Back to the website")),
    )
}

/// The error page of a browser route: what went wrong, what to do, the error code for support,
/// and the way back (`back_to`, else the API's root page).
pub fn error_page(title: &str, message: &str, code: &str, back_to: Option<&str>) -> String {
    let main = format!(
        "<div class=\"card error\"><h1>{}</h1><p id=\"message\">{}</p>\
         <p>Please go back to the website and start again.</p>\
         <p><small>Error code: <code id=\"code\">{}</code></small></p></div>",
        escape(title),
        escape(message),
        escape(code),
    );
    page(
        title,
        &main,
        back_to.map(|url| (url, "Back to the website")),
    )
}

/// The error page of a `return_to` the API refuses (`/login/start?return_to=…`): the address is
/// not one of the website's, so there is no safe link back to it.
pub fn bad_return_to_page(reason: &str) -> String {
    error_page(
        "This sign-in link is not valid",
        &format!("The page to come back to is not allowed: {reason}."),
        "invalid_return_to",
        None,
    )
}

/// `GET /`: what this API is and where its description lives. `public_base_url` makes the links
/// absolute (as in the served OpenAPI document); relative links otherwise.
pub fn api_index(public_base_url: Option<&str>) -> String {
    let base = public_base_url.unwrap_or("").trim_end_matches('/');
    let link = |path: &str, id: &str, text: &str| {
        format!(
            "<li><a id=\"{id}\" href=\"{href}\">{text}</a></li>",
            href = escape(&format!("{base}{path}")),
        )
    };
    let main = format!(
        "<div class=\"card\"><h1>Login Connect with Messenger — API</h1>\
         <p>The backend of a website's \"Continue with Facebook\" button: it runs the login, \
         records who agreed to be contacted on Messenger, and sends the Page's first message.</p>\
         <ul class=\"links\">{openapi}{health}</ul>\
         <p>Website calls (<code>/v1/…</code>) need an API key: \
         <code>Authorization: Bearer KEY</code>. The repository's <code>README.md</code> and \
         <code>docs/</code> explain the flow, the alerts and the compliance report.</p></div>",
        openapi = link(
            "/openapi.json",
            "openapi",
            "OpenAPI document (every route, request and answer)"
        ),
        health = link("/healthz", "health", "Health check"),
    );
    page("Login Connect with Messenger — API", &main, None)
}

/// Standard base64 with padding (CSP hashes are written so).
fn base64_standard(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether the request comes from a browser that wants a page (`Accept` names `text/html`).
pub fn wants_html(request: &Request) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// A page answer: HTML, never cached, under [`CONTENT_SECURITY_POLICY`].
pub fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(page));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(csp) = HeaderValue::from_str(&CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// A refused browser route as a page: the error's status, message and code, a way back, the
/// detail of a failure logged (as the JSON answer would).
pub fn error_response(e: HttpError) -> Response<Body> {
    e.log();
    let status = e.status();
    let page = match e.code() {
        "invalid_return_to" => bad_return_to_page(e.message()),
        code => {
            let title = if status == StatusCode::NOT_FOUND {
                "Page not found"
            } else if status == StatusCode::METHOD_NOT_ALLOWED {
                "This page cannot be used that way"
            } else if status.is_server_error() {
                "This did not work just now"
            } else {
                "This sign-in link is not valid"
            };
            error_page(title, e.message(), code, None)
        }
    };
    html(status, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_inlined_stylesheet() {
        let html = page("t", "", None);
        let start = html.find("<style>").unwrap() + "<style>".len();
        let end = html.find("</style>").unwrap();
        let hash = base64_standard(&Sha256::digest(&html.as_bytes()[start..end]));
        assert!(
            CONTENT_SECURITY_POLICY.contains(&format!("style-src 'sha256-{hash}'")),
            "{}",
            *CONTENT_SECURITY_POLICY
        );
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("script-src"));
    }

    #[test]
    fn every_page_is_styled_and_has_a_way_back() {
        for html in [
            status_page(Outcome::Granted, Some("https://shop.example/")),
            status_page(Outcome::Cancelled, None),
            error_page("Nope", "why", "state_expired", None),
            bad_return_to_page("the origin is not allowed"),
            api_index(None),
        ] {
            assert!(html.contains("<style>"), "{html}");
            assert!(html.contains(STYLESHEET), "the shared stylesheet: {html}");
            assert!(html.contains("id=\"back\""), "{html}");
            assert!(!html.trim_start().starts_with('{'), "not JSON: {html}");
        }
    }

    #[test]
    fn the_status_page_says_what_happened_and_links_back() {
        let html = status_page(Outcome::Declined, Some("https://shop.example/?a=1&b=2"));
        assert!(html.contains("data-messenger=\"declined\""), "{html}");
        assert!(html.contains("chose not to receive messages"), "{html}");
        assert!(
            html.contains("id=\"continue\" href=\"https://shop.example/?a=1&amp;b=2\""),
            "{html}"
        );
        let html = status_page(Outcome::Error, None);
        assert!(
            !html.contains("id=\"continue\""),
            "no website, no button: {html}"
        );
        assert!(
            html.contains("href=\"/\""),
            "the API's root instead: {html}"
        );
        assert_eq!(Outcome::parse("cancelled"), Some(Outcome::Cancelled));
        assert_eq!(Outcome::parse("granted "), None);
    }

    #[test]
    fn error_pages_escape_what_they_show() {
        let html = error_page(
            "<b>",
            "<script>alert(1)</script>",
            "x\"y",
            Some("https://shop.example/?q='"),
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("x&quot;y"), "{html}");
        assert!(html.contains("?q=&#39;"), "{html}");
        let html = bad_return_to_page("<i>evil</i>");
        assert!(html.contains("&lt;i&gt;evil"), "{html}");
        assert!(html.contains("invalid_return_to"), "{html}");
    }

    #[test]
    fn the_api_index_links_the_openapi_document_and_health() {
        let html = api_index(Some("http://127.0.0.1:3000/"));
        assert!(
            html.contains("id=\"openapi\" href=\"http://127.0.0.1:3000/openapi.json\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"http://127.0.0.1:3000/healthz\""),
            "{html}"
        );
        assert!(api_index(None).contains("href=\"/openapi.json\""));
    }
}
