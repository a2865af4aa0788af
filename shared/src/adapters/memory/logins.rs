//! In-memory twins of the login ports: [`MemoryLoginStore`] (same rules as
//! [`crate::adapters::dynamodb::logins::DynamoLoginStore`]) and [`MemoryFacebookLogin`], a scripted
//! stand-in for the Graph calls of Facebook Login.

use crate::adapters::memory::sync::lock;
use crate::domain::login::{
    Login, LoginLink, LoginRecorded, LoginState, PermissionRow, Profile, StateConsumed, TokenInfo,
    UserToken,
};
use crate::domain::opt_in::{Millis, OptInKey};
use crate::facebook::graph_error::{GraphError, GraphErrorBody};
use crate::ports::error::{PortError, PortResult};
use crate::ports::logins::{FacebookLogin, LoginStore};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
struct Tables {
    logins: HashMap<(String, String), Login>,
    links: HashMap<OptInKey, LoginLink>,
    states: HashMap<String, LoginState>,
    /// LOGINs waiting for their opt-in → since when (the sparse due-index entry of DynamoDB).
    waiting: HashMap<(String, String), Millis>,
    /// LOGINs already alerted as without opt-in (`orphan_alerted_at`).
    alerted: HashMap<(String, String), Millis>,
}

/// In-memory [`LoginStore`].
#[derive(Default)]
pub struct MemoryLoginStore {
    tables: Mutex<Tables>,
    /// When set, every call fails.
    pub fail: AtomicBool,
}

impl MemoryLoginStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn check(&self) -> PortResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(PortError::new("memory-login-store", "injected failure"))
        } else {
            Ok(())
        }
    }

    pub fn logins(&self) -> Vec<Login> {
        lock(&self.tables).logins.values().cloned().collect()
    }

    pub fn states(&self) -> Vec<LoginState> {
        lock(&self.tables).states.values().cloned().collect()
    }

    /// Remove the person's LOGIN and the link item of `opt_in` (data deletion); how many existed.
    pub fn remove_person(&self, page_id: &str, asid: &str, opt_in: Option<&OptInKey>) -> u32 {
        let mut t = lock(&self.tables);
        let id = (page_id.to_owned(), asid.to_owned());
        t.waiting.remove(&id);
        t.alerted.remove(&id);
        let mut n = u32::from(t.logins.remove(&id).is_some());
        if let Some(key) = opt_in {
            n += u32::from(t.links.remove(key).is_some());
        }
        n
    }

    /// How many items of every kind are stored (tests assert "nothing written").
    pub fn item_count(&self) -> usize {
        let t = lock(&self.tables);
        t.logins.len() + t.links.len() + t.states.len()
    }
}

#[async_trait]
impl LoginStore for MemoryLoginStore {
    async fn record_login(&self, login: &Login) -> PortResult<LoginRecorded> {
        self.check()?;
        let mut t = lock(&self.tables);
        let id = (login.page_id.clone(), login.asid.clone());
        let now = login.last_login_at;
        let link_stale = login
            .opt_in_key()
            .and_then(|k| t.links.get(&k))
            .is_some_and(|l| l.last_login_at > now);
        if let Some(existing) = t.logins.get(&id)
            && (existing.last_login_at > now || link_stale)
        {
            return Ok(LoginRecorded::Stale(Box::new(existing.clone())));
        }
        let mut merged = login.clone();
        if let Some(existing) = t.logins.get(&id) {
            merged.login_at = existing.login_at;
            if merged.first_name.is_none() {
                merged.first_name = existing.first_name.clone();
            }
            if merged.expected_login_id.is_none() {
                merged.expected_login_id = existing.expected_login_id.clone();
            }
            if merged.user_ref.is_none() {
                merged.user_ref = existing.user_ref.clone();
            }
        }
        if let Some(key) = login.opt_in_key() {
            let first_name = login
                .first_name
                .clone()
                .or_else(|| t.links.get(&key).and_then(|l| l.first_name.clone()));
            t.links.insert(
                key,
                LoginLink {
                    asid: login.asid.clone(),
                    first_name,
                    last_login_at: now,
                },
            );
        }
        if login.awaits_opt_in() {
            t.waiting.entry(id.clone()).or_insert(now);
        } else if login.permission == crate::domain::login::Permission::Declined {
            t.waiting.remove(&id);
        }
        t.logins.insert(id, merged.clone());
        Ok(LoginRecorded::Done(Box::new(merged)))
    }

    async fn get_login(&self, page_id: &str, asid: &str) -> PortResult<Option<Login>> {
        self.check()?;
        Ok(lock(&self.tables)
            .logins
            .get(&(page_id.to_owned(), asid.to_owned()))
            .cloned())
    }

    async fn link_for(&self, key: &OptInKey) -> PortResult<Option<LoginLink>> {
        self.check()?;
        Ok(lock(&self.tables).links.get(key).cloned())
    }

    async fn put_state(&self, state: &LoginState) -> PortResult<()> {
        self.check()?;
        let mut t = lock(&self.tables);
        if t.states.contains_key(&state.state_hash) {
            return Err(PortError::new("memory-login-store", "state exists"));
        }
        t.states.insert(state.state_hash.clone(), state.clone());
        Ok(())
    }

    async fn waiting_for_opt_in(&self, granted_by: Millis, limit: usize) -> PortResult<Vec<Login>> {
        self.check()?;
        let t = lock(&self.tables);
        let mut due: Vec<(Millis, &(String, String))> = t
            .waiting
            .iter()
            .filter(|(_, since)| **since <= granted_by)
            .map(|(id, since)| (*since, id))
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .filter_map(|(_, id)| t.logins.get(id).cloned())
            .take(limit)
            .collect())
    }

    async fn stop_waiting_for_opt_in(
        &self,
        page_id: &str,
        asid: &str,
        alerted_at: Option<Millis>,
    ) -> PortResult<bool> {
        self.check()?;
        let mut t = lock(&self.tables);
        let id = (page_id.to_owned(), asid.to_owned());
        match alerted_at {
            Some(at) => {
                if !t.waiting.contains_key(&id) || t.alerted.contains_key(&id) {
                    return Ok(false);
                }
                t.waiting.remove(&id);
                t.alerted.insert(id, at);
                Ok(true)
            }
            None => {
                if !t.logins.contains_key(&id) {
                    return Ok(false);
                }
                t.waiting.remove(&id);
                Ok(true)
            }
        }
    }

    async fn consume_state(&self, state_hash: &str, now: Millis) -> PortResult<StateConsumed> {
        self.check()?;
        let mut t = lock(&self.tables);
        Ok(match t.states.get(state_hash) {
            None => StateConsumed::Unknown,
            Some(s) if s.expires_at_ms <= now => StateConsumed::Expired,
            Some(_) => match t.states.remove(state_hash) {
                Some(s) => StateConsumed::Consumed(s),
                None => StateConsumed::Unknown,
            },
        })
    }
}

/// A person the scripted Graph knows, by user token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedUser {
    pub app_id: String,
    pub asid: String,
    pub first_name: Option<String>,
    pub messenger_granted: bool,
}

/// A scripted [`FacebookLogin`]: codes map to tokens, tokens to users. Unknown codes and tokens get
/// Graph's error answers; `calls` records every call (without tokens).
#[derive(Default)]
pub struct MemoryFacebookLogin {
    /// code → (redirect_uri it was issued for, token).
    pub codes: Mutex<HashMap<String, (String, String)>>,
    pub users: Mutex<HashMap<String, ScriptedUser>>,
    pub calls: Mutex<Vec<&'static str>>,
    /// When set, every call fails with a connection error.
    pub down: AtomicBool,
}

impl MemoryFacebookLogin {
    /// Issue `code` (for `redirect_uri`) for a new token of `user`; returns the token.
    pub fn issue(&self, code: &str, redirect_uri: &str, user: ScriptedUser) -> String {
        let token = format!("EAA-{code}");
        lock(&self.codes).insert(code.to_owned(), (redirect_uri.to_owned(), token.clone()));
        lock(&self.users).insert(token.clone(), user);
        token
    }

    /// A token (as the JavaScript SDK gives a site) for `user`.
    pub fn token_for(&self, token: &str, user: ScriptedUser) {
        lock(&self.users).insert(token.to_owned(), user);
    }

    pub fn calls(&self) -> Vec<&'static str> {
        lock(&self.calls).clone()
    }

    fn call(&self, name: &'static str) -> Result<(), GraphError> {
        lock(&self.calls).push(name);
        if self.down.load(Ordering::SeqCst) {
            Err(GraphError::Connection)
        } else {
            Ok(())
        }
    }

    fn user(&self, token: &UserToken) -> Result<ScriptedUser, GraphError> {
        lock(&self.users)
            .get(token.expose())
            .cloned()
            .ok_or_else(|| api_error(190, None, "Invalid OAuth access token."))
    }
}

fn api_error(code: i64, subcode: Option<i64>, message: &str) -> GraphError {
    GraphError::Api {
        status: 400,
        body: GraphErrorBody {
            message: message.to_owned(),
            error_type: Some("OAuthException".into()),
            code,
            error_subcode: subcode,
            fbtrace_id: Some("memory".into()),
            is_transient: None,
        },
    }
}

#[async_trait]
impl FacebookLogin for MemoryFacebookLogin {
    async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<UserToken, GraphError> {
        self.call("exchange_code")?;
        match lock(&self.codes).remove(code) {
            Some((uri, token)) if uri == redirect_uri => Ok(UserToken::new(token)),
            Some(_) => Err(api_error(
                100,
                Some(36_008),
                "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
            )),
            None => Err(api_error(
                100,
                Some(36_009),
                "This authorization code has been used.",
            )),
        }
    }

    async fn debug_token(&self, token: &UserToken) -> Result<TokenInfo, GraphError> {
        self.call("debug_token")?;
        Ok(match lock(&self.users).get(token.expose()) {
            Some(u) => TokenInfo {
                is_valid: true,
                app_id: Some(u.app_id.clone()),
                user_id: Some(u.asid.clone()),
                token_type: Some("USER".into()),
                scopes: vec!["public_profile".into()],
            },
            None => TokenInfo::default(),
        })
    }

    async fn me(&self, token: &UserToken) -> Result<Profile, GraphError> {
        self.call("me")?;
        let u = self.user(token)?;
        Ok(Profile {
            id: u.asid,
            first_name: u.first_name,
        })
    }

    async fn permissions(&self, token: &UserToken) -> Result<Vec<PermissionRow>, GraphError> {
        self.call("permissions")?;
        let u = self.user(token)?;
        Ok(vec![
            PermissionRow {
                permission: "public_profile".into(),
                status: "granted".into(),
            },
            PermissionRow {
                permission: crate::domain::login::MESSENGER_PERMISSION.into(),
                status: if u.messenger_granted {
                    "granted"
                } else {
                    "declined"
                }
                .into(),
            },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::login::{LoginSource, Permission};

    fn login(asid: &str, at: Millis, name: Option<&str>) -> Login {
        Login {
            page_id: "p".into(),
            asid: asid.into(),
            first_name: name.map(str::to_owned),
            permission: Permission::Granted,
            expected_login_id: Some(format!("lid-{asid}")),
            login_at: at,
            last_login_at: at,
            source: LoginSource::Callback,
            user_ref: None,
        }
    }

    #[tokio::test]
    async fn logins_merge_keep_the_first_time_and_refuse_older_writes() {
        let s = MemoryLoginStore::new();
        let first = s.record_login(&login("1", 10, Some("Ana"))).await.unwrap();
        assert!(matches!(first, LoginRecorded::Done(_)));
        let again = s.record_login(&login("1", 20, None)).await.unwrap();
        let LoginRecorded::Done(now) = again else {
            panic!("newer login must be recorded")
        };
        assert_eq!((now.login_at, now.last_login_at), (10, 20));
        assert_eq!(now.first_name.as_deref(), Some("Ana"));
        let older = s.record_login(&login("1", 15, Some("Old"))).await.unwrap();
        assert!(matches!(older, LoginRecorded::Stale(ref l) if l.last_login_at == 20));
        let link = s
            .link_for(&OptInKey::new("p", "lid-1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (link.asid.as_str(), link.first_name.as_deref()),
            ("1", Some("Ana"))
        );
    }

    #[tokio::test]
    async fn granted_logins_wait_for_their_opt_in_until_settled_or_alerted_once() {
        let s = MemoryLoginStore::new();
        s.record_login(&login("1", 10, None)).await.unwrap();
        let mut declined = login("2", 10, None);
        declined.permission = Permission::Declined;
        s.record_login(&declined).await.unwrap();
        let mut unknown = login("3", 10, None);
        unknown.expected_login_id = None;
        s.record_login(&unknown).await.unwrap();
        assert!(s.waiting_for_opt_in(9, 10).await.unwrap().is_empty());
        let waiting = s.waiting_for_opt_in(10, 10).await.unwrap();
        assert_eq!(
            waiting.iter().map(|l| l.asid.as_str()).collect::<Vec<_>>(),
            ["1"]
        );
        // A later login keeps the first grant time.
        s.record_login(&login("1", 20, None)).await.unwrap();
        assert_eq!(s.waiting_for_opt_in(10, 10).await.unwrap().len(), 1);
        assert!(s.stop_waiting_for_opt_in("p", "1", Some(30)).await.unwrap());
        assert!(
            !s.stop_waiting_for_opt_in("p", "1", Some(31)).await.unwrap(),
            "once"
        );
        assert!(s.waiting_for_opt_in(100, 10).await.unwrap().is_empty());
        // Logging in again waits again, but an alerted LOGIN is never alerted twice.
        s.record_login(&login("1", 40, None)).await.unwrap();
        assert_eq!(s.waiting_for_opt_in(40, 10).await.unwrap().len(), 1);
        assert!(!s.stop_waiting_for_opt_in("p", "1", Some(50)).await.unwrap());
        assert!(s.stop_waiting_for_opt_in("p", "1", None).await.unwrap());
        assert!(s.waiting_for_opt_in(100, 10).await.unwrap().is_empty());
        // A decline stops the wait.
        s.record_login(&login("4", 10, None)).await.unwrap();
        let mut revoked = login("4", 11, None);
        revoked.permission = Permission::Declined;
        s.record_login(&revoked).await.unwrap();
        assert!(s.waiting_for_opt_in(100, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn states_are_single_use_and_expire() {
        let s = MemoryLoginStore::new();
        let st = LoginState {
            state_hash: "h".into(),
            return_to: "https://x/".into(),
            redirect_uri: "https://api/login/callback".into(),
            created_at: 0,
            expires_at_ms: 100,
            user_ref: None,
        };
        s.put_state(&st).await.unwrap();
        assert!(s.put_state(&st).await.is_err());
        assert_eq!(
            s.consume_state("h", 100).await.unwrap(),
            StateConsumed::Expired
        );
        assert_eq!(
            s.consume_state("h", 99).await.unwrap(),
            StateConsumed::Consumed(st)
        );
        assert_eq!(
            s.consume_state("h", 1).await.unwrap(),
            StateConsumed::Unknown
        );
    }
}
