//! API Gateway HTTP API (payload format 2.0) on 127.0.0.1: every request becomes the same event
//! JSON API Gateway would send, is parsed by lambda_http exactly as in Lambda, and is handed to the
//! http-api handler (with the secret re-read on its TTL, as in Lambda).

use axum::body::{Body as AxumBody, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Request as AxumRequest, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lambda_http::Body;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::Instrument;

/// API Gateway's own payload limit.
const API_GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;

pub fn router(deps: Arc<http_api::LiveDeps>) -> axum::Router {
    axum::Router::new()
        .fallback(forward)
        .layer(DefaultBodyLimit::max(API_GATEWAY_MAX_BODY))
        .with_state(deps)
}

fn is_text(headers: &HeaderMap) -> bool {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    content_type.is_empty()
        || content_type.starts_with("text/")
        || content_type.contains("json")
        || content_type.contains("x-www-form-urlencoded")
        || content_type.contains("xml")
}

/// Build the payload 2.0 event for one request.
pub fn to_event(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    source_ip: &str,
) -> serde_json::Value {
    let mut header_map = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name.as_str() == "cookie" {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()));
            continue;
        }
        // API Gateway joins repeated headers with commas.
        match header_map.get_mut(name.as_str()) {
            Some(serde_json::Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), serde_json::Value::String(value));
            }
        }
    }
    let raw_query = uri.query().unwrap_or("");
    let mut query = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(serde_json::Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), serde_json::Value::String(v.into_owned()));
            }
        }
    }
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = chrono::Utc::now();
    let mut event = serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": uri.path(),
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method.as_str(),
                "path": uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": uuid_like(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = serde_json::Value::Object(query);
    }
    if !cookies.is_empty() {
        event["cookies"] = serde_json::json!(cookies);
    }
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) if is_text(headers) => event["body"] = serde_json::json!(text),
            _ => {
                event["body"] =
                    serde_json::json!(base64::engine::general_purpose::STANDARD.encode(body));
                event["isBase64Encoded"] = serde_json::json!(true);
            }
        }
    }
    event
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    )
}

async fn forward(
    State(deps): State<Arc<http_api::LiveDeps>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: AxumRequest<AxumBody>,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, API_GATEWAY_MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                [("content-type", "application/json")],
                r#"{"message":"Request Entity Too Large"}"#,
            )
                .into_response();
        }
    };
    let event = to_event(
        &parts.method,
        &parts.uri,
        &parts.headers,
        &bytes,
        &peer.ip().to_string(),
    );
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not build the Lambda request");
            return (StatusCode::BAD_REQUEST, "bad request").into_response();
        }
    };
    let response = deps
        .handle(request)
        .instrument(crate::invocation::span(
            crate::invocation::Function::HttpApi,
        ))
        .await;
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    let mut out = Response::new(AxumBody::from(bytes));
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    out
}
