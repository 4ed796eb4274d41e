//! kiln's own names for the AWS resources it touches.
//!
//! These mirror the fields of the AWS API that kiln reads or writes, and nothing more.
//! The adapter converts SDK types into these; the simulated account stores them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Resource tags, ordered so that hashes and outputs are stable.
pub type Tags = BTreeMap<String, String>;

/// A point in (real or simulated) time.
pub type Timestamp = DateTime<Utc>;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }
    };
}

id_type!(
    /// `ami-…`
    ImageId
);
id_type!(
    /// `i-…`
    InstanceId
);
id_type!(
    /// `snap-…`
    SnapshotId
);
id_type!(
    /// `sg-…`
    SecurityGroupId
);
id_type!(
    /// `subnet-…`
    SubnetId
);
id_type!(
    /// `lt-…`
    LaunchTemplateId
);
id_type!(
    /// A Run Command command id (a UUID).
    CommandId
);
id_type!(
    /// An Elastic Load Balancing ARN (target group, listener, rule, load balancer).
    Arn
);

// ---------------------------------------------------------------------------------------
// EC2: images and snapshots

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageState {
    Pending,
    Available,
    Failed,
    Invalid,
    Deregistered,
    Transient,
    Error,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    pub device_name: String,
    pub snapshot_id: Option<SnapshotId>,
    pub volume_size_gib: Option<i32>,
    pub encrypted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: ImageId,
    pub name: String,
    pub description: Option<String>,
    pub state: ImageState,
    /// AWS's explanation of a `failed` or `error` state.
    pub state_reason: Option<String>,
    pub owner_id: String,
    pub creation_date: Option<Timestamp>,
    pub deprecation_time: Option<Timestamp>,
    pub block_devices: Vec<BlockDevice>,
    pub tags: Tags,
}

/// Which images to describe. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFilter {
    pub ids: Vec<ImageId>,
    /// `self`, `amazon`, or account ids.
    pub owners: Vec<String>,
    /// Exact name, or a pattern with `*`.
    pub name: Option<String>,
    /// Every pair must match (`tag:KEY` = VALUE).
    pub tags: Tags,
    /// Only images that have this tag key, whatever its value.
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateImage {
    pub instance_id: InstanceId,
    pub name: String,
    pub description: String,
    /// Tags for the image and, through `TagSpecifications`, its snapshots.
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyImage {
    pub source_region: String,
    pub source_image_id: ImageId,
    pub name: String,
    pub description: String,
    pub encrypted: bool,
    /// A customer-managed key in the destination region.
    pub kms_key_id: Option<String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPermissions {
    pub accounts: Vec<String>,
    pub organization_arns: Vec<String>,
    pub organizational_unit_arns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: SnapshotId,
    pub state: String,
    pub start_time: Option<Timestamp>,
    pub tags: Tags,
}

// ---------------------------------------------------------------------------------------
// EC2: instances, networks, security groups

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    /// Gone, or on its way: nothing more will run on it.
    pub fn is_ending(self) -> bool {
        matches!(self, Self::ShuttingDown | Self::Terminated)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub image_id: ImageId,
    pub instance_type: String,
    pub state: InstanceState,
    pub state_reason: Option<String>,
    pub subnet_id: Option<SubnetId>,
    pub availability_zone: Option<String>,
    pub private_ip: Option<String>,
    pub launch_time: Option<Timestamp>,
    pub tags: Tags,
}

/// Which instances to describe. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceFilter {
    pub ids: Vec<InstanceId>,
    pub tags: Tags,
    pub tag_keys: Vec<String>,
    /// Leave out `terminated` instances.
    pub exclude_terminated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootVolume {
    pub device_name: String,
    pub size_gib: i32,
    pub volume_type: String,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInstance {
    pub image_id: ImageId,
    pub instance_type: String,
    pub subnet_id: Option<SubnetId>,
    pub security_group_ids: Vec<SecurityGroupId>,
    /// Instance profile name.
    pub instance_profile: Option<String>,
    /// `HttpTokens=required` (IMDSv2 only).
    pub imdsv2_required: bool,
    /// `InstanceInitiatedShutdownBehavior=terminate`.
    pub terminate_on_shutdown: bool,
    pub root_volume: Option<RootVolume>,
    pub user_data: Option<String>,
    /// Tags for the instance and its volumes.
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: SubnetId,
    pub vpc_id: String,
    pub availability_zone: String,
    pub cidr: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: SecurityGroupId,
    pub name: String,
    pub vpc_id: String,
    /// Number of ingress rules; kiln's builder groups have none.
    pub ingress_rules: usize,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSecurityGroup {
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    pub tags: Tags,
}

// ---------------------------------------------------------------------------------------
// EC2: launch templates

/// The parts of a launch template version's data that kiln reads or changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTemplateData {
    pub image_id: Option<ImageId>,
    pub instance_type: Option<String>,
    pub security_group_ids: Vec<SecurityGroupId>,
    pub instance_profile: Option<String>,
    pub user_data: Option<String>,
    /// `required` or `optional`.
    pub metadata_http_tokens: Option<String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTemplate {
    pub id: LaunchTemplateId,
    pub name: String,
    pub default_version: i64,
    pub latest_version: i64,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTemplateVersion {
    pub template_id: LaunchTemplateId,
    pub template_name: String,
    pub version: i64,
    pub description: Option<String>,
    pub is_default: bool,
    pub data: LaunchTemplateData,
}

/// A template named by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateRef {
    Id(LaunchTemplateId),
    Name(String),
}

impl fmt::Display for TemplateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// A new version made from `source_version`, changing only the image
/// (PITFALLS 10: never rewrite what another tool may own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTemplateVersion {
    pub template: TemplateRef,
    pub source_version: i64,
    pub image_id: ImageId,
    pub description: String,
}

// ---------------------------------------------------------------------------------------
// SSM: agent and Run Command

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingStatus {
    Online,
    ConnectionLost,
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub instance_id: InstanceId,
    pub ping_status: PingStatus,
    pub agent_version: Option<String>,
    pub last_ping: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendCommand {
    /// At most [`crate::MAX_INSTANCES_PER_COMMAND`] ids.
    pub instance_ids: Vec<InstanceId>,
    /// `AWS-RunShellScript` for kiln's steps.
    pub document: String,
    /// The script's lines (the document's `commands` parameter).
    pub commands: Vec<String>,
    /// The document's `executionTimeout` parameter.
    pub execution_timeout: Duration,
    /// `TimeoutSeconds`: how long SSM tries to deliver the command.
    pub delivery_timeout: Duration,
    pub comment: String,
    /// `MaxConcurrency`, as AWS takes it (`"10"`, `"25%"`).
    pub max_concurrency: Option<String>,
    /// `MaxErrors`, as AWS takes it. `"0"` stops after the first error.
    pub max_errors: Option<String>,
    /// Full output kept in S3 (`bucket`, `key prefix`) beside the cut inline output.
    pub output_s3: Option<(String, String)>,
}

/// `Status` of GetCommandInvocation / ListCommandInvocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationStatus {
    Pending,
    InProgress,
    Delayed,
    Success,
    Cancelling,
    Cancelled,
    TimedOut,
    Failed,
}

impl InvocationStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Cancelled | Self::TimedOut | Self::Failed
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    pub command_id: CommandId,
    pub instance_id: InstanceId,
    pub status: InvocationStatus,
    /// `StatusDetails`: tells `DeliveryTimedOut` and `Undeliverable` (not the
    /// script's failure) from `ExecutionTimedOut` and `Failed`.
    pub status_details: String,
    /// The script's exit code; -1 while none.
    pub response_code: i32,
    /// Inline output, cut by SSM at [`crate::SSM_OUTPUT_LIMIT`] characters.
    pub stdout: String,
    pub stderr: String,
    pub execution_start: Option<Timestamp>,
    pub execution_end: Option<Timestamp>,
}

impl Invocation {
    /// The command never ran: kiln cannot say the script failed (PITFALLS 21).
    pub fn is_undelivered(&self) -> bool {
        matches!(
            self.status_details.as_str(),
            "DeliveryTimedOut" | "Undeliverable" | "Terminated"
        )
    }

    /// The inline output reached SSM's limit, so the start of the log is all there is.
    pub fn output_truncated(&self) -> bool {
        self.stdout.chars().count() >= crate::SSM_OUTPUT_LIMIT
            || self.stderr.chars().count() >= crate::SSM_OUTPUT_LIMIT
    }
}

// ---------------------------------------------------------------------------------------
// SSM: Parameter Store

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParameterType {
    String,
    StringList,
    SecureString,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub value: String,
    pub kind: ParameterType,
    pub version: i64,
    pub last_modified: Option<Timestamp>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutParameter {
    pub name: String,
    pub value: String,
    pub kind: ParameterType,
    pub description: Option<String>,
    pub overwrite: bool,
    /// `aws:ec2:image` makes SSM check that the value is an AMI id.
    pub data_type: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Auto Scaling

/// The template a group launches from; `version` is what AWS stores
/// (`"3"`, `"$Latest"`, `"$Default"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTemplate {
    pub template_id: Option<LaunchTemplateId>,
    pub template_name: Option<String>,
    pub version: String,
}

impl GroupTemplate {
    /// `$Latest` and `$Default` follow the template, so a group pinned to them changes
    /// image whenever anyone writes a version (PITFALLS 1).
    pub fn is_floating(&self) -> bool {
        self.version.starts_with('$')
    }

    pub fn numbered_version(&self) -> Option<i64> {
        self.version.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInstance {
    pub id: InstanceId,
    pub availability_zone: String,
    /// `Pending`, `InService`, `Standby`, `Terminating`, ...
    pub lifecycle_state: String,
    /// `Healthy` or `Unhealthy`.
    pub health_status: String,
    pub protected_from_scale_in: bool,
    pub launch_template: Option<GroupTemplate>,
}

impl GroupInstance {
    pub fn in_service(&self) -> bool {
        self.lifecycle_state == "InService"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub arn: Option<String>,
    pub min_size: i32,
    pub max_size: i32,
    pub desired_capacity: i32,
    pub launch_template: Option<GroupTemplate>,
    /// True when the group launches through a mixed instances policy.
    pub mixed_instances: bool,
    pub target_group_arns: Vec<Arn>,
    /// `EC2` or `ELB`.
    pub health_check_type: String,
    pub health_check_grace: Duration,
    pub default_instance_warmup: Option<Duration>,
    pub subnet_ids: Vec<SubnetId>,
    pub instances: Vec<GroupInstance>,
    /// Names of suspended processes (`Launch`, `Terminate`, `InstanceRefresh`...).
    pub suspended_processes: Vec<String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroup {
    pub name: String,
    pub template: GroupTemplate,
    pub min_size: i32,
    pub max_size: i32,
    pub desired_capacity: i32,
    pub subnet_ids: Vec<SubnetId>,
    pub target_group_arns: Vec<Arn>,
    pub health_check_type: String,
    pub health_check_grace: Duration,
    pub default_instance_warmup: Option<Duration>,
    pub tags: Tags,
}

/// Fields left `None` are not changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateGroup {
    pub name: String,
    pub template: Option<GroupTemplate>,
    pub min_size: Option<i32>,
    pub max_size: Option<i32>,
    pub desired_capacity: Option<i32>,
    pub health_check_type: Option<String>,
    pub health_check_grace: Option<Duration>,
}

/// What a refresh does with scale-in protected instances; stated every time (PITFALLS 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtectedInstances {
    Refresh,
    Ignore,
    Wait,
}

/// What a refresh does with standby instances; stated every time (PITFALLS 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StandbyInstances {
    Terminate,
    Ignore,
    Wait,
}

/// Every preference of StartInstanceRefresh, none left to a default (PITFALLS 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshPreferences {
    pub min_healthy_percentage: i32,
    pub max_healthy_percentage: i32,
    pub instance_warmup: Duration,
    pub skip_matching: bool,
    pub checkpoint_percentages: Vec<i32>,
    pub checkpoint_delay: Option<Duration>,
    pub auto_rollback: bool,
    pub alarm_names: Vec<String>,
    pub scale_in_protected_instances: ProtectedInstances,
    pub standby_instances: StandbyInstances,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRefresh {
    pub group: String,
    /// The numbered template version the refresh installs (PITFALLS 1, 2).
    pub desired: Option<GroupTemplate>,
    pub preferences: RefreshPreferences,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefreshStatus {
    Pending,
    InProgress,
    Successful,
    Failed,
    Cancelling,
    Cancelled,
    RollbackInProgress,
    RollbackFailed,
    RollbackSuccessful,
    Baking,
}

impl RefreshStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Successful
                | Self::Failed
                | Self::Cancelled
                | Self::RollbackFailed
                | Self::RollbackSuccessful
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRefresh {
    pub id: String,
    pub group: String,
    pub status: RefreshStatus,
    pub status_reason: Option<String>,
    pub percentage_complete: i32,
    pub instances_to_update: i32,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub desired: Option<GroupTemplate>,
    pub preferences: Option<RefreshPreferences>,
}

// ---------------------------------------------------------------------------------------
// Elastic Load Balancing v2

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub path: String,
    pub port: String,
    pub protocol: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: i32,
    pub unhealthy_threshold: i32,
    /// HTTP codes that count as healthy (`200`, `200-299`).
    pub matcher: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub arn: Arn,
    pub name: String,
    pub protocol: String,
    pub port: i32,
    pub vpc_id: String,
    pub health_check: HealthCheck,
    pub load_balancer_arns: Vec<Arn>,
    pub deregistration_delay: Duration,
    pub stickiness_enabled: bool,
    /// Its tags (kiln's run id on the target groups a rollout creates).
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTargetGroup {
    pub name: String,
    pub protocol: String,
    pub port: i32,
    pub vpc_id: String,
    pub health_check: HealthCheck,
    pub deregistration_delay: Duration,
    pub tags: Tags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    Initial,
    Healthy,
    Unhealthy,
    Unused,
    Draining,
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetHealth {
    pub target_id: String,
    pub port: Option<i32>,
    pub state: TargetState,
    /// AWS's reason code (`Target.ResponseCodeMismatch`, `Elb.InitialHealthChecking`).
    pub reason: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedTarget {
    pub target_group_arn: Arn,
    pub weight: i32,
}

/// A forward action to one or more weighted target groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    pub target_groups: Vec<WeightedTarget>,
    /// Group-level stickiness, required for weighted forwarding with sticky
    /// target groups (PITFALLS 29).
    pub stickiness: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub arn: Arn,
    pub load_balancer_arn: Arn,
    pub port: i32,
    pub protocol: String,
    pub default_forward: Option<Forward>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleCondition {
    SourceIp(Vec<String>),
    HttpHeader { name: String, values: Vec<String> },
    PathPattern(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub arn: Arn,
    pub listener_arn: Arn,
    /// `default` for the listener's default rule, else a number.
    pub priority: String,
    pub conditions: Vec<RuleCondition>,
    pub forward: Option<Forward>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRule {
    pub listener_arn: Arn,
    pub priority: i32,
    pub conditions: Vec<RuleCondition>,
    pub forward: Forward,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub arn: Arn,
    pub name: String,
    pub dns_name: String,
    pub vpc_id: String,
}

// ---------------------------------------------------------------------------------------
// CloudWatch

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub name: String,
    pub state: AlarmState,
    pub reason: Option<String>,
    pub metric_name: Option<String>,
    pub namespace: Option<String>,
    pub dimensions: Tags,
    pub threshold: Option<f64>,
}

/// One metric statistic over a window, as GetMetricData answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricQuery {
    pub namespace: String,
    pub metric: String,
    pub dimensions: Tags,
    /// `Sum`, `Average`, `Maximum`, `p99`...
    pub statistic: String,
    pub period: Duration,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Whether `instance_type` is written as EC2 names types: `family.size`.
pub fn is_instance_type(instance_type: &str) -> bool {
    instance_type
        .split_once('.')
        .is_some_and(|(family, size)| instance_family(family) && instance_size(size))
}

/// An instance type's family: a letter, then letters, digits and dashes (`t3`,
/// `m7i-flex`, `u-6tb1`).
fn instance_family(family: &str) -> bool {
    family.starts_with(|c: char| c.is_ascii_lowercase())
        && family
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The sizes EC2 names: `nano` to `xlarge`, `<n>xlarge`, `metal` and `metal-<n>xl`.
fn instance_size(size: &str) -> bool {
    const NAMED: [&str; 7] = [
        "nano", "micro", "small", "medium", "large", "xlarge", "metal",
    ];
    let digits = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    NAMED.contains(&size)
        || size.strip_suffix("xlarge").is_some_and(digits)
        || size
            .strip_prefix("metal-")
            .and_then(|s| s.strip_suffix("xl"))
            .is_some_and(digits)
}
