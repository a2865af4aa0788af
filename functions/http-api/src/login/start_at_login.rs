//! `START_AT_LOGIN=true`: a login that granted `user_messenger_contact`, with its login_id derived,
//! creates the opt-in itself (opted in at the login's time) and queues the send, as Meta's
//! direct-integrator sample does, instead of waiting for the `messaging_optins` webhook; the webhook
//! is then a duplicate. Off by default: Meta's login_id derivation is unverified live, and a wrong
//! login_id would make this opt-in unreachable while the webhook's own opt-in is sent.

use crate::deps::Deps;
use shared::domain::login::{Login, Permission};
use shared::use_cases::opt_in::{OptInRecorded, Origin};
use tracing::{error, info};

/// Record the opt-in of `login` when `START_AT_LOGIN` is on, the permission granted and the
/// login_id known. A failure is logged, never returned: the LOGIN is recorded, and the webhook
/// still records the opt-in when it comes (or, when this login recorded it, arranges its alert
/// again: `shared::use_cases::opt_in`).
pub async fn start_opt_in(deps: &Deps, login: &Login) {
    if !deps.config.login.start_at_login || login.permission != Permission::Granted {
        return;
    }
    let Some(key) = login.opt_in_key() else {
        info!("START_AT_LOGIN is on but the login_id is not derived; waiting for the webhook");
        return;
    };
    let recorded = deps
        .ports
        .opt_in_recording(&deps.config)
        .record(
            key,
            Origin::Login,
            deps.secrets.app_secret.expose(),
            login.last_login_at,
        )
        .await;
    match recorded {
        Ok(OptInRecorded::New(_)) => info!("opt-in started at login"),
        Ok(_) => {}
        Err(e) => error!(error = %e, "could not start the opt-in at login; the webhook will"),
    }
}
