//! Follow-up messages (issue 12 §2), part of the website-backend API (API key, like every `/v1`
//! route):
//! - `POST /v1/users/{asid}/messages {"text", "quick_replies"?}` with an optional
//!   `Idempotency-Key` — the policy guard ([`shared::domain::follow_up::guard`]) at accept:
//!   409 `opted_out` | `no_conversation` | `outside_window` (with `window_ended_at`) and nothing
//!   written, else the follow-up is stored queued and its job put on the send queue: 202
//!   `{"id", "state": "queued"}`. The sender runs the guard again just before the send.
//! - `GET /v1/users/{asid}/messages/{id}` — queued | sent (with `message_id`) | failed (with
//!   `reason`).
//!
//! The same `Idempotency-Key` and body within 24 hours gets the same answer and one message (the
//! key record is written with the follow-up, conditionally, so concurrent requests create one);
//! the same key with another body (or for another person) is 409 `idempotency_mismatch`.

use crate::api::{json_body, load_login, load_opt_in};
use crate::deps::Deps;
use crate::response::{HttpError, json};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::domain::follow_up::{
    FollowUp, FollowUpKey, FollowUpMessage, FollowUpState, IdempotencyRecord, Refusal, guard,
    idempotency_key_hash, is_valid_idempotency_key, request_hash,
};
use shared::domain::jobs::{FollowUpJob, Job};
use shared::domain::login::is_valid_asid;
use shared::domain::opt_in::{Millis, utc};
use shared::ports::follow_ups::CreatedFollowUp;
use tracing::info;

/// The request header of an idempotent request.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The `Idempotency-Key` header, if any: 1–255 printable ASCII characters.
fn idempotency_key(request: &Request) -> Result<Option<String>, HttpError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|k| is_valid_idempotency_key(k))
        .map(|k| Some(k.to_owned()))
        .ok_or_else(|| {
            HttpError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            )
        })
}

/// A fresh, unguessable follow-up id.
fn new_id() -> String {
    format!("fu_{}", hex::encode(rand::random::<[u8; 16]>()))
}

fn is_valid_id(id: &str) -> bool {
    id.len() == 35 && id.starts_with("fu_") && id[3..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The guard's refusal as the API answers it (409, nothing written).
fn refused(refusal: Refusal) -> Response<Body> {
    let message = match refusal {
        Refusal::OptedOut => "the person has opted out of messages from this Page".to_owned(),
        Refusal::NoConversation => {
            "the person has not written to the Page, so no follow-up can reach them".to_owned()
        }
        Refusal::OutsideWindow { window_ended_at } => format!(
            "the messaging window ended at {} (24 hours after the person's last message)",
            utc(window_ended_at)
        ),
    };
    let mut error = serde_json::json!({ "code": refusal.code(), "message": message });
    if let Refusal::OutsideWindow { window_ended_at } = refusal {
        error["window_ended_at"] = utc(window_ended_at).into();
    }
    json(StatusCode::CONFLICT, &serde_json::json!({ "error": error }))
}

fn accepted(id: &str) -> Response<Body> {
    json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "id": id, "state": FollowUpState::Queued.as_str() }),
    )
}

async fn enqueue(deps: &Deps, page_id: &str, asid: &str, id: &str) -> Result<(), HttpError> {
    let job = Job::FollowUp(FollowUpJob {
        version: FollowUpJob::VERSION,
        page_id: page_id.to_owned(),
        asid: asid.to_owned(),
        id: id.to_owned(),
    });
    deps.ports
        .queue
        .enqueue_job(&job)
        .await
        .map_err(|e| HttpError::failed("could not queue the follow-up", e))
}

/// A request whose `Idempotency-Key` is already recorded: the same answer for the same request
/// (re-queuing a follow-up whose job was lost), 409 for another.
async fn replay(
    deps: &Deps,
    asid: &str,
    request_hash: &str,
    existing: &IdempotencyRecord,
) -> Result<Response<Body>, HttpError> {
    if existing.request_hash != request_hash {
        return Err(HttpError::refused(
            StatusCode::CONFLICT,
            "idempotency_mismatch",
            "this Idempotency-Key was used with another request in the last 24 hours",
        ));
    }
    let page_id = &deps.config.fb_page_id;
    let key = FollowUpKey {
        page_id: page_id.clone(),
        // The same request hash means the same asid (the hash binds it).
        asid: asid.to_owned(),
        id: existing.follow_up_id.clone(),
    };
    let stored = deps
        .ports
        .follow_ups
        .get_follow_up(&key)
        .await
        .map_err(|e| HttpError::failed("could not read the follow-up", e))?;
    // A replay re-queues a follow-up no sender has attempted yet: its first job may have been
    // lost (the enqueue failed after the write, and the client, answered 503, retried). Duplicate
    // jobs are harmless: the sender's claim lets one attempt through, and a sent one is refused.
    if stored.is_some_and(|f| f.state == FollowUpState::Queued && f.attempts == 0) {
        enqueue(deps, page_id, &key.asid, &key.id).await?;
    }
    Ok(accepted(&key.id))
}

/// `POST /v1/users/{asid}/messages`.
pub async fn send_follow_up(
    deps: &Deps,
    request: &Request,
    asid: &str,
) -> Result<Response<Body>, HttpError> {
    let message: FollowUpMessage = json_body(request)?;
    message
        .check()
        .map_err(|problem| HttpError::bad_request("invalid_message", problem))?;
    let key = idempotency_key(request)?;
    let login = load_login(deps, asid).await?;
    let page_id = &deps.config.fb_page_id;
    let now = deps.ports.clock.now();
    let hash = request_hash(asid, &message);
    let id = new_id();
    let record = key.map(|key| IdempotencyRecord {
        key_hash: idempotency_key_hash(page_id, &key),
        request_hash: hash.clone(),
        follow_up_id: id.clone(),
        created_at: now,
    });
    let store = &deps.ports.follow_ups;
    if let Some(record) = &record
        && let Some(existing) = store
            .idempotency_record(&record.key_hash, now)
            .await
            .map_err(|e| HttpError::failed("could not read the idempotency key", e))?
    {
        return replay(deps, asid, &hash, &existing).await;
    }
    let opt_in = load_opt_in(deps, &login).await?;
    if let Err(refusal) = guard(opt_in.as_ref(), now, deps.config.human_agent_tag) {
        info!(code = refusal.code(), "follow-up refused");
        return Ok(refused(refusal));
    }
    let follow_up = FollowUp::queued(page_id, asid, &id, message, now);
    match store
        .create_follow_up(&follow_up, record.as_ref(), now)
        .await
        .map_err(|e| HttpError::failed("could not store the follow-up", e))?
    {
        CreatedFollowUp::Created => {}
        // A concurrent request with the same key won: answer as it did.
        CreatedFollowUp::KeyTaken(Some(existing)) => {
            return replay(deps, asid, &hash, &existing).await;
        }
        CreatedFollowUp::KeyTaken(None) => {
            return Err(HttpError::failed(
                "idempotency key taken but unreadable",
                "retry",
            ));
        }
    }
    enqueue(deps, page_id, asid, &id).await?;
    info!("follow-up queued");
    Ok(accepted(&id))
}

/// `GET /v1/users/{asid}/messages/{id}`.
pub async fn get_follow_up(deps: &Deps, asid: &str, id: &str) -> Result<Response<Body>, HttpError> {
    if !is_valid_asid(asid) {
        // As every /v1/users/{asid} route answers a malformed asid.
        return Err(HttpError::bad_request(
            "invalid_asid",
            "asid must be the person's numeric app-scoped user id",
        ));
    }
    if !is_valid_id(id) {
        return Err(HttpError::not_found("no such message"));
    }
    let key = FollowUpKey {
        page_id: deps.config.fb_page_id.clone(),
        asid: asid.to_owned(),
        id: id.to_owned(),
    };
    let follow_up = deps
        .ports
        .follow_ups
        .get_follow_up(&key)
        .await
        .map_err(|e| HttpError::failed("could not read the follow-up", e))?
        .ok_or_else(|| HttpError::not_found("no such message"))?;
    let time = |t: Option<Millis>| t.map(utc);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "id": follow_up.id,
            "state": follow_up.state.as_str(),
            "message_id": follow_up.message_id,
            "reason": follow_up.reason,
            "created_at": utc(follow_up.created_at),
            "sent_at": time(follow_up.sent_at),
            "failed_at": time(follow_up.failed_at),
            "attempts": follow_up.attempts,
        }),
    ))
}
