//! The operator policy allows every AWS operation the adapter calls, and nothing else:
//! the adapter's source is scanned for SDK calls (`client.<operation>()`), so adding a
//! call without its permission, or keeping a permission no call needs, fails here.

use std::collections::BTreeSet;
use std::path::Path;

use kiln_cloud::iam::{self, PolicyScope, NEEDS_NO_PERMISSION, OPERATOR_EXTRA_ACTIONS};

/// The IAM prefix of each SDK crate the adapter uses.
fn service_of(krate: &str) -> &'static str {
    match krate {
        "ec2" => "ec2",
        "ssm" => "ssm",
        "autoscaling" => "autoscaling",
        "elasticloadbalancingv2" => "elasticloadbalancing",
        "cloudwatch" => "cloudwatch",
        "sts" => "sts",
        other => panic!("the adapter uses aws_sdk_{other}: give it its IAM prefix here"),
    }
}

/// `describe_images` -> `DescribeImages`.
fn operation(method: &str) -> String {
    method
        .split('_')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The identifier and `()` after `.` and whitespace at `rest`'s start, if any.
fn call_after(rest: &str) -> Option<&str> {
    let rest = rest.trim_start().strip_prefix('.')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0 && rest[end..].starts_with("()")).then(|| &rest[..end])
}

/// Every `service:Operation` the adapter's source calls.
fn adapter_calls() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws");
    let mut calls = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("the adapter's folder") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        scan(&text, &mut calls);
    }
    calls
}

fn scan(text: &str, calls: &mut BTreeSet<String>) {
    // The file's own client: `use aws_sdk_<crate>::Client;`.
    let own = text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("use aws_sdk_")?
            .strip_suffix("::Client;")
            .map(str::to_string)
    });
    for (at, _) in text.match_indices("client") {
        let before = text[..at].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let (Some(method), Some(krate)) = (call_after(&text[at + 6..]), own.as_deref()) {
            calls.insert(format!("{}:{}", service_of(krate), operation(method)));
        }
    }
    // `aws_sdk_<crate>::Client::new(config).<operation>()`.
    for (at, _) in text.match_indices("aws_sdk_") {
        let rest = &text[at + 8..];
        let Some((krate, after)) = rest.split_once("::Client::new(") else {
            continue;
        };
        if krate.contains(|c: char| !c.is_ascii_alphanumeric()) {
            continue;
        }
        let Some(close) = after.find(')') else {
            continue;
        };
        if let Some(method) = call_after(&after[close + 1..]) {
            calls.insert(format!("{}:{}", service_of(krate), operation(method)));
        }
    }
}

fn scope() -> PolicyScope {
    PolicyScope {
        account: "111122223333".into(),
        region: "ap-northeast-1".into(),
        pass_roles: vec!["kiln-builder".into(), "poc-web".into()],
        parameter_prefix: Some("/poc/web".into()),
        artifact_bucket: Some("poc-artifacts-111122223333".into()),
        kms_key: None,
    }
}

#[test]
fn the_scan_finds_the_adapters_calls() {
    let calls = adapter_calls();
    // A scan that found nothing would prove nothing.
    for known in [
        "ec2:RunInstances",
        "ssm:SendCommand",
        "autoscaling:StartInstanceRefresh",
    ] {
        assert!(calls.contains(known), "{known} not found in {calls:?}");
    }
    assert!(calls.len() > 50, "{calls:?}");
}

#[test]
fn every_adapter_call_is_in_the_operator_policy_and_nothing_more() {
    let calls = adapter_calls();
    let free: BTreeSet<String> = NEEDS_NO_PERMISSION
        .iter()
        .map(|(s, o)| format!("{s}:{o}"))
        .collect();
    let allowed: BTreeSet<String> = iam::actions_of(&iam::operator_policy(&scope()))
        .into_iter()
        .collect();
    let missing: Vec<_> = calls
        .difference(&allowed)
        .filter(|c| !free.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "add to iam::OPERATOR_ACTIONS: {missing:?}"
    );
    let unused: Vec<_> = allowed
        .iter()
        .filter(|a| !calls.contains(*a) && !OPERATOR_EXTRA_ACTIONS.contains(&a.as_str()))
        .collect();
    assert!(unused.is_empty(), "no adapter call needs: {unused:?}");
}

#[test]
fn the_instance_role_reads_its_prefix_and_touches_no_database() {
    let policy = iam::instance_policy(&scope());
    let actions = iam::actions_of(&policy);
    assert!(actions.iter().all(|a| !a.starts_with("rds")), "{actions:?}");
    for needed in [
        "ssm:GetParametersByPath",
        "kms:Decrypt",
        "ec2:DescribeTags",
        "cloudwatch:PutMetricData",
        "logs:PutLogEvents",
    ] {
        assert!(actions.iter().any(|a| a == needed), "{needed} missing");
    }
    let text = policy.to_string();
    assert!(text.contains("arn:aws:ssm:ap-northeast-1:111122223333:parameter/poc/web/*"));
    assert!(
        !actions.iter().any(|a| a == "ssm:GetParameter"),
        "no reads outside the prefix"
    );
}

#[test]
fn the_builder_reads_only_its_artifact_bucket() {
    let policy = iam::builder_policy(&scope());
    let s3: Vec<_> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"].to_string().contains("s3:"))
        .collect();
    assert_eq!(s3.len(), 1);
    assert_eq!(s3[0]["Action"], serde_json::json!(["s3:GetObject"]));
    assert_eq!(
        s3[0]["Resource"],
        serde_json::json!(["arn:aws:s3:::poc-artifacts-111122223333/*"])
    );
}

#[test]
fn operator_may_end_only_what_kiln_tagged() {
    let policy = iam::operator_policy(&scope());
    let statements = policy["Statement"].as_array().unwrap();
    let broad = statements
        .iter()
        .find(|s| s["Resource"] == serde_json::json!(["*"]));
    let broad = iam::actions_of(&serde_json::json!({ "Statement": [broad.unwrap()] }));
    assert!(!broad.iter().any(|a| a == "ec2:TerminateInstances"));
    let tagged = statements
        .iter()
        .find(|s| s["Sid"] == "KilnTaggedOnly")
        .unwrap();
    assert_eq!(
        tagged["Condition"]["Null"]["aws:ResourceTag/kiln:role"],
        "false"
    );
}
