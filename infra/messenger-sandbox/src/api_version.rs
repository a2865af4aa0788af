//! The `facebook-api-version` response header, and a switch to answer with another version.
//!
//! Graph names the version that served each call in `facebook-api-version`: the version in the
//! path, unless that version has expired, in which case Graph serves the call with the oldest live
//! version and says so. The sandbox sends the path's version by default; the switch makes every
//! versioned answer name another one, so tests can prove the app notices (its
//! `GraphApiVersionMismatch` metric).
//!
//! - `GET /_sandbox/api_version` — `{"serve": null}` (the asked version) or `{"serve": "v26.0"}`.
//! - `PUT /_sandbox/api_version` with `{"serve": "v26.0"}` answers every versioned call as v26.0;
//!   `{"serve": null}` (or `DELETE`) goes back to the asked version. `POST /_sandbox/reset` too.

use std::sync::{Arc, RwLock};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::errors::GraphError;
use crate::send_api::is_graph_version;
use crate::state::AppState;

/// The header Graph names the serving version in.
pub const API_VERSION_HEADER: &str = "facebook-api-version";

/// The version every versioned answer names instead of the asked one, if set.
#[derive(Default)]
pub(crate) struct ServedVersion(RwLock<Option<String>>);

impl ServedVersion {
    pub fn get(&self) -> Option<String> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, version: Option<String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = version;
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    #[serde(default)]
    serve: Option<String>,
}

/// Stamp the header on every answer to a `/{version}/…` path.
pub(crate) async fn stamp(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let asked = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|segment| is_graph_version(segment))
        .map(str::to_owned);
    let mut response = next.run(request).await;
    if let Some(asked) = asked {
        let served = state.api_version.get().unwrap_or(asked);
        if let Ok(value) = HeaderValue::from_str(&served) {
            response.headers_mut().insert(API_VERSION_HEADER, value);
        }
    }
    response
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route(
        "/_sandbox/api_version",
        get(get_switch).put(put_switch).delete(clear_switch),
    )
}

async fn get_switch(State(state): State<Arc<AppState>>) -> Json<Switch> {
    Json(Switch {
        serve: state.api_version.get(),
    })
}

async fn put_switch(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let switch = match serde_json::from_slice::<Switch>(&body) {
        Ok(s) => s,
        Err(e) => {
            return GraphError::sandbox(StatusCode::BAD_REQUEST, format!("invalid switch: {e}"))
                .into_response();
        }
    };
    if let Some(v) = switch.serve.as_deref()
        && !is_graph_version(v)
    {
        return GraphError::sandbox(StatusCode::BAD_REQUEST, "serve must look like v26.0")
            .into_response();
    }
    state.api_version.set(switch.serve);
    get_switch(State(state)).await.into_response()
}

async fn clear_switch(State(state): State<Arc<AppState>>) -> Json<Switch> {
    state.api_version.set(None);
    Json(Switch::default())
}

impl crate::RunningSandbox {
    /// Answer every versioned call as `version` (`None`: as the version asked for).
    pub fn serve_api_version(&self, version: Option<&str>) {
        self.state.api_version.set(version.map(str::to_owned));
    }
}
