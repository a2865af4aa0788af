//! `ops redrive` (issue 13 §3): move dead-letter messages back, after showing what is there and
//! refusing what must not be sent any more.
//!
//! For each dead-letter queue it prints the count, the oldest message's age and a sample of job
//! kinds — never a login_id, an asid or a body. It then judges each message: an unreadable body
//! (it would only come back), a job whose opt-in is already terminal, missing (erased) or past its
//! deadline is REFUSED (sending it now would break the 24-hour promise or an opt-out). While refused
//! messages are there no move starts; `--discard-refused` deletes them from the DLQ first. The rest
//! moves with SQS's own redrive (`StartMessageMoveTask`, DLQ ARN → the source queue's ARN), or,
//! with `--manual`, message by message (receive → `SendMessage` to the source queue →
//! `DeleteMessage`): for SQS endpoints without move tasks (moto 5.2.5, the local stack).
//!
//! The send DLQ holds [`Job`] bodies; the scheduler DLQ holds deadline-alerts inputs
//! ([`AlertInput`]); the events DLQ holds the events the website backend did not accept within
//! their 29 hours of retries ([`OutboundEvent`]), moved back to the events queue the same way. An
//! event is never refused for its age (the receiver dedupes on `webhook-id`), only for its person
//! having been erased since ([`judge_event`]): the table keeps no identifier of an erased person,
//! so "erased" is read from what it still holds — the person's LOGIN (`LOGIN#{page}#{asid}`) is
//! gone (a deletion erases it; it also expires 181 days after the last login, and then the
//! product no longer knows the person either), or a `person.deleted` of the same asid, later than
//! the event, is in the DLQ too. `person.deleted` itself always goes back (it is how the website
//! learns of the erasure), and an event with no asid names no one to look up. Events carry asid
//! and `user_ref`: only their types are printed. The scheduler DLQ has no source queue (EventBridge Scheduler delivered those
//! messages): it is summarised and judged, refused messages may be discarded, and nothing is moved:
//! each live opt-in a deadline check names is put in the due index at once (`watch_from`), so the
//! recurring sweep attends it (the index holds only what nothing else watches, and a deadline check
//! that failed every retry may have left its opt-in unwatched). A deadline check is not refused for
//! being past its deadline: the sweep then marks its unsent opt-in EXPIRED and raises the
//! missed-deadline alert. Checks inside Lambda's `OnFailure` records (`requestPayload`) count too.

use crate::doctor::aws::describe;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use shared::adapters::dynamodb::logins::DynamoLoginStore;
use shared::adapters::dynamodb::opt_ins::DynamoOptInStore;
use shared::domain::events::{EventType, OutboundEvent};
use shared::domain::jobs::{AlertInput, Job};
use shared::domain::opt_in::{Millis, OptIn, OptInKey, utc};
use shared::ports::logins::LoginStore;
use shared::ports::opt_ins::OptInStore;
use std::collections::{BTreeMap, HashMap};

pub const USAGE: &str = "\
Usage: ops redrive [--stack NAME] [--discard-refused] [--manual]

Shows what the dead-letter queues hold (count, oldest, job kinds and event types; no
personal data), refuses the jobs whose opt-in is already terminal, erased or past its
deadline, the events whose person was erased since (and unreadable bodies), then moves the
rest back to their queue (send queue, events queue) with SQS's StartMessageMoveTask.

  --stack NAME         a deployed stack (its queues and table, with the normal AWS
                       credentials and region; default: the local stack of `make run`)
  --discard-refused    delete the refused messages from the DLQ (no move starts while
                       they are there)
  --manual             move message by message (receive, send to the source queue,
                       delete) instead of a move task: for SQS endpoints without
                       StartMessageMoveTask (moto, the local stack)
  -h, --help           this help
";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub stack: Option<String>,
    pub discard_refused: bool,
    pub manual: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Run(Args),
}

/// Parse `redrive`'s arguments (after the subcommand).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut parsed = Args::default();
    let mut flags = crate::flags::Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--discard-refused" => parsed.discard_refused = true,
            "--manual" => parsed.manual = true,
            "--stack" => parsed.stack = Some(flags.value("--stack")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Command::Run(parsed))
}

/// Which dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dlq {
    Send,
    Scheduler,
    Events,
}

impl Dlq {
    fn name(self) -> &'static str {
        match self {
            Dlq::Send => "send dead-letter queue",
            Dlq::Scheduler => "scheduler dead-letter queue",
            Dlq::Events => "events dead-letter queue",
        }
    }
}

/// Why a message is not moved back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    Unreadable,
    NoOptIn,
    Terminal(String),
    PastDeadline,
    /// An event whose person's `person.deleted` (later than the event) is in the DLQ too.
    DeletedSince,
    /// An event whose person's LOGIN the table no longer holds (erased).
    PersonGone,
}

impl Refusal {
    fn text(&self) -> String {
        match self {
            Refusal::Unreadable => "unreadable body (it would only fail again)".to_owned(),
            Refusal::NoOptIn => "no opt-in any more (erased)".to_owned(),
            Refusal::Terminal(state) => format!("opt-in already terminal ({state})"),
            Refusal::PastDeadline => "opt-in past its deadline".to_owned(),
            Refusal::DeletedSince => {
                "person erased since (a later person.deleted is in the DLQ)".to_owned()
            }
            Refusal::PersonGone => "person erased (their LOGIN is gone from the table)".to_owned(),
        }
    }
}

/// The deadline-alerts input a scheduler DLQ message holds: the bare input (Scheduler's own DLQ,
/// when it could not invoke the function) or inside Lambda's `OnFailure` destination record
/// (`requestPayload`, when the invocation failed after Lambda's retries).
fn scheduler_input(body: &str) -> Option<AlertInput> {
    if let Ok(input) = serde_json::from_str::<AlertInput>(body) {
        return Some(input);
    }
    #[derive(serde::Deserialize)]
    struct DestinationRecord {
        #[serde(rename = "requestPayload")]
        request_payload: AlertInput,
    }
    serde_json::from_str::<DestinationRecord>(body)
        .ok()
        .map(|record| record.request_payload)
}

/// A message's kind (the sample printed) and the opt-in it is about, if any.
pub fn kind_of(dlq: Dlq, body: &str) -> (&'static str, Option<OptInKey>) {
    match dlq {
        Dlq::Send => match Job::parse(body) {
            Some(Job::Initial(job)) => ("initial_message", Some(job.key())),
            Some(Job::FollowUp(_)) => ("follow_up", None),
            Some(Job::DriftCheck(_)) => ("drift_check", None),
            None => ("unreadable", None),
        },
        Dlq::Scheduler => match scheduler_input(body) {
            Some(AlertInput::DeadlineCheck(check)) => ("deadline_check", Some(check.key())),
            Some(AlertInput::Sweep { .. }) => ("sweep", None),
            None => ("unreadable", None),
        },
        Dlq::Events => match event_facts(body) {
            Some(event) => (event.event_type.as_str(), None),
            None => ("unreadable", None),
        },
    }
}

/// What a dead-lettered event says about its person (read to judge it, never printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFacts {
    pub event_type: EventType,
    /// `data.asid`: `None` when the event names no person (null or absent).
    pub asid: Option<String>,
    pub occurred_at: Millis,
}

/// The facts of an events-queue body (`None`: unreadable, as the event sender would find it).
pub fn event_facts(body: &str) -> Option<EventFacts> {
    let event: OutboundEvent = serde_json::from_str(body).ok()?;
    let asid = event.data.get("asid").and_then(|a| a.as_str());
    Some(EventFacts {
        event_type: event.event_type,
        asid: asid.filter(|a| !a.is_empty()).map(str::to_owned),
        occurred_at: event.occurred_at,
    })
}

/// Whether a dead-lettered event may go back. Never refused for its age (the receiver dedupes on
/// `webhook-id`); refused when its person was erased since: `deleted_at` (the latest
/// `person.deleted` of the same asid in the DLQ) is at or after the event, or `login_present` is
/// false (the table no longer holds the person's LOGIN). `person.deleted` itself always goes back.
pub fn judge_event(
    event: &EventFacts,
    deleted_at: Option<Millis>,
    login_present: bool,
) -> Option<Refusal> {
    if event.event_type == EventType::PersonDeleted || event.asid.is_none() {
        return None;
    }
    if deleted_at.is_some_and(|at| at >= event.occurred_at) {
        return Some(Refusal::DeletedSince);
    }
    (!login_present).then_some(Refusal::PersonGone)
}

/// Whether a message about `key` may go back: its opt-in (`found`) must exist, not be terminal
/// and, for a send job, not be past its deadline at `now`. A deadline check past its deadline is
/// not refused: its unsent opt-in is handed to the sweep, which marks it EXPIRED and raises the
/// missed-deadline alert nothing else would raise now.
pub fn judge(
    kind: &str,
    key: Option<&OptInKey>,
    found: Option<&OptIn>,
    now: Millis,
) -> Option<Refusal> {
    if kind == "unreadable" {
        return Some(Refusal::Unreadable);
    }
    key?;
    match found {
        None => Some(Refusal::NoOptIn),
        Some(o) if o.state.is_terminal() => Some(Refusal::Terminal(o.state.to_string())),
        Some(o) if o.deadline_passed(now) && kind != "deadline_check" => {
            Some(Refusal::PastDeadline)
        }
        Some(_) => None,
    }
}

/// One received message.
struct Held {
    /// The opt-in the message names (`None`: unreadable, or a sweep).
    key: Option<OptInKey>,
    receipt_handle: String,
    body: String,
    sent_at: Option<Millis>,
    kind: &'static str,
    refusal: Option<Refusal>,
}

/// Most messages one run inspects (a larger DLQ: run again).
pub const MAX_MESSAGES: usize = 10_000;
/// How long the inspected messages stay invisible while this run holds them.
const HOLD_SECONDS: i32 = 120;

/// `1 h 5 min`, `3 min`, `12 s`.
fn age(ms: Millis) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// Receive every message of `url` (up to [`MAX_MESSAGES`]), held invisible for this run.
async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
    let mut all = Vec::new();
    while all.len() < MAX_MESSAGES {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(HOLD_SECONDS)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage {url}: {}", describe(&e)))?;
        let batch = out.messages.unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        all.extend(batch);
    }
    Ok(all)
}

/// Make held messages visible again (for the move task, or for a later run).
async fn release(sqs: &aws_sdk_sqs::Client, url: &str, held: &[&Held]) {
    for h in held {
        let _ = sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(&h.receipt_handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
}

async fn delete(sqs: &aws_sdk_sqs::Client, url: &str, h: &Held) -> Result<(), String> {
    sqs.delete_message()
        .queue_url(url)
        .receipt_handle(&h.receipt_handle)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("DeleteMessage: {}", describe(&e)))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes {url}: {}", describe(&e)))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| format!("{url} has no QueueArn"))
}

/// The queue whose redrive policy names `dlq_url` (`ListDeadLetterSourceQueues`).
async fn source_queue(sqs: &aws_sdk_sqs::Client, dlq_url: &str) -> Result<Option<String>, String> {
    let out = sqs
        .list_dead_letter_source_queues()
        .queue_url(dlq_url)
        .send()
        .await
        .map_err(|e| format!("ListDeadLetterSourceQueues {dlq_url}: {}", describe(&e)))?;
    Ok(out.queue_urls().first().cloned())
}

/// Whether SQS answered that it does not know the operation (moto 5.2.5 for move tasks).
fn not_implemented(code: Option<&str>, message: Option<&str>) -> bool {
    let code = code.unwrap_or_default();
    let message = message.unwrap_or_default().to_ascii_lowercase();
    [
        "InvalidAction",
        "UnknownOperation",
        "NotImplemented",
        "UnsupportedOperation",
    ]
    .contains(&code)
        || message.contains("not yet implemented")
        || message.contains("not implemented")
        || message.contains("not been implemented")
        || message.contains("unknown operation")
}

/// What one queue's redrive did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The printed lines.
    pub text: String,
    /// Something was left undone that the operator must act on (exit status 1).
    pub blocked: bool,
}

/// What redrive reads in the table: the opt-ins the jobs name, and the LOGINs the events name
/// (of `page_id`, the stack's Page: an event carries no page_id).
pub struct Lookups<'a> {
    pub opt_ins: &'a dyn OptInStore,
    pub logins: &'a dyn LoginStore,
    pub page_id: &'a str,
}

/// Judge the readable events of `held` ([`judge_event`]): the `person.deleted`s in the DLQ
/// first, then the LOGIN of each event's person, read once per asid and only when it decides.
/// Returns when the oldest readable event happened.
async fn judge_events(held: &mut [Held], lookups: &Lookups<'_>) -> Result<Option<Millis>, String> {
    let facts: Vec<Option<EventFacts>> = held.iter().map(|h| event_facts(&h.body)).collect();
    let mut deleted: HashMap<&str, Millis> = HashMap::new();
    for f in facts.iter().flatten() {
        if let (EventType::PersonDeleted, Some(asid)) = (f.event_type, f.asid.as_deref()) {
            let at = deleted.entry(asid).or_insert(f.occurred_at);
            *at = (*at).max(f.occurred_at);
        }
    }
    let mut present: HashMap<&str, bool> = HashMap::new();
    for (h, f) in held.iter_mut().zip(&facts) {
        let Some(f) = f else { continue };
        let deleted_at = f.asid.as_deref().and_then(|a| deleted.get(a).copied());
        h.refusal = judge_event(f, deleted_at, true);
        let Some(asid) = f.asid.as_deref().filter(|_| h.refusal.is_none()) else {
            continue;
        };
        let login_present = match present.get(asid) {
            Some(known) => *known,
            None => {
                let login = lookups
                    .logins
                    .get_login(lookups.page_id, asid)
                    .await
                    .map_err(|e| format!("reading a LOGIN: {e}"))?;
                *present.entry(asid).or_insert(login.is_some())
            }
        };
        h.refusal = judge_event(f, deleted_at, login_present);
    }
    Ok(facts.iter().flatten().map(|f| f.occurred_at).min())
}

/// Redrive one dead-letter queue at `dlq_url`, looking opt-ins and LOGINs up in `lookups`.
pub async fn redrive_queue(
    sqs: &aws_sdk_sqs::Client,
    lookups: &Lookups<'_>,
    dlq: Dlq,
    dlq_url: &str,
    args: &Args,
    now: Millis,
) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let messages = receive_all(sqs, dlq_url).await?;
    if messages.is_empty() {
        out.text = format!("{}: empty, nothing to redrive\n", dlq.name());
        return Ok(out);
    }
    let mut held = Vec::with_capacity(messages.len());
    for m in messages {
        let body = m.body().unwrap_or_default().to_owned();
        let (kind, key) = kind_of(dlq, &body);
        let found = match &key {
            Some(k) => lookups
                .opt_ins
                .get_opt_in(k)
                .await
                .map_err(|e| format!("reading an opt-in: {e}"))?,
            None => None,
        };
        let sent_at = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            .and_then(|t| t.parse().ok());
        held.push(Held {
            key: key.clone(),
            receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
            refusal: judge(kind, key.as_ref(), found.as_ref(), now),
            body,
            sent_at,
            kind,
        });
    }
    let oldest_event = match dlq {
        Dlq::Events => judge_events(&mut held, lookups).await?,
        Dlq::Send | Dlq::Scheduler => None,
    };
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &held {
        *kinds.entry(h.kind).or_default() += 1;
    }
    let oldest = held
        .iter()
        .filter_map(|h| h.sent_at)
        .min()
        .map(|t| format!(", oldest {} ({} ago)", utc(t), age(now - t)))
        .unwrap_or_default();
    let sample: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let text = &mut out.text;
    text.push_str(&format!(
        "{} {dlq_url}: {} message(s){oldest}\n  {}: {}\n",
        dlq.name(),
        held.len(),
        if dlq == Dlq::Events {
            "event types"
        } else {
            "kinds"
        },
        sample.join(", ")
    ));
    if let Some(at) = oldest_event {
        text.push_str(&format!(
            "  oldest event happened {} ({} ago); none is refused for its age (the receiver \
             ignores a webhook-id it has)\n",
            utc(at),
            age(now - at)
        ));
    }
    let (refused, redrivable): (Vec<&Held>, Vec<&Held>) =
        held.iter().partition(|h| h.refusal.is_some());
    if !refused.is_empty() {
        let mut reasons: BTreeMap<Refusal, usize> = BTreeMap::new();
        for h in &refused {
            if let Some(r) = &h.refusal {
                *reasons.entry(r.clone()).or_default() += 1;
            }
        }
        let reasons: Vec<String> = reasons
            .iter()
            .map(|(r, n)| format!("{n} {}", r.text()))
            .collect();
        text.push_str(&format!(
            "  refused: {} ({})\n",
            refused.len(),
            reasons.join(", ")
        ));
        if !args.discard_refused {
            release(sqs, dlq_url, &held.iter().collect::<Vec<_>>()).await;
            text.push_str(
                "  NOT moved: the refused messages are still in the queue and no move starts while \
                 they are there; rerun with --discard-refused to delete them from the DLQ first\n",
            );
            out.blocked = true;
            return Ok(out);
        }
        for h in &refused {
            delete(sqs, dlq_url, h).await?;
        }
        text.push_str(&format!(
            "  deleted the {} refused message(s) from the DLQ\n",
            refused.len()
        ));
    }
    if redrivable.is_empty() {
        text.push_str("  nothing left to move\n");
        return Ok(out);
    }
    let Some(source_url) = source_queue(sqs, dlq_url).await? else {
        release(sqs, dlq_url, &redrivable).await;
        let mut watched = 0;
        for key in redrivable.iter().filter_map(|h| h.key.as_ref()) {
            let done = lookups
                .opt_ins
                .watch_from(key, now)
                .await
                .map_err(|e| format!("putting an opt-in in the due index: {e}"))?;
            watched += usize::from(done.is_done());
        }
        text.push_str(&format!(
            "  {} message(s) NOT moved: this DLQ has no source queue (EventBridge Scheduler \
             delivered them); {watched} opt-in(s) they name put in the due index, so the \
             recurring sweep attends them; after reading them purge it: aws sqs purge-queue \
             --queue-url {dlq_url}\n",
            redrivable.len()
        ));
        return Ok(out);
    };
    if args.manual {
        for h in &redrivable {
            sqs.send_message()
                .queue_url(&source_url)
                .message_body(&h.body)
                .send()
                .await
                .map_err(|e| format!("SendMessage {source_url}: {}", describe(&e)))?;
            delete(sqs, dlq_url, h).await?;
        }
        text.push_str(&format!(
            "  moved {} message(s) back to {source_url} (--manual: receive, send, delete)\n",
            redrivable.len()
        ));
        return Ok(out);
    }
    release(sqs, dlq_url, &redrivable).await;
    let dlq_arn = queue_arn(sqs, dlq_url).await?;
    let source_arn = queue_arn(sqs, &source_url).await?;
    match sqs
        .start_message_move_task()
        .source_arn(&dlq_arn)
        .destination_arn(&source_arn)
        .send()
        .await
    {
        Ok(task) => text.push_str(&format!(
            "  started the move task of {} message(s): {dlq_arn} → {source_arn}\n  task handle: {}\n  \
             follow it: aws sqs list-message-move-tasks --source-arn {dlq_arn}\n",
            redrivable.len(),
            task.task_handle().unwrap_or("(none given)")
        )),
        Err(e) => {
            use aws_sdk_sqs::error::ProvideErrorMetadata;
            out.blocked = true;
            // moto answers an action it has not implemented with an HTML 500: no SQS error code.
            let bare = e.code().is_none() && e.raw_response().is_some();
            if bare || not_implemented(e.code(), e.message()) {
                text.push_str(
                    "  NOT moved: this SQS endpoint does not implement StartMessageMoveTask (moto \
                     5.2.5 does not): rerun with --manual to move each message (receive, send to \
                     the source queue, delete)\n",
                );
            } else {
                text.push_str(&format!(
                    "  NOT moved: StartMessageMoveTask failed: {}\n",
                    describe(&e)
                ));
            }
        }
    }
    Ok(out)
}

/// Where the queues and the table are.
pub struct Located {
    pub sdk: aws_config::SdkConfig,
    pub send_dlq_url: String,
    pub scheduler_dlq_url: String,
    /// `None`: a local stack with events off.
    pub events_dlq_url: Option<String>,
    pub table_name: String,
    /// The stack's Page (`FacebookPageId`): the events' LOGINs are keyed by it.
    pub page_id: String,
}

/// The stack of `args`: a deployed one (CloudFormation), or the local stack of `make run`.
pub async fn locate(args: &Args) -> Result<Located, String> {
    let facts = match &args.stack {
        Some(stack) => crate::doctor::locate::deployed(stack).await?,
        None => crate::doctor::locate::local(std::path::Path::new("."))?,
    };
    let table_name = match (&facts.table_name, &args.stack) {
        (Some(t), _) => t.clone(),
        (None, Some(stack)) => return Err(format!("stack {stack} has no OptInTable resource")),
        (None, None) => {
            match crate::locate(&crate::Args::default(), None, std::path::Path::new("."))? {
                crate::Source::Aws { table } | crate::Source::Local { table, .. } => table,
            }
        }
    };
    let sdk = crate::doctor::locate::sdk_config(&facts).await;
    Ok(Located {
        sdk,
        send_dlq_url: facts.send_dlq_url,
        scheduler_dlq_url: facts.scheduler_dlq_url,
        events_dlq_url: facts.events_dlq_url,
        table_name,
        page_id: facts.fb_page_id,
    })
}

/// Every dead-letter queue: send, scheduler, then events (when the stack has it).
pub async fn run_on(located: &Located, args: &Args, now: Millis) -> Result<Outcome, String> {
    let sqs = aws_sdk_sqs::Client::new(&located.sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&located.sdk);
    let opt_ins = DynamoOptInStore::new(dynamodb.clone(), located.table_name.clone());
    let logins = DynamoLoginStore::new(dynamodb, located.table_name.clone());
    let lookups = Lookups {
        opt_ins: &opt_ins,
        logins: &logins,
        page_id: &located.page_id,
    };
    let mut all = Outcome::default();
    let queues = [
        (Dlq::Send, Some(&located.send_dlq_url)),
        (Dlq::Scheduler, Some(&located.scheduler_dlq_url)),
        (Dlq::Events, located.events_dlq_url.as_ref()),
    ];
    for (dlq, url) in queues.into_iter().filter_map(|(d, u)| Some((d, u?))) {
        let one = redrive_queue(&sqs, &lookups, dlq, url, args, now).await?;
        all.text.push_str(&one.text);
        all.blocked |= one.blocked;
    }
    Ok(all)
}

/// The whole command.
pub async fn run(args: &Args, now: Millis) -> Result<Outcome, String> {
    run_on(&locate(args).await?, args, now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::opt_in::State;

    fn args(a: &[&str]) -> Result<Command, String> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        assert_eq!(args(&[]).unwrap(), Command::Run(Args::default()));
        assert_eq!(args(&["--help"]).unwrap(), Command::Help);
        assert_eq!(
            args(&["--stack=prod", "--discard-refused", "--manual"]).unwrap(),
            Command::Run(Args {
                stack: Some("prod".into()),
                discard_refused: true,
                manual: true
            })
        );
        assert!(args(&["--purge"]).unwrap_err().contains("unknown argument"));
    }

    #[test]
    fn kinds_and_refusals() {
        let key = OptInKey::new("p", "login");
        let body = r#"{"version":1,"page_id":"p","login_id":"login"}"#;
        assert_eq!(
            kind_of(Dlq::Send, body),
            ("initial_message", Some(key.clone()))
        );
        assert_eq!(kind_of(Dlq::Send, "{"), ("unreadable", None));
        assert_eq!(
            kind_of(Dlq::Scheduler, r#"{"kind":"sweep"}"#),
            ("sweep", None)
        );
        let live = OptIn::new(key.clone(), Some(0), 0, 1_000, 0);
        assert_eq!(judge("initial_message", Some(&key), Some(&live), 10), None);
        assert_eq!(
            judge("initial_message", Some(&key), Some(&live), 1_000),
            Some(Refusal::PastDeadline)
        );
        let sent = OptIn {
            state: State::Sent,
            ..live
        };
        assert_eq!(
            judge("initial_message", Some(&key), Some(&sent), 10),
            Some(Refusal::Terminal("SENT".into()))
        );
        assert_eq!(
            judge("initial_message", Some(&key), None, 10),
            Some(Refusal::NoOptIn)
        );
        assert_eq!(
            judge("unreadable", None, None, 10),
            Some(Refusal::Unreadable)
        );
        assert_eq!(judge("sweep", None, None, 10), None);
        assert!(not_implemented(Some("InvalidAction"), None));
        assert!(not_implemented(
            None,
            Some("The start_message_move_task action has not been implemented")
        ));
        assert!(!not_implemented(Some("AccessDenied"), Some("no")));
        assert_eq!(age(65_000), "1 min");
        assert_eq!(kind_of(Dlq::Events, "not an event"), ("unreadable", None));
        assert_eq!(age(3_725_000), "1 h 2 min");
    }

    /// An event goes back unless its person was erased since; never for its age.
    #[test]
    fn events_are_refused_only_when_their_person_was_erased_since() {
        use shared::domain::events::{Subject, message_sent, person_deleted};
        let person = Subject {
            asid: Some("asid-1".into()),
            user_ref: Some("u".into()),
            state: None,
        };
        let sent = event_facts(
            &serde_json::to_string(&message_sent(
                &person,
                shared::domain::events::MessageKind::Initial,
                "optin_1",
                "m_1",
                1_000,
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (sent.event_type, sent.asid.as_deref(), sent.occurred_at),
            (EventType::MessageSent, Some("asid-1"), 1_000)
        );
        assert_eq!(
            kind_of(
                Dlq::Events,
                &serde_json::to_string(&person_deleted(&person, "c", 5)).unwrap()
            ),
            ("person.deleted", None)
        );
        // However old, with its LOGIN there and no later deletion: back.
        assert_eq!(judge_event(&sent, None, true), None);
        assert_eq!(
            judge_event(&sent, Some(999), true),
            None,
            "deleted before it: a new login"
        );
        assert_eq!(
            judge_event(&sent, Some(1_000), true),
            Some(Refusal::DeletedSince)
        );
        assert_eq!(judge_event(&sent, None, false), Some(Refusal::PersonGone));
        let deleted = EventFacts {
            event_type: EventType::PersonDeleted,
            ..sent.clone()
        };
        assert_eq!(
            judge_event(&deleted, Some(1_000), false),
            None,
            "the notice itself goes back"
        );
        let nobody = EventFacts { asid: None, ..sent };
        assert_eq!(
            judge_event(&nobody, None, false),
            None,
            "no person to look up"
        );
        let no_asid =
            r#"{"id":"evt_1","type":"optin.received","occurred_at":5,"data":{"asid":null}}"#;
        assert_eq!(event_facts(no_asid).map(|f| f.asid), Some(None));
    }

    #[test]
    fn a_deadline_check_inside_lambdas_on_failure_record_names_its_opt_in() {
        let record = r#"{"version":"1.0","timestamp":"2026-11-30T21:00:00.000Z","requestContext":{"requestId":"r","functionArn":"arn:aws:lambda:us-east-1:1:function:f","condition":"RetriesExhausted","approximateInvokeCount":3},"requestPayload":{"kind":"deadline_check","version":1,"page_id":"P","login_id":"L","deadline_at":5},"responseContext":{"statusCode":200,"functionError":"Unhandled"},"responsePayload":{"errorType":"DeadlineAlerts.ServiceUnavailable"}}"#;
        assert_eq!(
            kind_of(Dlq::Scheduler, record),
            ("deadline_check", Some(OptInKey::new("P", "L")))
        );
        assert_eq!(
            kind_of(Dlq::Scheduler, r#"{"requestPayload":{"kind":"nope"}}"#),
            ("unreadable", None)
        );
    }

    #[test]
    fn a_dead_lettered_deadline_check_past_its_deadline_goes_to_the_sweep_not_the_bin() {
        let key = OptInKey::new("P", "L");
        let live = OptIn::new(key.clone(), Some(0), 0, 100, 0);
        assert_eq!(
            judge("deadline_check", Some(&key), Some(&live), 1_000),
            None
        );
        assert_eq!(
            judge("initial_message", Some(&key), Some(&live), 1_000),
            Some(Refusal::PastDeadline)
        );
    }
}
