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
/// (RunInstances with a profile, groups from a template with one); tagging target groups
/// and rules as they are created, which ELB authorizes as AddTags; decrypting the
/// SecureStrings a bake checks for leaks, when their key is a customer-managed one.
pub const OPERATOR_EXTRA_ACTIONS: &[&str] = &[
    "iam:PassRole",
    "elasticloadbalancing:AddTags",
    "kms:Decrypt",
];

/// EC2 actions that end or change what may not be kiln's: allowed only on resources
/// carrying kiln's role tag, which only kiln's own create calls can set (see
/// [`TAG_ON_CREATE`]).
const KILN_TAGGED_EC2: &[&str] = &[
    "ec2:CreateTags",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSnapshot",
    "ec2:DeregisterImage",
    "ec2:EnableImageDeprecation",
    "ec2:ModifyImageAttribute",
    "ec2:TerminateInstances",
];

/// The EC2 calls whose tag specifications tag what they create. Tagging at creation is
/// the only way a resource gets kiln's role tag, so `ec2:CreateTags` on anything else
/// cannot make a foreign instance look like a builder and have it terminated.
const TAG_ON_CREATE: &[&str] = &[
    "RunInstances",
    "CreateSecurityGroup",
    "CreateImage",
    "CopyImage",
];

/// The ELB calls that tag what they create.
const ELB_TAG_ON_CREATE: &[&str] = &["CreateTargetGroup", "CreateRule"];

/// Auto Scaling actions that change a group: only on the estate's groups and the green
/// groups kiln makes beside them (`<group>-v<N>`).
const GROUP_CHANGES: &[&str] = &[
    "autoscaling:AttachLoadBalancerTargetGroups",
    "autoscaling:CancelInstanceRefresh",
    "autoscaling:CreateAutoScalingGroup",
    "autoscaling:CreateOrUpdateTags",
    "autoscaling:DeleteAutoScalingGroup",
    "autoscaling:DeleteTags",
    "autoscaling:DetachLoadBalancerTargetGroups",
    "autoscaling:EnterStandby",
    "autoscaling:ExitStandby",
    "autoscaling:ResumeProcesses",
    "autoscaling:RollbackInstanceRefresh",
    "autoscaling:SetDesiredCapacity",
    "autoscaling:SetInstanceProtection",
    "autoscaling:StartInstanceRefresh",
    "autoscaling:SuspendProcesses",
    "autoscaling:UpdateAutoScalingGroup",
];

/// ELB actions that change a target group: only the estate's and their green copies.
const TARGET_GROUP_CHANGES: &[&str] = &[
    "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:RegisterTargets",
];

/// ELB actions that change where traffic goes: only on the estate's load balancers.
const LISTENER_CHANGES: &[&str] = &[
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:ModifyListener",
];

/// Parameter Store writes: only kiln's channels, `/kiln/<image>/<channel>`.
const CHANNEL_WRITES: &[&str] = &["ssm:DeleteParameter", "ssm:PutParameter"];

/// The one document kiln runs: the bake's steps, in-place fixes and HTTP probes.
const RUN_DOCUMENT: &str = "AWS-RunShellScript";

/// The tag Auto Scaling puts on every instance of a group.
const GROUP_NAME_TAG: &str = "aws:autoscaling:groupName";

/// The names the policies are scoped to.
#[derive(Debug, Clone, Default)]
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
    /// The Auto Scaling groups kiln rolls out to (empty: any group).
    pub groups: Vec<String>,
    /// Their target groups (empty: any).
    pub target_groups: Vec<String>,
    /// Their load balancers (empty: any).
    pub load_balancers: Vec<String>,
}

fn statement(sid: &str, actions: Vec<String>, resources: Vec<String>) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

fn with_condition(mut statement: Value, condition: Value) -> Value {
    statement["Condition"] = condition;
    statement
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

/// `names` as ARNs by `arn_of`, each with its green copy's (`<name>-v*`); `*` when the
/// scope names none.
fn estate_arns(names: &[String], arn_of: impl Fn(&str) -> String) -> Vec<String> {
    if names.is_empty() {
        return vec!["*".into()];
    }
    names
        .iter()
        .flat_map(|n| [arn_of(n), arn_of(&format!("{n}-v*"))])
        .collect()
}

/// The operator: every call the adapter makes. Reads and creates anywhere; what ends or
/// changes a resource only on what kiln tagged, kiln's channels, and the estate's
/// groups, target groups and load balancers when the scope names them; Run Command only
/// on kiln's instances and the groups' instances; passing only the named roles.
pub fn operator_policy(scope: &PolicyScope) -> Value {
    let (region, account) = (&scope.region, &scope.account);
    let guarded: Vec<&str> = [
        KILN_TAGGED_EC2,
        GROUP_CHANGES,
        TARGET_GROUP_CHANGES,
        LISTENER_CHANGES,
        CHANNEL_WRITES,
        &["ssm:SendCommand"],
    ]
    .concat();
    let open: Vec<String> = operator_actions()
        .into_iter()
        .filter(|a| !guarded.contains(&a.as_str()))
        .collect();
    let mut statements = vec![statement("KilnOperations", open, vec!["*".into()])];
    statements.extend(ec2_statements(region, account));
    statements.extend(run_command_statements(scope));
    statements.extend(estate_statements(scope));
    statements.push(statement(
        "KilnChannels",
        strings(CHANNEL_WRITES),
        vec![format!("arn:aws:ssm:{region}:{account}:parameter/kiln/*")],
    ));
    // The secrets a bake reads to check that none is baked in.
    statements.push(decrypt_statement("DecryptSecretsViaSsm", scope));
    let roles = scope
        .pass_roles
        .iter()
        .map(|r| format!("arn:aws:iam::{account}:role/{r}"))
        .collect();
    statements.push(with_condition(
        statement("PassInstanceRoles", strings(&["iam:PassRole"]), roles),
        json!({ "StringEquals": {
            "iam:PassedToService": ["ec2.amazonaws.com", "autoscaling.amazonaws.com"]
        } }),
    ));
    document(statements)
}

/// Tagging only at creation; ending, changing and retagging only what kiln tagged.
fn ec2_statements(region: &str, account: &str) -> Vec<Value> {
    let tag_on_create = with_condition(
        statement(
            "TagOnCreate",
            strings(&["ec2:CreateTags"]),
            vec!["*".into()],
        ),
        json!({ "StringEquals": { "ec2:CreateAction": TAG_ON_CREATE } }),
    );
    // Images and snapshots have no account in their ARNs.
    let resources = vec![
        format!("arn:aws:ec2:{region}:{account}:instance/*"),
        format!("arn:aws:ec2:{region}:{account}:security-group/*"),
        format!("arn:aws:ec2:{region}::image/*"),
        format!("arn:aws:ec2:{region}::snapshot/*"),
    ];
    let tagged = with_condition(
        statement("KilnTaggedOnly", strings(KILN_TAGGED_EC2), resources),
        json!({ "Null": { "aws:ResourceTag/kiln:role": "false" } }),
    );
    vec![tag_on_create, tagged]
}

/// Run Command: the one document, on kiln's builders and testers, and on the instances
/// of the estate's groups (in-place fixes, HTTP probes).
fn run_command_statements(scope: &PolicyScope) -> Vec<Value> {
    let (region, account) = (&scope.region, &scope.account);
    let send = || strings(&["ssm:SendCommand"]);
    let instances = || vec![format!("arn:aws:ec2:{region}:{account}:instance/*")];
    let document = statement(
        "RunShellScriptOnly",
        send(),
        vec![format!("arn:aws:ssm:{region}::document/{RUN_DOCUMENT}")],
    );
    let kiln = with_condition(
        statement("RunCommandOnKilnInstances", send(), instances()),
        json!({ "Null": { "aws:ResourceTag/kiln:role": "false" } }),
    );
    let group_key = format!("aws:ResourceTag/{GROUP_NAME_TAG}");
    let groups = if scope.groups.is_empty() {
        json!({ "Null": { group_key: "false" } })
    } else {
        let names = estate_arns(&scope.groups, str::to_string);
        json!({ "StringLike": { group_key: names } })
    };
    let estate = with_condition(
        statement("RunCommandOnGroupInstances", send(), instances()),
        groups,
    );
    vec![document, kiln, estate]
}

/// Changes to groups, target groups and listeners, on the estate's own when named.
fn estate_statements(scope: &PolicyScope) -> Vec<Value> {
    let (region, account) = (&scope.region, &scope.account);
    let groups = estate_arns(&scope.groups, |g| {
        format!(
            "arn:aws:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/{g}"
        )
    });
    let target_groups = estate_arns(&scope.target_groups, |t| {
        format!("arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{t}/*")
    });
    let listeners = match scope.load_balancers.as_slice() {
        [] => vec!["*".to_string()],
        names => names
            .iter()
            .flat_map(|lb| {
                let base = format!("arn:aws:elasticloadbalancing:{region}:{account}");
                [
                    format!("{base}:listener/app/{lb}/*"),
                    format!("{base}:listener-rule/app/{lb}/*"),
                ]
            })
            .collect(),
    };
    let elb_tags = with_condition(
        statement(
            "TagTargetGroupsAndRulesOnCreate",
            strings(&["elasticloadbalancing:AddTags"]),
            vec!["*".into()],
        ),
        json!({ "StringEquals": { "elasticloadbalancing:CreateAction": ELB_TAG_ON_CREATE } }),
    );
    vec![
        statement("EstateGroups", strings(GROUP_CHANGES), groups),
        statement(
            "EstateTargetGroups",
            strings(TARGET_GROUP_CHANGES),
            target_groups,
        ),
        statement("EstateListeners", strings(LISTENER_CHANGES), listeners),
        elb_tags,
    ]
}

/// Decrypting SecureStrings through Parameter Store only. `StringLike`, as the region
/// may be `*`.
fn decrypt_statement(sid: &str, scope: &PolicyScope) -> Value {
    with_condition(
        statement(
            sid,
            strings(&["kms:Decrypt"]),
            vec![scope.kms_key.clone().unwrap_or_else(|| "*".into())],
        ),
        json!({ "StringLike": {
            "kms:ViaService": format!("ssm.{}.amazonaws.com", scope.region)
        } }),
    )
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
    let key = decrypt_statement("DecryptSecureStrings", scope);
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
