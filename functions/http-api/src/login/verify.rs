//! Verifying a user access token and recording the LOGIN: shared by `/login/callback` (after the
//! code exchange) and `POST /v1/logins` (tokens from the JavaScript SDK), which both emit
//! `login.completed` here.
//!
//! The token lives only in this request: it is passed to Graph and dropped, never stored or logged.

use crate::deps::Deps;
use shared::domain::login::{
    Login, LoginSource, Permission, UserToken, is_valid_asid, messenger_permission,
};
use shared::domain::message::clean_first_name;
use shared::domain::opt_in::login_id_prefix;
use shared::facebook::crypto::derive_login_id;
use shared::facebook::graph_error::GraphError;
use shared::ports::error::PortError;
use tracing::{info, warn};

/// What Graph says about the person behind a token we accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub asid: String,
    pub first_name: Option<String>,
    pub permission: Permission,
}

/// Why a token (or code) was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Graph says the token (or the code) is not valid.
    #[error("the token is not valid")]
    InvalidToken,
    /// A valid token, but issued to another Facebook app.
    #[error("the token belongs to another app")]
    OtherApp,
    /// Graph could not be asked (timeout, connection, 5xx, unreadable answer).
    #[error("Facebook could not be reached: {0}")]
    Unavailable(GraphError),
    /// The LOGIN could not be written.
    #[error("the login could not be recorded: {0}")]
    Store(PortError),
}

fn from_graph(e: GraphError) -> Refusal {
    match e {
        // Graph refused the request itself: a bad, expired or used token or code.
        GraphError::Api { status, .. } if status < 500 => Refusal::InvalidToken,
        other => Refusal::Unavailable(other),
    }
}

/// `debug_token` (valid, our app, a user id), then `/me` and `/me/permissions` concurrently.
pub async fn verify_token(deps: &Deps, token: &UserToken) -> Result<Verified, Refusal> {
    let info = deps
        .ports
        .facebook
        .debug_token(token)
        .await
        .map_err(|e| match e {
            // Debugging another app's token with our app token is refused with this message
            // (not in Meta's readable docs; the sandbox answers the same).
            GraphError::Api { ref body, .. }
                if body.message.contains("did not match the Viewing App") =>
            {
                Refusal::OtherApp
            }
            other => from_graph(other),
        })?;
    if !info.is_valid {
        return Err(Refusal::InvalidToken);
    }
    if info.app_id.as_deref() != Some(deps.config.fb_app_id.as_str()) {
        return Err(Refusal::OtherApp);
    }
    let asid = info
        .user_id
        .filter(|id| is_valid_asid(id))
        .ok_or(Refusal::InvalidToken)?;
    let (me, permissions) = futures::join!(
        deps.ports.facebook.me(token),
        deps.ports.facebook.permissions(token)
    );
    let me = me.map_err(from_graph)?;
    if me.id != asid {
        return Err(Refusal::InvalidToken);
    }
    let permissions = permissions.map_err(from_graph)?;
    Ok(Verified {
        asid,
        first_name: clean_first_name(me.first_name.as_deref()),
        permission: messenger_permission(&permissions),
    })
}

/// Exchange the dialog's code for a token, then verify it.
pub async fn verify_code(deps: &Deps, code: &str, redirect_uri: &str) -> Result<Verified, Refusal> {
    let token = deps
        .ports
        .facebook
        .exchange_code(code, redirect_uri)
        .await
        .map_err(from_graph)?;
    verify_token(deps, &token).await
}

/// Record the LOGIN (conditional write), with the expected login_id when derivation is on.
pub async fn record(
    deps: &Deps,
    verified: &Verified,
    source: LoginSource,
    user_ref: Option<String>,
) -> Result<Login, Refusal> {
    let now = deps.ports.clock.now();
    let config = &deps.config;
    let client_token = deps.secrets.client_token.expose();
    let expected_login_id = if !config.login.derive_login_id {
        None
    } else if client_token.is_empty() {
        warn!(
            "DERIVE_LOGIN_ID is on but the secret has no client_token; the opt-in cannot be linked"
        );
        None
    } else {
        Some(derive_login_id(
            client_token,
            &verified.asid,
            &config.fb_app_id,
            &config.fb_page_id,
        ))
    };
    let login = Login {
        page_id: config.fb_page_id.clone(),
        asid: verified.asid.clone(),
        first_name: verified.first_name.clone(),
        permission: verified.permission,
        expected_login_id,
        login_at: now,
        last_login_at: now,
        source,
        user_ref,
    };
    let recorded = deps
        .ports
        .logins
        .record_login(&login)
        .await
        .map_err(Refusal::Store)?;
    info!(
        source = source.as_str(),
        permission = verified.permission.as_str(),
        login_id_prefix = %login.expected_login_id.as_deref().map(login_id_prefix).unwrap_or_default(),
        stale = matches!(recorded, shared::domain::login::LoginRecorded::Stale(_)),
        "login recorded"
    );
    if let shared::domain::login::LoginRecorded::Done(login) = &recorded {
        // Absorbed (logged, counted): the login is recorded and nobody retries this request.
        let _ = deps.ports.events().login_completed(login).await;
        super::start_at_login::start_opt_in(deps, login).await;
    }
    Ok(recorded.login().clone())
}
