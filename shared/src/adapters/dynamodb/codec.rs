//! The DynamoDB codec and helpers every store of the one table shares: the attribute constructors,
//! item decoding, and the update-expression builder whose conditions come from the state machine
//! ([`Event::sources`] and the lease rules of [`Event`]).

use crate::adapters::dynamodb::table;
use crate::domain::opt_in::{Event, LastError, Millis, OptIn, State};
use crate::ports::error::{PortError, PortResult};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::TransactionCanceledException;
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;
use std::collections::HashMap;

/// The service name in every [`PortError`] of the DynamoDB adapters.
pub const SERVICE: &str = "dynamodb";

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The primary key of an item.
pub fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(table::PK.to_owned(), s(pk)), (table::SK.to_owned(), s(sk))])
}

/// The lease attributes, removed when a claim ends.
pub const LEASE: [&str; 2] = ["lease_owner", "lease_until"];

/// The lease and the due index attributes, removed when an opt-in becomes terminal.
pub const LEASE_AND_DUE: [&str; 4] = [
    "lease_owner",
    "lease_until",
    table::DUE_SHARD,
    table::DUE_AT,
];

/// Whether a cancelled transaction was refused by one of its conditions (not by a conflict or a
/// limit).
pub fn refused_by_condition(cancelled: &TransactionCanceledException) -> bool {
    cancelled
        .cancellation_reasons()
        .iter()
        .any(|r| r.code() == Some("ConditionalCheckFailed"))
}

/// A stored item as `T`; `what` names the item kind in the error.
pub fn decode<T: serde::de::DeserializeOwned>(item: Item, what: &str) -> PortResult<T> {
    dynamo::from_item(item)
        .map_err(|e| PortError::new(SERVICE, format!("stored item is not a valid {what}: {e}")))
}

/// A stored item as an opt-in.
pub fn from_item(item: Item) -> PortResult<OptIn> {
    decode(item, "opt-in")
}

pub fn last_error_value(error: &LastError) -> PortResult<AttributeValue> {
    dynamo::to_attribute_value(error)
        .map_err(|e| PortError::new(SERVICE, format!("cannot encode last_error: {e}")))
}

/// `state` set to the event's target, or nothing for an event that leaves the state as it is.
pub fn target_state(event: Event) -> Vec<(&'static str, AttributeValue)> {
    event
        .target()
        .map(|target| ("state", s(target.as_str())))
        .into_iter()
        .collect()
}

/// An update with its condition and placeholders. Every attribute goes through a `#name`
/// placeholder (several of ours, like `state`, are DynamoDB reserved words).
#[derive(Default)]
pub struct Expr {
    pub update: String,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// The placeholder of attribute `attr`.
    pub fn name(&mut self, attr: &str) -> String {
        let p = format!("#{attr}");
        self.names.insert(p.clone(), attr.to_owned());
        p
    }

    /// The placeholder `:key` bound to `value`.
    pub fn value(&mut self, key: &str, value: AttributeValue) -> String {
        let p = format!(":{key}");
        self.values.insert(p.clone(), value);
        p
    }

    pub fn state_value(&mut self, state: State) -> String {
        self.value(&format!("st_{}", state.as_str()), s(state.as_str()))
    }

    /// The condition that the item is in one of `event`'s source states, with the extra rule for
    /// leaving `SENDING` (an expired lease, or the lease owner), as [`Event`] defines it.
    pub fn source_condition(&mut self, event: Event, now: Millis, owner: Option<&str>) -> String {
        let state = self.name("state");
        let mut plain = Vec::new();
        let mut sending = None;
        for &source in event.sources() {
            if source == State::Sending
                && (event.from_sending_needs_expired_lease() || event.from_sending_needs_owner())
            {
                let st = self.state_value(source);
                let rule = if event.from_sending_needs_owner() {
                    let lo = self.name("lease_owner");
                    let who = self.value("owner", s(owner.unwrap_or_default()));
                    format!("{lo} = {who}")
                } else {
                    let lu = self.name("lease_until");
                    let now = self.value("now", n(now));
                    format!("(attribute_not_exists({lu}) OR {lu} <= {now})")
                };
                sending = Some(format!("{state} = {st} AND {rule}"));
            } else {
                plain.push(self.state_value(source));
            }
        }
        // One pair of parentheses around the whole (DynamoDB refuses redundant `((…))`).
        let plain = (!plain.is_empty()).then(|| format!("{state} IN ({})", plain.join(", ")));
        match (plain, sending) {
            (Some(p), Some(s)) => format!("({p} OR ({s}))"),
            (Some(one), None) | (None, Some(one)) => format!("({one})"),
            // No source state: a condition that never holds.
            (None, None) => {
                format!("(attribute_exists({state}) AND attribute_not_exists({state}))")
            }
        }
    }

    /// The update of a transition by `event` at `now`: `state` set to the event's target, then
    /// `more`, then `updated_at`; `remove`d attributes.
    pub fn transition_update(
        &mut self,
        event: Event,
        now: Millis,
        more: &[(&str, AttributeValue)],
        remove: &[&str],
    ) {
        let mut set = target_state(event);
        set.extend(more.iter().cloned());
        set.push(("updated_at", n(now)));
        self.set_update(&set, remove, "");
    }

    /// The conditional update of a transition by `event` at `now` that no lease rule applies to:
    /// from one of the event's source states and, with `deadline` (`"<="`: once the deadline
    /// passed, `">"`: while it is ahead), `deadline_at <deadline> :now`; the update as
    /// [`Self::transition_update`].
    pub fn transition(
        event: Event,
        now: Millis,
        deadline: Option<&str>,
        more: &[(&str, AttributeValue)],
        remove: &[&str],
    ) -> Self {
        let mut e = Self::default();
        let sources = e.source_condition(event, now, None);
        e.condition = match deadline {
            Some(op) => {
                let deadline_at = e.name("deadline_at");
                let now = e.value("now", n(now));
                format!("{sources} AND {deadline_at} {op} {now}")
            }
            None => sources,
        };
        e.transition_update(event, now, more, remove);
        e
    }

    /// `SET` clauses and `REMOVE`d attributes, assembled into the update expression.
    pub fn set_update(&mut self, set: &[(&str, AttributeValue)], remove: &[&str], add: &str) {
        let mut clauses = Vec::new();
        let sets: Vec<String> = set
            .iter()
            .map(|(attr, v)| {
                let name = self.name(attr);
                let value = self.value(&format!("set_{attr}"), v.clone());
                format!("{name} = {value}")
            })
            .collect();
        if !sets.is_empty() {
            clauses.push(format!("SET {}", sets.join(", ")));
        }
        let removes: Vec<String> = remove.iter().map(|attr| self.name(attr)).collect();
        if !removes.is_empty() {
            clauses.push(format!("REMOVE {}", removes.join(", ")));
        }
        if !add.is_empty() {
            clauses.push(add.to_owned());
        }
        self.update = clauses.join(" ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_condition_comes_from_the_state_machine() {
        let mut e = Expr::default();
        let c = e.source_condition(Event::Claim, 5, Some("me"));
        assert_eq!(
            c,
            "(#state IN (:st_OPTED_IN, :st_RETRYING) OR (#state = :st_SENDING AND \
             (attribute_not_exists(#lease_until) OR #lease_until <= :now)))"
        );
        assert_eq!(e.values[":now"], n(5));
        assert_eq!(e.values[":st_SENDING"], s("SENDING"));
    }

    #[test]
    fn finish_needs_the_owner_and_opt_out_any_non_terminal_state() {
        let mut e = Expr::default();
        let c = e.source_condition(Event::Accepted, 5, Some("me"));
        assert_eq!(c, "(#state = :st_SENDING AND #lease_owner = :owner)");
        assert_eq!(e.values[":owner"], s("me"));
        let mut e = Expr::default();
        let c = e.source_condition(Event::OptOut, 5, None);
        assert_eq!(
            c,
            "(#state IN (:st_OPTED_IN, :st_SENDING, :st_RETRYING, :st_PAUSED))"
        );
    }

    #[test]
    fn update_expressions_set_and_remove() {
        let mut e = Expr::default();
        e.set_update(&[("state", s("SENT"))], &LEASE, "ADD #attempts :one");
        assert_eq!(
            e.update,
            "SET #state = :set_state REMOVE #lease_owner, #lease_until ADD #attempts :one"
        );
    }
}
