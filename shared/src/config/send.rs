//! The sender's throughput and retry settings, part of [`crate::config::settings::Config`] (`config.send`).
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `SEND_RATE_PER_SECOND` | 300 | Send API calls per second allowed for one Page (Meta's limit for text) |
//! | `SENDER_MAX_CONCURRENCY` | 1 | sender instances sharing that rate: the template sets it to the SQS event source's `MaximumConcurrency` |
//! | `SENDER_MAX_IN_FLIGHT` | 10 | records of one batch sent at once |
//! | `RETRY_BASE_SECONDS` | 5 | first backoff after a transient failure (doubles each attempt, with jitter) |
//! | `RETRY_MAX_SECONDS` | 900 | longest backoff |
//! | `PAUSE_PROBE_SECONDS` | 300 | while a Page is paused, how often one send is let through as a probe |

use crate::config::env;
use crate::config::reader::Reader;
use crate::domain::opt_in::Millis;

/// See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendTuning {
    pub rate_per_second: u32,
    pub instances: u32,
    pub max_in_flight: usize,
    pub retry_base_ms: Millis,
    pub retry_max_ms: Millis,
    pub probe_interval_ms: Millis,
}

/// Meta's Send API limit for text messages, per Page.
pub const META_SEND_RATE_PER_SECOND: u32 = 300;

impl Default for SendTuning {
    fn default() -> Self {
        Self {
            rate_per_second: META_SEND_RATE_PER_SECOND,
            instances: 1,
            max_in_flight: 10,
            retry_base_ms: 5_000,
            retry_max_ms: 900_000,
            probe_interval_ms: 300_000,
        }
    }
}

impl SendTuning {
    /// The calls per second one sender instance may make for one Page: the Page's rate shared by
    /// every instance that can run at once, so the fleet never exceeds it.
    pub fn per_instance_rate(&self) -> u32 {
        (self.rate_per_second / self.instances.max(1)).max(1)
    }

    /// Read the variables above; problems are appended to `problems` (by name, with the value).
    pub fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
        problems: &mut Vec<String>,
    ) -> Self {
        let mut r = Reader::new(lookup);
        let tuning = Self::from_reader(&mut r);
        problems.extend(r.take_problems());
        tuning
    }

    /// Read the variables above through the configuration's one [`Reader`].
    pub fn from_reader(r: &mut Reader<'_>) -> Self {
        let d = Self::default();
        let rate = r.number(
            env::SEND_RATE_PER_SECOND,
            i64::from(d.rate_per_second),
            1,
            1000,
        );
        let instances = r.number(env::SENDER_MAX_CONCURRENCY, i64::from(d.instances), 1, 1000);
        let in_flight = r.number(env::SENDER_MAX_IN_FLIGHT, d.max_in_flight as i64, 1, 100);
        let base = r.number(env::RETRY_BASE_SECONDS, d.retry_base_ms / 1000, 1, 900);
        let max = r.number(env::RETRY_MAX_SECONDS, d.retry_max_ms / 1000, 1, 900);
        let probe = r.number(env::PAUSE_PROBE_SECONDS, d.probe_interval_ms / 1000, 1, 900);
        if max < base {
            r.problem(format!(
                "{} ({max}) must not be less than {} ({base})",
                env::RETRY_MAX_SECONDS,
                env::RETRY_BASE_SECONDS
            ));
        }
        // The ranges above fit every target type.
        Self {
            rate_per_second: u32::try_from(rate).unwrap_or(d.rate_per_second),
            instances: u32::try_from(instances).unwrap_or(d.instances),
            max_in_flight: usize::try_from(in_flight).unwrap_or(d.max_in_flight),
            retry_base_ms: base * 1000,
            retry_max_ms: max.max(base) * 1000,
            probe_interval_ms: probe * 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> (SendTuning, Vec<String>) {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut problems = Vec::new();
        let t = SendTuning::from_lookup(&|k: &str| env.get(k).cloned(), &mut problems);
        (t, problems)
    }

    #[test]
    fn defaults_and_the_fleet_share() {
        let (t, problems) = load(&[]);
        assert!(problems.is_empty());
        assert_eq!(t, SendTuning::default());
        assert_eq!(t.per_instance_rate(), 300);
        let (t, _) = load(&[("SENDER_MAX_CONCURRENCY", "10")]);
        assert_eq!(t.per_instance_rate(), 30);
        let (t, _) = load(&[
            ("SEND_RATE_PER_SECOND", "5"),
            ("SENDER_MAX_CONCURRENCY", "10"),
        ]);
        assert_eq!(t.per_instance_rate(), 1, "never zero");
    }

    #[test]
    fn every_bad_value_is_named() {
        let (t, problems) = load(&[
            ("SEND_RATE_PER_SECOND", "0"),
            ("SENDER_MAX_IN_FLIGHT", "lots"),
            ("RETRY_BASE_SECONDS", "60"),
            ("RETRY_MAX_SECONDS", "30"),
            ("PAUSE_PROBE_SECONDS", "3600"),
        ]);
        let all = problems.join("; ");
        for name in [
            "SEND_RATE_PER_SECOND",
            "SENDER_MAX_IN_FLIGHT",
            "RETRY_MAX_SECONDS (30)",
            "PAUSE_PROBE_SECONDS",
        ] {
            assert!(all.contains(name), "{name} not in {all}");
        }
        assert_eq!(problems.len(), 4);
        assert_eq!((t.retry_base_ms, t.retry_max_ms), (60_000, 60_000));
    }
}
