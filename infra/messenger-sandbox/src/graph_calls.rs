//! The checks every token-carrying Graph call makes, shared by Facebook Login's routes (`oauth`)
//! and the Page setup's (`page_setup`): the version in the path, the query, the app token
//! (`{app_id}|{app_secret}`), and the Page token with its state (expired, invalidated).
//! Bottom module: it imports no route module and not the state.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};

use crate::SandboxConfig;
use crate::errors::{
    GRAPH_METHOD_EXCEPTION, GraphError, INVALID_PARAMETER, INVALID_TOKEN, OAUTH_EXCEPTION,
    PROOF_INVALID, TOKEN_EXPIRED, TOKEN_INVALIDATED, unknown_path,
};
use crate::ids::is_graph_version;
use crate::setup::PageTokenState;

pub(crate) type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

pub(crate) fn params(query: Params) -> HashMap<String, String> {
    query.map(|Query(q)| q).unwrap_or_default()
}

/// `rest` is the path after the version, for the 803 answer to an unknown version.
pub(crate) fn version_ok<T>(
    path: &Result<Path<T>, PathRejection>,
    version: impl Fn(&T) -> &str,
    rest: &str,
) -> Result<(), GraphError> {
    match path {
        Ok(Path(p)) if is_graph_version(version(p)) => Ok(()),
        Ok(Path(p)) => Err(unknown_path(&format!("/{}/{rest}", version(p)))),
        Err(_) => Err(GraphError::invalid_parameter(INVALID_PARAMETER)),
    }
}

pub(crate) fn non_empty<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// An `appsecret_proof`, when one is sent, must be the HMAC of `token` with the app secret.
fn check_proof(
    config: &SandboxConfig,
    q: &HashMap<String, String>,
    token: &str,
) -> Result<(), GraphError> {
    if let Some(proof) = non_empty(q, "appsecret_proof") {
        let expected = shared::facebook::crypto::appsecret_proof(&config.app_secret, token);
        if !proof.eq_ignore_ascii_case(&expected) {
            return Err(GraphError::new(100, GRAPH_METHOD_EXCEPTION, PROOF_INVALID));
        }
    }
    Ok(())
}

/// The app token `{app_id}|{app_secret}`, with its `appsecret_proof` checked when one is sent.
pub(crate) fn check_app_token(
    config: &SandboxConfig,
    q: &HashMap<String, String>,
) -> Result<(), GraphError> {
    let app_token = format!("{}|{}", config.app_id, config.app_secret);
    if non_empty(q, "access_token") != Some(app_token.as_str()) {
        return Err(GraphError::new(
            190,
            OAUTH_EXCEPTION,
            "Invalid OAuth access token signature.",
        ));
    }
    check_proof(config, q, &app_token)
}

/// Graph's answer to a call with a Page token in `state` (none while it is valid).
pub(crate) fn page_token_state_error(state: PageTokenState) -> Option<GraphError> {
    match state {
        PageTokenState::Valid => None,
        PageTokenState::Expired => {
            Some(GraphError::new(190, OAUTH_EXCEPTION, TOKEN_EXPIRED).with_subcode(463))
        }
        PageTokenState::Invalidated => {
            Some(GraphError::new(190, OAUTH_EXCEPTION, TOKEN_INVALIDATED).with_subcode(460))
        }
    }
}

/// The Page token (query `access_token`) in its current state, and its proof when one is sent.
pub(crate) fn check_page_token(
    config: &SandboxConfig,
    state: PageTokenState,
    q: &HashMap<String, String>,
) -> Result<(), GraphError> {
    if non_empty(q, "access_token") != Some(config.page_access_token.as_str()) {
        return Err(GraphError::new(190, OAUTH_EXCEPTION, INVALID_TOKEN));
    }
    if let Some(e) = page_token_state_error(state) {
        return Err(e);
    }
    check_proof(config, q, &config.page_access_token)
}
