//! Least-privilege IAM policies for the three identities a kiln estate has: the operator
//! that runs kiln, the builder instances' profile, and the web instances' role.
//!
//! The operator's actions are [`OPERATOR_ACTIONS`]: every AWS operation the adapter
//! (`aws/`) calls, kept here by hand and checked against the adapter's source by a test
//! (`cloud/tests/iam_policy.rs`), so that a new SDK call without its permission fails the
//! build. The instance policies follow from what the images do at boot and what Run
//! Command needs, and hold nothing on RDS (the team's house rule).

use serde_json::{json, Value};

/// Every operation the AWS adapter calls, by IAM service prefix, in IAM's spelling.
pub const OPERATOR_ACTIONS: &[(&str, &[&str])] = &[
    (
        "ec2",
        &[
            "CopyImage",
            "CreateImage",
            "CreateLaunchTemplateVersion",
            "CreateSecurityGroup",
            "CreateTags",
            "DeleteLaunchTemplateVersions",
            "DeleteSecurityGroup",
            "DeleteSnapshot",
            "DeregisterImage",
            "DescribeImages",
            "DescribeInstances",
            "DescribeLaunchTemplateVersions",
            "DescribeLaunchTemplates",
            "DescribeRegions",
            "DescribeSecurityGroups",
            "DescribeSnapshots",
            "DescribeSubnets",
            "EnableImageDeprecation",
            "ModifyImageAttribute",
            "RunInstances",
            "TerminateInstances",
        ],
    ),
    (
        "ssm",
        &[
            "CancelCommand",
            "DeleteParameter",
            "DescribeInstanceInformation",
            "GetCommandInvocation",
            "GetParameter",
            "GetParameterHistory",
            "GetParametersByPath",
            "ListCommandInvocations",
            "PutParameter",
            "SendCommand",
        ],
    ),
    (
        "autoscaling",
        &[
            "AttachLoadBalancerTargetGroups",
            "CancelInstanceRefresh",
            "CreateAutoScalingGroup",
            "CreateOrUpdateTags",
            "DeleteAutoScalingGroup",
            "DeleteTags",
            "DescribeAutoScalingGroups",
            "DescribeInstanceRefreshes",
            "DetachLoadBalancerTargetGroups",
            "EnterStandby",
            "ExitStandby",
            "ResumeProcesses",
            "RollbackInstanceRefresh",
            "SetDesiredCapacity",
            "SetInstanceProtection",
            "StartInstanceRefresh",
            "SuspendProcesses",
            "UpdateAutoScalingGroup",
        ],
    ),
    (
        "elasticloadbalancing",
        &[
            "CreateRule",
            "CreateTargetGroup",
            "DeleteRule",
            "DeleteTargetGroup",
            "DeregisterTargets",
            "DescribeListeners",
            "DescribeLoadBalancers",
            "DescribeRules",
            "DescribeTags",
            "DescribeTargetGroupAttributes",
            "DescribeTargetGroups",
            "DescribeTargetHealth",
            "ModifyListener",
            "ModifyTargetGroupAttributes",
            "RegisterTargets",
        ],
    ),
    ("cloudwatch", &["DescribeAlarms", "GetMetricData"]),
];

/// Operations the adapter calls that IAM never denies, so no policy names them.
pub const NEEDS_NO_PERMISSION: &[(&str, &str)] = &[("sts", "GetCallerIdentity")];

/// Actions the operator needs beyond the adapter's own calls: passing the instance roles
/// to EC2 (RunInstances with a profile, groups from a template with one).
pub const OPERATOR_EXTRA_ACTIONS: &[&str] = &["iam:PassRole"];

/// The names the policies are scoped to.
#[derive(Debug, Clone)]
pub struct PolicyScope {
    /// The account id (`*` when unknown: any account).
    pub account: String,
    /// The region (`*`: any).
    pub region: String,
    /// Roles the operator may pass to EC2: the builder's and the web instances'.
    pub pass_roles: Vec<String>,
    /// The Parameter Store prefix the web instances read at boot (`/poc/web`).
    pub parameter_prefix: Option<String>,
    /// The S3 bucket the builder fetches artifacts from.
    pub artifact_bucket: Option<String>,
    /// The KMS key of the SecureStrings (`*` with the SSM condition when absent: the
    /// account's `aws/ssm` key).
    pub kms_key: Option<String>,
}

fn statement(sid: &str, actions: Vec<String>, resources: Vec<String>) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The operator's actions, `service:Operation`, sorted.
pub fn operator_actions() -> Vec<String> {
    let mut actions: Vec<String> = OPERATOR_ACTIONS
        .iter()
        .flat_map(|(service, ops)| ops.iter().map(move |op| format!("{service}:{op}")))
        .collect();
    actions.sort();
    actions
}

/// The operator: every call the adapter makes; terminating instances and deleting
/// security groups only on what kiln tagged; passing only the named roles to EC2.
pub fn operator_policy(scope: &PolicyScope) -> Value {
    let guarded = ["ec2:TerminateInstances", "ec2:DeleteSecurityGroup"];
    let open: Vec<String> = operator_actions()
        .into_iter()
        .filter(|a| !guarded.contains(&a.as_str()))
        .collect();
    let mut tagged = statement(
        "KilnTaggedOnly",
        strings(&guarded),
        vec![format!("arn:aws:ec2:{}:{}:*", scope.region, scope.account)],
    );
    // Only resources with kiln's role tag (builder and test instances, their groups).
    tagged["Condition"] = json!({ "Null": { "aws:ResourceTag/kiln:role": "false" } });
    let roles = scope
        .pass_roles
        .iter()
        .map(|r| format!("arn:aws:iam::{}:role/{r}", scope.account))
        .collect();
    let mut pass = statement("PassInstanceRoles", strings(OPERATOR_EXTRA_ACTIONS), roles);
    pass["Condition"] = json!({ "StringEquals": { "iam:PassedToService": "ec2.amazonaws.com" } });
    document(vec![
        statement("KilnOperations", open, vec!["*".into()]),
        tagged,
        pass,
    ])
}

/// What the SSM agent needs to take Run Command invocations (the Run Command part of
/// AmazonSSMManagedInstanceCore, without its GetParameter on every parameter).
fn ssm_agent() -> Value {
    statement(
        "SsmAgentRunCommand",
        strings(&[
            "ssm:UpdateInstanceInformation",
            "ssm:ListInstanceAssociations",
            "ssm:UpdateInstanceAssociationStatus",
            "ec2messages:AcknowledgeMessage",
            "ec2messages:DeleteMessage",
            "ec2messages:FailMessage",
            "ec2messages:GetEndpoint",
            "ec2messages:GetMessages",
            "ec2messages:SendReply",
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
        ]),
        vec!["*".into()],
    )
}

/// The builder's instance profile: the SSM agent, and reading the artifact bucket.
pub fn builder_policy(scope: &PolicyScope) -> Value {
    let mut statements = vec![ssm_agent()];
    if let Some(bucket) = &scope.artifact_bucket {
        statements.push(statement(
            "ReadArtifacts",
            strings(&["s3:GetObject"]),
            vec![format!("arn:aws:s3:::{bucket}/*")],
        ));
    }
    document(statements)
}

/// The web instances' role: the SSM agent (in-place fixes), the environment's
/// parameters and their key, the group-name dimension's tags, metrics and logs.
pub fn instance_policy(scope: &PolicyScope) -> Value {
    let prefix = scope
        .parameter_prefix
        .as_deref()
        .unwrap_or("/kiln")
        .trim_end_matches('/');
    let parameters = format!(
        "arn:aws:ssm:{}:{}:parameter{prefix}",
        scope.region, scope.account
    );
    let mut key = statement(
        "DecryptSecureStrings",
        strings(&["kms:Decrypt"]),
        vec![scope.kms_key.clone().unwrap_or_else(|| "*".into())],
    );
    key["Condition"] = json!({
        "StringEquals": { "kms:ViaService": format!("ssm.{}.amazonaws.com", scope.region) }
    });
    let logs = format!(
        "arn:aws:logs:{}:{}:log-group:*",
        scope.region, scope.account
    );
    document(vec![
        ssm_agent(),
        statement(
            "ReadEnvironmentParameters",
            strings(&["ssm:GetParametersByPath"]),
            vec![parameters.clone(), format!("{parameters}/*")],
        ),
        key,
        statement(
            "ReadOwnTags",
            strings(&["ec2:DescribeTags"]),
            vec!["*".into()],
        ),
        statement(
            "PublishMetrics",
            strings(&["cloudwatch:PutMetricData"]),
            vec!["*".into()],
        ),
        statement(
            "WriteLogs",
            strings(&[
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
            ]),
            vec![logs],
        ),
    ])
}

/// Every action a policy document allows.
pub fn actions_of(document: &Value) -> Vec<String> {
    document["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}
