//! The app's and the Page's setup on Meta's side, as an operator's preflight checks see it: the
//! Page token's state, whether the Page subscribed the app (and to which fields), and the app's
//! webhook subscription (active, fields). Its callback URL is the sandbox's webhook URL: the one
//! place Meta keeps it, so a "wrong callback URL" also sends the deliveries elsewhere, as on Meta.
//!
//! A fresh sandbox is set up as a go-live-ready app: valid token, Page subscribed to the three
//! fields the product needs, subscription active. The switches (`/_sandbox/page_token`,
//! `/_sandbox/subscriptions`, in `page_setup`) break one thing each so every doctor line can fail.
//!
//! This module is the switch itself (bottom: it imports no route module and not the state).

use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// The webhook fields the product needs (shared/reference/messenger.md: Webhooks).
pub(crate) const PRODUCT_FIELDS: [&str; 3] = [
    "messages",
    "messaging_optins",
    "messaging_policy_enforcement",
];

/// What `debug_token` and the Send API make of the Page token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageTokenState {
    #[default]
    Valid,
    /// Past its `expires_at` (Graph code 190, subcode 463).
    Expired,
    /// Invalidated by a password change or a security reset (code 190, subcode 460).
    Invalidated,
}

/// The permissions a Page token made for Messenger carries.
pub(crate) const PAGE_TOKEN_SCOPES: [&str; 3] = [
    "pages_messaging",
    "pages_manage_metadata",
    "pages_show_list",
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Setup {
    pub page_token: PageTokenState,
    /// The Page token's permissions (`debug_token`'s `scopes`).
    pub page_token_scopes: Vec<String>,
    /// Seconds until the Page token expires; `None`: never (`expires_at: 0`, a Page token made
    /// from a long-lived user token).
    pub page_token_expires_in_s: Option<i64>,
    /// The Page's `subscribed_apps` lists this app.
    pub page_subscribed: bool,
    pub page_fields: Vec<String>,
    /// The app's `page` webhook subscription is active.
    pub app_active: bool,
    pub app_fields: Vec<String>,
}

impl Default for Setup {
    fn default() -> Self {
        let fields: Vec<String> = PRODUCT_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        Self {
            page_token: PageTokenState::Valid,
            page_token_scopes: PAGE_TOKEN_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            page_token_expires_in_s: None,
            page_subscribed: true,
            page_fields: fields.clone(),
            app_active: true,
            app_fields: fields,
        }
    }
}

#[derive(Default)]
pub(crate) struct MetaSetup(RwLock<Setup>);

impl MetaSetup {
    pub fn get(&self) -> Setup {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut Setup)) -> Setup {
        let mut setup = self.0.write().unwrap_or_else(|p| p.into_inner());
        change(&mut setup);
        setup.clone()
    }

    pub fn reset(&self) {
        self.update(|s| *s = Setup::default());
    }
}
