//! `make deploy` as it would run (`make -n`, nothing executed): non-interactive, and one
//! architecture for the build and the deploy by construction; samconfig.toml for hand-run SAM
//! commands; and the template's operational gaps closed (each function's log group with a
//! retention, alarms on the API's 5xx and on failed http-api invocations).

use integration_tests::moto::workspace_root;
use serde_yaml_ng::Value;

/// The commands `make deploy` would run, with the committed example config and `vars` on the
/// command line (the caller's make settings and ARCH cleared, so only these count).
fn deploy_dry_run(vars: &[&str]) -> String {
    let out = std::process::Command::new("make")
        .current_dir(workspace_root())
        .args(["-n", "deploy", "DEPLOY_ENV=deploy.env.example"])
        .args(vars)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("ARCH")
        .output()
        .expect("make runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "make -n deploy: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The `sam <command>` lines of a dry run (a recipe line may continue over `\`-ended lines).
fn sam_lines(dry_run: &str, command: &str) -> Vec<String> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dry_run.lines() {
        current.push_str(line.trim_end_matches('\\'));
        if !line.ends_with('\\') {
            joined.push(std::mem::take(&mut current));
        }
    }
    let needle = format!("/sam {command} ");
    joined.into_iter().filter(|l| l.contains(&needle)).collect()
}

fn architectures(line: &str) -> Vec<&str> {
    line.match_indices("Architecture=\"")
        .map(|(i, m)| {
            let rest = &line[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

fn template() -> Value {
    serde_yaml_ng::from_str(
        &std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap(),
    )
    .unwrap()
}

#[test]
fn build_and_deploy_always_get_the_same_architecture() {
    let default = template()["Parameters"]["Architecture"]["Default"]
        .as_str()
        .unwrap()
        .to_owned();
    for (vars, arch) in [
        (vec![], default.as_str()),
        (vec!["ARCH=x86_64"], "x86_64"),
        (vec!["ARCH=arm64"], "arm64"),
    ] {
        let dry_run = deploy_dry_run(&vars);
        let builds = sam_lines(&dry_run, "build");
        let deploys = sam_lines(&dry_run, "deploy");
        assert_eq!((builds.len(), deploys.len()), (1, 1), "{dry_run}");
        for line in builds.iter().chain(&deploys) {
            assert_eq!(architectures(line), [arch], "{vars:?}: {line}");
        }
        // The built binaries are checked against the same value before the deploy.
        assert!(
            dry_run.contains(&format!("check-built-arch ARCH={arch}")),
            "{dry_run}"
        );
    }
}

#[test]
fn make_deploy_asks_nothing_guided_would() {
    let dry_run = deploy_dry_run(&["ARCH=x86_64"]);
    assert!(!dry_run.contains("--guided"), "{dry_run}");
    let deploy = &sam_lines(&dry_run, "deploy")[0];
    for flag in [
        "--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND",
        "--resolve-s3",
        "--stack-name ",
    ] {
        assert!(deploy.contains(flag), "{flag}: {deploy}");
    }
    // Every parameter without a default comes from deploy.env (guided would ask for it).
    let t = template();
    for (name, p) in t["Parameters"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        if p.get("Default").is_none() {
            assert!(deploy.contains(&format!(" {name}=\"")), "{name}: {deploy}");
        }
    }
    // CONFIRM=no skips the one question left, the changeset confirmation.
    let unattended = deploy_dry_run(&["ARCH=x86_64", "CONFIRM=no"]);
    assert!(sam_lines(&unattended, "deploy")[0].contains("--no-confirm-changeset"));
    assert!(!deploy.contains("--no-confirm-changeset"));
}

/// SAM CLI 1.161+ expands AWS::LanguageExtensions (the `!Sub` in the Facebook routes' paths)
/// locally only when asked; without it `sam build` and `sam deploy` fail on the template.
#[test]
fn every_sam_command_expands_the_language_extensions() {
    let dry_run = deploy_dry_run(&[]);
    for command in ["build", "deploy"] {
        for line in sam_lines(&dry_run, command) {
            assert!(
                line.contains("SAM_CLI_ENABLE_LANGUAGE_EXTENSIONS=1 "),
                "{line}"
            );
        }
    }
    let samconfig = std::fs::read_to_string(workspace_root().join("samconfig.toml")).unwrap();
    let global = samconfig
        .split("[default.global.parameters]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap();
    assert!(
        global
            .lines()
            .any(|l| l.trim() == "language_extensions = true"),
        "{global}"
    );
}

#[test]
fn samconfig_asks_for_both_capabilities_and_fixes_no_architecture() {
    let text = std::fs::read_to_string(workspace_root().join("samconfig.toml")).unwrap();
    let capabilities = text
        .lines()
        .find(|l| l.starts_with("capabilities"))
        .expect("samconfig.toml: capabilities");
    assert!(
        capabilities.contains("CAPABILITY_IAM") && capabilities.contains("CAPABILITY_AUTO_EXPAND"),
        "{capabilities}"
    );
    // An architecture written here would apply to hand-run commands only: make passes its own.
    assert!(
        !text
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("Architecture")),
        "{text}"
    );
}

#[test]
fn every_function_logs_to_its_own_group_with_a_retention() {
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let functions: Vec<(&str, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(k, r)| (k.as_str().unwrap(), r))
        .collect();
    assert_eq!(functions.len(), 4);
    for (name, function) in functions {
        let p = &function["Properties"];
        let Value::Tagged(group) = &p["LoggingConfig"]["LogGroup"] else {
            panic!("{name}: no LoggingConfig.LogGroup");
        };
        assert_eq!(group.tag.to_string(), "!Ref", "{name}");
        let group_name = group.value.as_str().unwrap();
        let g = &t["Resources"][group_name];
        assert_eq!(g["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{name}");
        let Value::Tagged(retention) = &g["Properties"]["RetentionInDays"] else {
            panic!("{group_name}: no RetentionInDays");
        };
        assert_eq!(retention.value.as_str(), Some("LogRetentionInDays"));
        // Named as Lambda would name it, from the function's fixed name.
        let Value::Tagged(function_name) = &p["FunctionName"] else {
            panic!("{name}: no fixed FunctionName");
        };
        let Value::Tagged(log_group_name) = &g["Properties"]["LogGroupName"] else {
            panic!("{group_name}: no LogGroupName");
        };
        assert_eq!(
            log_group_name.value.as_str().unwrap(),
            format!("/aws/lambda/{}", function_name.value.as_str().unwrap()),
            "{name}"
        );
    }
}

#[test]
fn api_5xx_and_failed_http_api_invocations_alarm() {
    let t = template();
    let tagged = |v: &Value| match v {
        Value::Tagged(t) => (t.tag.to_string(), t.value.as_str().map(str::to_owned)),
        other => (String::new(), other.as_str().map(str::to_owned)),
    };
    let a = &t["Resources"]["Api5xxAlarm"]["Properties"];
    assert_eq!(
        (a["Namespace"].as_str(), a["MetricName"].as_str()),
        (Some("AWS/ApiGateway"), Some("5xx"))
    );
    assert_eq!(
        tagged(&a["Dimensions"][0]["Value"]),
        ("!Ref".into(), Some("HttpApi".into()))
    );
    let e = &t["Resources"]["HttpApiErrorsAlarm"]["Properties"];
    assert_eq!(
        (e["Namespace"].as_str(), e["MetricName"].as_str()),
        (Some("AWS/Lambda"), Some("Errors"))
    );
    assert_eq!(
        tagged(&e["Dimensions"][0]["Value"]),
        ("!Ref".into(), Some("HttpApiFunction".into()))
    );
    assert_eq!(e["Threshold"].as_i64(), Some(0));
    // Both are on the dashboard (its alarm widget and the HTTP API metrics).
    let (_, body) = tagged(&t["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]);
    let body = body.unwrap();
    for shown in [
        "${Api5xxAlarm.Arn}",
        "${HttpApiErrorsAlarm.Arn}",
        r#"["AWS/ApiGateway", "5xx", "ApiId", "${HttpApi}""#,
    ] {
        assert!(body.contains(shown), "{shown} is not on the dashboard");
    }
}
