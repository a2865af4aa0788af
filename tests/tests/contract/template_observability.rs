//! The alarms, dashboard and sweep of template.yaml: what cfn-lint cannot check — that they watch the
//! metrics the code emits, notify the alert topic, and that the dashboard body is valid JSON.

use serde_yaml_ng::Value;
use shared::domain::metrics::{Metric, NAMESPACE};

fn template() -> Value {
    let path = integration_tests::moto::workspace_root().join("template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `!Ref X` / `!Sub …` / `!GetAtt …` as (tag, value); plain values as ("", value).
fn tagged(v: &Value) -> (String, &Value) {
    match v {
        Value::Tagged(t) => (t.tag.to_string(), &t.value),
        other => (String::new(), other),
    }
}

fn resources_of_type<'a>(t: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r))
        .collect()
}

#[test]
fn every_alarm_notifies_the_alert_topic() {
    let t = template();
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    let names: Vec<&str> = alarms.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "DeadlinesMissedAlarm",
        "SendDeadLetterQueueAlarm",
        "SchedulerDeadLetterQueueAlarm",
        "SenderErrorsAlarm",
        "EventsDeadLetterQueueAlarm",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    for (name, alarm) in &alarms {
        for actions in ["AlarmActions", "OKActions"] {
            let list = alarm["Properties"][actions].as_sequence().unwrap();
            let (tag, target) = tagged(&list[0]);
            assert_eq!(
                (tag.as_str(), target.as_str()),
                ("!Ref", Some("AlertTopic")),
                "{name} {actions}"
            );
        }
    }
}

#[test]
fn the_deadline_alarm_watches_the_emitted_metric_without_dimensions() {
    let t = template();
    let a = &t["Resources"]["DeadlinesMissedAlarm"]["Properties"];
    assert_eq!(a["Namespace"].as_str(), Some(NAMESPACE));
    assert_eq!(
        a["MetricName"].as_str(),
        Some(Metric::DeadlinesMissed.name())
    );
    assert!(
        a.get("Dimensions").is_none(),
        "EMF metrics carry no dimension"
    );
    assert_eq!(a["Threshold"].as_i64(), Some(0));
    assert_eq!(
        a["ComparisonOperator"].as_str(),
        Some("GreaterThanThreshold")
    );
    assert_eq!(a["Statistic"].as_str(), Some("Sum"));
}

#[test]
fn the_dead_letter_alarms_watch_their_queues() {
    let t = template();
    for (alarm, queue) in [
        ("SendDeadLetterQueueAlarm", "SendDeadLetterQueue.QueueName"),
        (
            "SchedulerDeadLetterQueueAlarm",
            "SchedulerDeadLetterQueue.QueueName",
        ),
        (
            "EventsDeadLetterQueueAlarm",
            "EventsDeadLetterQueue.QueueName",
        ),
    ] {
        let a = &t["Resources"][alarm]["Properties"];
        assert_eq!(
            a["MetricName"].as_str(),
            Some("ApproximateNumberOfMessagesVisible")
        );
        let (tag, value) = tagged(&a["Dimensions"][0]["Value"]);
        assert_eq!((tag.as_str(), value.as_str()), ("!GetAtt", Some(queue)));
        assert_eq!(a["Threshold"].as_i64(), Some(0));
    }
}

#[test]
fn the_sender_alarm_is_an_error_rate() {
    let t = template();
    let a = &t["Resources"]["SenderErrorsAlarm"]["Properties"];
    let metrics = a["Metrics"].as_sequence().unwrap();
    let expression = metrics
        .iter()
        .find_map(|m| m["Expression"].as_str())
        .unwrap();
    assert!(
        expression.contains("100 * errors / invocations"),
        "{expression}"
    );
    let stats: Vec<&str> = metrics
        .iter()
        .filter_map(|m| m["MetricStat"]["Metric"]["MetricName"].as_str())
        .collect();
    assert_eq!(stats, ["Errors", "Invocations"]);
    for m in metrics.iter().filter(|m| m.get("MetricStat").is_some()) {
        let (tag, f) = tagged(&m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]);
        assert_eq!((tag.as_str(), f.as_str()), ("!Ref", Some("SenderFunction")));
    }
}

#[test]
fn the_dashboard_is_valid_json_with_every_metric_and_alarm() {
    let t = template();
    let body = &t["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"];
    let (tag, text) = tagged(body);
    assert_eq!(tag, "!Sub");
    let text = text.as_str().unwrap();
    // What CloudFormation substitutes: ${Resource}, ${Resource.Attr}, ${AWS::Region}.
    let mut substituted = String::new();
    let mut rest = text;
    let mut references = Vec::new();
    while let Some(start) = rest.find("${") {
        substituted.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        references.push(rest[start + 2..end].to_owned());
        substituted.push('x');
        rest = &rest[end + 1..];
    }
    substituted.push_str(rest);
    let dashboard: serde_json::Value = serde_json::from_str(&substituted).unwrap();
    let widgets = dashboard["widgets"].as_array().unwrap();
    let metrics: Vec<String> = widgets
        .iter()
        .filter_map(|w| w["properties"]["metrics"].as_array())
        .flatten()
        .filter(|m| m[0] == NAMESPACE)
        .map(|m| m[1].as_str().unwrap().to_owned())
        .collect();
    for metric in Metric::ALL {
        assert!(metrics.contains(&metric.name().to_owned()), "{metric:?}");
    }
    let alarms: Vec<&Value> = resources_of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let alarm_refs = references
        .iter()
        .filter(|r| r.ends_with("Alarm.Arn"))
        .count();
    assert_eq!(
        alarm_refs,
        alarms.len(),
        "the alarm widget shows every alarm"
    );
    for r in &references {
        let resource = r.split('.').next().unwrap();
        assert!(
            resource.starts_with("AWS::") || t["Resources"].get(resource).is_some(),
            "${{{r}}} names no resource"
        );
    }
}

#[test]
fn the_sweep_runs_on_a_rate_parameter_of_15_minutes() {
    let t = template();
    assert_eq!(
        t["Parameters"]["SweepRate"]["Default"].as_str(),
        Some("rate(15 minutes)")
    );
    let sweep = &t["Resources"]["DeadlineAlertsFunction"]["Properties"]["Events"]["Sweep"];
    assert_eq!(sweep["Type"].as_str(), Some("ScheduleV2"));
    let (tag, rate) = tagged(&sweep["Properties"]["ScheduleExpression"]);
    assert_eq!((tag.as_str(), rate.as_str()), ("!Ref", Some("SweepRate")));
    let input: serde_json::Value =
        serde_json::from_str(sweep["Properties"]["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input, serde_json::json!({"kind": "sweep", "version": 1}));
}

#[test]
fn api_throttling_and_refusals_alarm_from_the_access_log() {
    let t = template();
    let api = &t["Resources"]["HttpApi"]["Properties"];
    let format = api["AccessLogSettings"]["Format"].as_str().unwrap();
    let line: serde_json::Value = serde_json::from_str(format).expect("the access log is JSON");
    assert_eq!(line["status"], "$context.status");
    assert_eq!(line["routeKey"], "$context.routeKey");
    for private in ["$context.identity.sourceIp", "$context.path", "querystring"] {
        assert!(!format.contains(private), "no {private} in the access log");
    }
    for (alarm, filter, metric, pattern_part) in [
        (
            "ApiThrottledAlarm",
            "ApiThrottledMetricFilter",
            "Throttled",
            r#"$.status = "429""#,
        ),
        (
            "FacebookRouteRejectedAlarm",
            "FacebookRouteRejectedMetricFilter",
            "FacebookRouteRejected",
            "POST /${FacebookPathSegment}/*",
        ),
    ] {
        let f = &t["Resources"][filter]["Properties"];
        let (tag, group) = tagged(&f["LogGroupName"]);
        assert_eq!(
            (tag.as_str(), group.as_str()),
            ("!Ref", Some("ApiAccessLogGroup"))
        );
        let (_, destination) = tagged(&api["AccessLogSettings"]["DestinationArn"]);
        assert_eq!(destination.as_str(), Some("ApiAccessLogGroup.Arn"));
        let (_, pattern) = tagged(&f["FilterPattern"]);
        let pattern = pattern.as_str().unwrap();
        assert!(pattern.contains(pattern_part), "{filter}: {pattern}");
        // CloudWatch documents trailing wildcards only.
        assert!(!pattern.contains("\"*"), "{filter}: a leading wildcard");
        let transformation = &f["MetricTransformations"][0];
        let a = &t["Resources"][alarm]["Properties"];
        assert_eq!(a["Namespace"], transformation["MetricNamespace"], "{alarm}");
        assert_eq!(a["MetricName"].as_str(), Some(metric));
        assert_eq!(transformation["MetricName"].as_str(), Some(metric));
        assert_eq!(a["Threshold"].as_i64(), Some(0), "{alarm}: any one alarms");
        assert_ne!(
            a["Namespace"].as_str(),
            Some(NAMESPACE),
            "the code's EMF namespace holds only the metrics it emits"
        );
    }
    let a = &t["Resources"]["Api4xxAlarm"]["Properties"];
    assert_eq!(
        (a["Namespace"].as_str(), a["MetricName"].as_str()),
        (Some("AWS/ApiGateway"), Some("4xx"))
    );
    let (tag, api_id) = tagged(&a["Dimensions"][0]["Value"]);
    assert_eq!((tag.as_str(), api_id.as_str()), ("!Ref", Some("HttpApi")));
}

#[test]
fn every_route_is_throttled_to_its_own_traffic() {
    let t = template();
    let api = &t["Resources"]["HttpApi"]["Properties"];
    let default = &api["DefaultRouteSettings"];
    // The stage default is the Facebook routes' limit (their keys carry the path segment).
    let (_, rate) = tagged(&default["ThrottlingRateLimit"]);
    assert_eq!(rate.as_str(), Some("FacebookRateLimit"));
    let params = &t["Parameters"];
    assert!(params["FacebookRateLimit"]["Default"].as_i64().unwrap() >= 1000);
    assert!(
        params["FacebookPathSegment"].get("Default").is_none(),
        "no guessable default segment"
    );
    // Every other route of the function has its own, smaller, entry.
    let settings = api["RouteSettings"].as_mapping().unwrap();
    let events = t["Resources"]["HttpApiFunction"]["Properties"]["Events"]
        .as_mapping()
        .unwrap();
    for (name, event) in events {
        let p = &event["Properties"];
        let (tag, path) = tagged(&p["Path"]);
        let path = path.as_str().unwrap();
        let key = format!("{} {path}", p["Method"].as_str().unwrap());
        if tag == "!Sub" {
            assert!(
                path.starts_with("/${FacebookPathSegment}/"),
                "{name:?}: a Facebook route lives under the segment"
            );
            continue;
        }
        let s = settings.get(key.as_str()).unwrap_or_else(|| {
            panic!("{key} has no RouteSettings entry: it would get the Facebook limit")
        });
        assert!(s.get("ThrottlingRateLimit").is_some(), "{key}");
        assert!(s.get("ThrottlingBurstLimit").is_some(), "{key}");
    }
    for path in [
        "/webhooks/messenger",
        "/facebook/deauthorize",
        "/facebook/data-deletion",
    ] {
        assert!(
            events.iter().any(|(_, e)| {
                tagged(&e["Properties"]["Path"]).1.as_str()
                    == Some(format!("/${{FacebookPathSegment}}{path}").as_str())
            }),
            "{path} is not under the segment"
        );
    }
    // The outputs print the URLs to paste into the App Dashboard.
    for output in [
        "FacebookWebhookUrl",
        "FacebookDeauthorizeUrl",
        "FacebookDataDeletionUrl",
    ] {
        let text = format!("{:?}", t["Outputs"][output]["Value"]);
        assert!(text.contains("${FacebookPathSegment}"), "{output}: {text}");
    }
}

/// Issue 12: the events queue retries for at least 24 hours (its `maxReceiveCount` is the event
/// sender's, whose schedule spans 29 hours), keeps messages longer than that, dead-letters into the
/// events DLQ (kept 14 days) with SQS-managed encryption, and its consumer reports partial failures.
#[test]
fn the_events_queue_retries_for_a_day_then_dead_letters() {
    let t = template();
    let q = &t["Resources"]["EventsQueue"]["Properties"];
    assert_eq!(
        q["RedrivePolicy"]["maxReceiveCount"].as_u64(),
        Some(u64::from(event_sender::MAX_RECEIVE_COUNT))
    );
    let (tag, target) = tagged(&q["RedrivePolicy"]["deadLetterTargetArn"]);
    assert_eq!(
        (tag.as_str(), target.as_str()),
        ("!GetAtt", Some("EventsDeadLetterQueue.Arn"))
    );
    assert_eq!(q["MessageRetentionPeriod"].as_i64(), Some(345_600));
    assert_eq!(q["SqsManagedSseEnabled"].as_bool(), Some(true));
    let timeout = t["Resources"]["EventSenderFunction"]["Properties"]["Timeout"]
        .as_i64()
        .unwrap();
    assert_eq!(q["VisibilityTimeout"].as_i64(), Some(6 * timeout));
    let dlq = &t["Resources"]["EventsDeadLetterQueue"]["Properties"];
    assert_eq!(dlq["MessageRetentionPeriod"].as_i64(), Some(1_209_600));
    assert_eq!(dlq["SqsManagedSseEnabled"].as_bool(), Some(true));
    let event =
        &t["Resources"]["EventSenderFunction"]["Properties"]["Events"]["EventsQueueMessages"];
    assert_eq!(event["Type"].as_str(), Some("SQS"));
    assert_eq!(
        event["Properties"]["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    // Events off by default.
    assert_eq!(t["Parameters"]["EventsUrl"]["Default"].as_str(), Some(""));
}

/// Issue 13 §5: the dashboard ($3 a month, the largest idle item) can be left out; then nothing
/// else in the template may refer to it (only its own output, under the same condition).
#[test]
fn the_dashboard_is_optional_and_nothing_else_depends_on_it() {
    let t = template();
    assert_eq!(t["Parameters"]["CreateDashboard"]["Default"], "true");
    assert_eq!(
        t["Resources"]["OperationsDashboard"]["Condition"],
        "WantsDashboard"
    );
    let text =
        std::fs::read_to_string(integration_tests::moto::workspace_root().join("template.yaml"))
            .unwrap();
    let mentions: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("OperationsDashboard") && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(
        mentions.len(),
        2,
        "the resource and the DashboardUrl output only: {mentions:?}"
    );
    assert_eq!(t["Outputs"]["DashboardUrl"]["Condition"], "WantsDashboard");
}
