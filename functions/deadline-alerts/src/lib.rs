//! deadline-alerts: invoked by a per-opt-in one-time schedule (`deadline_check`) or by the
//! recurring sweep (`sweep`). It re-reads the opt-in before acting, so late, duplicate or retried
//! invocations are harmless.
//!
//! A deadline check (the opt-in's one-time schedule, which deletes itself once it ran) alerts when
//! the opt-in is at risk, then puts it in the due index at its next attention time: from then on
//! the sweep watches it (see [`shared::domain::attention`]).
//!
//! The sweep queries the sparse, sharded due index for the opt-ins whose next attention time has
//! come (see [`shared::domain::attention`]): it re-enqueues those stuck in `OPTED_IN`, alerts once about
//! those at risk, marks `EXPIRED` those past their deadline, and moves each one's next attention
//! time forward, so the next sweep reads only what needs it. It then alerts once about each granted
//! login whose expected opt-in never arrived (`ORPHAN_LOGIN_ALERT_AFTER_MINUTES`): the sign that the
//! login_id derivation does not match the app.
//!
//! Once a day the sweep also queues the drift check of Meta's side (issue 13 §2, a
//! [`Job::DriftCheck`] the sender runs: it holds the tokens, this function reads no secret). "Once
//! a day" is a conditional write of the day on the Page's drift item, not a read: however many
//! sweeps run (retries, concurrent invocations), one of them per UTC day queues the check.
//!
//! The sweep also queues again the PAUSED opt-ins that the Page's last resume (an accepted probe
//! or Meta's unblock) left behind — its re-queue failed, or the process stopped after setting the
//! Page ACTIVE — through [`shared::use_cases::page`]: each at most once per sweep, and only for one
//! opt-in window after the resume (nothing parked before it can still be sent later). While the
//! Page is paused by us, it queues one probe job when the probe is overdue by more than a probe
//! interval ([`shared::domain::page::PageState::probe_chain_broken`]): the sender acknowledges
//! duplicate jobs of parked opt-ins, so a prober that crashed before queueing the next probe
//! would otherwise leave the Page without one.

use futures::StreamExt;
use serde::Serialize;
use shared::adapters::graph::{GraphClient, GraphInitError};
use shared::bootstrap::{AwsPorts, SdkConfig};
use shared::config::secrets::SecretString;
use shared::config::settings::Config;
use shared::domain::alert::Alert;
use shared::domain::attention::{is_stuck, next_attention};
use shared::domain::jobs::{AlertInput, DriftCheckJob, Job, SendJob};
use shared::domain::opt_in::{Millis, OptIn, OptInKey, login_id_prefix};
use shared::ports::bundle::Ports;
use shared::ports::error::PortError;
use shared::ports::opt_ins::Transitioned;
use shared::use_cases::alert;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tracing::{error, info};

pub use shared::domain::attention::STUCK_AFTER_MS;

/// Most opt-ins one round of the sweep reads from the due index.
pub const SWEEP_LIMIT: usize = 1000;
/// Opt-ins attended to concurrently.
pub const SWEEP_CONCURRENCY: usize = 16;
/// A sweep keeps going while its rounds come back full, up to this many rounds and
/// [`SWEEP_TIME_BUDGET`] (the function's timeout is 60 s); the next sweep continues.
pub const SWEEP_MAX_ROUNDS: usize = 20;
pub const SWEEP_TIME_BUDGET: Duration = Duration::from_secs(40);

pub struct Deps {
    pub config: Config,
    /// deadline-alerts uses the opt-in and Page stores, the send queue, the scheduler (to cancel),
    /// alerts, metrics, the clock and the LOGIN store (granted logins whose opt-in never arrived).
    pub ports: Ports,
    /// Whether the sweep queues the daily drift check (on in every wiring; the moto world turns
    /// it off so that its queue holds only the send jobs its tests count).
    pub drift_checks: bool,
}

impl Deps {
    /// The production wiring, shared by [`run`] and the local runner. The bundle's Graph client is
    /// never called here (no Page token, no app secret: this function reads no secret).
    pub fn from_aws(config: Config, sdk: &SdkConfig) -> Result<Self, GraphInitError> {
        let graph = GraphClient::for_login(&config, SecretString::default())?;
        let ports = AwsPorts::new(&config, sdk).into_ports(&config, graph);
        Ok(Self::from_ports(config, &ports))
    }

    /// deadline-alerts over any port bundle.
    pub fn from_ports(config: Config, ports: &Ports) -> Self {
        Self {
            config,
            ports: ports.clone(),
            drift_checks: true,
        }
    }
}

/// The Lambda process: refuse TRACE logging of raw events, load config and clients once (cold
/// start), then handle schedule invocations. No secret is read (`load_settings()`): this function
/// uses none, and a malformed secret edit must not stop alerting (its IAM role cannot read the
/// secret either).
pub async fn run() -> Result<(), lambda_runtime::Error> {
    shared::bootstrap::check_log_levels_from_env()?;
    shared::bootstrap::init_logging();
    let (config, sdk) = shared::bootstrap::load_settings().await?;
    let deps = Deps::from_aws(config, &sdk)?;
    let deps = &deps;
    // The handler's own error type, not a boxed one: the runtime reports it through
    // `From<AlertsError> for Diagnostic`, with a readable `errorType`.
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            handle(deps, event.payload).await
        },
    ))
    .await
}

/// What one invocation did (returned as the invocation's result, and logged).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub checked: usize,
    pub alerted: usize,
    pub expired: usize,
    pub requeued: usize,
    /// Opt-ins whose next attention time the sweep moved forward.
    pub deferred: usize,
    /// Opt-ins a fired deadline check handed to the due index (the sweep watches them from then).
    pub watched: usize,
    /// Granted logins alerted because no matching opt-in arrived in time.
    pub logins_without_opt_in: usize,
    /// PAUSED opt-ins a Page resume left behind, queued again.
    pub requeued_paused: usize,
    /// Probe jobs queued for a paused Page whose probe chain was broken (0 or 1).
    pub probes_restarted: usize,
}

impl Summary {
    fn add(&mut self, visit: &Visit) {
        self.checked += 1;
        self.alerted += usize::from(visit.alerted);
        self.expired += usize::from(visit.expired);
        self.requeued += usize::from(visit.requeued);
        self.deferred += usize::from(visit.deferred);
        self.watched += usize::from(visit.watched);
    }
}

/// Why an invocation failed. Lambda shows it as `errorType` / `errorMessage` (the invocation's
/// result, the log, the scheduler DLQ's message attributes): [`AlertsError::error_type`] names the
/// failure in a word instead of the runtime's default, a Rust type path
/// (`alloc::boxed::Box<dyn core::error::Error + …>`).
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// Not retried usefully: the input never becomes valid (a hand-made invocation, a schedule
    /// written by other code).
    #[error(
        "the invocation input is neither a deadline_check nor a sweep ({0}); expected e.g. {{\"kind\":\"sweep\",\"version\":1}}"
    )]
    BadInput(String),
    /// DynamoDB, SQS or the scheduler failed: the scheduler retries the invocation, then the
    /// scheduler DLQ keeps it.
    #[error("a backing service failed, the invocation will be retried ({0})")]
    Port(#[from] PortError),
}

impl AlertsError {
    /// The Lambda `errorType`: stable, short, and the same for every message of its kind.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadInput(_) => "DeadlineAlerts.BadInput",
            Self::Port(_) => "DeadlineAlerts.ServiceUnavailable",
        }
    }
}

impl From<AlertsError> for lambda_runtime::Diagnostic {
    fn from(e: AlertsError) -> Self {
        Self {
            error_type: e.error_type().to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// Handle one invocation with its raw JSON input.
pub async fn handle(deps: &Deps, input: serde_json::Value) -> Result<Summary, AlertsError> {
    let input: AlertInput =
        serde_json::from_value(input).map_err(|e| AlertsError::BadInput(e.to_string()))?;
    let now = deps.ports.clock.now();
    let mut summary = Summary::default();
    match input {
        AlertInput::DeadlineCheck(check) => {
            // First hand the opt-in to the sweep (due now; one conditional write, no read): the
            // schedule is spent once it fired, and an invocation that fails after this point
            // (Lambda retries twice, then keeps the record in the scheduler DLQ) must not leave
            // the opt-in watched by nothing. Attending below moves its due time on.
            watch_fired(deps, &check.key(), now).await?;
            // A check whose deadline is not the opt-in's belongs to an earlier generation (the
            // person opted out, then consented anew): the new generation has its own schedule.
            if let Some(opt_in) = deps
                .ports
                .opt_ins
                .get_opt_in(&check.key())
                .await?
                .filter(|o| o.deadline_at == check.deadline_at)
            {
                let mut visit = attend(deps, &opt_in, now, false).await;
                watch_after_schedule(deps, &opt_in, &mut visit).await?;
                summary.add(&visit);
            }
        }
        AlertInput::Sweep { .. } => {
            sweep(deps, now, &mut summary).await?;
            summary.logins_without_opt_in = alert_logins_without_opt_in(deps, now).await;
            if deps.drift_checks {
                queue_drift_check(deps, now).await;
            }
        }
    }
    info!(
        checked = summary.checked,
        alerted = summary.alerted,
        expired = summary.expired,
        requeued = summary.requeued,
        deferred = summary.deferred,
        watched = summary.watched,
        logins_without_opt_in = summary.logins_without_opt_in,
        requeued_paused = summary.requeued_paused,
        probes_restarted = summary.probes_restarted,
        "deadline-alerts done"
    );
    Ok(summary)
}

async fn sweep(deps: &Deps, now: Millis, summary: &mut Summary) -> Result<(), AlertsError> {
    summary.requeued_paused = requeue_left_behind(deps).await;
    summary.probes_restarted = usize::from(restart_probe_chain(deps).await);
    let started = Instant::now();
    for _ in 0..SWEEP_MAX_ROUNDS {
        let due = deps
            .ports
            .opt_ins
            .due_for_attention(now, SWEEP_LIMIT)
            .await?;
        let full = due.len() == SWEEP_LIMIT;
        let visits: Vec<Visit> = futures::stream::iter(due)
            .map(|opt_in| async move { visit_and_defer(deps, &opt_in, now).await })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        let progressed = visits.iter().any(|v| v.deferred || v.expired);
        for visit in &visits {
            summary.add(visit);
        }
        // A full round may have left more behind; go on while it moved things along.
        if !full || !progressed || started.elapsed() >= SWEEP_TIME_BUDGET {
            break;
        }
    }
    Ok(())
}

/// Queue the PAUSED opt-ins the served Page's last resume left behind (once per sweep each).
/// Failures are logged: those opt-ins stay PAUSED and the next sweep tries again.
async fn requeue_left_behind(deps: &Deps) -> usize {
    let ports = deps.ports.page_ports(&deps.config);
    let mut queued = HashSet::new();
    match ports
        .requeue_for_sweep(
            &deps.config.fb_page_id,
            deps.config.optin_window_ms,
            &mut queued,
        )
        .await
    {
        Ok(n) if n > 0 => info!(
            requeued = n,
            "paused opt-ins left behind by a resume queued again"
        ),
        Ok(_) => {}
        Err(e) => error!(error = %e, "could not queue the paused opt-ins left behind by a resume"),
    }
    queued.len()
}

/// Queue one probe job for the served Page when it is paused by us and its probe chain is broken
/// (the prober crashed before queueing the next probe; jobs of parked opt-ins no longer come back
/// at each probe time, so nothing else would probe until a new opt-in arrives). Failures are
/// logged: the next sweep tries again.
async fn restart_probe_chain(deps: &Deps) -> bool {
    let ports = deps.ports.page_ports(&deps.config);
    match ports
        .restart_probe_chain(&deps.config.fb_page_id, deps.config.send.probe_interval_ms)
        .await
    {
        Ok(restarted) => {
            if restarted {
                info!("the paused Page's probe was overdue: a probe job queued");
            }
            restarted
        }
        Err(e) => {
            error!(error = %e, "could not restart the paused Page's probe");
            false
        }
    }
}

/// What attending to one opt-in did.
#[derive(Debug, Default, Clone, Copy)]
struct Visit {
    alerted: bool,
    expired: bool,
    requeued: bool,
    deferred: bool,
    /// Put in the due index after its schedule fired.
    watched: bool,
    /// Something could not be done: leave the opt-in due for the next sweep.
    failed: bool,
    /// When the sweep must look at it again (from [`next_attention`]).
    next: Option<Millis>,
}

/// After the one-time schedule fired (it deletes itself), the due index watches the opt-in from
/// its next attention time (the deadline, a lease's end; at once when something is still to do),
/// so the sweep expires it at the deadline. A failed write is returned: Lambda retries the
/// invocation (the alert is raised once: `mark_alerted`), then keeps it in the scheduler DLQ
/// (alarmed).
async fn watch_after_schedule(
    deps: &Deps,
    opt_in: &OptIn,
    visit: &mut Visit,
) -> Result<(), AlertsError> {
    if let Some(next) = visit.next {
        visit.watched = watch_fired(deps, &opt_in.key(), next).await?;
    }
    Ok(())
}

/// Put the opt-in of a fired schedule in the due index from `at`. `false`: refused, terminal or
/// gone meanwhile (nothing to watch). A failure fails the invocation, which Lambda retries.
async fn watch_fired(deps: &Deps, key: &OptInKey, at: Millis) -> Result<bool, AlertsError> {
    match deps.ports.opt_ins.watch_from(key, at).await {
        Ok(watched) => Ok(watched.is_done()),
        Err(e) => {
            error!(error = %e, "could not put the opt-in of a fired schedule in the due index");
            Err(e.into())
        }
    }
}

async fn visit_and_defer(deps: &Deps, opt_in: &OptIn, now: Millis) -> Visit {
    let mut visit = attend(deps, opt_in, now, true).await;
    if let Some(next) = visit.next.filter(|next| *next > now && !visit.failed) {
        match deps.ports.opt_ins.watch_from(&opt_in.key(), next).await {
            Ok(Transitioned::Done(_)) => visit.deferred = true,
            // Terminal meanwhile (sent, opted out): it has left the index.
            Ok(Transitioned::Refused(_)) => {}
            Err(e) => error!(error = %e, "could not move the next attention time"),
        }
    }
    visit
}

async fn attend(deps: &Deps, opt_in: &OptIn, now: Millis, sweeping: bool) -> Visit {
    let mut visit = Visit::default();
    if opt_in.state.is_terminal() {
        return visit;
    }
    let key = opt_in.key();
    let mut view = opt_in.clone();
    if opt_in.deadline_passed(now) {
        // When this call did not expire it (expired by someone else, a sender still holds a live
        // lease, or the write failed), `next_attention` keeps it due or looks again after the lease.
        if let Some(expired) = deps.ports.deadlines().expire(&key, now).await {
            visit.expired = true;
            view = expired;
        }
        visit.next = next_attention(&view, now);
        return visit;
    }
    // When the alert is refused (alerted by a concurrent invocation) or fails, the opt-in stays
    // due and the next sweep reads the current alerted_at.
    if opt_in.alert_at <= now
        && opt_in.alerted_at.is_none()
        && deps
            .ports
            .deadlines()
            .alert_at_risk_once(
                opt_in,
                now,
                "the initial message is still not sent and the deadline is near",
            )
            .await
    {
        visit.alerted = true;
        view.alerted_at = Some(now);
    }
    if sweeping && is_stuck(opt_in, now) {
        match deps.ports.queue.enqueue(&SendJob::for_opt_in(opt_in)).await {
            Ok(()) => {
                info!(login_id_prefix = %login_id_prefix(&opt_in.login_id), "stuck opt-in re-enqueued");
                visit.requeued = true;
            }
            Err(e) => {
                error!(error = %e, "could not re-enqueue a stuck opt-in");
                visit.failed = true;
            }
        }
    }
    visit.next = next_attention(&view, now);
    visit
}

/// Most waiting LOGINs one sweep looks at (the rest wait for the next sweep).
pub const ORPHAN_LOGIN_LIMIT: usize = 200;

/// Alert once about each granted LOGIN whose expected opt-in has not arrived
/// `ORPHAN_LOGIN_ALERT_AFTER_MINUTES` after the grant: that is how an operator learns that the
/// login_id derivation is wrong for their app (every opt-in would then carry another login_id).
/// LOGINs whose opt-in exists are settled without an alert. Failures are logged and the LOGIN
/// stays waiting for the next sweep. Returns how many were alerted.
async fn alert_logins_without_opt_in(deps: &Deps, now: Millis) -> usize {
    let granted_by = now.saturating_sub(deps.config.orphan_login_alert_after_ms);
    let waiting = match deps
        .ports
        .logins
        .waiting_for_opt_in(granted_by, ORPHAN_LOGIN_LIMIT)
        .await
    {
        Ok(waiting) => waiting,
        Err(e) => {
            error!(error = %e, "could not list the logins waiting for their opt-in");
            return 0;
        }
    };
    let alerted: Vec<bool> = futures::stream::iter(waiting)
        .map(|login| async move { settle_waiting_login(deps, &login, now).await })
        .buffer_unordered(SWEEP_CONCURRENCY)
        .collect()
        .await;
    alerted.into_iter().filter(|a| *a).count()
}

/// One waiting LOGIN: settle it when its opt-in exists, else alert (once, by a conditional mark).
async fn settle_waiting_login(
    deps: &Deps,
    login: &shared::domain::login::Login,
    now: Millis,
) -> bool {
    let (page_id, asid) = (login.page_id.as_str(), login.asid.as_str());
    let opt_in_exists = match login.opt_in_key() {
        Some(key) => match deps.ports.opt_ins.get_opt_in(&key).await {
            Ok(found) => found.is_some(),
            Err(e) => {
                error!(error = %e, "could not look up the opt-in of a waiting login");
                return false;
            }
        },
        None => false,
    };
    let settle = |alerted_at| {
        deps.ports
            .logins
            .stop_waiting_for_opt_in(page_id, asid, alerted_at)
    };
    if opt_in_exists || login.expected_login_id.is_none() {
        if let Err(e) = settle(None).await {
            error!(error = %e, "could not settle a waiting login");
        }
        return false;
    }
    match settle(Some(now)).await {
        Ok(true) => {}
        // Alerted before (a later login of the same person) or by a concurrent sweep.
        Ok(false) => {
            if let Err(e) = settle(None).await {
                error!(error = %e, "could not settle a waiting login");
            }
            return false;
        }
        Err(e) => {
            error!(error = %e, "could not mark a waiting login as alerted");
            return false;
        }
    }
    let expected = login.expected_login_id.as_deref().unwrap_or_default();
    let minutes = deps.config.orphan_login_alert_after_ms / 60_000;
    let alert = Alert::login_without_opt_in(
        page_id,
        expected,
        format!(
            "a person granted user_messenger_contact at login ({}), but no opt-in webhook with the \
             expected login_id arrived within {minutes} minutes; if this repeats, the login_id \
             derivation (DERIVE_LOGIN_ID, the client token) does not match this app",
            shared::domain::opt_in::utc(login.last_login_at)
        ),
    );
    info!(login_id_prefix = %login_id_prefix(expected), "granted login without opt-in alerted");
    alert::publish(deps.ports.alerts.as_ref(), &alert).await;
    shared::ports::metrics::record_login_without_opt_in(deps.ports.metrics.as_ref(), page_id);
    true
}

/// Queue today's drift check, when no sweep of today has (a conditional write of the day claims
/// it first). Returns whether this sweep queued it. Failures are logged: a claim that fails leaves
/// the day to the next sweep; a claimed day whose job could not be queued has no check (the next
/// day's runs), so that no day ever has two.
pub async fn queue_drift_check(deps: &Deps, now: Millis) -> bool {
    let page_id = deps.config.fb_page_id.as_str();
    let day = shared::domain::drift::day(now);
    match deps.ports.pages.claim_drift_day(page_id, &day, now).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            error!(error = %e, "could not claim today's drift check; the next sweep tries again");
            return false;
        }
    }
    let job = Job::DriftCheck(DriftCheckJob {
        version: DriftCheckJob::VERSION,
        page_id: page_id.to_owned(),
    });
    match deps.ports.queue.enqueue_job(&job).await {
        Ok(()) => {
            info!(day = %day, "drift check of Meta's side queued for the sender");
            true
        }
        Err(e) => {
            error!(error = %e, day = %day, "could not queue today's drift check");
            false
        }
    }
}
