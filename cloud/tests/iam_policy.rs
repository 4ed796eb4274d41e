//! The operator policy allows every AWS operation the adapter calls, and nothing else:
//! the adapter's source is scanned for SDK calls (`client.<operation>()`), so adding a
//! call without its permission, or keeping a permission no call needs, fails here.

use std::collections::BTreeSet;
use std::path::Path;

use kiln_cloud::iam::{self, PolicyScope, NEEDS_NO_PERMISSION, OPERATOR_EXTRA_ACTIONS};
use serde_json::{json, Value};

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
        groups: vec!["poc-web-asg".into()],
        target_groups: vec!["poc-web-tg".into()],
        load_balancers: vec!["poc-poc-alb".into()],
    }
}

/// The statements of `policy` that allow `action`.
fn allowing<'a>(policy: &'a Value, action: &str) -> Vec<&'a Value> {
    let statements = policy["Statement"].as_array().expect("statements");
    statements
        .iter()
        .filter(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
        .collect()
}

/// Actions that may run on any resource with no condition: reads, and creating what is
/// new (an instance, an image, a security group, a template version). Anything else on
/// `*` unconditioned would let the operator change what is not kiln's.
const OPEN_ON_ANY_RESOURCE: &[&str] = &[
    "ec2:CopyImage",
    "ec2:CreateImage",
    "ec2:CreateLaunchTemplateVersion",
    "ec2:CreateSecurityGroup",
    "ec2:RunInstances",
    // Not done: kiln knows templates by name, which their ARNs do not carry; scope this
    // once the pipeline's templates are resolved to ids when the policy is made.
    "ec2:DeleteLaunchTemplateVersions",
    // A command kiln sent itself; cancelling one ends no resource.
    "ssm:CancelCommand",
];

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

#[test]
fn nothing_but_reads_and_creates_is_open_on_every_resource() {
    let policy = iam::operator_policy(&scope());
    let statements = policy["Statement"].as_array().unwrap();
    let open = statements
        .iter()
        .filter(|s| s["Resource"] == json!(["*"]) && s.get("Condition").is_none());
    let read = |a: &str| {
        let op = a.split(':').nth(1).unwrap_or_default();
        ["Describe", "Get", "List"]
            .iter()
            .any(|p| op.starts_with(p))
    };
    let wide: Vec<String> = open
        .flat_map(|s| iam::actions_of(&json!({ "Statement": [s] })))
        .filter(|a| !read(a) && !OPEN_ON_ANY_RESOURCE.contains(&a.as_str()))
        .collect();
    assert!(wide.is_empty(), "open on every resource: {wide:?}");
}

#[test]
fn tags_are_set_only_as_kiln_creates_or_on_what_kiln_tagged() {
    let policy = iam::operator_policy(&scope());
    let tagging = allowing(&policy, "ec2:CreateTags");
    assert_eq!(tagging.len(), 2, "{tagging:?}");
    let on_create = &tagging[0]["Condition"]["StringEquals"]["ec2:CreateAction"];
    assert_eq!(
        on_create,
        &json!([
            "RunInstances",
            "CreateSecurityGroup",
            "CreateImage",
            "CopyImage"
        ])
    );
    assert_eq!(
        tagging[1]["Condition"]["Null"]["aws:ResourceTag/kiln:role"],
        "false"
    );
    let elb = allowing(&policy, "elasticloadbalancing:AddTags");
    assert_eq!(elb.len(), 1);
    assert_eq!(
        elb[0]["Condition"]["StringEquals"]["elasticloadbalancing:CreateAction"],
        json!(["CreateTargetGroup", "CreateRule"])
    );
}

#[test]
fn the_estate_is_changed_only_where_the_scope_names_it() {
    let policy = iam::operator_policy(&scope());
    let resources = |action: &str| -> Vec<Value> {
        let found = allowing(&policy, action);
        assert_eq!(found.len(), 1, "{action}: {found:?}");
        found[0]["Resource"].as_array().unwrap().clone()
    };
    let group = "arn:aws:autoscaling:ap-northeast-1:111122223333:autoScalingGroup:*:\
                 autoScalingGroupName/poc-web-asg";
    assert_eq!(
        resources("autoscaling:DeleteAutoScalingGroup"),
        [json!(group), json!(format!("{group}-v*"))]
    );
    let tg = "arn:aws:elasticloadbalancing:ap-northeast-1:111122223333:targetgroup/poc-web-tg";
    assert_eq!(
        resources("elasticloadbalancing:DeleteTargetGroup"),
        [json!(format!("{tg}/*")), json!(format!("{tg}-v*/*"))]
    );
    let lb = "arn:aws:elasticloadbalancing:ap-northeast-1:111122223333";
    assert_eq!(
        resources("elasticloadbalancing:ModifyListener"),
        [
            json!(format!("{lb}:listener/app/poc-poc-alb/*")),
            json!(format!("{lb}:listener-rule/app/poc-poc-alb/*"))
        ]
    );
    assert_eq!(
        resources("ssm:PutParameter"),
        [json!(
            "arn:aws:ssm:ap-northeast-1:111122223333:parameter/kiln/*"
        )]
    );

    // Unscoped, the same statements stand on every resource.
    let open = iam::operator_policy(&PolicyScope {
        groups: vec![],
        ..scope()
    });
    let delete = allowing(&open, "autoscaling:DeleteAutoScalingGroup");
    assert_eq!(delete[0]["Resource"], json!(["*"]));
}

#[test]
fn run_command_reaches_only_kiln_instances_and_the_groups_instances() {
    let policy = iam::operator_policy(&scope());
    let send = allowing(&policy, "ssm:SendCommand");
    assert_eq!(send.len(), 3, "{send:?}");
    assert_eq!(
        send[0]["Resource"],
        json!(["arn:aws:ssm:ap-northeast-1::document/AWS-RunShellScript"])
    );
    assert_eq!(
        send[1]["Condition"]["Null"]["aws:ResourceTag/kiln:role"],
        "false"
    );
    assert_eq!(
        send[2]["Condition"]["StringLike"]["aws:ResourceTag/aws:autoscaling:groupName"],
        json!(["poc-web-asg", "poc-web-asg-v*"])
    );
    for instance_statement in &send[1..] {
        assert_eq!(
            instance_statement["Resource"],
            json!(["arn:aws:ec2:ap-northeast-1:111122223333:instance/*"])
        );
    }
}
