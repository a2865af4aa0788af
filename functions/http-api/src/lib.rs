//! The HTTP Lambda: the Messenger webhook, Facebook Login's redirect flow (`login`), and the
//! website-backend API (`api`, keys checked in `auth`), described by `docs/openapi.json`.
//!
//! This file is the route table and the edge. `handle` never fails and never panics: every route
//! returns `Result<Response, HttpError>` and the edge turns an [`HttpError`] into a JSON
//! `{"error":{"code","message"}}` answer with the right status (`response`). A path in
//! [`ROUTES`] asked with another method answers 405, any other path 404: there is no second list.
//!
//! The routes only Facebook calls (webhook, deauthorize, data deletion) live under an unguessable
//! first path segment when `FACEBOOK_PATH_SEGMENT` is set, so nobody else can reach them (or
//! empty their API Gateway throttle); [`LiveDeps`] re-reads the secret on a short TTL so a revoked
//! API key stops working within minutes.

pub mod api;
pub mod auth;
pub mod deps;
pub mod facebook_callbacks;
pub mod login;
pub mod messages;
pub mod openapi;
pub mod pages;
pub mod response;
mod webhook;

// The crate's front door: what the mains, the local runner and the tests use.
pub use deps::{Deps, LiveDeps, Service, StartError};
pub use openapi::OPENAPI_JSON;
pub use response::HttpError;

use lambda_http::{Body, Request, Response, http::StatusCode};

/// Largest request body accepted (Meta's batches can exceed 300 KB; API Gateway's limit is 10 MB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Who may call a route, and so where it is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mount {
    /// Only Facebook: under `/{FACEBOOK_PATH_SEGMENT}` when one is configured, else at the bare
    /// path. The data-deletion *status* page is not one of them: its URL is shown to the person,
    /// so it would reveal the segment; its unguessable confirmation code protects it instead.
    Facebook,
    /// Anyone (browsers, monitors, Facebook's login dialog redirect).
    Public,
    /// Website backends: every path under [`API_PREFIX`] needs an API key, even an unknown one.
    Api,
}

/// The paths of [`Mount::Api`].
const API_PREFIX: &str = "/v1/";

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    WebhookVerify,
    WebhookReceive,
    Deauthorize,
    DataDeletion,
    Healthz,
    Index,
    LoginStart,
    LoginCallback,
    OpenApi,
    DeletionStatus,
    RecordLogin,
    GetUser,
    OptOut,
    SendFollowUp,
    GetFollowUp,
}

/// Every route: mount, method, path (`{name}` matches one segment), endpoint.
#[rustfmt::skip] // a table: one route a line
const ROUTES: &[(Mount, &str, &str, Endpoint)] = &[
    (Mount::Facebook, "GET", "/webhooks/messenger", Endpoint::WebhookVerify),
    (Mount::Facebook, "POST", "/webhooks/messenger", Endpoint::WebhookReceive),
    (Mount::Facebook, "POST", "/facebook/deauthorize", Endpoint::Deauthorize),
    (Mount::Facebook, "POST", "/facebook/data-deletion", Endpoint::DataDeletion),
    (Mount::Public, "GET", "/", Endpoint::Index),
    (Mount::Public, "GET", "/healthz", Endpoint::Healthz),
    (Mount::Public, "GET", "/login/start", Endpoint::LoginStart),
    (Mount::Public, "GET", "/login/callback", Endpoint::LoginCallback),
    (Mount::Public, "GET", "/openapi.json", Endpoint::OpenApi),
    (Mount::Public, "GET", "/facebook/data-deletion/status", Endpoint::DeletionStatus),
    (Mount::Api, "POST", "/v1/logins", Endpoint::RecordLogin),
    (Mount::Api, "GET", "/v1/users/{asid}", Endpoint::GetUser),
    (Mount::Api, "POST", "/v1/users/{asid}/opt-out", Endpoint::OptOut),
    (Mount::Api, "POST", "/v1/users/{asid}/messages", Endpoint::SendFollowUp),
    (Mount::Api, "GET", "/v1/users/{asid}/messages/{id}", Endpoint::GetFollowUp),
];

/// Route one request. Infallible by design. A browser (`Accept: text/html`) gets a refusal as a
/// page with a way back, except under the website API's `/v1/`, which always answers JSON.
pub async fn handle(deps: &Deps, request: Request) -> Response<Body> {
    match route(deps, &request).await {
        Ok(response) => response,
        Err(e) => refusal(&request, e),
    }
}

/// The answer to a refused request: a page for a browser, JSON for everyone else.
fn refusal(request: &Request, e: HttpError) -> Response<Body> {
    if pages::wants_html(request) && !request.uri().path().starts_with(API_PREFIX) {
        pages::error_response(e)
    } else {
        e.into_response()
    }
}

impl LiveDeps {
    /// Route one request with the current dependencies. Infallible, like [`handle`].
    pub async fn handle(&self, request: Request) -> Response<Body> {
        handle(&*self.current().await, request).await
    }
}

impl Service {
    /// Route one request; until the secret is usable, `/healthz` answers and every other route
    /// 503 `not_configured`. Infallible, like [`handle`].
    pub async fn handle(&self, request: Request) -> Response<Body> {
        match self.live().await {
            Ok(live) => live.handle(request).await,
            Err(_) if is_health_check(&request) => healthz(),
            Err(_) => refusal(&request, HttpError::not_configured()),
        }
    }
}

/// `GET /healthz`: it says the function runs, whatever its configuration (monitors poll it).
fn is_health_check(request: &Request) -> bool {
    request.method() == "GET" && request.uri().path().trim_end_matches('/') == "/healthz"
}

fn healthz() -> Response<Body> {
    response::json(StatusCode::OK, &serde_json::json!({"ok": true}))
}

async fn route(deps: &Deps, request: &Request) -> Result<Response<Body>, HttpError> {
    if request.body().len() > MAX_BODY_BYTES {
        return Err(HttpError::too_large(
            "the request body is larger than 1 MiB",
        ));
    }
    // Trailing slashes do not make another route; the root stays "/".
    let path = match request.uri().path().trim_end_matches('/') {
        "" => "/",
        path => path,
    };
    let (facebook, path) = split_facebook_route(deps.config.facebook_path_segment.as_deref(), path);
    let mount = if facebook {
        Mount::Facebook
    } else if path.starts_with(API_PREFIX) {
        Mount::Api
    } else {
        Mount::Public
    };
    if mount == Mount::Api && !auth::authorized(request, &deps.secrets.api_key_hashes) {
        return Err(HttpError::Unauthorized);
    }
    let (endpoint, params) = find(mount, path, request.method().as_str())?;
    let asid = params.first().copied().unwrap_or_default();
    match endpoint {
        Endpoint::WebhookVerify => webhook::verify::verify_subscription(deps, request),
        Endpoint::WebhookReceive => webhook::dispatch::receive(deps, request).await,
        Endpoint::Deauthorize => facebook_callbacks::deauthorize(deps, request).await,
        Endpoint::DataDeletion => facebook_callbacks::data_deletion(deps, request).await,
        Endpoint::Healthz => Ok(healthz()),
        Endpoint::Index => Ok(pages::html(
            StatusCode::OK,
            pages::api_index(deps.config.public_base_url.as_deref()),
        )),
        Endpoint::LoginStart => login::start::start(deps, request).await,
        Endpoint::LoginCallback => Ok(login::callback::callback(deps, request).await),
        Endpoint::OpenApi => Ok(openapi::serve(deps.config.public_base_url.as_deref())),
        Endpoint::DeletionStatus => facebook_callbacks::deletion_status(deps, request).await,
        Endpoint::RecordLogin => api::record_login(deps, request).await,
        Endpoint::GetUser => api::get_user(deps, asid).await,
        Endpoint::OptOut => api::opt_out(deps, request, asid).await,
        Endpoint::SendFollowUp => messages::send_follow_up(deps, request, asid).await,
        Endpoint::GetFollowUp => {
            let id = params.get(1).copied().unwrap_or_default();
            messages::get_follow_up(deps, asid, id).await
        }
    }
}

/// The route of `mount` for `path` and `method`, with the path's `{…}` segments. A path some
/// route of the mount has, with another method: 405; else 404.
fn find<'p>(
    mount: Mount,
    path: &'p str,
    method: &str,
) -> Result<(Endpoint, Vec<&'p str>), HttpError> {
    let mut path_known = false;
    for (m, verb, template, endpoint) in ROUTES {
        let Some(params) = (*m == mount).then(|| matches(template, path)).flatten() else {
            continue;
        };
        if *verb == method {
            return Ok((*endpoint, params));
        }
        path_known = true;
    }
    Err(if path_known {
        HttpError::method_not_allowed()
    } else {
        HttpError::no_route()
    })
}

/// The segments of `path` that `template`'s `{…}` segments stand for, if the path fits it.
fn matches<'p>(template: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let (mut template, mut path) = (template.split('/'), path.split('/'));
    let mut params = Vec::new();
    loop {
        match (template.next(), path.next()) {
            (None, None) => return Some(params),
            (Some(t), Some(p)) if t.starts_with('{') => params.push(p),
            (Some(t), Some(p)) if t == p => {}
            _ => return None,
        }
    }
}

/// Whether `path` is one of the routes only Facebook calls.
fn is_facebook_path(path: &str) -> bool {
    ROUTES
        .iter()
        .any(|(mount, _, p, _)| *mount == Mount::Facebook && *p == path)
}

/// `(is a Facebook route, the route's path)` of a request path (already without trailing `/`).
/// With `FACEBOOK_PATH_SEGMENT` set the Facebook routes answer only under `/{segment}` (and
/// nothing else does); without it, at their bare paths.
fn split_facebook_route<'a>(segment: Option<&str>, path: &'a str) -> (bool, &'a str) {
    match segment {
        None => (is_facebook_path(path), path),
        Some(segment) => match path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(segment))
            .filter(|rest| rest.starts_with('/'))
        {
            Some(rest) if is_facebook_path(rest) => (true, rest),
            // Under the segment but no Facebook route: unknown. Elsewhere: the other routes.
            Some(_) => (false, ""),
            None => (false, path),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::split_facebook_route;

    const SEGMENT: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn facebook_routes_answer_only_under_the_configured_segment() {
        assert_eq!(
            split_facebook_route(None, "/webhooks/messenger"),
            (true, "/webhooks/messenger")
        );
        assert_eq!(split_facebook_route(None, "/healthz"), (false, "/healthz"));
        let s = Some(SEGMENT);
        assert_eq!(
            split_facebook_route(s, &format!("/{SEGMENT}/facebook/deauthorize")),
            (true, "/facebook/deauthorize")
        );
        // The bare path is not a Facebook route any more (it falls through to 404).
        assert_eq!(
            split_facebook_route(s, "/webhooks/messenger"),
            (false, "/webhooks/messenger")
        );
        for other in [
            format!("/{SEGMENT}/healthz"),
            format!("/{SEGMENT}x/webhooks/messenger"),
            format!("/{}/webhooks/messenger", &SEGMENT[1..]),
            format!("/{SEGMENT}"),
        ] {
            assert!(!split_facebook_route(s, &other).0, "{other}");
        }
        assert_eq!(
            split_facebook_route(s, "/facebook/data-deletion/status"),
            (false, "/facebook/data-deletion/status")
        );
    }
}
