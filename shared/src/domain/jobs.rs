//! The messages between functions: an SQS send job and a deadline-alerts invocation (a per-opt-in
//! check or the sweep), and the deterministic name of an opt-in's deadline schedule.

use crate::domain::opt_in::{Millis, OptIn, OptInKey};
use serde::{Deserialize, Serialize};

/// The message an SQS send job carries. Versioned so old jobs stay readable after a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    pub version: u32,
    pub page_id: String,
    pub login_id: String,
    /// The incarnation of the opt-in the job was queued for (its `created_at`), when the queuer
    /// had the item: only that incarnation may be claimed. A job queued before a data deletion
    /// then cannot claim a later re-write of the erased consent that its own writer has not
    /// checked against the erasure marker yet. Absent (older jobs, probes): any incarnation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Millis>,
}

impl SendJob {
    pub const VERSION: u32 = 1;

    pub fn for_key(key: &OptInKey) -> Self {
        Self {
            version: Self::VERSION,
            page_id: key.page_id.clone(),
            login_id: key.login_id.clone(),
            created_at: None,
        }
    }

    /// The job for this incarnation of the opt-in (see [`SendJob::created_at`]).
    pub fn for_opt_in(opt_in: &OptIn) -> Self {
        Self {
            created_at: Some(opt_in.created_at),
            ..Self::for_key(&opt_in.key())
        }
    }

    pub fn key(&self) -> OptInKey {
        OptInKey::new(&self.page_id, &self.login_id)
    }
}

/// A follow-up message (issue 12): the message stored under `id` for the person `asid`, sent with
/// `messaging_type: RESPONSE` to their PSID after the policy guard passes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpJob {
    pub version: u32,
    pub page_id: String,
    pub asid: String,
    /// The follow-up's own id (`GET /v1/users/{asid}/messages/{id}`).
    pub id: String,
}

impl FollowUpJob {
    pub const VERSION: u32 = 1;
}

/// The daily check of Meta's side (issue 13 §2): run by the sender, which holds the tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftCheckJob {
    pub version: u32,
    pub page_id: String,
}

impl DriftCheckJob {
    pub const VERSION: u32 = 1;
}

/// Every message on the send queue. An initial-message job is written without a `kind` (the
/// version-1 [`SendJob`] shape, so jobs queued before a deploy stay readable); the others carry
/// `"kind"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Initial(SendJob),
    FollowUp(FollowUpJob),
    DriftCheck(DriftCheckJob),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Tagged {
    FollowUp(FollowUpJob),
    DriftCheck(DriftCheckJob),
}

impl Job {
    /// Parse an SQS body: `None` for anything unreadable or of an unknown version (a poison
    /// message: the caller hands it to the dead-letter queue).
    pub fn parse(body: &str) -> Option<Job> {
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        if value.get("kind").is_none() {
            let job: SendJob = serde_json::from_value(value).ok()?;
            return (job.version == SendJob::VERSION).then_some(Job::Initial(job));
        }
        match serde_json::from_value::<Tagged>(value).ok()? {
            Tagged::FollowUp(job) if job.version == FollowUpJob::VERSION => {
                Some(Job::FollowUp(job))
            }
            Tagged::DriftCheck(job) if job.version == DriftCheckJob::VERSION => {
                Some(Job::DriftCheck(job))
            }
            _ => None,
        }
    }

    /// The SQS body.
    pub fn body(&self) -> String {
        let encoded = match self {
            Job::Initial(job) => serde_json::to_string(job),
            Job::FollowUp(job) => serde_json::to_string(&Tagged::FollowUp(job.clone())),
            Job::DriftCheck(job) => serde_json::to_string(&Tagged::DriftCheck(job.clone())),
        };
        // Plain structs of strings and numbers always encode.
        encoded.unwrap_or_default()
    }
}

/// The JSON Input of a deadline-alerts invocation: a per-opt-in schedule or the recurring sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertInput {
    DeadlineCheck(DeadlineCheck),
    Sweep {
        #[serde(default = "default_input_version")]
        version: u32,
    },
}

fn default_input_version() -> u32 {
    DeadlineCheck::VERSION
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineCheck {
    pub version: u32,
    pub page_id: String,
    pub login_id: String,
    pub deadline_at: Millis,
}

impl DeadlineCheck {
    pub const VERSION: u32 = 1;

    pub fn for_opt_in(opt_in: &OptIn) -> Self {
        Self {
            version: Self::VERSION,
            page_id: opt_in.page_id.clone(),
            login_id: opt_in.login_id.clone(),
            deadline_at: opt_in.deadline_at,
        }
    }

    pub fn key(&self) -> OptInKey {
        OptInKey::new(&self.page_id, &self.login_id)
    }
}

/// The deterministic name of an opt-in's deadline schedule (Scheduler names: ≤ 64 chars of
/// `[0-9a-zA-Z-_.]`). A hash, so the name carries no identifier in clear.
pub fn deadline_schedule_name(key: &OptInKey) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}#{}", key.page_id, key.login_id).as_bytes());
    format!("deadline-{}", &hex::encode(digest)[..40])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_input_parses_both_kinds_and_refuses_others() {
        let check: AlertInput = serde_json::from_str(
            r#"{"kind":"deadline_check","version":1,"page_id":"p","login_id":"l","deadline_at":5}"#,
        )
        .unwrap();
        assert!(matches!(check, AlertInput::DeadlineCheck(ref c) if c.deadline_at == 5));
        let sweep: AlertInput = serde_json::from_str(r#"{"kind":"sweep"}"#).unwrap();
        assert_eq!(sweep, AlertInput::Sweep { version: 1 });
        assert!(serde_json::from_str::<AlertInput>(r#"{"kind":"other"}"#).is_err());
    }

    #[test]
    fn jobs_round_trip_and_old_initial_jobs_stay_readable() {
        let initial = Job::Initial(SendJob::for_key(&OptInKey::new("p", "l")));
        assert_eq!(
            initial.body(),
            r#"{"version":1,"page_id":"p","login_id":"l"}"#,
            "initial jobs keep the version-1 shape"
        );
        let follow_up = Job::FollowUp(FollowUpJob {
            version: 1,
            page_id: "p".into(),
            asid: "a".into(),
            id: "m".into(),
        });
        let drift = Job::DriftCheck(DriftCheckJob {
            version: 1,
            page_id: "p".into(),
        });
        for job in [initial, follow_up, drift] {
            assert_eq!(Job::parse(&job.body()), Some(job));
        }
        assert_eq!(
            Job::parse(r#"{"version":2,"page_id":"p","login_id":"l"}"#),
            None
        );
        assert_eq!(Job::parse(r#"{"kind":"other","version":1}"#), None);
        assert_eq!(Job::parse("not json"), None);
    }

    #[test]
    fn schedule_names_are_deterministic_distinct_and_valid() {
        let a = deadline_schedule_name(&OptInKey::new("1", "abc"));
        assert_eq!(a, deadline_schedule_name(&OptInKey::new("1", "abc")));
        assert_ne!(a, deadline_schedule_name(&OptInKey::new("1", "abd")));
        assert_ne!(a, deadline_schedule_name(&OptInKey::new("2", "abc")));
        assert!(a.len() <= 64);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }
}
