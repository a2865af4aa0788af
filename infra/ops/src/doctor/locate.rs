//! Where the stack doctor checks is, and what its parts are called: the local stack of `make run`
//! (the names it writes to `.local/doctor.json`), or a deployed one read from CloudFormation
//! (`DescribeStacks`: outputs and parameters; `ListStackResources`: the sweep schedule and the
//! alarms, which CloudFormation names).

use super::Facts;
use super::aws::describe;
use aws_config::{BehaviorVersion, Region};
use std::collections::HashMap;
use std::path::Path;

/// Where the local stack names its parts for doctor (see `local_runner::local_state`).
pub const LOCAL_STATE_FILE: &str = ".local/doctor.json";

/// The local stack of `make run`, from the state file under `dir`.
pub fn local(dir: &Path) -> Result<Facts, String> {
    let path = dir.join(LOCAL_STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        format!(
            "no stack to check: pass --stack NAME (a deployed stack) or start the local stack with `make run` (it writes {})",
            path.display()
        )
    })?;
    let mut facts: Facts = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} does not describe the stack doctor needs ({e}): restart `make run`",
            path.display()
        )
    })?;
    if facts.fix_command.is_empty() {
        facts.fix_command = "make doctor ARGS=--fix".to_owned();
    }
    Ok(facts)
}

/// The SDK configuration for the stack: the emulator's endpoint and test credentials locally,
/// the normal AWS configuration (environment, profile, SSO…) otherwise.
pub async fn sdk_config(facts: &Facts) -> aws_config::SdkConfig {
    match &facts.aws_endpoint_url {
        Some(endpoint) => {
            aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(facts.region.clone()))
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "testing", "testing", None, None, "local",
                ))
                .endpoint_url(endpoint)
                .load()
                .await
        }
        None => shared::adapters::aws::load_operator_sdk_config().await,
    }
}

/// The logical id SAM gives the sweep's `ScheduleV2` event of `DeadlineAlertsFunction`.
pub const SWEEP_SCHEDULE_LOGICAL_ID: &str = "DeadlineAlertsFunctionSweep";

/// A deployed stack, read with the operator's credentials.
pub async fn deployed(stack: &str) -> Result<Facts, String> {
    let sdk = shared::adapters::aws::load_operator_sdk_config().await;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let described = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| format!("DescribeStacks {stack}: {}", describe(&e)))?;
    let Some(s) = described.stacks().first() else {
        return Err(format!("no stack named {stack} in this account and region"));
    };
    let outputs: HashMap<&str, &str> = s
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?, o.output_value()?)))
        .collect();
    let parameters: HashMap<&str, &str> = s
        .parameters()
        .iter()
        .filter_map(|p| Some((p.parameter_key()?, p.parameter_value()?)))
        .collect();
    let mut resources: Vec<(String, String, String)> = Vec::new();
    let mut pages = cfn
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("ListStackResources {stack}: {}", describe(&e)))?;
        resources.extend(page.stack_resource_summaries().iter().map(|r| {
            (
                r.logical_resource_id().unwrap_or_default().to_owned(),
                r.resource_type().unwrap_or_default().to_owned(),
                r.physical_resource_id().unwrap_or_default().to_owned(),
            )
        }));
    }
    facts_of(stack, sdk_region(&sdk), &outputs, &parameters, &resources)
}

fn sdk_region(sdk: &aws_config::SdkConfig) -> String {
    sdk.region()
        .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string())
}

/// The facts from a stack's outputs, parameters and (logical id, type, physical id) resources.
pub fn facts_of(
    stack: &str,
    region: String,
    outputs: &HashMap<&str, &str>,
    parameters: &HashMap<&str, &str>,
    resources: &[(String, String, String)],
) -> Result<Facts, String> {
    let output = |key: &str| {
        outputs.get(key).map(|v| (*v).to_owned()).ok_or_else(|| {
            format!("stack {stack} has no {key} output: deploy this version of template.yaml")
        })
    };
    let parameter = |key: &str, default: &str| {
        parameters
            .get(key)
            .map_or_else(|| default.to_owned(), |v| (*v).to_owned())
    };
    Ok(Facts {
        stack_name: stack.to_owned(),
        region,
        aws_endpoint_url: None,
        webhook_url: output("FacebookWebhookUrl")?,
        graph_api_base_url: parameter("GraphApiBaseUrl", "https://graph.facebook.com"),
        graph_api_version: parameter("GraphApiVersion", "v27.0"),
        fb_app_id: parameter("FacebookAppId", ""),
        fb_page_id: parameter("FacebookPageId", ""),
        secret_id: output("SecretArn")?,
        page_token_secret_id: outputs.get("PageTokenSecretArn").map(|v| (*v).to_owned()),
        alert_topic_arn: output("AlertTopicArn")?,
        send_dlq_url: output("SendDeadLetterQueueUrl")?,
        scheduler_dlq_url: output("SchedulerDeadLetterQueueUrl")?,
        events_dlq_url: Some(output("EventsDeadLetterQueueUrl")?),
        sweep_schedule: resources
            .iter()
            .find(|(id, kind, _)| {
                id == SWEEP_SCHEDULE_LOGICAL_ID && kind == "AWS::Scheduler::Schedule"
            })
            .map(|(_, _, physical)| physical.clone()),
        alarm_names: Some(
            resources
                .iter()
                .filter(|(_, kind, _)| kind == "AWS::CloudWatch::Alarm")
                .map(|(_, _, physical)| physical.clone())
                .collect(),
        ),
        fix_command: format!("cargo run -p ops -- doctor --stack {stack} --fix"),
        table_name: resources
            .iter()
            .find(|(id, kind, _)| id == "OptInTable" && kind == "AWS::DynamoDB::Table")
            .map(|(_, _, physical)| physical.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployed_stack_is_described_by_its_outputs_parameters_and_resources() {
        let outputs: HashMap<&str, &str> = [
            ("FacebookWebhookUrl", "https://x/seg/webhooks/messenger"),
            ("SecretArn", "arn:s"),
            ("PageTokenSecretArn", "arn:p"),
            ("AlertTopicArn", "arn:t"),
            ("SendDeadLetterQueueUrl", "https://q/send-dlq"),
            ("SchedulerDeadLetterQueueUrl", "https://q/sched-dlq"),
            ("EventsDeadLetterQueueUrl", "https://q/events-dlq"),
        ]
        .into_iter()
        .collect();
        let parameters: HashMap<&str, &str> = [
            ("FacebookAppId", "1"),
            ("FacebookPageId", "2"),
            ("GraphApiVersion", "v25.0"),
        ]
        .into_iter()
        .collect();
        let resources = vec![
            (
                SWEEP_SCHEDULE_LOGICAL_ID.to_owned(),
                "AWS::Scheduler::Schedule".to_owned(),
                "prod-DeadlineAlertsFunctionSweep-AbC".to_owned(),
            ),
            (
                "SendDeadLetterQueueAlarm".to_owned(),
                "AWS::CloudWatch::Alarm".to_owned(),
                "prod-SendDeadLetterQueueAlarm-XyZ".to_owned(),
            ),
        ];
        let f = facts_of(
            "prod",
            "eu-west-1".into(),
            &outputs,
            &parameters,
            &resources,
        )
        .unwrap();
        assert_eq!(f.webhook_url, "https://x/seg/webhooks/messenger");
        assert_eq!((f.fb_app_id.as_str(), f.fb_page_id.as_str()), ("1", "2"));
        assert_eq!(f.graph_api_version, "v25.0");
        assert_eq!(f.graph_api_base_url, "https://graph.facebook.com");
        assert_eq!(f.page_token_secret_id.as_deref(), Some("arn:p"));
        assert_eq!(f.events_dlq_url.as_deref(), Some("https://q/events-dlq"));
        assert_eq!(
            f.sweep_schedule.as_deref(),
            Some("prod-DeadlineAlertsFunctionSweep-AbC")
        );
        assert_eq!(
            f.alarm_names,
            Some(vec!["prod-SendDeadLetterQueueAlarm-XyZ".to_owned()])
        );
        assert_eq!(
            f.target().fix_command,
            "cargo run -p ops -- doctor --stack prod --fix"
        );
        let mut missing = outputs.clone();
        missing.remove("FacebookWebhookUrl");
        let e = facts_of("prod", "r".into(), &missing, &parameters, &resources).unwrap_err();
        assert!(e.contains("no FacebookWebhookUrl output"), "{e}");
    }

    #[test]
    fn the_local_stack_is_read_from_its_state_file() {
        let dir = std::env::temp_dir().join(format!("doctor-{}", uuid::Uuid::new_v4()));
        let e = local(&dir).unwrap_err();
        assert!(e.contains("make run") && e.contains("--stack"), "{e}");
        std::fs::create_dir_all(dir.join(".local")).unwrap();
        std::fs::write(dir.join(LOCAL_STATE_FILE), r#"{"table_name":"t"}"#).unwrap();
        assert!(local(&dir).unwrap_err().contains("restart `make run`"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
