//! Graph's errors, in one catalogue: the JSON envelope
//! `{"error":{"message","type","code","error_subcode"?,"is_transient"?,"fbtrace_id"}}` and the exact
//! message texts the sandbox answers with (Send API, Facebook Login, rate limit), so every route
//! and the fault rules speak with one voice (`shared/reference/messenger.md` §3.5 and §7.6).

use std::borrow::Cow;

use axum::Json;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ids::random_alphanumeric;

pub(crate) const OAUTH_EXCEPTION: &str = "OAuthException";
pub(crate) const GRAPH_METHOD_EXCEPTION: &str = "GraphMethodException";
/// Errors of the `/_sandbox` control endpoints (not something Graph sends).
pub(crate) const SANDBOX_ERROR: &str = "SandboxError";

pub(crate) const INVALID_PARAMETER: &str = "(#100) Invalid parameter";

// The Send API.
pub(crate) const INVALID_TOKEN: &str = "Invalid OAuth access token.";
pub(crate) const PROOF_REQUIRED: &str =
    "API calls from the server require an appsecret_proof argument";
pub(crate) const PROOF_INVALID: &str = "Invalid appsecret_proof provided in the API argument";
pub(crate) const NO_MATCHING_USER: &str = "(#100) No matching user found";
pub(crate) const OUTSIDE_WINDOW: &str = "(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview";
pub(crate) const TAG_ON_LOGIN_ID: &str = "(#100) Invalid parameter: message tags cannot be used to send the initial message to a login_id";
pub(crate) const RATE_LIMITED: &str = "(#613) Calls to this api have exceeded the rate limit.";
/// A Page token past its expiry (subcode 463; Graph names the dates, the sandbox fixed ones).
pub(crate) const TOKEN_EXPIRED: &str = "Error validating access token: Session has expired on Thursday, 01-Jan-26 00:00:00 PST. The current time is Friday, 02-Jan-26 00:00:00 PST.";
/// A Page token invalidated by a password change or a security reset (subcode 460).
pub(crate) const TOKEN_INVALIDATED: &str = "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.";

// The Page's and the app's webhook subscriptions.
pub(crate) const APP_TOKEN_REQUIRED: &str =
    "(#15) This method must be called with an app access_token.";
pub(crate) const SUBSCRIBED_FIELDS_REQUIRED: &str =
    "(#100) The parameter subscribed_fields is required.";

// Facebook Login.
pub(crate) const CODE_USED: &str = "This authorization code has been used.";
pub(crate) const CODE_EXPIRED: &str = "This authorization code has expired.";
pub(crate) const CODE_REDIRECT_MISMATCH: &str = "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request";
pub(crate) const CODE_INVALID: &str = "Invalid verification code format.";
pub(crate) const CLIENT_SECRET_INVALID: &str = "Error validating client secret.";
pub(crate) const APP_ID_INVALID: &str = "Error validating application. Invalid application ID.";
pub(crate) const OTHER_APP_TOKEN: &str =
    "(#100) The App_id in the input_token did not match the Viewing App";
pub(crate) const ACTIVE_TOKEN_REQUIRED: &str =
    "An active access token must be used to query information about the current user.";

/// A Graph error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub message: String,
    pub kind: Cow<'static, str>,
    pub code: i64,
    pub subcode: Option<i64>,
    /// Sent only when true (Graph leaves it out otherwise).
    pub is_transient: bool,
    /// Random unless a fault rule fixes it.
    pub fbtrace_id: Option<String>,
}

impl GraphError {
    /// HTTP 400, no subcode.
    pub fn new(code: i64, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: Cow::Borrowed(kind),
            code,
            subcode: None,
            is_transient: false,
            fbtrace_id: None,
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
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    is_transient: bool,
    fbtrace_id: String,
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let envelope = Envelope {
            error: Body {
                message: &self.message,
                kind: &self.kind,
                code: self.code,
                error_subcode: self.subcode,
                is_transient: self.is_transient,
                fbtrace_id: self.fbtrace_id.unwrap_or_else(|| random_alphanumeric(23)),
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
