//! Which routes answer a browser with a page (issue 14, item 9): the API's root is an index page,
//! a refusal on a browser route is an HTML page with a way back under the pages' CSP, and the
//! website API under `/v1/` stays JSON whatever the `Accept` header says.

use crate::common::*;

fn body(r: &lambda_http::Response<lambda_http::Body>) -> String {
    String::from_utf8_lossy(r.body().as_ref()).into_owned()
}

#[tokio::test]
async fn the_root_is_an_index_page_linking_the_openapi_document() {
    let w = world();
    for path in ["/", ""] {
        let r = send(&w, Req::get(path).h("accept", "text/html")).await;
        assert_eq!(r.status(), 200, "{path:?}");
        assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(
            header(&r, "content-security-policy"),
            Some(http_api::pages::CONTENT_SECURITY_POLICY.as_str())
        );
        let html = body(&r);
        assert!(html.contains("/openapi.json"), "{html}");
        assert!(html.contains("<style>"), "{html}");
    }
}

#[tokio::test]
async fn a_browser_gets_an_unknown_page_as_html_with_a_way_back() {
    let w = world();
    let r = send(&w, Req::get("/no-such-page").h("accept", "text/html,*/*")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
    let html = body(&r);
    assert!(html.contains("Page not found"), "{html}");
    assert!(html.contains("id=\"back\""), "{html}");
    // Scripts and API clients keep the JSON error.
    let r = send(&w, Req::get("/no-such-page")).await;
    assert_eq!(error_code(&r), "not_found");
}

#[tokio::test]
async fn a_bad_return_to_in_a_browser_is_a_page_not_raw_json() {
    let w = world();
    let r = send(
        &w,
        Req::get("/login/start")
            .q("return_to", "https://evil.example/")
            .h("accept", "text/html"),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
    let html = body(&r);
    assert!(html.contains("invalid_return_to"), "{html}");
    assert!(!html.trim_start().starts_with('{'), "{html}");
    // No link back to the refused address.
    assert!(!html.contains("evil.example\""), "{html}");
}

#[tokio::test]
async fn the_website_api_stays_json_for_browsers() {
    let w = world();
    let r = send(&w, Req::get("/v1/users/123").h("accept", "text/html")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(&r), "unauthorized");
}
