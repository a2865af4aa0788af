//! What the login flow reads from and sets in the browser: query parameters, the state cookie
//! (scoped to the callback path) and the redirects that carry it.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};

/// The cookie that binds a login `state` to the browser that started it.
pub const STATE_COOKIE: &str = "lcm_login_state";
pub const CALLBACK_PATH: &str = "/login/callback";

pub(crate) fn query_param<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
}

/// The value of cookie `name` from the request's `Cookie` header(s).
pub fn cookie<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value of the state cookie (`max_age` 0 clears it).
pub(crate) fn set_cookie(value: &str, max_age: i64) -> String {
    format!(
        "{STATE_COOKIE}={value}; Path={CALLBACK_PATH}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
    )
}

/// Set a header whose value is built at run time (skipped if it is not a valid header value).
pub(crate) fn insert(response: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

/// A 302 that sets (or clears) the state cookie.
pub(crate) fn redirect(location: &str, cookie: &str) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::FOUND;
    insert(&mut response, header::LOCATION, location);
    insert(&mut response, header::SET_COOKIE, cookie);
    insert(&mut response, header::CACHE_CONTROL, "no-store");
    insert(&mut response, header::REFERRER_POLICY, "no-referrer");
    response
}
