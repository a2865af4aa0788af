//! `.local/stack.json`: what `make run` started (the emulator's endpoint, the table, the topic), so
//! other local tools — `make report` — find the running stack without being told; and
//! `.local/doctor.json`: the names `make doctor` checks (URLs, secrets, queues, topic, schedule),
//! the local counterpart of a deployed stack's outputs.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Relative to the directory `make run` runs in (the workspace root).
pub const STATE_FILE: &str = ".local/stack.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalState {
    pub aws_endpoint_url: String,
    pub region: String,
    pub table_name: String,
    pub alert_topic_arn: String,
    pub api_base_url: String,
    /// Where the event sender delivers events (`EVENTS_URL`; by default the example site's
    /// receiver, `/backend/events`). Absent in files written before events existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_url: Option<String>,
}

/// Write `state` to [`STATE_FILE`] under the current directory.
pub fn write(state: &LocalState) -> std::io::Result<PathBuf> {
    write_in(Path::new("."), state)
}

/// Write `state` to [`STATE_FILE`] under `dir`.
pub fn write_in(dir: &Path, state: &LocalState) -> std::io::Result<PathBuf> {
    write_json(&dir.join(STATE_FILE), state)
}

/// Relative to the directory `make run` runs in, like [`STATE_FILE`].
pub const DOCTOR_FILE: &str = ".local/doctor.json";

/// What `ops doctor` reads of the local stack (its `Facts`: same field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorState {
    pub stack_name: String,
    pub region: String,
    pub aws_endpoint_url: String,
    pub webhook_url: String,
    pub graph_api_base_url: String,
    pub graph_api_version: String,
    pub fb_app_id: String,
    pub fb_page_id: String,
    pub secret_id: String,
    pub page_token_secret_id: Option<String>,
    pub alert_topic_arn: String,
    pub send_dlq_url: String,
    pub scheduler_dlq_url: String,
    /// `None` while events are off (no events queue provisioned).
    pub events_dlq_url: Option<String>,
    pub sweep_schedule: Option<String>,
}

/// Write `state` to [`DOCTOR_FILE`] under `dir`.
pub fn write_doctor_in(dir: &Path, state: &DoctorState) -> std::io::Result<PathBuf> {
    write_json(&dir.join(DOCTOR_FILE), state)
}

fn write_json(path: &Path, state: &impl Serialize) -> std::io::Result<PathBuf> {
    let path = path.to_path_buf();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let json = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
    std::fs::write(&path, json)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_state_as_json() {
        let dir = std::env::temp_dir().join(format!("state-{}", uuid::Uuid::new_v4()));
        let state = LocalState {
            aws_endpoint_url: "http://127.0.0.1:1".into(),
            region: "us-east-1".into(),
            table_name: "local-OptInTable".into(),
            alert_topic_arn: "arn:aws:sns:us-east-1:123456789012:t".into(),
            api_base_url: "http://127.0.0.1:3000".into(),
            events_url: Some("http://127.0.0.1:8080/backend/events".into()),
        };
        let path = write_in(&dir, &state).unwrap();
        assert!(path.ends_with(".local/stack.json"));
        let back: LocalState =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, state);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
