//! Least privilege, checked on template.yaml: no IAM statement anywhere in the template (function
//! policies, roles, queue/topic policies, the KMS key policy) grants `*` or `service:*` actions (or
//! any wildcard action), `Resource: "*"`, `NotAction`/`NotResource` or `Principal: "*"`, except the
//! allow-listed statements below, each with its reason. Functions use only the SAM policy
//! templates named here (each scoped to one resource) and inline statements.

use integration_tests::moto::workspace_root;
use serde_yaml_ng::Value;

/// Statements allowed to use a wildcard: (resource, Sid, what, why).
const EXCEPTIONS: &[(&str, &str, &str, &str)] = &[
    (
        "AlertTopicKey",
        "AccountAdministersKeyThroughIam",
        "kms:*",
        "AWS's default key policy statement: without it the account's IAM cannot administer the key \
         (it would become unmanageable); IAM policies still decide who may use it",
    ),
    (
        "AlertTopicKey",
        "AccountAdministersKeyThroughIam",
        "Resource *",
        "in a key policy, Resource \"*\" means this key and nothing else",
    ),
    (
        "AlertTopicKey",
        "CloudWatchAlarmsPublishToTopic",
        "kms:GenerateDataKey*",
        "the actions AWS documents for CloudWatch alarms publishing to an encrypted SNS topic \
         (GenerateDataKey and its variants), restricted to this account by aws:SourceAccount",
    ),
    (
        "AlertTopicKey",
        "CloudWatchAlarmsPublishToTopic",
        "Resource *",
        "in a key policy, Resource \"*\" means this key and nothing else",
    ),
];

/// SAM policy templates a function may use: each is scoped to the one resource it names.
const SAM_POLICY_TEMPLATES: &[&str] = &[
    "DynamoDBCrudPolicy",
    "SQSSendMessagePolicy",
    "SQSPollerPolicy",
    "AWSSecretsManagerGetSecretValuePolicy",
    "SNSPublishMessagePolicy",
];

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        // An intrinsic (!GetAtt, !Sub, !Ref): a specific resource, never a bare "*".
        Value::Tagged(t) => strings(&t.value).into_iter().filter(|s| s == "*").collect(),
        _ => Vec::new(),
    }
}

fn excepted(resource: &str, sid: &str, what: &str) -> bool {
    EXCEPTIONS
        .iter()
        .any(|(r, s, w, why)| *r == resource && *s == sid && *w == what && !why.is_empty())
}

/// The violations of one statement.
fn check_statement(resource: &str, statement: &Value, out: &mut Vec<String>) {
    let sid = statement["Sid"].as_str().unwrap_or("<no Sid>");
    for forbidden in ["NotAction", "NotResource", "NotPrincipal"] {
        if !statement[forbidden].is_null() {
            out.push(format!("{resource}/{sid}: uses {forbidden}"));
        }
    }
    for action in strings(&statement["Action"]) {
        if action.contains('*') && !excepted(resource, sid, &action) {
            out.push(format!("{resource}/{sid}: wildcard action {action}"));
        }
    }
    if strings(&statement["Resource"]).iter().any(|r| r == "*")
        && !excepted(resource, sid, "Resource *")
    {
        out.push(format!("{resource}/{sid}: Resource \"*\""));
    }
    let principal = &statement["Principal"];
    if principal.as_str() == Some("*") || strings(&principal["AWS"]).iter().any(|p| p == "*") {
        out.push(format!("{resource}/{sid}: Principal \"*\""));
    }
}

/// Every IAM statement under `v` (any mapping with `Effect` and an action), checked.
fn walk(resource: &str, v: &Value, found: &mut usize, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            if m.contains_key("Effect") && (m.contains_key("Action") || m.contains_key("NotAction"))
            {
                *found += 1;
                check_statement(resource, v, out);
            }
            for (_, child) in m {
                walk(resource, child, found, out);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                walk(resource, item, found, out);
            }
        }
        Value::Tagged(t) => walk(resource, &t.value, found, out),
        _ => {}
    }
}

/// The function's `Policies`: SAM templates from the list above or inline statements only.
fn check_function_policies(resource: &str, properties: &Value, out: &mut Vec<String>) {
    let policies = match &properties["Policies"] {
        Value::Sequence(p) => p.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    for policy in &policies {
        match policy {
            Value::Mapping(m) => {
                for (key, _) in m {
                    let key = key.as_str().unwrap_or_default();
                    if key != "Statement"
                        && key != "Version"
                        && !SAM_POLICY_TEMPLATES.contains(&key)
                    {
                        out.push(format!("{resource}: unreviewed policy template {key}"));
                    }
                }
            }
            // A managed policy by name or ARN (e.g. AdministratorAccess): not allowed.
            other => out.push(format!("{resource}: managed policy {other:?}")),
        }
    }
}

/// (statements found, violations) of a whole template.
fn check_template(template: &Value) -> (usize, Vec<String>) {
    let mut found = 0;
    let mut out = Vec::new();
    let Some(resources) = template["Resources"].as_mapping() else {
        return (0, vec!["no Resources".into()]);
    };
    for (name, resource) in resources {
        let name = name.as_str().unwrap_or_default();
        walk(name, resource, &mut found, &mut out);
        let kind = resource["Type"].as_str().unwrap_or_default();
        if kind == "AWS::Serverless::Function" {
            check_function_policies(name, &resource["Properties"], &mut out);
        }
        // Roles: inline policies only (their statements are walked above).
        if !resource["Properties"]["ManagedPolicyArns"].is_null() {
            out.push(format!("{name}: ManagedPolicyArns"));
        }
    }
    (found, out)
}

fn parse(text: &str) -> Value {
    match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => panic!("template: {e}"),
    }
}

#[test]
fn no_statement_grants_wildcards_beyond_the_explained_exceptions() {
    let text = match std::fs::read_to_string(workspace_root().join("template.yaml")) {
        Ok(t) => t,
        Err(e) => panic!("template.yaml: {e}"),
    };
    let template = parse(&text);
    let (found, violations) = check_template(&template);
    assert!(violations.is_empty(), "{violations:#?}");
    // The walk really saw the policies: the functions', the scheduler role's (trust + inline),
    // the DLQ's queue policy and the key policy.
    assert!(found >= 15, "only {found} statements found");
    for resource in [
        "HttpApiFunction",
        "SenderFunction",
        "DeadlineAlertsFunction",
        "SchedulerExecutionRole",
        "SchedulerDeadLetterQueuePolicy",
        "AlertTopicKey",
    ] {
        let mut n = 0;
        walk(
            resource,
            &template["Resources"][resource],
            &mut n,
            &mut Vec::new(),
        );
        assert!(n > 0, "no statement found in {resource}");
    }
    // Every exception is still needed (a stale allow-list entry hides nothing).
    for (resource, sid, what, _) in EXCEPTIONS {
        let statements = template_statements(&template["Resources"][*resource]);
        let statement = statements
            .iter()
            .find(|s| s["Sid"].as_str() == Some(sid))
            .unwrap_or_else(|| panic!("exception {resource}/{sid} names no statement"));
        let used = if *what == "Resource *" {
            strings(&statement["Resource"]).iter().any(|r| r == "*")
        } else {
            strings(&statement["Action"]).iter().any(|a| a == what)
        };
        assert!(
            used,
            "exception {resource}/{sid} {what} is no longer needed"
        );
    }
}

fn template_statements(v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    fn collect(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Mapping(m) => {
                if m.contains_key("Effect") {
                    out.push(v.clone());
                }
                for (_, c) in m {
                    collect(c, out);
                }
            }
            Value::Sequence(items) => items.iter().for_each(|i| collect(i, out)),
            Value::Tagged(t) => collect(&t.value, out),
            _ => {}
        }
    }
    collect(v, &mut out);
    out
}

#[test]
fn the_check_catches_each_kind_of_violation() {
    let bad = parse(
        r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - AdministratorAccess
        - S3FullAccessPolicy:
            BucketName: b
        - Statement:
            - Sid: Everything
              Effect: Allow
              Action: "*"
              Resource: "*"
            - Sid: AllOfDynamo
              Effect: Allow
              Action: [dynamodb:GetItem, "dynamodb:*"]
              Resource: !GetAtt Table.Arn
            - Sid: Inverted
              Effect: Allow
              NotAction: iam:*
              Resource: arn:aws:s3:::b
  Q:
    Type: AWS::SQS::QueuePolicy
    Properties:
      PolicyDocument:
        Statement:
          - Sid: Anyone
            Effect: Allow
            Principal: "*"
            Action: sqs:SendMessage
            Resource: arn:aws:sqs:us-east-1:1:q
  R:
    Type: AWS::IAM::Role
    Properties:
      ManagedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]
  AlertTopicKey:
    Type: AWS::KMS::Key
    Properties:
      KeyPolicy:
        Statement:
          - Sid: NotTheExceptedOne
            Effect: Allow
            Principal: {AWS: "*"}
            Action: kms:*
            Resource: "*"
"#,
    );
    let (found, violations) = check_template(&bad);
    assert_eq!(found, 5);
    let text = violations.join("\n");
    for expected in [
        "Fn: managed policy",
        "Fn: unreviewed policy template S3FullAccessPolicy",
        "Fn/Everything: wildcard action *",
        "Fn/Everything: Resource \"*\"",
        "Fn/AllOfDynamo: wildcard action dynamodb:*",
        "Fn/Inverted: uses NotAction",
        "Q/Anyone: Principal \"*\"",
        "R: ManagedPolicyArns",
        "AlertTopicKey/NotTheExceptedOne: wildcard action kms:*",
        "AlertTopicKey/NotTheExceptedOne: Resource \"*\"",
        "AlertTopicKey/NotTheExceptedOne: Principal \"*\"",
    ] {
        assert!(text.contains(expected), "{expected} not reported:\n{text}");
    }
    assert_eq!(violations.len(), 11, "{text}");
}

// ------------------------------------------------------------------ per-function action sets

/// The adapter files each function's `Deps` wires (`Deps::from_aws` in the function crate, the
/// ports of `shared::bootstrap::AwsPorts` it keeps, and the Secrets Manager read of its main).
const WIRING: &[(&str, &str, &[&str])] = &[
    (
        "HttpApiFunction",
        "functions/http-api/src",
        &[
            "dynamodb/handle.rs",
            "dynamodb/opt_ins.rs",
            "dynamodb/conversations.rs",
            "dynamodb/pages.rs",
            "dynamodb/logins.rs",
            "dynamodb/erasure.rs",
            "sqs.rs",
            "events.rs",
            "scheduler.rs",
            "sns.rs",
            "secrets.rs",
        ],
    ),
    (
        "SenderFunction",
        "functions/sender/src",
        &[
            "dynamodb/handle.rs",
            "dynamodb/opt_ins.rs",
            "dynamodb/conversations.rs",
            "dynamodb/pages.rs",
            "dynamodb/logins.rs",
            "sqs.rs",
            "events.rs",
            "scheduler.rs",
            "sns.rs",
            "secrets.rs",
        ],
    ),
    (
        "DeadlineAlertsFunction",
        "functions/deadline-alerts/src",
        &[
            "dynamodb/handle.rs",
            "dynamodb/opt_ins.rs",
            "dynamodb/conversations.rs",
            "dynamodb/pages.rs",
            "dynamodb/logins.rs",
            "sqs.rs",
            "events.rs",
            "scheduler.rs",
            "sns.rs",
        ],
    ),
    (
        "EventSenderFunction",
        "functions/event-sender/src",
        &["events.rs", "sqs.rs", "sns.rs", "secrets.rs"],
    ),
];

/// Actions an adapter the function wires can issue but the function never asks for: (function,
/// action, the port methods that would need it, why). The methods must not appear in the
/// function crate's source, so a new call fails this test until the template grants the action.
const NOT_CALLED: &[(&str, &str, &[&str], &str)] = &[
    (
        "HttpApiFunction",
        "sqs:ChangeMessageVisibility",
        &["change_visibility", "retry_after"],
        "only the sender extends a received message's lease (and the event sender backs events off)",
    ),
    (
        "SenderFunction",
        "dynamodb:PutItem",
        &["create_opt_in", "link_psid", "put_state", "record_login"],
        "opt-ins, PSID links and logins are created by the http-api",
    ),
    (
        "SenderFunction",
        "dynamodb:DeleteItem",
        &["consume_state", "erase", "record_opt_in"],
        "login state and erasure belong to the http-api",
    ),
    (
        "SenderFunction",
        "dynamodb:ConditionCheckItem",
        &["record_login"],
        "the sender runs no transaction",
    ),
    (
        "SenderFunction",
        "scheduler:CreateSchedule",
        &["schedule_deadline_check"],
        "the webhook schedules the deadline check; the sender only cancels it",
    ),
    (
        "DeadlineAlertsFunction",
        "dynamodb:PutItem",
        &["create_opt_in", "link_psid", "put_state", "record_login"],
        "the sweep updates existing opt-ins and LOGINs only",
    ),
    (
        "DeadlineAlertsFunction",
        "dynamodb:DeleteItem",
        &["consume_state", "erase", "record_opt_in"],
        "login state and erasure belong to the http-api; the sweep only reads LOGINs and marks them",
    ),
    (
        "DeadlineAlertsFunction",
        "dynamodb:ConditionCheckItem",
        &["record_login", "record_opt_in"],
        "the sweep runs no transaction",
    ),
    (
        "DeadlineAlertsFunction",
        "sqs:ChangeMessageVisibility",
        &["change_visibility", "retry_after"],
        "only the sender extends a received message's lease (and the event sender backs events off)",
    ),
    (
        "DeadlineAlertsFunction",
        "scheduler:CreateSchedule",
        &["schedule_deadline_check"],
        "the webhook schedules the deadline check; the sweep only cancels",
    ),
];

/// The IAM actions an SDK call needs (TransactWriteItems is authorised per item).
fn actions_of_call(call: &str) -> &'static [&'static str] {
    match call {
        "get_item" => &["dynamodb:GetItem"],
        "put_item" => &["dynamodb:PutItem"],
        "update_item" => &["dynamodb:UpdateItem"],
        "delete_item" => &["dynamodb:DeleteItem"],
        "query" => &["dynamodb:Query"],
        "scan" => &["dynamodb:Scan"],
        "batch_write_item" => &["dynamodb:BatchWriteItem"],
        "batch_get_item" => &["dynamodb:BatchGetItem"],
        "transact_get_items" => &["dynamodb:GetItem"],
        "transact_write_items" => &[
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
        ],
        "send_message" => &["sqs:SendMessage"],
        "send_message_batch" => &["sqs:SendMessage"],
        "change_message_visibility" => &["sqs:ChangeMessageVisibility"],
        "delete_message" => &["sqs:DeleteMessage"],
        "create_schedule" => &["scheduler:CreateSchedule"],
        "delete_schedule" => &["scheduler:DeleteSchedule"],
        "get_schedule" => &["scheduler:GetSchedule"],
        "update_schedule" => &["scheduler:UpdateSchedule"],
        "publish" => &["sns:Publish"],
        "get_secret_value" => &["secretsmanager:GetSecretValue"],
        _ => &[],
    }
}

/// Every `.op()` SDK call in an adapter file, as IAM actions.
fn adapter_actions(file: &str) -> std::collections::BTreeSet<String> {
    let path = workspace_root().join("shared/src/adapters").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut out = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("()") {
        let before = &text[..i];
        let Some(dot) = before.rfind('.') else {
            continue;
        };
        let name = &before[dot + 1..];
        if name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            out.extend(actions_of_call(name).iter().map(|a| (*a).to_owned()));
        }
    }
    out
}

/// The actions a SAM policy template grants (the ones this project may use).
fn sam_template_actions(name: &str) -> &'static [&'static str] {
    match name {
        "DynamoDBCrudPolicy" => &[
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
            "dynamodb:ConditionCheckItem",
        ],
        "SQSSendMessagePolicy" => &["sqs:SendMessage*"],
        "SQSPollerPolicy" => &[
            "sqs:ChangeMessageVisibility",
            "sqs:ChangeMessageVisibilityBatch",
            "sqs:DeleteMessage",
            "sqs:DeleteMessageBatch",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ],
        "AWSSecretsManagerGetSecretValuePolicy" => &["secretsmanager:GetSecretValue"],
        "SNSPublishMessagePolicy" => &["sns:Publish"],
        _ => &[],
    }
}

/// The data-plane actions a function's policies grant (kms and iam:PassRole aside).
fn granted_actions(function: &Value) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let policies = function["Properties"]["Policies"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    for policy in &policies {
        if let Value::Mapping(m) = policy {
            for (key, _) in m {
                let key = key.as_str().unwrap_or_default();
                out.extend(sam_template_actions(key).iter().map(|a| (*a).to_owned()));
            }
        }
        for statement in template_statements(policy) {
            out.extend(strings(&statement["Action"]));
        }
    }
    out.retain(|a| {
        ["dynamodb:", "sqs:", "scheduler:", "sns:", "secretsmanager:"]
            .iter()
            .any(|p| a.starts_with(p))
    });
    out
}

fn source_of(dir: &str) -> String {
    let mut text = String::new();
    let root = workspace_root().join(dir);
    for entry in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{root:?}: {e}")) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    text
}

#[test]
fn each_function_is_granted_exactly_the_actions_its_adapters_call() {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let template = parse(&text);
    let mut problems = Vec::new();
    for (function, crate_dir, adapters) in WIRING {
        let mut needed: std::collections::BTreeSet<String> =
            adapters.iter().flat_map(|f| adapter_actions(f)).collect();
        let source = source_of(crate_dir);
        for (f, action, methods, why) in NOT_CALLED {
            if f != function {
                continue;
            }
            assert!(!why.is_empty());
            for method in *methods {
                if source.contains(&format!("{method}(")) {
                    problems.push(format!(
                        "{function} calls {method}: it needs {action} after all"
                    ));
                }
            }
            needed.remove(*action);
        }
        let granted = granted_actions(&template["Resources"][*function]);
        for missing in needed.difference(&granted) {
            problems.push(format!("{function} lacks {missing}, which its code calls"));
        }
        for extra in granted.difference(&needed) {
            problems.push(format!(
                "{function} is granted {extra}, which its code never calls"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn only_the_functions_that_use_the_secret_can_read_it() {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let template = parse(&text);
    let reads = |f: &str| {
        template_statements(&template["Resources"][f])
            .iter()
            .any(|s| refs(&s["Resource"]).iter().any(|r| r == "AppSecret"))
    };
    assert!(
        !reads("EventSenderFunction"),
        "the event sender reads its own signing secret only"
    );
    assert!(reads("HttpApiFunction") && reads("SenderFunction"));
    assert!(
        !reads("DeadlineAlertsFunction"),
        "deadline-alerts uses no secret: a malformed secret edit must not stop alerting"
    );
    // And its code does not read one (`run` loads settings only).
    let main =
        std::fs::read_to_string(workspace_root().join("functions/deadline-alerts/src/lib.rs"))
            .unwrap();
    assert!(main.contains("load_settings()") && !main.contains("load_from_env"));
}

/// `!Ref X` targets anywhere under `v`.
fn refs(v: &Value) -> Vec<String> {
    match v {
        Value::Tagged(t) if t.tag == "!Ref" => {
            t.value.as_str().map(str::to_owned).into_iter().collect()
        }
        Value::Tagged(t) => refs(&t.value),
        Value::Sequence(items) => items.iter().flat_map(refs).collect(),
        Value::Mapping(m) => m.iter().flat_map(|(_, v)| refs(v)).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn only_the_sender_can_read_the_page_token() {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let template = parse(&text);
    let resources = template["Resources"].as_mapping().unwrap();
    assert!(
        template["Resources"]["PageTokenSecret"]["Type"].as_str()
            == Some("AWS::SecretsManager::Secret"),
        "the Page token has its own secret"
    );
    let mut readers = Vec::new();
    for (name, resource) in resources {
        let name = name.as_str().unwrap_or_default();
        for statement in template_statements(resource) {
            if refs(&statement["Resource"])
                .iter()
                .any(|r| r == "PageTokenSecret")
            {
                readers.push(name.to_owned());
            }
        }
        // Nor may a function be pointed at it unless it is the sender.
        let env = &resource["Properties"]["Environment"];
        if refs(env).iter().any(|r| r == "PageTokenSecret") {
            assert_eq!(
                name, "SenderFunction",
                "{name} is given the Page token secret"
            );
        }
    }
    assert_eq!(readers, ["SenderFunction"]);
}

/// Issue 12: the events signing key is in a secret of its own, generated by the template, and only
/// the event sender can read it or is pointed at it; the emitting functions may put events on the
/// events queue and nothing else may.
#[test]
fn only_the_event_sender_can_read_the_events_signing_secret() {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let template = parse(&text);
    let secret = &template["Resources"]["EventsSigningSecret"];
    assert_eq!(secret["Type"].as_str(), Some("AWS::SecretsManager::Secret"));
    let generate = &secret["Properties"]["GenerateSecretString"];
    assert_eq!(
        generate["GenerateStringKey"].as_str(),
        Some("events_signing_secret")
    );
    // 32 alphanumeric characters: the base64 of 24 bytes, the shortest key the sender accepts.
    assert_eq!(generate["PasswordLength"].as_i64(), Some(32));
    assert_eq!(generate["ExcludePunctuation"].as_bool(), Some(true));
    let resources = template["Resources"].as_mapping().unwrap();
    let (mut readers, mut publishers) = (Vec::new(), Vec::new());
    for (name, resource) in resources {
        let name = name.as_str().unwrap_or_default();
        for statement in template_statements(resource) {
            let targets = refs(&statement["Resource"]);
            if targets.iter().any(|r| r == "EventsSigningSecret") {
                readers.push(name.to_owned());
            }
            let actions = strings(&statement["Action"]);
            if actions.iter().any(|a| a == "sqs:SendMessage")
                && format!("{:?}", statement["Resource"]).contains("EventsQueue.Arn")
            {
                publishers.push(name.to_owned());
            }
        }
        if refs(&resource["Properties"]["Environment"])
            .iter()
            .any(|r| r == "EventsSigningSecret")
        {
            assert_eq!(
                name, "EventSenderFunction",
                "{name} is given the signing secret"
            );
        }
    }
    assert_eq!(readers, ["EventSenderFunction"]);
    publishers.sort();
    assert_eq!(
        publishers,
        [
            "DeadlineAlertsFunction",
            "HttpApiFunction",
            "SenderFunction"
        ]
    );
}
