//! The two ports of the login flow: [`LoginStore`] (LOGIN records and login states, DynamoDB) and
//! [`FacebookLogin`] (Facebook Login's Graph calls).

use crate::domain::login::{
    Login, LoginLink, LoginRecorded, LoginState, PermissionRow, Profile, StateConsumed, TokenInfo,
    UserToken,
};
use crate::domain::opt_in::{Millis, OptInKey};
use crate::facebook::graph_error::GraphError;
use crate::ports::error::PortResult;
use async_trait::async_trait;

#[async_trait]
pub trait LoginStore: Send + Sync {
    /// Record a login: create the person's LOGIN (and, with an expected login_id, its link item),
    /// or merge into the stored one, keeping the first `login_at`. Refused (→ `Stale`) when a newer
    /// login is already stored, so concurrent logins never go back in time.
    async fn record_login(&self, login: &Login) -> PortResult<LoginRecorded>;

    async fn get_login(&self, page_id: &str, asid: &str) -> PortResult<Option<Login>>;

    /// The LOGIN linked to an opt-in's login_id, if any (consistent read).
    async fn link_for(&self, key: &OptInKey) -> PortResult<Option<LoginLink>>;

    /// Store a new login state (refused if the same hash exists: a state is issued once).
    async fn put_state(&self, state: &LoginState) -> PortResult<()>;

    /// Delete the state if it exists and has not expired at `now`, in one conditional write.
    async fn consume_state(&self, state_hash: &str, now: Millis) -> PortResult<StateConsumed>;

    /// Granted LOGINs with an expected login_id, still waiting for their opt-in since at or before
    /// `granted_by`, longest waiting first (a sparse index: settled LOGINs are not read).
    async fn waiting_for_opt_in(&self, granted_by: Millis, limit: usize) -> PortResult<Vec<Login>>;

    /// Stop waiting for a LOGIN's opt-in. With `alerted_at`, record the alert: conditional on the
    /// LOGIN still waiting and never alerted, so one caller wins and a person is alerted about once.
    /// Without it, just settle it (its opt-in exists). Returns whether the write was made.
    async fn stop_waiting_for_opt_in(
        &self,
        page_id: &str,
        asid: &str,
        alerted_at: Option<Millis>,
    ) -> PortResult<bool>;
}

/// The Graph calls of Facebook Login (adapter: [`crate::adapters::graph::GraphClient`]).
#[async_trait]
pub trait FacebookLogin: Send + Sync {
    /// `GET /oauth/access_token` with the code from the dialog's redirect.
    async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<UserToken, GraphError>;
    /// `GET /debug_token` with the app token.
    async fn debug_token(&self, token: &UserToken) -> Result<TokenInfo, GraphError>;
    /// `GET /me?fields=id,first_name`.
    async fn me(&self, token: &UserToken) -> Result<Profile, GraphError>;
    /// `GET /me/permissions`.
    async fn permissions(&self, token: &UserToken) -> Result<Vec<PermissionRow>, GraphError>;
}
