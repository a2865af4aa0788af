//! Events to the website backend (issue 12), part of [`crate::config::settings::Config`]
//! (`config.events`). The delivery contract: docs/events.md.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `EVENTS_URL` | empty (events off) | the website backend's receiver, an http(s) URL |
//! | `EVENTS_QUEUE_URL` | — (required with `EVENTS_URL`) | the events queue the emitting functions publish to |
//! | `EVENTS_DLQ_URL` | — | the events dead-letter queue (event sender only: unreadable records go there at once) |
//! | `EVENTS_SIGNING_SECRET_ID` | — | the event sender's own secret holding `events_signing_secret` |
//! | `EVENTS_RETRY_BASE_SECONDS` | 30 | first retry delay, doubling per attempt up to 12 h; **tests only** (0 = at once) |

use crate::config::env;
use crate::config::reader::Reader;

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventsConfig {
    /// `None`: events off (nothing is queued, nothing delivered).
    pub url: Option<String>,
    pub queue_url: Option<String>,
    pub dlq_url: Option<String>,
    pub signing_secret_id: Option<String>,
    pub retry_base_seconds: u32,
}

/// The production first retry delay (seconds).
pub const DEFAULT_EVENTS_RETRY_BASE_SECONDS: u32 = 30;

impl EventsConfig {
    /// Read the variables above; problems are recorded on `r` by name.
    pub fn from_reader(r: &mut Reader<'_>) -> Self {
        let url = r
            .optional(env::EVENTS_URL)
            // It may carry the receiver's token: a problem names the variable, not the value.
            .map(|u| r.secret_url(env::EVENTS_URL, u));
        let queue_url = r.optional(env::EVENTS_QUEUE_URL);
        if url.is_some() && queue_url.is_none() {
            r.problem(format!(
                "{} is missing (events are on: {} is set)",
                env::EVENTS_QUEUE_URL,
                env::EVENTS_URL
            ));
        }
        let retry_base_seconds = r.number(
            env::EVENTS_RETRY_BASE_SECONDS,
            i64::from(DEFAULT_EVENTS_RETRY_BASE_SECONDS),
            0,
            43_200,
        ) as u32;
        Self {
            url,
            queue_url,
            dlq_url: r.optional(env::EVENTS_DLQ_URL),
            signing_secret_id: r.optional(env::EVENTS_SIGNING_SECRET_ID),
            retry_base_seconds,
        }
    }

    /// Whether events are on (an `EVENTS_URL` is configured).
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> (EventsConfig, Vec<String>) {
        let lookup = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        };
        let mut r = Reader::new(&lookup);
        let c = EventsConfig::from_reader(&mut r);
        (c, r.take_problems())
    }

    #[test]
    fn events_are_off_without_a_url() {
        let (c, problems) = read(&[("EVENTS_URL", "")]);
        assert!(!c.enabled() && problems.is_empty());
        assert_eq!(c.retry_base_seconds, 30);
    }

    #[test]
    fn a_url_needs_the_queue_and_must_be_http() {
        let (_, problems) = read(&[("EVENTS_URL", "https://shop.example/hooks")]);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("EVENTS_QUEUE_URL is missing"),
            "{problems:?}"
        );
        let (_, problems) = read(&[("EVENTS_URL", "ftp://x"), ("EVENTS_QUEUE_URL", "q")]);
        assert!(
            problems[0].contains("EVENTS_URL must be an http(s) URL"),
            "{problems:?}"
        );
        let (c, problems) = read(&[
            ("EVENTS_URL", "https://shop.example/hooks/"),
            ("EVENTS_QUEUE_URL", "http://q"),
            ("EVENTS_RETRY_BASE_SECONDS", "0"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.url.as_deref(), Some("https://shop.example/hooks"));
        assert_eq!(c.retry_base_seconds, 0);
    }

    #[test]
    fn a_bad_events_url_is_named_never_echoed() {
        let (_, problems) = read(&[(env::EVENTS_URL, "htp://hooks.example.com/in?token=s3cr3t")]);
        let all = problems.join("; ");
        assert!(all.contains("EVENTS_URL must be an http(s) URL"), "{all}");
        assert!(!all.contains("s3cr3t"), "{all}");
    }
}
