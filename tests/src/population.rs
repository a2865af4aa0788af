//! A seeded population of opt-ins as the due index holds it in steady state, for the sweep's tests
//! and its benchmark: unsent opt-ins spread over the last 24 h 15 min (a Graph outage: nothing got
//! sent), the previous sweep 15 minutes ago, plus terminal opt-ins that must never be read.

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use shared::adapters::dynamodb::opt_ins::item_with_due_at;
use shared::domain::attention::{STUCK_AFTER_MS, first_attention, next_attention};
use shared::domain::opt_in::{HOUR_MS, Millis, OptIn, OptInKey, State};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub const PAGE: &str = "200000000000002";
pub const WINDOW_MS: Millis = 24 * HOUR_MS;
pub const LEAD_MS: Millis = 2 * HOUR_MS;
/// The sweep's default rate.
pub const SWEEP_EVERY_MS: Millis = 15 * 60_000;

pub struct Seeded {
    pub opt_in: OptIn,
    /// The due index's sort key; None for terminal opt-ins (not in the index).
    pub due_at: Option<Millis>,
}

pub struct Population {
    pub now: Millis,
    pub last_sweep: Millis,
    pub items: Vec<Seeded>,
}

/// `unsent` unsent opt-ins spread evenly over `(now − window − 15 min, now]` and `terminal`
/// terminal ones. Those opted in during the last 20 minutes are still `OPTED_IN` (some stuck:
/// their SQS job was lost); older ones are `RETRYING`, `PAUSED` or `SENDING` with a lapsed lease.
/// Each carries the `due_at` the previous sweep (at `now − 15 min`) or its creation left.
pub fn population(unsent: usize, terminal: usize, now: Millis) -> Population {
    let last_sweep = now - SWEEP_EVERY_MS;
    let span = WINDOW_MS + SWEEP_EVERY_MS;
    let mut items = Vec::with_capacity(unsent + terminal);
    for i in 0..unsent {
        let at = now - span + ((i as i64 + 1) * span) / unsent as i64;
        let mut o = OptIn::new(
            OptInKey::new(PAGE, format!("unsent-{i:06}")),
            Some(at),
            at,
            WINDOW_MS,
            LEAD_MS,
        );
        o.state = if now - at < 20 * 60_000 {
            State::OptedIn
        } else {
            match i % 3 {
                0 => State::Retrying,
                1 => State::Paused,
                _ => State::Sending,
            }
        };
        if o.state == State::Sending {
            o.lease_until = Some(at + 60_000);
        }
        if o.state != State::OptedIn {
            o.attempts = 1 + (i % 4) as u32;
        }
        if o.alert_at <= last_sweep {
            // Alerted by its schedule or the previous sweep.
            o.alerted_at = Some(o.alert_at);
        }
        let due_at = if o.created_at > last_sweep {
            first_attention(&o)
        } else {
            next_attention(&o, last_sweep).unwrap_or(o.deadline_at)
        };
        items.push(Seeded {
            opt_in: o,
            due_at: Some(due_at),
        });
    }
    for i in 0..terminal {
        let at = now - span + ((i as i64 + 1) * span) / terminal.max(1) as i64;
        let mut o = OptIn::new(
            OptInKey::new(PAGE, format!("done-{i:06}")),
            Some(at),
            at,
            WINDOW_MS,
            LEAD_MS,
        );
        o.state = match i % 3 {
            0 => State::Sent,
            1 => State::OptedOut,
            _ => State::Unreachable,
        };
        o.terminal_at = Some(at + 2_000);
        if o.state == State::Sent {
            o.sent_at = Some(at + 2_000);
            o.message_id = Some(format!("m_{i}"));
        }
        items.push(Seeded {
            opt_in: o,
            due_at: None,
        });
    }
    Population {
        now,
        last_sweep,
        items,
    }
}

impl Population {
    /// The opt-ins a sweep at `now` must attend to, by the rules stated directly (not through the
    /// index): past the deadline, past the alert time and not alerted, or stuck in `OPTED_IN`.
    /// Their login_ids (all opt-ins are of [`PAGE`]).
    pub fn expected_due(&self) -> BTreeSet<String> {
        self.items
            .iter()
            .map(|s| &s.opt_in)
            .filter(|o| !o.state.is_terminal())
            .filter(|o| {
                o.deadline_at <= self.now
                    || (o.alerted_at.is_none() && o.alert_at <= self.now)
                    || (o.state == State::OptedIn && o.created_at + STUCK_AFTER_MS <= self.now)
            })
            .map(|o| o.login_id.clone())
            .collect()
    }

    pub fn unsent(&self) -> usize {
        self.items
            .iter()
            .filter(|s| !s.opt_in.state.is_terminal())
            .count()
    }

    /// Write every item with BatchWriteItem (25 per request, 4 requests in flight), retrying
    /// unprocessed items. Returns how long it took.
    pub async fn seed(
        &self,
        client: &aws_sdk_dynamodb::Client,
        table_name: &str,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        let mut requests = Vec::with_capacity(self.items.len());
        for s in &self.items {
            let item = item_with_due_at(&s.opt_in, s.due_at.unwrap_or(s.opt_in.deadline_at))
                .map_err(|e| e.to_string())?;
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| e.to_string())?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let batches: Vec<Vec<WriteRequest>> = requests.chunks(25).map(<[_]>::to_vec).collect();
        for group in batches.chunks(4) {
            let mut in_flight = tokio::task::JoinSet::new();
            for batch in group {
                let (client, table, batch) = (client.clone(), table_name.to_owned(), batch.clone());
                in_flight.spawn(async move { write_batch(&client, &table, batch).await });
            }
            while let Some(done) = in_flight.join_next().await {
                done.map_err(|e| e.to_string())??;
            }
        }
        Ok(started.elapsed())
    }
}

async fn write_batch(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut batch: Vec<WriteRequest>,
) -> Result<(), String> {
    for _ in 0..10 {
        let out = client
            .batch_write_item()
            .request_items(table, batch)
            .send()
            .await
            .map_err(|e| format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        match out.unprocessed_items.and_then(|mut u| u.remove(table)) {
            Some(rest) if !rest.is_empty() => batch = rest,
            _ => return Ok(()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("BatchWriteItem kept returning unprocessed items".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_population_is_mostly_quiet() {
        let now = 1_795_536_000_000;
        let p = population(10_000, 2_000, now);
        assert_eq!(p.unsent(), 10_000);
        let due = p.expected_due();
        // About one sweep period's worth of alerts and deadlines, plus the stuck recent opt-ins.
        assert!((200..600).contains(&due.len()), "{}", due.len());
        // The seeded due_at agrees with the rules.
        let by_index: BTreeSet<String> = p
            .items
            .iter()
            .filter(|s| s.due_at.is_some_and(|d| d <= now))
            .map(|s| s.opt_in.login_id.clone())
            .collect();
        assert_eq!(by_index, due);
    }
}
