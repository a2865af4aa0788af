//! Promise 4: deletion erases everything that identifies the person, or says truthfully that it
//! could not.
//!
//! Meta's deauthorize and data deletion callbacks carry only the app-scoped user id (asid). The
//! opt-in is keyed by login_id, so it is found through every link the product has: the login_id
//! the person's LOGIN recorded (its link item names the same key) and the login_id derived from the
//! asid (when derivation is on). The PSID link and any pending stop are reached from the opt-in
//! itself. When no link is known, the opt-in cannot be found: the LOGIN is still erased, and the
//! deletion record says `partial`, with why, instead of claiming every record is gone.

use crate::domain::erasure::{
    DeletionRecord, KnownOptIn, PersonItems, STATUS_COMPLETED, STATUS_PARTIAL, erasure_marker,
};
use crate::domain::events::Subject;
use crate::domain::login::Permission;
use crate::domain::opt_in::{Millis, OptInKey, login_id_prefix};
use crate::ports::erasure::ErasureStore;
use crate::ports::error::PortResult;
use crate::ports::logins::LoginStore;
use crate::ports::opt_ins::Transitioned;
use crate::use_cases::opt_out::{OptOut, OptOuts};
use tracing::{info, warn};

/// The login_id derived from the person's asid, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Derivation {
    Derived(String),
    /// Derivation is off or impossible; the reason, in words for the person and the operator.
    Unavailable(&'static str),
}

/// Why there is no derived login_id when `DERIVE_LOGIN_ID=false`.
pub const DERIVATION_OFF: &str = "login_id derivation is turned off (DERIVE_LOGIN_ID=false)";
/// Why there is no derived login_id when the client token is empty.
pub const NO_CLIENT_TOKEN: &str = "the app's client token is not configured";

/// The person: their asid on this Page, and the derived login_id (or why there is none).
#[derive(Debug, Clone)]
pub struct Person<'a> {
    pub page_id: &'a str,
    pub asid: &'a str,
    pub derivation: Derivation,
}

/// Every opt-in key the product links to the person, without duplicates: the LOGIN's recorded
/// login_id, then the derived one.
pub async fn opt_in_keys(
    logins: &dyn LoginStore,
    person: &Person<'_>,
) -> PortResult<Vec<OptInKey>> {
    let mut keys = Vec::new();
    if let Some(login) = logins.get_login(person.page_id, person.asid).await?
        && let Some(key) = login.opt_in_key()
    {
        keys.push(key);
    }
    if let Derivation::Derived(login_id) = &person.derivation {
        let key = OptInKey::new(person.page_id, login_id);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Why no opt-in could be found for the person (they have no link).
fn unlinked_reason(person: &Person<'_>) -> String {
    let why = match &person.derivation {
        Derivation::Unavailable(why) => why,
        Derivation::Derived(_) => "no login_id is known",
    };
    format!(
        "Your login record was deleted, but your Messenger opt-in, if you gave one, could not be \
         found: {why}, and no login of yours recorded the identifier it is stored under. Such a \
         record holds no name and is deleted automatically within 180 days of its deadline."
    )
}

/// Why the deletion cannot confirm the opt-in is gone: the person granted the permission, so an
/// opt-in is expected, but none exists under the login_id the product knows. Either it has not
/// arrived yet (the erasure marker then refuses it), or it is stored under another login_id (the
/// derivation does not match this app): the product cannot tell which, so it says so.
const NOT_FOUND_REASON: &str = "Your login record was deleted. You allowed this Page to contact you \
     on Messenger, but no opt-in was found under the identifier we know for you: if Facebook \
     delivered one under another identifier, it could not be found. Such a record holds no name \
     and is deleted automatically within 180 days of its deadline.";

/// How to log why a deletion or deauthorize found nothing (never the derived login_id itself).
fn derivation_reason(derivation: &Derivation) -> &'static str {
    match derivation {
        Derivation::Unavailable(why) => why,
        Derivation::Derived(_) => "no opt-in under the derived or recorded login_id",
    }
}

/// The ports deauthorize and deletion need.
#[derive(Clone, Copy)]
pub struct Deletions<'a> {
    pub opt_outs: OptOuts<'a>,
    pub logins: &'a dyn LoginStore,
    pub erasure: &'a dyn ErasureStore,
    /// The person's follow-ups (their text and asid) are erased with them.
    pub follow_ups: &'a dyn crate::ports::follow_ups::FollowUpStore,
    /// Keys the erasure markers.
    pub app_secret: &'a str,
}

impl Deletions<'_> {
    /// Deauthorize: stop every send to the person, on every opt-in the product links to them (an
    /// opt-in not there yet gets an OPTED_OUT placeholder). Returns what each opt-out did; empty
    /// when no link is known (logged: the operator learns the derivation is off).
    pub async fn deauthorize(
        &self,
        person: &Person<'_>,
        source: &str,
        now: Millis,
    ) -> PortResult<Vec<OptOut>> {
        let keys = opt_in_keys(self.logins, person).await?;
        if keys.is_empty() {
            warn!(
                reason = derivation_reason(&person.derivation),
                "deauthorize: the person's opt-in cannot be found (no login_id known); nothing stopped"
            );
        }
        let mut done = Vec::with_capacity(keys.len());
        for key in &keys {
            let out = self.opt_outs.opt_out_person(key, source, now).await?;
            info!(login_id_prefix = %login_id_prefix(&key.login_id), state = %out.item.state, source, "sending stopped");
            done.push(out);
        }
        Ok(done)
    }

    /// Data deletion: stop every send (the conditional opt-out the claim checks), then erase the
    /// LOGIN and every linked opt-in with its PSID link, pending stop and login link, leaving an
    /// erasure marker; record the status (`completed`, or `partial` with why) under `code`; then
    /// `person.deleted` (after `person.opted_out`), carrying the `user_ref` read before the erasure.
    pub async fn delete_person(
        &self,
        person: &Person<'_>,
        source: &str,
        code: &str,
        now: Millis,
    ) -> PortResult<DeletionRecord> {
        let login = self.logins.get_login(person.page_id, person.asid).await?;
        let granted = login
            .as_ref()
            .is_some_and(|login| login.permission == Permission::Granted);
        let keys = opt_in_keys(self.logins, person).await?;
        let mut found = false;
        for key in &keys {
            // No placeholder: the erasure marker is what keeps a redelivered opt-in out.
            let result = self.opt_outs.opt_out_opt_in(key, source, now).await?;
            found |= !matches!(result, Transitioned::Refused(None));
        }
        let items = PersonItems {
            page_id: person.page_id.to_owned(),
            asid: person.asid.to_owned(),
            opt_ins: keys
                .iter()
                .map(|key| KnownOptIn {
                    key: key.clone(),
                    marker: erasure_marker(self.app_secret, key),
                })
                .collect(),
        };
        let erased = self.erasure.erase(&items, now).await?
            + self
                .follow_ups
                .erase_person(person.page_id, person.asid)
                .await?;
        let partial_reason = if keys.is_empty() {
            Some(unlinked_reason(person))
        } else if granted && !found {
            Some(NOT_FOUND_REASON.to_owned())
        } else {
            None
        };
        if partial_reason.is_some() {
            warn!(
                reason = derivation_reason(&person.derivation),
                granted, "data deletion partial: the person's opt-in cannot be found"
            );
        }
        let record = DeletionRecord {
            confirmation_code: code.to_owned(),
            status: if partial_reason.is_some() {
                STATUS_PARTIAL
            } else {
                STATUS_COMPLETED
            }
            .to_owned(),
            requested_at: now,
            completed_at: now,
            items_erased: erased,
            partial_reason,
        };
        let record = self.erasure.put_deletion_record(&record).await?;
        // The person as they were: the website's reference is erased with the LOGIN.
        let subject = Subject {
            asid: Some(person.asid.to_owned()),
            user_ref: login.and_then(|login| login.user_ref),
            state: None,
        };
        self.opt_outs
            .events
            .person_deleted(person.page_id, &subject, &record.confirmation_code, now)
            .await?;
        Ok(record)
    }
}
