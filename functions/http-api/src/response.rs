//! The answers every route builds: JSON bodies, and [`HttpError`], the one error type of the
//! routes. A route returns `Result<Response, HttpError>` and reads top to bottom with `?`; the
//! edge (`crate::handle`) turns the error into `{"error":{"code","message"}}` with its status.
//! A failure's detail (a store or Graph error) goes to the logs there, never to the client.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use std::borrow::Cow;

/// The message of a 503 when a dependency failed and the client should retry.
const RETRY_MESSAGE: &str = "the request could not be completed; please retry";

/// Why a route did not answer with success.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request is refused (or cannot be served) for a reason the answer says in full.
    #[error("{code}: {message}")]
    Refused {
        status: StatusCode,
        /// Stable and machine-readable.
        code: &'static str,
        /// For people.
        message: Cow<'static, str>,
    },
    /// No valid API key: 401 with `WWW-Authenticate: Bearer`.
    #[error("unauthorized")]
    Unauthorized,
    /// A dependency failed. The client gets `status`, `code` and `message`; `context` and
    /// `detail` go to the error log only.
    #[error("{context}: {detail}")]
    Failed {
        status: StatusCode,
        code: &'static str,
        message: &'static str,
        context: &'static str,
        detail: String,
    },
}

impl HttpError {
    pub fn refused(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Refused {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::refused(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: &'static str) -> Self {
        Self::refused(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// No route has this path.
    pub fn no_route() -> Self {
        Self::not_found("no such route")
    }

    /// A route has this path, but not for this method.
    pub fn method_not_allowed() -> Self {
        Self::refused(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not accept that method",
        )
    }

    pub fn unsupported_media_type(message: &'static str) -> Self {
        Self::refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 503 `not_configured`: the stack's secret is not filled yet (a fresh deploy). Says so
    /// without naming what is missing: that is in the operator's alert and log.
    pub fn not_configured() -> Self {
        Self::refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "this service is not configured yet; please retry later",
        )
    }

    pub fn too_large(message: &'static str) -> Self {
        Self::refused(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
    }

    /// 503 `temporarily_unavailable` ("please retry"); `context` and `detail` are logged.
    pub fn failed(context: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Failed {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "temporarily_unavailable",
            message: RETRY_MESSAGE,
            context,
            detail: detail.to_string(),
        }
    }

    /// The same failure, answered with another status, code and message.
    pub fn answered(self, status: StatusCode, code: &'static str, message: &'static str) -> Self {
        match self {
            Self::Failed {
                context, detail, ..
            } => Self::Failed {
                status,
                code,
                message,
                context,
                detail,
            },
            other => other,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Refused { status, .. } | Self::Failed { status, .. } => *status,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused { code, .. } | Self::Failed { code, .. } => code,
            Self::Unauthorized => "unauthorized",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Refused { message, .. } => message,
            Self::Failed { message, .. } => message,
            Self::Unauthorized => "a valid API key is required: Authorization: Bearer <api key>",
        }
    }

    /// Log what the client is not told (only a failure has such a detail).
    pub fn log(&self) {
        if let Self::Failed {
            context, detail, ..
        } = self
        {
            tracing::error!(error = %detail, "{context}");
        }
    }

    /// The JSON answer (the detail is logged here, once).
    pub fn into_response(self) -> Response<Body> {
        self.log();
        let body =
            serde_json::json!({ "error": { "code": self.code(), "message": self.message() } });
        let mut response = json(self.status(), &body);
        if let Self::Unauthorized = self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON answer, never cached.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = typed(body.to_string(), "application/json");
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 200 with `body` of `content_type`.
pub fn typed(body: String, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
