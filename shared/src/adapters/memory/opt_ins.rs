//! In-memory twin of the opt-in store. It applies the same rules as the DynamoDB adapter (the
//! conditions come from the same domain functions: [`transition`], [`first_attention`]), and keeps
//! the due index as DynamoDB does: a recorded opt-in is not in it until
//! [`OptInStore::watch_from`] (or a pause) puts it there. It is never the only test: the real
//! adapters are exercised against moto in `tests/`.

use crate::adapters::memory::sync::lock;
use crate::domain::attention::first_attention;
use crate::domain::erasure::{erases, may_be_unchecked};
use crate::domain::opt_in::{Event, Millis, OptIn, OptInKey, SendOutcome, State, transition};
use crate::domain::page::PageState;
use crate::ports::conversations::PendingStop;
use crate::ports::error::{PortError, PortResult};
use crate::ports::history::OptInHistory;
use crate::ports::opt_ins::{ConsentGuard, Created, OptInStore, Recorded, Transitioned};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

/// In-memory [`OptInStore`].
#[derive(Default)]
pub struct MemoryOptInStore {
    pub(super) items: Mutex<HashMap<OptInKey, OptIn>>,
    pub(super) psids: Mutex<HashMap<(String, String), OptInKey>>,
    /// Stops from PSIDs not linked yet, by (page_id, psid).
    pub(super) pending_stops: Mutex<HashMap<(String, String), PendingStop>>,
    /// The due index: when the sweep must next look at each watched opt-in (an entry left by a
    /// terminal item is ignored, as DynamoDB removes it).
    pub(super) attention: Mutex<HashMap<OptInKey, Millis>>,
    /// Page state items (see [`crate::adapters::memory::pages`]).
    pub(super) pages: Mutex<HashMap<String, PageState>>,
    /// The drift check's items (see [`crate::adapters::memory::drift`]): the claimed day per
    /// Page, and the failing flag per (Page, check).
    pub(super) drift_days: Mutex<HashMap<String, String>>,
    pub(super) drift_failing: Mutex<HashMap<(String, String), bool>>,
    /// When set, every call fails (to test failure paths).
    pub fail: std::sync::atomic::AtomicBool,
    /// When set, only [`OptInStore::watch_from`] fails (the due-index write after a recorded
    /// opt-in, while the recording itself works).
    pub fail_watch: std::sync::atomic::AtomicBool,
    /// When set, only [`OptInStore::get_opt_in`] fails (a read failing after a write worked).
    pub fail_get: std::sync::atomic::AtomicBool,
    /// Erasure markers → erased_at (written by [`crate::adapters::memory::erasure::MemoryErasure`]; checked by `record_opt_in` under
    /// the items lock, as DynamoDB checks them in the same transaction).
    pub(super) erased: Mutex<HashMap<String, Millis>>,
    /// Runs once, at the start of the next opt-in creation (tests interleave a concurrent write).
    #[allow(clippy::type_complexity)]
    pub before_next_create: Mutex<Option<Box<dyn FnOnce(&MemoryOptInStore) + Send>>>,
}

impl MemoryOptInStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The claim, of any incarnation or only of the one recorded at `created_at`.
    fn claim(
        &self,
        key: &OptInKey,
        created_at: Option<Millis>,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<Transitioned> {
        self.apply(
            key,
            Event::Claim,
            |i| i.claimable(now) && created_at.is_none_or(|c| i.created_at == c),
            |i| {
                i.attempts += 1;
                i.lease_owner = Some(owner.to_owned());
                i.lease_until = Some(lease_until);
                i.updated_at = now;
            },
        )
    }

    pub fn all(&self) -> Vec<OptIn> {
        lock(&self.items).values().cloned().collect()
    }

    /// Remove an opt-in, its PSID links and its PSID's pending stop (data deletion); how many
    /// items existed.
    pub fn remove(&self, key: &OptInKey) -> u32 {
        let removed = lock(&self.items).remove(key);
        self.remove_links(key, removed.as_ref()) + u32::from(removed.is_some())
    }

    /// Remove the PSID links of `key` and the pending stop of the removed opt-in's PSID; how many
    /// existed.
    fn remove_links(&self, key: &OptInKey, removed: Option<&OptIn>) -> u32 {
        let mut n = 0;
        if let Some(psid) = removed.and_then(|o| o.psid.clone()) {
            n += u32::from(
                lock(&self.pending_stops)
                    .remove(&(key.page_id.clone(), psid))
                    .is_some(),
            );
        }
        let mut psids = lock(&self.psids);
        let before = psids.len();
        psids.retain(|_, k| k != key);
        n + (before - psids.len()) as u32
    }

    /// Every pending stop (tests).
    pub fn pending_stops(&self) -> Vec<PendingStop> {
        lock(&self.pending_stops).values().cloned().collect()
    }

    /// Every PSID link as (page_id, psid, opt-in) (tests).
    pub fn psid_links(&self) -> Vec<(String, String, OptInKey)> {
        lock(&self.psids)
            .iter()
            .map(|((p, s), k)| (p.clone(), s.clone(), k.clone()))
            .collect()
    }

    /// Record that the opt-in behind `marker` was erased at `at` (what a data deletion writes
    /// first).
    pub fn mark_erased(&self, marker: &str, at: Millis) {
        lock(&self.erased).insert(marker.to_owned(), at);
    }

    fn run_before_create(&self) {
        let hook = lock(&self.before_next_create).take();
        if let Some(hook) = hook {
            hook(self);
        }
    }

    /// Seed an opt-in watched by the due index from its first attention time (as
    /// [`crate::adapters::dynamodb::opt_ins::item_with_due_at`] seeds a table).
    pub fn insert(&self, opt_in: OptIn) {
        lock(&self.attention).insert(opt_in.key(), first_attention(&opt_in));
        lock(&self.items).insert(opt_in.key(), opt_in);
    }

    /// When the sweep must next look at the opt-in (its `due_at`), while it is unsent and in the
    /// due index; `None` when nothing put it there.
    pub fn due_at(&self, key: &OptInKey) -> Option<Millis> {
        let open = lock(&self.items)
            .get(key)
            .is_some_and(|i| !i.state.is_terminal());
        if open {
            lock(&self.attention).get(key).copied()
        } else {
            None
        }
    }

    /// Put the opt-in in the due index at `now` (a PAUSED write does, in the same update).
    pub(super) fn watch_now(&self, key: &OptInKey, now: Millis) {
        lock(&self.attention).insert(key.clone(), now);
    }

    pub(super) fn check(&self) -> PortResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(PortError::new("memory-store", "injected failure"))
        } else {
            Ok(())
        }
    }

    /// Apply `event` when `guard` holds for the current item; `mutate` sets the event's fields.
    pub(super) fn apply(
        &self,
        key: &OptInKey,
        event: Event,
        guard: impl FnOnce(&OptIn) -> bool,
        mutate: impl FnOnce(&mut OptIn),
    ) -> PortResult<Transitioned> {
        self.check()?;
        let mut items = lock(&self.items);
        let Some(item) = items.get_mut(key) else {
            return Ok(Transitioned::Refused(None));
        };
        match transition(item.state, event) {
            Ok(target) if guard(item) => {
                item.state = target;
                mutate(item);
                Ok(Transitioned::Done(Box::new(item.clone())))
            }
            _ => Ok(Transitioned::Refused(Some(Box::new(item.clone())))),
        }
    }
}

impl MemoryOptInStore {
    /// An opt-out by `event` ([`Event::OptOut`] ends the opt-in, [`Event::OptOutAfterEnd`] keeps
    /// its state), recorded once, with the state it found, as the DynamoDB updates do.
    fn record_opt_out(
        &self,
        key: &OptInKey,
        event: Event,
        source: &str,
        now: Millis,
    ) -> PortResult<Transitioned> {
        let found = std::cell::Cell::new(None);
        self.apply(
            key,
            event,
            |i| {
                found.set(Some(i.state));
                // After the end: once (DynamoDB: `attribute_not_exists(opted_out_at)`).
                event == Event::OptOut || i.opted_out_at.is_none()
            },
            |i| {
                i.opted_out_from = found.get();
                i.opted_out_at = Some(now);
                i.opt_out_source = Some(source.to_owned());
                i.updated_at = now;
                if event == Event::OptOut {
                    end(i, now);
                }
            },
        )
    }
}

fn end(item: &mut OptIn, now: Millis) {
    item.terminal_at = Some(now);
    item.lease_owner = None;
    item.lease_until = None;
}

#[async_trait]
impl OptInStore for MemoryOptInStore {
    async fn create_opt_in(&self, opt_in: &OptIn) -> PortResult<Created> {
        self.run_before_create();
        self.check()?;
        let mut items = lock(&self.items);
        match items.get(&opt_in.key()) {
            Some(existing) => Ok(Created::AlreadyExists(Box::new(existing.clone()))),
            None => {
                items.insert(opt_in.key(), opt_in.clone());
                lock(&self.attention).remove(&opt_in.key());
                Ok(Created::New)
            }
        }
    }

    async fn record_opt_in(&self, opt_in: &OptIn, guard: &ConsentGuard) -> PortResult<Recorded> {
        self.run_before_create();
        self.check()?;
        let mut items = lock(&self.items);
        // Atomic here, with the outcomes of the DynamoDB adapter's write-then-check: a first
        // generation erased by the marker is not written; a stored one that may never have been
        // checked (a writer stopped before its check) is checked and removed; a renewal is checked.
        let erased_at = lock(&self.erased).get(&guard.erasure_marker).copied();
        let key = opt_in.key();
        let renewed = match items.get(&key) {
            None if erases(erased_at, opt_in.opted_in_at) => return Ok(Recorded::Erased),
            None => None,
            Some(current)
                if may_be_unchecked(current) && erases(erased_at, current.opted_in_at) =>
            {
                let removed = items.remove(&key);
                drop(items);
                lock(&self.attention).remove(&key);
                self.remove_links(&key, removed.as_ref());
                return Ok(Recorded::Erased);
            }
            Some(current)
                if opt_in.state == State::OptedIn
                    && crate::domain::opt_in::is_new_consent(current, guard.event_at) =>
            {
                if erases(erased_at, opt_in.opted_in_at) {
                    return Ok(Recorded::Erased);
                }
                Some(opt_in.clone().renewing(current))
            }
            Some(current) => return Ok(Recorded::AlreadyExists(Box::new(current.clone()))),
        };
        let stored = renewed.clone().unwrap_or_else(|| opt_in.clone());
        // The whole item is written anew, without the due attributes (not in the index).
        lock(&self.attention).remove(&key);
        items.insert(key, stored);
        Ok(match renewed {
            None => Recorded::New,
            Some(renewed) => Recorded::Renewed(Box::new(renewed)),
        })
    }

    async fn get_opt_in(&self, key: &OptInKey) -> PortResult<Option<OptIn>> {
        self.check()?;
        if self.fail_get.load(Ordering::SeqCst) {
            return Err(PortError::new("memory", "injected get_opt_in failure"));
        }
        Ok(lock(&self.items).get(key).cloned())
    }

    async fn claim_for_send(
        &self,
        key: &OptInKey,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<Transitioned> {
        self.claim(key, None, owner, now, lease_until)
    }

    async fn claim_incarnation_for_send(
        &self,
        key: &OptInKey,
        created_at: Millis,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> PortResult<Transitioned> {
        self.claim(key, Some(created_at), owner, now, lease_until)
    }

    async fn finish_send(
        &self,
        key: &OptInKey,
        owner: &str,
        outcome: &SendOutcome,
        now: Millis,
    ) -> PortResult<Transitioned> {
        let event = match outcome {
            SendOutcome::Sent { .. } => Event::Accepted,
            SendOutcome::Retry { .. } => Event::TransientFailure,
            SendOutcome::Unreachable { .. } => Event::Unreachable,
            SendOutcome::WindowClosed { .. } => Event::WindowRejected,
            SendOutcome::Paused { .. } => Event::ConfigRejected,
        };
        let finished = self.apply(
            key,
            event,
            |i| i.lease_owner.as_deref() == Some(owner),
            |i| {
                i.updated_at = now;
                match outcome {
                    SendOutcome::Sent { message_id } => {
                        i.message_id = Some(message_id.clone());
                        i.sent_at = Some(now);
                        end(i, now);
                    }
                    SendOutcome::Retry { error } | SendOutcome::Paused { error } => {
                        i.last_error = Some(error.clone());
                        i.lease_owner = None;
                        i.lease_until = None;
                    }
                    SendOutcome::Unreachable { error } | SendOutcome::WindowClosed { error } => {
                        i.last_error = Some(error.clone());
                        end(i, now);
                    }
                }
            },
        )?;
        if finished.is_done() && matches!(outcome, SendOutcome::Paused { .. }) {
            // As DynamoDB's PAUSED write: watched from now on (the Page's resume finds it there).
            self.watch_now(key, now);
        }
        Ok(finished)
    }

    async fn record_send_after_opt_out(
        &self,
        key: &OptInKey,
        attempt: u32,
        message_id: &str,
        sent_at: Millis,
    ) -> PortResult<Transitioned> {
        self.check()?;
        let mut items = lock(&self.items);
        let Some(item) = items.get_mut(key) else {
            return Ok(Transitioned::Refused(None));
        };
        if item.state == State::OptedOut && item.attempts == attempt && item.message_id.is_none() {
            item.message_id = Some(message_id.to_owned());
            item.sent_at = Some(sent_at);
            item.sent_after_opt_out = true;
            item.updated_at = sent_at;
            Ok(Transitioned::Done(Box::new(item.clone())))
        } else {
            Ok(Transitioned::Refused(Some(Box::new(item.clone()))))
        }
    }

    async fn expire(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned> {
        self.apply(
            key,
            Event::DeadlinePassed,
            |i| i.deadline_passed(now) && (i.state != State::Sending || i.lease_expired(now)),
            |i| {
                i.updated_at = now;
                end(i, now);
            },
        )
    }

    async fn opt_out(&self, key: &OptInKey, source: &str, now: Millis) -> PortResult<Transitioned> {
        self.record_opt_out(key, Event::OptOut, source, now)
    }

    async fn opt_out_late(&self, key: &OptInKey, by: &str, at: Millis) -> PortResult<Transitioned> {
        self.record_opt_out(key, Event::OptOutAfterEnd, by, at)
    }

    async fn mark_alerted(&self, key: &OptInKey, now: Millis) -> PortResult<Transitioned> {
        self.check()?;
        let mut items = lock(&self.items);
        let Some(item) = items.get_mut(key) else {
            return Ok(Transitioned::Refused(None));
        };
        if item.alerted_at.is_none() {
            item.alerted_at = Some(now);
            Ok(Transitioned::Done(Box::new(item.clone())))
        } else {
            Ok(Transitioned::Refused(Some(Box::new(item.clone()))))
        }
    }

    async fn due_for_attention(&self, due_by: Millis, limit: usize) -> PortResult<Vec<OptIn>> {
        self.check()?;
        let attention = lock(&self.attention);
        let mut due: Vec<(Millis, OptIn)> = lock(&self.items)
            .values()
            .filter(|i| !i.state.is_terminal())
            .filter_map(|i| {
                let at = attention.get(&i.key()).copied()?;
                (at <= due_by).then(|| (at, i.clone()))
            })
            .collect();
        due.sort_by(|(a_due, a), (b_due, b)| {
            (a_due, &a.page_id, &a.login_id).cmp(&(b_due, &b.page_id, &b.login_id))
        });
        due.truncate(limit);
        Ok(due.into_iter().map(|(_, o)| o).collect())
    }

    async fn watch_from(&self, key: &OptInKey, at: Millis) -> PortResult<Transitioned> {
        self.check()?;
        if self.fail_watch.load(Ordering::SeqCst) {
            return Err(PortError::new("memory-store", "injected due-index failure"));
        }
        let items = lock(&self.items);
        match items.get(key) {
            Some(item) if !item.state.is_terminal() => {
                lock(&self.attention).insert(key.clone(), at);
                Ok(Transitioned::Done(Box::new(item.clone())))
            }
            other => Ok(Transitioned::Refused(other.cloned().map(Box::new))),
        }
    }
}

/// In-memory PSID links, beside the opt-ins of a [`MemoryOptInStore`].

#[async_trait]
impl OptInHistory for MemoryOptInStore {
    async fn opt_ins_between(&self, since: Millis, until: Millis) -> PortResult<Vec<OptIn>> {
        Ok(self
            .all()
            .into_iter()
            .filter(|o| o.opted_in_at >= since && o.opted_in_at < until)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::opt_in::{LastError, OptIn};

    fn opt_in(deadline: Millis) -> OptIn {
        OptIn::new(OptInKey::new("p", "l"), Some(0), 0, deadline, 0)
    }

    fn guard(marker: &str, event_at: Option<Millis>) -> ConsentGuard {
        ConsentGuard {
            erasure_marker: marker.into(),
            event_at,
        }
    }

    #[tokio::test]
    async fn an_opt_in_dated_before_an_erasure_is_refused_and_one_after_it_is_new() {
        let s = std::sync::Arc::new(MemoryOptInStore::new());
        let o = opt_in(1000);
        lock(&s.erased).insert("m".into(), 0);
        assert_eq!(
            s.record_opt_in(&o, &guard("m", Some(0))).await.unwrap(),
            Recorded::Erased
        );
        assert!(s.all().is_empty());
        let mut later = o.clone();
        later.opted_in_at = 1;
        assert_eq!(
            s.record_opt_in(&later, &guard("m", Some(1))).await.unwrap(),
            Recorded::New
        );
        assert_eq!(
            s.record_opt_in(&o, &guard("other", Some(0))).await.unwrap(),
            Recorded::AlreadyExists(Box::new(later))
        );
    }

    #[tokio::test]
    async fn a_stopped_writers_opt_in_is_erased_by_its_redelivery_as_the_dynamodb_adapter_does() {
        let s = MemoryOptInStore::new();
        let mut o = opt_in(1000);
        o.psid = Some("psid".into());
        // What a writer stopped between its write and its check leaves (DynamoDB), linked since.
        lock(&s.items).insert(o.key(), o.clone());
        lock(&s.psids).insert(("p".into(), "psid".into()), o.key());
        lock(&s.erased).insert("m".into(), 0);
        assert_eq!(
            s.record_opt_in(&opt_in(1000), &guard("m", Some(0)))
                .await
                .unwrap(),
            Recorded::Erased
        );
        assert!(s.all().is_empty());
        assert!(s.psid_links().is_empty());
        // A claimed one was checked by whoever queued its job: a duplicate, as stored.
        let mut claimed = opt_in(1000);
        claimed.state = State::Sending;
        claimed.attempts = 1;
        lock(&s.items).insert(claimed.key(), claimed.clone());
        assert_eq!(
            s.record_opt_in(&opt_in(1000), &guard("m", Some(0)))
                .await
                .unwrap(),
            Recorded::AlreadyExists(Box::new(claimed))
        );
    }

    #[tokio::test]
    async fn a_job_for_another_incarnation_claims_nothing_as_the_dynamodb_adapter_does() {
        let s = MemoryOptInStore::new();
        let o = opt_in(1000);
        lock(&s.items).insert(o.key(), o.clone());
        let stale = o.created_at - 1;
        assert!(
            !s.claim_incarnation_for_send(&o.key(), stale, "old", 10, 500)
                .await
                .unwrap()
                .is_done()
        );
        assert!(
            s.claim_incarnation_for_send(&o.key(), o.created_at, "own", 10, 500)
                .await
                .unwrap()
                .is_done()
        );
    }

    #[tokio::test]
    async fn a_new_consent_after_an_opt_out_after_the_end_starts_a_new_generation() {
        let s = MemoryOptInStore::new();
        let first = OptIn::new(OptInKey::new("p", "l"), Some(0), 0, 1000, 0);
        s.record_opt_in(&first, &guard("m", Some(0))).await.unwrap();
        s.claim_for_send(&first.key(), "s", 1, 500).await.unwrap();
        let sent = SendOutcome::Sent {
            message_id: "m.1".into(),
        };
        s.finish_send(&first.key(), "s", &sent, 2).await.unwrap();
        assert!(
            s.opt_out_late(&first.key(), "api", 10)
                .await
                .unwrap()
                .is_done()
        );
        // The webhook of a consent dated `t`.
        let consent_at = async |t: Millis| {
            let o = OptIn::new(first.key(), Some(t), t, 1000, 0);
            s.record_opt_in(&o, &guard("m", Some(t))).await.unwrap()
        };
        let horizon = 10 + crate::domain::opt_in::REDELIVERY_HORIZON_MS;
        let within = consent_at(horizon).await;
        assert!(matches!(within, Recorded::AlreadyExists(_)), "{within:?}");
        let Recorded::Renewed(renewed) = consent_at(horizon + 1).await else {
            panic!("a consent beyond the horizon after a late opt-out is new");
        };
        assert!(!renewed.has_opted_out(), "the new consent is not opted out");
        assert_eq!(
            renewed.previous_generations[0].message_id.as_deref(),
            Some("m.1")
        );
    }

    #[tokio::test]
    async fn a_new_consent_after_an_opt_out_is_recorded_as_a_new_generation() {
        let s = MemoryOptInStore::new();
        let first = OptIn::new(OptInKey::new("p", "l"), Some(0), 0, 1000, 0);
        s.record_opt_in(&first, &guard("m", Some(0))).await.unwrap();
        s.opt_out(&first.key(), "api", 10).await.unwrap();
        // A redelivery of the withdrawn consent, even one received later, changes nothing.
        let at = 10 + crate::domain::opt_in::REDELIVERY_HORIZON_MS;
        let redelivered = OptIn::new(first.key(), Some(0), at + 5, 1000, 0);
        assert!(matches!(
            s.record_opt_in(&redelivered, &guard("m", Some(0))).await.unwrap(),
            Recorded::AlreadyExists(ref o) if o.state == State::OptedOut
        ));
        let within = OptIn::new(first.key(), Some(at), at, 1000, 0);
        assert!(matches!(
            s.record_opt_in(&within, &guard("m", Some(at)))
                .await
                .unwrap(),
            Recorded::AlreadyExists(_)
        ));
        let again = OptIn::new(first.key(), Some(at + 1), at + 1, 1000, 0);
        let Recorded::Renewed(renewed) = s
            .record_opt_in(&again, &guard("m", Some(at + 1)))
            .await
            .unwrap()
        else {
            panic!("a consent beyond the horizon is new");
        };
        assert_eq!((renewed.generation, renewed.state), (1, State::OptedIn));
        assert_eq!(
            renewed.previous_generations[0].opt_out_source.as_deref(),
            Some("api")
        );
        assert_eq!(
            s.get_opt_in(&first.key()).await.unwrap().as_ref(),
            Some(&*renewed)
        );
        assert_eq!(
            s.due_at(&first.key()),
            None,
            "written anew, out of the due index until its follow-up watches it"
        );
        // The same new consent redelivered: a duplicate of the new generation.
        assert!(matches!(
            s.record_opt_in(&again, &guard("m", Some(at + 1))).await.unwrap(),
            Recorded::AlreadyExists(ref o) if o.generation == 1
        ));
        // The new generation is sendable once, in its own window.
        assert!(
            s.claim_for_send(&first.key(), "job", at + 2, at + 100)
                .await
                .unwrap()
                .is_done()
        );
    }

    #[tokio::test]
    async fn create_is_idempotent() {
        let s = MemoryOptInStore::new();
        let o = opt_in(1000);
        assert_eq!(s.create_opt_in(&o).await.unwrap(), Created::New);
        assert!(matches!(
            s.create_opt_in(&o).await.unwrap(),
            Created::AlreadyExists(_)
        ));
    }

    #[tokio::test]
    async fn claim_lease_and_owner_rules() {
        let s = MemoryOptInStore::new();
        let o = opt_in(1000);
        let k = o.key();
        s.create_opt_in(&o).await.unwrap();
        assert!(s.claim_for_send(&k, "a", 10, 100).await.unwrap().is_done());
        assert!(
            !s.claim_for_send(&k, "b", 20, 120).await.unwrap().is_done(),
            "live lease"
        );
        let sent = SendOutcome::Sent {
            message_id: "m".into(),
        };
        assert!(
            !s.finish_send(&k, "b", &sent, 30).await.unwrap().is_done(),
            "not the owner"
        );
        assert!(
            s.claim_for_send(&k, "b", 100, 200).await.unwrap().is_done(),
            "lease expired"
        );
        assert!(
            !s.finish_send(&k, "a", &sent, 110).await.unwrap().is_done(),
            "lost the lease"
        );
        let Transitioned::Done(done) = s.finish_send(&k, "b", &sent, 120).await.unwrap() else {
            panic!("owner must finish");
        };
        assert_eq!(
            (done.state, done.attempts, done.sent_at),
            (State::Sent, 2, Some(120))
        );
        assert!(
            !s.claim_for_send(&k, "c", 130, 230).await.unwrap().is_done(),
            "terminal"
        );
    }

    #[tokio::test]
    async fn no_claim_at_or_after_deadline_and_expiry_only_then() {
        let s = MemoryOptInStore::new();
        let o = opt_in(1000);
        let k = o.key();
        s.create_opt_in(&o).await.unwrap();
        assert!(!s.expire(&k, 999).await.unwrap().is_done());
        assert!(
            !s.claim_for_send(&k, "a", 1000, 2000)
                .await
                .unwrap()
                .is_done()
        );
        assert!(s.expire(&k, 1000).await.unwrap().is_done());
    }

    #[tokio::test]
    async fn opt_out_beats_a_later_claim_and_a_late_sent() {
        let s = MemoryOptInStore::new();
        let o = opt_in(1000);
        let k = o.key();
        s.create_opt_in(&o).await.unwrap();
        assert!(s.claim_for_send(&k, "a", 1, 50).await.unwrap().is_done());
        assert!(s.opt_out(&k, "api", 2).await.unwrap().is_done());
        let sent = SendOutcome::Sent {
            message_id: "m".into(),
        };
        assert!(!s.finish_send(&k, "a", &sent, 3).await.unwrap().is_done());
        let now = s.get_opt_in(&k).await.unwrap().unwrap();
        assert_eq!(now.state, State::OptedOut);
        let retry = SendOutcome::Retry {
            error: LastError::default(),
        };
        assert!(!s.finish_send(&k, "a", &retry, 4).await.unwrap().is_done());
    }

    #[tokio::test]
    async fn a_send_in_flight_at_the_opt_out_is_recorded_once_by_its_claim() {
        let s = MemoryOptInStore::new();
        let o = opt_in(1000);
        let k = o.key();
        s.create_opt_in(&o).await.unwrap();
        assert!(
            !s.record_send_after_opt_out(&k, 0, "m", 1)
                .await
                .unwrap()
                .is_done(),
            "not opted out"
        );
        assert!(s.claim_for_send(&k, "a", 1, 50).await.unwrap().is_done());
        assert!(
            !s.record_send_after_opt_out(&k, 1, "m", 2)
                .await
                .unwrap()
                .is_done(),
            "still SENDING: the SENT write is the sender's"
        );
        assert!(s.opt_out(&k, "api", 2).await.unwrap().is_done());
        assert!(
            !s.record_send_after_opt_out(&k, 2, "m", 3)
                .await
                .unwrap()
                .is_done(),
            "not the last claim"
        );
        let Transitioned::Done(out) = s.record_send_after_opt_out(&k, 1, "m", 3).await.unwrap()
        else {
            panic!("the in-flight send must be recorded");
        };
        assert_eq!(
            (
                out.state,
                out.message_id.as_deref(),
                out.sent_at,
                out.sent_after_opt_out
            ),
            (State::OptedOut, Some("m"), Some(3), true)
        );
        assert_eq!((out.opted_out_at, out.terminal_at), (Some(2), Some(2)));
        let Transitioned::Refused(Some(again)) =
            s.record_send_after_opt_out(&k, 1, "m2", 4).await.unwrap()
        else {
            panic!("recorded once");
        };
        assert_eq!(again.message_id.as_deref(), Some("m"));
        assert_eq!(
            s.record_send_after_opt_out(&OptInKey::new("p", "nobody"), 1, "m", 5)
                .await
                .unwrap(),
            Transitioned::Refused(None)
        );
    }

    #[tokio::test]
    async fn alerted_once_and_due_excludes_terminal() {
        let s = MemoryOptInStore::new();
        let o = opt_in(1000);
        let k = o.key();
        s.create_opt_in(&o).await.unwrap();
        assert!(
            s.due_for_attention(10_000, 10).await.unwrap().is_empty(),
            "created: not in the due index"
        );
        assert!(
            s.watch_from(&k, first_attention(&o))
                .await
                .unwrap()
                .is_done()
        );
        assert!(s.due_for_attention(999, 10).await.unwrap().is_empty());
        assert_eq!(s.due_for_attention(1000, 10).await.unwrap().len(), 1);
        assert!(s.mark_alerted(&k, 5).await.unwrap().is_done());
        assert!(!s.mark_alerted(&k, 6).await.unwrap().is_done());
        s.opt_out(&k, "api", 7).await.unwrap();
        assert!(s.due_for_attention(10_000, 10).await.unwrap().is_empty());
    }
}
