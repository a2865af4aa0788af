//! `{first_name}` in the initial message: filled from the LOGIN linked to the opt-in (whichever
//! arrived first), or the fallback when none is linked.

use crate::twins::Twins;
use sender::{Deps, PageViews};
use shared::adapters::memory::config::test_config;
use shared::adapters::memory::logins::MemoryLoginStore;
use shared::adapters::memory::messenger::MemoryMessenger;
use shared::adapters::memory::opt_ins::MemoryOptInStore;
use shared::config::env;
use shared::domain::login::{Login, LoginSource, Permission};
use shared::domain::opt_in::{HOUR_MS, OptIn, OptInKey};
use shared::ports::logins::LoginStore;
use shared::ports::opt_ins::OptInStore;
use std::sync::Arc;

const NOW: i64 = 1_795_536_000_000;
const PAGE: &str = "200000000000002";

struct World {
    deps: Deps,
    store: Arc<MemoryOptInStore>,
    logins: Arc<MemoryLoginStore>,
    messenger: Arc<MemoryMessenger>,
}

fn world(overrides: &[(&str, &str)]) -> World {
    let twins = Twins::at(NOW);
    let deps = Deps::from_ports(test_config(overrides), &twins.ports());
    World {
        deps,
        store: twins.store,
        logins: twins.logins,
        messenger: twins.messenger,
    }
}

impl World {
    async fn opt_in(&self, login_id: &str) -> OptInKey {
        let o = OptIn::new(
            OptInKey::new(PAGE, login_id),
            Some(NOW),
            NOW,
            24 * HOUR_MS,
            0,
        );
        self.store.create_opt_in(&o).await.unwrap();
        o.key()
    }

    async fn login(&self, asid: &str, login_id: &str, name: Option<&str>) {
        self.logins
            .record_login(&Login {
                page_id: PAGE.into(),
                asid: asid.into(),
                first_name: name.map(str::to_owned),
                permission: Permission::Granted,
                expected_login_id: Some(login_id.into()),
                login_at: NOW,
                last_login_at: NOW,
                source: LoginSource::Callback,
                user_ref: None,
            })
            .await
            .unwrap();
    }

    fn texts(&self) -> Vec<String> {
        self.messenger
            .sent()
            .into_iter()
            .map(|(_, _, t)| t)
            .collect()
    }
}

const TEMPLATE: &str = "Hi {first_name}, thanks for connecting!";

#[tokio::test]
async fn the_linked_first_name_is_used_whichever_arrived_first() {
    let w = world(&[(env::INITIAL_MESSAGE_TEXT, TEMPLATE)]);
    // Login first, then the opt-in.
    w.login("1", "L1", Some("Ana")).await;
    let k1 = w.opt_in("L1").await;
    // Opt-in first, then the login (before the sender runs).
    let k2 = w.opt_in("L2").await;
    w.login("2", "L2", Some("Bo")).await;
    run_job(&w, &k1).await;
    run_job(&w, &k2).await;
    assert_eq!(
        w.texts(),
        [
            "Hi Ana, thanks for connecting!",
            "Hi Bo, thanks for connecting!"
        ]
    );
}

#[tokio::test]
async fn unknown_or_unreadable_names_use_the_fallback() {
    let w = world(&[
        (env::INITIAL_MESSAGE_TEXT, TEMPLATE),
        (env::FIRST_NAME_FALLBACK, "friend"),
    ]);
    let unlinked = w.opt_in("L1").await;
    w.login("2", "L2", None).await;
    let nameless = w.opt_in("L2").await;
    run_job(&w, &unlinked).await;
    run_job(&w, &nameless).await;
    w.login("3", "L3", Some("Cy")).await;
    let broken = w.opt_in("L3").await;
    w.logins
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    run_job(&w, &broken).await;
    assert_eq!(
        w.texts(),
        ["Hi friend, thanks for connecting!"; 3],
        "a failing lookup must not stop the send"
    );
}

#[tokio::test]
async fn a_text_without_the_placeholder_does_not_read_the_login() {
    let w = world(&[(env::INITIAL_MESSAGE_TEXT, "Hello!")]);
    w.logins
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let k = w.opt_in("L1").await;
    run_job(&w, &k).await;
    assert_eq!(w.texts(), ["Hello!"]);
}

/// One send job, as the sender handles it inside a batch.
async fn run_job(w: &World, key: &OptInKey) -> sender::RecordOutcome {
    let views = PageViews::load(&w.deps, vec![key.page_id.clone()]).await;
    sender::process_job(
        &w.deps,
        &views,
        &shared::domain::jobs::SendJob::for_key(key),
        "first-name-job",
    )
    .await
}
