//! Graph's JSON error envelope: `{"error":{"message","type","code","error_subcode"?,"fbtrace_id"}}`.

use axum::Json;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::state::random_alphanumeric;

pub(crate) const OAUTH_EXCEPTION: &str = "OAuthException";
pub(crate) const GRAPH_METHOD_EXCEPTION: &str = "GraphMethodException";
/// Errors of the `/_sandbox` control endpoints (not something Graph sends).
pub(crate) const SANDBOX_ERROR: &str = "SandboxError";

pub(crate) const INVALID_PARAMETER: &str = "(#100) Invalid parameter";

/// A Graph error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: i64,
    pub subcode: Option<i64>,
}

impl GraphError {
    /// HTTP 400, no subcode.
    pub fn new(code: i64, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind,
            code,
            subcode: None,
        }
    }

    pub fn with_subcode(mut self, subcode: i64) -> Self {
        self.subcode = Some(subcode);
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Code 100, `OAuthException`, HTTP 400.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(100, OAUTH_EXCEPTION, message)
    }

    /// An error of the sandbox's own control endpoints; `code` is the HTTP status.
    pub fn sandbox(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(i64::from(status.as_u16()), SANDBOX_ERROR, message).with_status(status)
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_subcode: Option<i64>,
    fbtrace_id: String,
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let envelope = Envelope {
            error: Body {
                message: &self.message,
                kind: self.kind,
                code: self.code,
                error_subcode: self.subcode,
                fbtrace_id: random_alphanumeric(23),
            },
        };
        (self.status, Json(envelope)).into_response()
    }
}

/// Graph's answer for a path it does not know.
pub(crate) fn unknown_path(path: &str) -> GraphError {
    GraphError::new(
        803,
        OAUTH_EXCEPTION,
        format!("(#803) Some of the aliases you requested do not exist: {path}"),
    )
    .with_status(StatusCode::NOT_FOUND)
}

pub(crate) async fn unknown_route(uri: Uri) -> GraphError {
    unknown_path(uri.path())
}

pub(crate) async fn method_not_allowed(uri: Uri) -> GraphError {
    GraphError::new(
        100,
        OAUTH_EXCEPTION,
        format!(
            "Unsupported request - method type not allowed for {}",
            uri.path()
        ),
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}
