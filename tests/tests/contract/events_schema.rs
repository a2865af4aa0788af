//! docs/openapi.json's `webhooks` (issue 12, "OpenAPI documents … every event schema") cannot drift
//! from the code: one webhook per `EventType::ALL`, and the body each pure constructor builds
//! (shared/src/domain/events.rs) matches its type's schema — no undocumented `data` key, no
//! missing required one, and each value of the documented JSON type, enum, const and format.
//! No JSON-schema crate is in the workspace; the few keywords the document uses are checked here.

use serde_json::Value;
use shared::domain::events::{
    EventType, MessageKind, OutboundEvent, Subject, login_completed, message_failed, message_sent,
    opt_in_expired, opt_in_id, opt_in_received, opt_in_unreachable, person_deleted,
    person_opted_out, person_replied,
};
use shared::domain::login::Permission;
use shared::domain::opt_in::{HOUR_MS, OptIn, OptInKey, State};
use std::collections::BTreeSet;

fn document() -> Value {
    serde_json::from_str(http_api::OPENAPI_JSON).expect("docs/openapi.json parses")
}

/// `schema` with its `$ref` (local, `#/…`) followed, however deep.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved $ref {r}"));
            resolve(doc, target)
        }
        None => schema,
    }
}

/// The errors of `value` against `schema` (`type`, `enum`, `const`, `format: date-time`,
/// `required`, `properties`), each naming `at`. Unknown object keys are errors too: a key the code
/// sends must be documented (the document itself lets receivers tolerate new ones).
fn errors(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut out = Vec::new();
    let json_type = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let allowed: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !allowed.is_empty() && !allowed.contains(&json_type) {
        out.push(format!("{at}: {json_type}, documented {allowed:?}"));
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        out.push(format!("{at}: {value} not in the enum {options:?}"));
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        out.push(format!("{at}: {value}, documented const {expected}"));
    }
    if schema["format"] == "date-time"
        && let Some(text) = value.as_str()
        && chrono::DateTime::parse_from_rfc3339(text).is_err()
    {
        out.push(format!("{at}: {text} is not a date-time"));
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for key in schema["required"].as_array().into_iter().flatten() {
            if let Some(key) = key.as_str()
                && !object.contains_key(key)
            {
                out.push(format!("{at}: required `{key}` missing"));
            }
        }
        for (key, v) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(property) => out.extend(errors(doc, property, v, &format!("{at}.{key}"))),
                None => out.push(format!("{at}: `{key}` is not documented")),
            }
        }
    }
    out
}

/// The request body schema of webhook `name`.
fn body_schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema =
        &doc["webhooks"][name]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "webhook {name} has no application/json body"
    );
    resolve(doc, schema)
}

/// One event of each type, built by the constructors the product uses, with sample values; the
/// subject's fields are null on some (as for a declined login) so nullability is checked too.
fn one_of_each() -> Vec<OutboundEvent> {
    let known = Subject {
        asid: Some("42".into()),
        user_ref: Some("cust_1".into()),
        state: Some(State::Sent),
    };
    let unknown = Subject::default();
    let mut opt_in = OptIn::new(
        OptInKey::new("page", "login-secret"),
        Some(1_764_000_000_000),
        1_764_000_000_000,
        24 * HOUR_MS,
        0,
    );
    opt_in.generation = 1;
    let id = opt_in_id(&opt_in);
    let at = 1_764_000_100_000;
    vec![
        login_completed(&unknown, Permission::Declined, at),
        login_completed(&known, Permission::Granted, at),
        opt_in_received(&known, &opt_in),
        message_sent(&known, MessageKind::Initial, &id, "m.1", at),
        message_sent(&known, MessageKind::FollowUp, "msg_1", "m.2", at),
        message_failed(&known, MessageKind::Initial, &id, "expired", at),
        message_failed(&known, MessageKind::FollowUp, "msg_1", "outside_window", at),
        opt_in_expired(&known, &opt_in, at),
        opt_in_unreachable(&known, &opt_in, at),
        person_opted_out(&known, &opt_in, "stop_keyword", at),
        person_replied(&known, "page\u{1f}psid", "hello", at),
        person_deleted(&unknown, "del_1", at),
    ]
}

#[test]
fn the_openapi_webhooks_are_the_event_types() {
    let doc = document();
    let documented: BTreeSet<&str> = doc["webhooks"]
        .as_object()
        .expect("docs/openapi.json has `webhooks`")
        .keys()
        .map(String::as_str)
        .collect();
    let code: BTreeSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        documented, code,
        "docs/openapi.json webhooks vs EventType::ALL"
    );
    for name in code {
        let post = &doc["webhooks"][name]["post"];
        // The envelope's `type` is this webhook's name.
        assert_eq!(body_schema(&doc, name)["properties"]["type"]["const"], name);
        // The three Standard Webhooks headers, and a 2xx that means delivered.
        let headers: BTreeSet<&str> = post["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "header" && p["required"] == true)
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            headers,
            BTreeSet::from(["webhook-id", "webhook-timestamp", "webhook-signature"]),
            "{name}'s headers"
        );
        assert!(post["responses"]["2XX"].is_object(), "{name} documents 2XX");
    }
}

#[test]
fn every_constructed_event_matches_its_openapi_schema() {
    let doc = document();
    let built = one_of_each();
    // Every type is exercised, so a new constructor cannot skip the check.
    let types: BTreeSet<&str> = built.iter().map(|e| e.event_type.as_str()).collect();
    let all: BTreeSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(types, all, "one_of_each builds every event type");
    let mut problems = Vec::new();
    for event in &built {
        let name = event.event_type.as_str();
        let body: Value = serde_json::from_str(&event.body()).expect("the body is JSON");
        problems.extend(errors(&doc, body_schema(&doc, name), &body, name));
        // Every documented `data` property is required: the constructors always send each key
        // (null when unknown), so a receiver can rely on its presence.
        let data = resolve(&doc, &body_schema(&doc, name)["properties"]["data"]);
        let properties: BTreeSet<&str> = data["properties"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.keys().map(String::as_str))
            .collect();
        let required: BTreeSet<&str> = data["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            required, properties,
            "{name}: every data property is required"
        );
    }
    assert!(
        problems.is_empty(),
        "events vs docs/openapi.json webhooks:\n{}",
        problems.join("\n")
    );
}

/// The checker itself finds what the test relies on it to find.
#[test]
fn the_schema_check_reports_an_undocumented_or_missing_key_and_a_wrong_value() {
    let doc = document();
    let schema = body_schema(&doc, "message.sent");
    let mut body: Value = serde_json::from_str(
        &message_sent(
            &Subject::default(),
            MessageKind::Initial,
            "optin_1",
            "m.1",
            0,
        )
        .body(),
    )
    .unwrap();
    assert_eq!(errors(&doc, schema, &body, "e"), Vec::<String>::new());
    body["data"]["extra"] = "x".into();
    body["data"].as_object_mut().unwrap().remove("sent_at");
    body["data"]["kind"] = "later".into();
    body["type"] = "message.failed".into();
    let found = errors(&doc, schema, &body, "e").join("\n");
    for expected in [
        "`extra` is not documented",
        "`sent_at` missing",
        "\"later\" not in the enum",
        "documented const",
    ] {
        assert!(found.contains(expected), "{expected} in {found}");
    }
}
