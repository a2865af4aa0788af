//! The steps of the model-based test and how each one drives the real handlers, with what the
//! model observes from outside (which opt-outs and blocks were acknowledged, which deletions
//! completed, which deadlines were set) for the checks in [`super::checks`].

use super::messenger::Answer;
use super::world::{self, HttpRequest, PAGE, T0, World};
use shared::domain::opt_in::{HOUR_MS, Millis, OptInKey};
use shared::ports::conversations::ConversationStore;
use shared::ports::opt_ins::OptInStore;
use std::fmt;
use std::sync::{Arc, Mutex};

/// How a person opts out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `POST /v1/users/{asid}/opt-out` (website backend, API key).
    Api,
    /// "STOP" on Messenger, with Meta's link to the login_id (`prior_message`).
    StopLinked,
    /// "STOP" on Messenger from the PSID only.
    StopUnlinked,
    /// `STOP NOTIFICATIONS` with the login_id.
    StopNotificationsLinked,
    /// Facebook's Deauthorize callback.
    Deauthorize,
    /// Facebook's Data Deletion callback.
    Deletion,
}

/// One thing that happens in the world. People are named by index (no ids in the trace).
#[derive(Clone, PartialEq, Eq)]
pub enum Step {
    /// The person logs in on the website (`POST /v1/logins`, permission granted).
    Login {
        p: usize,
    },
    /// Facebook delivers the person's opt-in webhook; its event time is `age_min` minutes ago.
    OptIn {
        p: usize,
        age_min: u32,
    },
    /// One delivery with the opt-in and a linked "STOP" (items of one batch run concurrently).
    OptInAndStop {
        p: usize,
        stop_first: bool,
    },
    /// The person writes "hello" (links their PSID when `linked`).
    Hello {
        p: usize,
        linked: bool,
    },
    OptOut {
        p: usize,
        via: Via,
    },
    /// `messaging_policy_enforcement` block / unblock for the Page.
    Block,
    Unblock,
    /// Facebook delivers a past webhook again (duplicate, late, or after a 5xx).
    RepeatWebhook {
        pick: usize,
    },
    /// Graph answers every next send with this class.
    Graph(Answer),
    /// The send queue refuses writes (or works again).
    QueueOutage(bool),
    /// EventBridge Scheduler refuses to create schedules (or works again).
    SchedulerOutage(bool),
    /// The due-index write (`watch_from`) fails (or works again), the rest of DynamoDB working.
    IndexOutage(bool),
    /// SQS delivers one visible job (two in one batch with `two`).
    Deliver {
        pick: usize,
        two: bool,
    },
    /// SQS delivers one visible job; while its Send API call is in flight, the job's person opts
    /// out (`Some(via)`) or Meta blocks the Page (`None`).
    DeliverDuring {
        pick: usize,
        via: Option<Via>,
    },
    /// SQS delivers an already handled message again (at-least-once).
    Redeliver {
        pick: usize,
    },
    /// The clock moves.
    Advance {
        secs: u32,
    },
    /// The clock runs `minutes` while SQS delivers every job as it becomes visible.
    Drain {
        minutes: u32,
    },
    /// The recurring sweep of deadline-alerts.
    Sweep,
    /// The per-opt-in deadline schedules that are due fire.
    FireSchedules,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Login { p } => write!(f, "person {p} logs in (POST /v1/logins)"),
            Step::OptIn { p, age_min } => {
                write!(f, "opt-in webhook for person {p} (event {age_min} min old)")
            }
            Step::OptInAndStop { p, stop_first } => write!(
                f,
                "one webhook delivery for person {p}: {}",
                if *stop_first {
                    "[linked STOP, opt-in]"
                } else {
                    "[opt-in, linked STOP]"
                }
            ),
            Step::Hello { p, linked } => write!(
                f,
                "person {p} writes \"hello\" ({})",
                if *linked { "linked" } else { "PSID only" }
            ),
            Step::OptOut { p, via } => write!(f, "person {p} opts out via {via:?}"),
            Step::Block => write!(f, "Meta blocks the Page (policy webhook)"),
            Step::Unblock => write!(f, "Meta unblocks the Page (policy webhook)"),
            Step::RepeatWebhook { pick } => write!(f, "Facebook redelivers past webhook #{pick}"),
            Step::Graph(a) => write!(f, "Graph now answers {a:?}"),
            Step::QueueOutage(on) => write!(
                f,
                "send queue {}",
                if *on { "refuses writes" } else { "works again" }
            ),
            Step::SchedulerOutage(on) => write!(
                f,
                "Scheduler {}",
                if *on {
                    "refuses new schedules"
                } else {
                    "works again"
                }
            ),
            Step::IndexOutage(on) => write!(
                f,
                "due-index writes {}",
                if *on { "fail" } else { "work again" }
            ),
            Step::Deliver { pick, two } => write!(
                f,
                "SQS delivers visible job #{pick}{}",
                if *two {
                    " with the next one in one batch"
                } else {
                    ""
                }
            ),
            Step::DeliverDuring { pick, via } => match via {
                Some(via) => write!(
                    f,
                    "SQS delivers visible job #{pick}; during its Send API call the person opts out via {via:?}"
                ),
                None => write!(
                    f,
                    "SQS delivers visible job #{pick}; during its Send API call Meta blocks the Page"
                ),
            },
            Step::Redeliver { pick } => write!(f, "SQS redelivers past message #{pick}"),
            Step::Advance { secs } => write!(f, "clock +{secs} s"),
            Step::Drain { minutes } => {
                write!(
                    f,
                    "clock runs {minutes} min, SQS delivers every job as it comes due"
                )
            }
            Step::Sweep => write!(f, "deadline-alerts sweep"),
            Step::FireSchedules => write!(f, "due deadline schedules fire"),
        }
    }
}

/// An opt-out the product acknowledged (2xx), at a logical tick.
#[derive(Debug, Clone)]
pub struct OptOutAck {
    pub p: usize,
    pub via: Via,
    pub tick: u64,
}

#[derive(Debug, Clone)]
pub struct DeletionDone {
    pub p: usize,
    pub tick: u64,
    pub at: Millis,
    /// What the status page says (`completed`, `partial`, …).
    pub status: Option<String>,
}

/// A past webhook delivery and what it carried.
#[derive(Debug, Clone)]
pub struct PastWebhook {
    pub request: HttpRequest,
    pub opt_ins: Vec<(usize, Millis)>,
    pub stops_linked: Vec<usize>,
    pub stops_unlinked: Vec<usize>,
    pub policy: Option<&'static str>,
}

/// What the model saw from outside, for the checks.
#[derive(Debug, Default)]
pub struct Observed {
    pub opt_outs: Vec<OptOutAck>,
    /// (acknowledged at tick, lifted at tick).
    pub blocks: Vec<(u64, Option<u64>)>,
    pub deletions: Vec<DeletionDone>,
    /// (tick, key, deadline) each time an opt-in webhook created an opt-in.
    pub deadlines: Vec<(u64, OptInKey, Millis)>,
    pub webhooks: Vec<PastWebhook>,
    /// Whether the last step was a sweep (the liveness check runs then).
    pub after_sweep: bool,
    /// The opt-ins that sweep had to look at (due in the attention index when it ran).
    pub swept: Vec<OptInKey>,
    /// Opt-in webhooks (person, event time) whose last delivery was not acknowledged (non-2xx):
    /// Meta redelivers them, so until one is acknowledged its redelivery watches the opt-in.
    pub redelivery_pending: std::collections::HashSet<(usize, Millis)>,
}

/// The last time the model's clock may reach: beyond Meta's 36 h redelivery horizon a new
/// consent would start a new generation; the model stays inside one.
pub const CLOCK_END: Millis = T0 + 30 * HOUR_MS;
/// Most deliveries one `Drain` step makes (a looping job shows long before this).
pub const DRAIN_LIMIT: usize = 300;

pub struct Model {
    pub world: World,
    pub seen: Observed,
    /// What the last step did, seen from outside (for the trace).
    pub note: String,
}

/// What an opt-out did, seen from outside.
struct OptOutResult {
    status: u16,
    acknowledged: bool,
    /// Whether the product had what it needed to find the person's opt-in.
    findable: bool,
    deletion_status: Option<String>,
    tick: u64,
}

impl Model {
    pub fn new(people: usize, derive_login_id: bool) -> Self {
        Self {
            world: World::new(people, derive_login_id),
            seen: Observed::default(),
            note: String::new(),
        }
    }

    pub async fn apply(&mut self, step: &Step) {
        // Steps are at least a second apart, so "before" and "after" a step are distinct times.
        self.advance(1_000);
        self.seen.after_sweep = false;
        self.note.clear();
        let calls_before = self.world.messenger.calls().len();
        let deliveries_before: usize = self.world.deliveries.values().map(Vec::len).sum();
        match step {
            Step::Login { p } => {
                let request = self.world.login_request(*p);
                let (status, _) = self.world.http(request).await;
                self.note = format!("HTTP {status}");
            }
            Step::OptIn { p, age_min } => {
                let ts = self.world.now() - Millis::from(*age_min) * 60_000;
                let item = self.world.optin_item(*p, ts);
                let request = self.world.webhook(vec![item]);
                self.webhook(PastWebhook {
                    request,
                    opt_ins: vec![(*p, ts)],
                    stops_linked: vec![],
                    stops_unlinked: vec![],
                    policy: None,
                })
                .await;
            }
            Step::OptInAndStop { p, stop_first } => {
                let ts = self.world.now();
                let optin = self.world.optin_item(*p, ts);
                let stop = self.world.message_item(*p, "STOP", true);
                let items = if *stop_first {
                    vec![stop, optin]
                } else {
                    vec![optin, stop]
                };
                let request = self.world.webhook(items);
                self.webhook(PastWebhook {
                    request,
                    opt_ins: vec![(*p, ts)],
                    stops_linked: vec![*p],
                    stops_unlinked: vec![],
                    policy: None,
                })
                .await;
            }
            Step::Hello { p, linked } => {
                let item = self.world.message_item(*p, "hello", *linked);
                let request = self.world.webhook(vec![item]);
                self.webhook(PastWebhook {
                    request,
                    opt_ins: vec![],
                    stops_linked: vec![],
                    stops_unlinked: vec![],
                    policy: None,
                })
                .await;
            }
            Step::OptOut { p, via } => {
                let result = opt_out(&self.world, *p, *via).await;
                self.note = result.describe();
                self.record_opt_out(*p, *via, result);
            }
            Step::Block | Step::Unblock => {
                let action = if *step == Step::Block {
                    "block"
                } else {
                    "unblock"
                };
                let item = self.world.policy_item(action);
                let request = self.world.webhook(vec![item]);
                self.webhook(PastWebhook {
                    request,
                    opt_ins: vec![],
                    stops_linked: vec![],
                    stops_unlinked: vec![],
                    policy: Some(action),
                })
                .await;
            }
            Step::RepeatWebhook { pick } => {
                if !self.seen.webhooks.is_empty() {
                    let n = pick % self.seen.webhooks.len();
                    let past = self.seen.webhooks[n].clone();
                    self.webhook(past).await;
                    self.note = format!("webhook {} again: {}", n + 1, self.note);
                }
            }
            Step::Graph(answer) => self.world.graph(*answer),
            Step::QueueOutage(on) => self.world.queue_outage(*on),
            Step::SchedulerOutage(on) => self.world.scheduler_outage(*on),
            Step::IndexOutage(on) => self.world.index_outage(*on),
            Step::Deliver { pick, two } => {
                let visible = self.world.visible();
                if !visible.is_empty() {
                    let first = visible[pick % visible.len()];
                    let mut picks = vec![first];
                    if *two && visible.len() > 1 {
                        picks.push(visible[(pick + 1) % visible.len()]);
                    }
                    self.world.deliver(&picks, None).await;
                }
            }
            Step::DeliverDuring { pick, via } => self.deliver_during(*pick, *via).await,
            Step::Redeliver { pick } => {
                if let Some(i) = self.world.redelivery(*pick) {
                    self.world.deliver(&[i], None).await;
                }
            }
            Step::Advance { secs } => self.advance(Millis::from(*secs) * 1000),
            Step::Drain { minutes } => self.drain(Millis::from(*minutes) * 60_000).await,
            Step::Sweep => {
                let now = self.world.now();
                self.seen.swept = self
                    .world
                    .people
                    .iter()
                    .map(|p| p.key())
                    .filter(|k| self.world.store.due_at(k).is_some_and(|due| due <= now))
                    .collect();
                self.world.sweep().await;
                self.world.absorb_jobs();
                self.seen.after_sweep = true;
            }
            Step::FireSchedules => {
                self.world.fire_schedules().await;
                self.world.absorb_jobs();
            }
        }
        self.world.absorb_jobs();
        let calls = self.world.messenger.calls();
        let deliveries: usize = self.world.deliveries.values().map(Vec::len).sum();
        if deliveries > deliveries_before {
            let answers: Vec<String> = calls[calls_before..]
                .iter()
                .map(|c| format!("{:?}", c.answer))
                .collect();
            let sep = if self.note.is_empty() { "" } else { "; " };
            self.note = format!(
                "{}{sep}{} job deliver{}, Graph calls: [{}]",
                self.note,
                deliveries - deliveries_before,
                if deliveries - deliveries_before == 1 {
                    "y"
                } else {
                    "ies"
                },
                answers.join(", ")
            );
        }
        let states: Vec<String> = self
            .world
            .people
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let state = self
                    .world
                    .store
                    .all()
                    .into_iter()
                    .find(|o| o.key() == p.key())
                    .map_or("-".into(), |o| o.state.to_string());
                format!("p{i}={state}")
            })
            .collect();
        let page = shared::ports::pages::PageStateStore::get_page(self.world.store.as_ref(), PAGE)
            .await
            .ok()
            .flatten()
            .map_or("ACTIVE".into(), |p| {
                format!(
                    "{:?}{}",
                    p.status,
                    p.cause.map_or(String::new(), |c| format!("/{c:?}"))
                )
            });
        let sep = if self.note.is_empty() { "" } else { " | " };
        self.note = format!(
            "{}{sep}{} page={page} queued={}",
            self.note,
            states.join(" "),
            self.world.queue.len()
        );
    }

    fn advance(&self, by: Millis) {
        let to = (self.world.now() + by).min(CLOCK_END);
        self.world.clock.set(to.max(self.world.now()));
    }

    async fn drain(&mut self, horizon: Millis) {
        let until = (self.world.now() + horizon).min(CLOCK_END);
        for _ in 0..DRAIN_LIMIT {
            let next = self
                .world
                .queue
                .iter()
                .enumerate()
                .filter(|(_, q)| q.visible_at <= until)
                .min_by_key(|(_, q)| (q.visible_at, q.uid))
                .map(|(i, q)| (i, q.visible_at));
            let Some((i, at)) = next else { break };
            if at > self.world.now() {
                self.world.clock.set(at);
            }
            self.world.deliver(&[i], None).await;
        }
        if self.world.now() < until {
            self.world.clock.set(until);
        }
    }

    async fn deliver_during(&mut self, pick: usize, via: Option<Via>) {
        let visible = self.world.visible();
        if visible.is_empty() {
            return;
        }
        let i = visible[pick % visible.len()];
        let person = self
            .world
            .people
            .iter()
            .position(|p| p.key() == self.world.queue[i].key)
            .unwrap_or(0);
        let result: Arc<Mutex<Option<OptOutResult>>> = Arc::default();
        let block_tick: Arc<Mutex<Option<u64>>> = Arc::default();
        let (r, b) = (result.clone(), block_tick.clone());
        let during = world::during(move |w: &World| -> world::During<'_> {
            let (r, b) = (r.clone(), b.clone());
            Box::pin(async move {
                match via {
                    Some(via) => {
                        let outcome = opt_out(w, person, via).await;
                        *r.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                    }
                    None => {
                        let item = w.policy_item("block");
                        let (status, _) = w.http(w.webhook(vec![item])).await;
                        if (200..300).contains(&status) {
                            *b.lock().unwrap_or_else(|p| p.into_inner()) = Some(w.ticks.next());
                        }
                    }
                }
            })
        });
        self.world.deliver(&[i], Some(&during)).await;
        let result = result.lock().unwrap_or_else(|p| p.into_inner()).take();
        let block_tick = *block_tick.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(via), Some(r)) = (via, result) {
            self.note = format!("during the call: {}", r.describe());
            self.record_opt_out(person, via, r);
        }
        if let Some(tick) = block_tick {
            self.note = "during the call: block acknowledged".into();
            self.block_acknowledged(tick);
        }
    }

    fn block_acknowledged(&mut self, tick: u64) {
        if !self.seen.blocks.iter().any(|(_, end)| end.is_none()) {
            self.seen.blocks.push((tick, None));
        }
    }

    fn record_opt_out(&mut self, p: usize, via: Via, r: OptOutResult) {
        if !r.acknowledged {
            return;
        }
        if via == Via::Deletion {
            self.seen.deletions.push(DeletionDone {
                p,
                tick: r.tick,
                at: self.world.now(),
                status: r.deletion_status.clone(),
            });
        }
        let partial = r.deletion_status.as_deref() == Some("partial");
        if r.findable || (via == Via::Deletion && !partial) {
            self.seen.opt_outs.push(OptOutAck {
                p,
                via,
                tick: r.tick,
            });
        }
    }

    /// Deliver a webhook and note what its acknowledgement promised.
    async fn webhook(&mut self, past: PastWebhook) {
        let w = &self.world;
        let mut before = Vec::new();
        for (p, _) in &past.opt_ins {
            before.push(w.store.get_opt_in(&w.people[*p].key()).await.ok().flatten());
        }
        let mut unlinked_known = Vec::new();
        for p in &past.stops_unlinked {
            let known = w
                .store
                .opt_in_for_psid(PAGE, &w.people[*p].psid)
                .await
                .ok()
                .flatten()
                == Some(w.people[*p].key());
            unlinked_known.push((*p, known));
        }
        let (status, _) = w.http(past.request.clone()).await;
        self.note = format!("HTTP {status}");
        let ok = (200..300).contains(&status);
        let tick = w.ticks.next();
        let now = w.now();
        for opt_in in &past.opt_ins {
            if ok {
                self.seen.redelivery_pending.remove(opt_in);
            } else {
                self.seen.redelivery_pending.insert(*opt_in);
            }
        }
        // An opt-in the delivery created is a consent even when the delivery answered 503 (its
        // follow-up could not be watched: Meta redelivers it, and its job may be queued).
        for (i, (p, ts)) in past.opt_ins.iter().enumerate() {
            let key = w.people[*p].key();
            let after = w.store.get_opt_in(&key).await.ok().flatten();
            if before[i].is_none() && after.is_some() {
                let opted_in_at = if *ts > 0 { (*ts).min(now) } else { now };
                self.seen
                    .deadlines
                    .push((tick, key, opted_in_at + self.world.window_ms()));
            }
        }
        if ok {
            for p in &past.stops_linked {
                self.seen.opt_outs.push(OptOutAck {
                    p: *p,
                    via: Via::StopLinked,
                    tick,
                });
            }
            for (p, known) in unlinked_known {
                if known {
                    self.seen.opt_outs.push(OptOutAck {
                        p,
                        via: Via::StopUnlinked,
                        tick,
                    });
                }
            }
            if past.policy == Some("block") {
                self.block_acknowledged(tick);
            }
        }
        // Meta's block ends when Meta sends the unblock, whatever we answered: a 503 (some
        // paused opt-ins could not be queued again) asks for a redelivery, it does not undo it.
        if past.policy == Some("unblock") {
            for b in self.seen.blocks.iter_mut().filter(|b| b.1.is_none()) {
                b.1 = Some(tick);
            }
        }
        self.seen.webhooks.push(past);
        self.world.absorb_jobs();
    }
}

impl OptOutResult {
    fn describe(&self) -> String {
        match &self.deletion_status {
            Some(s) => format!("HTTP {}, deletion status {s:?}", self.status),
            None => format!("HTTP {}", self.status),
        }
    }
}

/// Opt person `p` out through `via`, as the outside world would; what the product answered.
async fn opt_out(w: &World, p: usize, via: Via) -> OptOutResult {
    let derive = w.derive_login_id;
    let (request, findable) = match via {
        Via::Api => (w.api_opt_out_request(p), true),
        Via::StopLinked => (w.webhook(vec![w.message_item(p, "STOP", true)]), true),
        Via::StopNotificationsLinked => (w.webhook(vec![w.stop_notifications_item(p, true)]), true),
        Via::StopUnlinked => {
            let person = &w.people[p];
            let known = w
                .store
                .opt_in_for_psid(PAGE, &person.psid)
                .await
                .ok()
                .flatten()
                == Some(person.key());
            (w.webhook(vec![w.message_item(p, "STOP", false)]), known)
        }
        Via::Deauthorize => (w.callback_request("/facebook/deauthorize", p), derive),
        Via::Deletion => (w.callback_request("/facebook/data-deletion", p), derive),
    };
    let (status, body) = w.http(request).await;
    let tick = w.ticks.next();
    let acknowledged = (200..300).contains(&status);
    let deletion_status = match (via, body["confirmation_code"].as_str()) {
        (Via::Deletion, Some(code)) if acknowledged => w.deletion_status(code).await,
        _ => None,
    };
    OptOutResult {
        status,
        acknowledged,
        findable,
        deletion_status,
        tick,
    }
}
