//! A test world for the login flow and the website API: the http-api handler over in-memory
//! twins, and requests built as API Gateway HTTP API (payload 2.0) events.

#![allow(dead_code)]

use http_api::Deps;
use lambda_http::{Body, Response};
use shared::adapters::memory::alerts::MemoryAlerts;
use shared::adapters::memory::clock::ManualClock;
use shared::adapters::memory::config::test_config;
use shared::adapters::memory::erasure::MemoryErasure;
use shared::adapters::memory::logins::{MemoryFacebookLogin, MemoryLoginStore, ScriptedUser};
use shared::adapters::memory::messenger::MemoryMessenger;
use shared::adapters::memory::metrics::MemoryMetrics;
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::adapters::memory::queue::MemoryRetryQueue;
use shared::adapters::memory::queue::MemorySendQueue;
use shared::adapters::memory::scheduler::MemoryScheduler;
use shared::config::env;
use shared::config::secrets::Secrets;
use shared::ports::bundle::Ports;
use std::collections::HashMap;
use std::sync::Arc;

pub const NOW: i64 = 1_795_536_000_000;
pub const APP: &str = "100000000000001";
pub const PAGE: &str = "200000000000002";
pub const SITE: &str = "https://shop.example";
pub const API: &str = "https://api.example";
pub const KEY_OLD: &str = "site-key-old";
pub const KEY_NEW: &str = "site-key-new";
pub const CLIENT_TOKEN: &str = "test-client-token";

pub struct World {
    pub deps: Deps,
    pub store: Arc<MemoryOptInStore>,
    pub logins: Arc<MemoryLoginStore>,
    pub facebook: Arc<MemoryFacebookLogin>,
    pub queue: Arc<MemorySendQueue>,
    pub scheduler: Arc<MemoryScheduler>,
    pub clock: Arc<ManualClock>,
    pub follow_ups: Arc<shared::adapters::memory::follow_ups::MemoryFollowUps>,
    /// Events to the website backend, as published.
    pub events: Arc<shared::adapters::memory::events::MemoryEvents>,
}

pub fn secrets() -> Secrets {
    let hashes: Vec<String> = [KEY_OLD, KEY_NEW]
        .iter()
        .map(|k| http_api::auth::key_hash(k))
        .collect();
    Secrets::from_json(
        &serde_json::json!({
            "app_secret": "test-app-secret",
            "page_access_token": "test-page-token",
            "client_token": CLIENT_TOKEN,
            "verify_token": "test-verify-token",
            "api_key_hashes": hashes,
        })
        .to_string(),
    )
    .unwrap()
}

pub fn world_with(overrides: &[(&str, &str)]) -> World {
    // The first value of a name wins: overrides before the defaults.
    let mut env = overrides.to_vec();
    env.extend_from_slice(&[
        (env::ALLOWED_RETURN_ORIGINS, SITE),
        (env::PUBLIC_BASE_URL, API),
    ]);
    let store = Arc::new(MemoryOptInStore::new());
    let logins = Arc::new(MemoryLoginStore::new());
    let facebook = Arc::new(MemoryFacebookLogin::default());
    let queue = Arc::new(MemorySendQueue::default());
    let scheduler = Arc::new(MemoryScheduler::default());
    let clock = Arc::new(ManualClock::at(NOW));
    let follow_ups = Arc::new(shared::adapters::memory::follow_ups::MemoryFollowUps::default());
    let events = Arc::new(shared::adapters::memory::events::MemoryEvents::default());
    let ports = Ports {
        opt_ins: store.clone(),
        conversations: store.clone(),
        pages: store.clone(),
        erasure: Arc::new(MemoryErasure::new(store.clone(), logins.clone())),
        logins: logins.clone(),
        facebook: facebook.clone(),
        queue: queue.clone(),
        scheduler: scheduler.clone(),
        clock: clock.clone(),
        follow_ups: follow_ups.clone(),
        events: events.clone(),
        ..twin_ports()
    };
    let deps = Deps::from_ports(test_config(&env), secrets().into(), &ports);
    World {
        deps,
        store,
        logins,
        facebook,
        queue,
        scheduler,
        clock,
        follow_ups,
        events,
    }
}

/// Every port over fresh in-memory twins (one store behind every port of the table), the clock
/// at [`NOW`]. Tests keep handles on the twins they inspect and put them in with
/// `Ports { store: …, ..twin_ports() }`.
pub fn twin_ports() -> Ports {
    let store = Arc::new(MemoryOptInStore::new());
    let logins = Arc::new(MemoryLoginStore::new());
    let queue = Arc::new(MemorySendQueue::default());
    Ports {
        opt_ins: store.clone(),
        conversations: store.clone(),
        pages: store.clone(),
        erasure: Arc::new(MemoryErasure::new(store, logins.clone())),
        logins,
        queue,
        retry: Arc::new(MemoryRetryQueue::default()),
        scheduler: Arc::new(MemoryScheduler::default()),
        events: Arc::new(shared::adapters::memory::events::MemoryEvents::default()),
        follow_ups: Arc::new(shared::adapters::memory::follow_ups::MemoryFollowUps::default()),
        alerts: Arc::new(MemoryAlerts::default()),
        metrics: Arc::new(MemoryMetrics::default()),
        clock: Arc::new(ManualClock::at(NOW)),
        facebook: Arc::new(MemoryFacebookLogin::default()),
        messenger: Arc::new(MemoryMessenger::default()),
    }
}

pub fn world() -> World {
    world_with(&[])
}

pub fn user(asid: &str, name: Option<&str>, granted: bool) -> ScriptedUser {
    ScriptedUser {
        app_id: APP.into(),
        asid: asid.into(),
        first_name: name.map(str::to_owned),
        messenger_granted: granted,
    }
}

/// An HTTP request, as API Gateway (payload 2.0) would deliver it to the function.
#[derive(Default, Clone)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<String>,
    pub body: Option<String>,
}

impl Req {
    pub fn get(path: &str) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            ..Self::default()
        }
    }
    pub fn post(path: &str) -> Self {
        Self {
            method: "POST",
            path: path.into(),
            ..Self::default()
        }
    }
    pub fn q(mut self, k: &str, v: &str) -> Self {
        self.query.push((k.into(), v.into()));
        self
    }
    pub fn h(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn cookie(mut self, c: &str) -> Self {
        self.cookies.push(c.into());
        self
    }
    pub fn key(self, key: &str) -> Self {
        self.h("authorization", &format!("Bearer {key}"))
    }
    /// A body, as `application/json` unless a content type was set before.
    pub fn json(self, body: &str) -> Self {
        let typed = self.headers.iter().any(|(k, _)| k == "content-type");
        let mut r = if typed {
            self
        } else {
            self.h("content-type", "application/json")
        };
        r.body = Some(body.into());
        r
    }

    pub fn build(&self) -> lambda_http::Request {
        let raw_query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        let mut query = serde_json::Map::new();
        for (k, v) in &self.query {
            query.insert(k.clone(), v.clone().into());
        }
        let mut headers = serde_json::Map::new();
        headers.insert("host".into(), "api.example".into());
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone().into());
        }
        let mut event = serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "abc123",
                "http": {
                    "method": self.method,
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.9",
                    "userAgent": "test"
                },
                "requestId": "r",
                "routeKey": "$default",
                "stage": "$default",
                "time": "24/Nov/2026:16:00:00 +0000",
                "timeEpoch": NOW
            },
            "isBase64Encoded": false
        });
        if !query.is_empty() {
            event["queryStringParameters"] = serde_json::Value::Object(query);
        }
        if !self.cookies.is_empty() {
            event["cookies"] = serde_json::json!(self.cookies);
        }
        if let Some(b) = &self.body {
            event["body"] = b.clone().into();
        }
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }
}

pub async fn send(w: &World, r: Req) -> Response<Body> {
    http_api::handle(&w.deps, r.build()).await
}

pub fn header<'a>(r: &'a Response<Body>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn json_of(r: &Response<Body>) -> serde_json::Value {
    serde_json::from_slice(r.body().as_ref()).unwrap_or_else(|_| panic!("not JSON: {:?}", r.body()))
}

pub fn error_code(r: &Response<Body>) -> String {
    json_of(r)["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// `/login/start` for `return_to`: (state, cookie "name=value").
pub async fn start(w: &World, return_to: &str) -> (String, String) {
    let r = send(w, Req::get("/login/start").q("return_to", return_to)).await;
    assert_eq!(r.status(), 302, "{:?}", r.body());
    let dialog = header(&r, "location").unwrap();
    let state = query_of(dialog)["state"].clone();
    let set_cookie = header(&r, "set-cookie").unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    (state, cookie)
}

/// The callback as the browser calls it after the dialog.
pub fn callback(state: &str, cookie: Option<&str>, extra: &[(&str, &str)]) -> Req {
    let mut r = Req::get("/login/callback").q("state", state);
    for (k, v) in extra {
        r = r.q(k, v);
    }
    if let Some(c) = cookie {
        r = r.cookie(c);
    }
    r
}

pub fn expected_login_id(asid: &str) -> String {
    shared::facebook::crypto::derive_login_id(CLIENT_TOKEN, asid, APP, PAGE)
}
