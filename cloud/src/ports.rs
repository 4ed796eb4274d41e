//! The ports: one trait per AWS service, one method per AWS operation kiln uses.
//!
//! A port holds no decisions: it does not wait, poll, order or retry beyond what the AWS
//! client itself does. Waiting, retrying on [`crate::ErrorKind`] (throttling under the
//! one rule of [`crate::throttle`]), strategies and rollback live in `kiln-builder` and
//! `kiln-rollout`, so that the same logic runs on the AWS adapter and on the simulated
//! account.
//!
//! Every port is bound to one region. [`Account`] hands out a [`Cloud`] per region.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::CloudResult;
use crate::types::*;

/// EC2: images, snapshots, instances, subnets, security groups, launch templates, tags.
#[async_trait]
pub trait Compute: Send + Sync {
    async fn describe_images(&self, filter: &ImageFilter) -> CloudResult<Vec<Image>>;
    async fn create_image(&self, request: &CreateImage) -> CloudResult<ImageId>;
    /// Copy into this port's region from `request.source_region`.
    async fn copy_image(&self, request: &CopyImage) -> CloudResult<ImageId>;
    async fn deregister_image(&self, image: &ImageId) -> CloudResult<()>;
    async fn enable_image_deprecation(&self, image: &ImageId, at: Timestamp) -> CloudResult<()>;
    async fn add_launch_permissions(
        &self,
        image: &ImageId,
        permissions: &LaunchPermissions,
    ) -> CloudResult<()>;
    async fn describe_snapshots(
        &self,
        ids: &[SnapshotId],
        tags: &Tags,
    ) -> CloudResult<Vec<Snapshot>>;
    async fn delete_snapshot(&self, snapshot: &SnapshotId) -> CloudResult<()>;

    async fn run_instance(&self, request: &RunInstance) -> CloudResult<Instance>;
    async fn describe_instances(&self, filter: &InstanceFilter) -> CloudResult<Vec<Instance>>;
    async fn terminate_instances(&self, ids: &[InstanceId]) -> CloudResult<()>;

    /// Subnets by id; with no ids, every subnet carrying all of `tags`.
    async fn describe_subnets(&self, ids: &[SubnetId], tags: &Tags) -> CloudResult<Vec<Subnet>>;
    /// Security groups by id; with no ids, every group carrying all of `tags`.
    async fn describe_security_groups(
        &self,
        ids: &[SecurityGroupId],
        tags: &Tags,
    ) -> CloudResult<Vec<SecurityGroup>>;
    /// A group with no ingress rule (AWS's default egress rule stays).
    async fn create_security_group(
        &self,
        request: &CreateSecurityGroup,
    ) -> CloudResult<SecurityGroupId>;
    async fn delete_security_group(&self, id: &SecurityGroupId) -> CloudResult<()>;

    async fn describe_launch_template(&self, template: &TemplateRef)
        -> CloudResult<LaunchTemplate>;
    /// Versions by number; with none given, every version.
    async fn describe_launch_template_versions(
        &self,
        template: &TemplateRef,
        versions: &[i64],
    ) -> CloudResult<Vec<LaunchTemplateVersion>>;
    async fn create_launch_template_version(
        &self,
        request: &NewTemplateVersion,
    ) -> CloudResult<LaunchTemplateVersion>;
    /// Every launch template of the region (for "is this image in use").
    async fn describe_launch_templates(&self) -> CloudResult<Vec<LaunchTemplate>>;
    /// Deletes numbered versions; fails for the template's default version, and with
    /// `NotFound` when a version does not exist. A version AWS refuses fails the call.
    async fn delete_launch_template_versions(
        &self,
        template: &TemplateRef,
        versions: &[i64],
    ) -> CloudResult<()>;

    /// Tags any EC2 resource by id (image, snapshot, instance, group, template).
    async fn create_tags(&self, resource_ids: &[String], tags: &Tags) -> CloudResult<()>;
}

/// SSM: agent status and Run Command.
#[async_trait]
pub trait Commands: Send + Sync {
    async fn describe_instance_information(
        &self,
        ids: &[InstanceId],
    ) -> CloudResult<Vec<AgentInfo>>;
    /// Fails with `InvalidInstance` when an instance is not (yet) registered.
    async fn send_command(&self, request: &SendCommand) -> CloudResult<CommandId>;
    /// Fails with `NotFound` for a moment after `send_command` (PITFALLS 18).
    async fn get_command_invocation(
        &self,
        command: &CommandId,
        instance: &InstanceId,
    ) -> CloudResult<Invocation>;
    /// Every invocation of a command (output included, as far as AWS gives it).
    async fn list_command_invocations(&self, command: &CommandId) -> CloudResult<Vec<Invocation>>;
    /// Cancels on the given instances, or on all of them when none are given.
    async fn cancel_command(
        &self,
        command: &CommandId,
        instances: &[InstanceId],
    ) -> CloudResult<()>;
}

/// SSM Parameter Store.
#[async_trait]
pub trait Parameters: Send + Sync {
    /// `Ok(None)` when the parameter does not exist.
    async fn get_parameter(&self, name: &str, decrypt: bool) -> CloudResult<Option<Parameter>>;
    async fn get_parameters_by_path(
        &self,
        path: &str,
        decrypt: bool,
    ) -> CloudResult<Vec<Parameter>>;
    /// Oldest first.
    async fn get_parameter_history(&self, name: &str, decrypt: bool)
        -> CloudResult<Vec<Parameter>>;
    /// Returns the new version number.
    async fn put_parameter(&self, request: &PutParameter) -> CloudResult<i64>;
    async fn delete_parameter(&self, name: &str) -> CloudResult<()>;
}

/// Auto Scaling.
#[async_trait]
pub trait Scaling: Send + Sync {
    /// Groups by name; with none given, every group.
    async fn describe_groups(&self, names: &[String]) -> CloudResult<Vec<Group>>;
    async fn create_group(&self, request: &CreateGroup) -> CloudResult<()>;
    async fn update_group(&self, request: &UpdateGroup) -> CloudResult<()>;
    async fn delete_group(&self, name: &str, force: bool) -> CloudResult<()>;
    async fn set_desired_capacity(&self, name: &str, desired: i32) -> CloudResult<()>;
    async fn suspend_processes(&self, name: &str, processes: &[String]) -> CloudResult<()>;
    async fn resume_processes(&self, name: &str, processes: &[String]) -> CloudResult<()>;
    async fn set_instance_protection(
        &self,
        name: &str,
        ids: &[InstanceId],
        protected: bool,
    ) -> CloudResult<()>;
    async fn enter_standby(
        &self,
        name: &str,
        ids: &[InstanceId],
        decrement: bool,
    ) -> CloudResult<()>;
    async fn exit_standby(&self, name: &str, ids: &[InstanceId]) -> CloudResult<()>;
    async fn attach_target_groups(&self, name: &str, arns: &[Arn]) -> CloudResult<()>;
    async fn detach_target_groups(&self, name: &str, arns: &[Arn]) -> CloudResult<()>;
    /// Creates or overwrites tags on the group.
    async fn put_group_tags(&self, name: &str, tags: &Tags) -> CloudResult<()>;
    async fn delete_group_tags(&self, name: &str, keys: &[String]) -> CloudResult<()>;

    /// Fails with `Conflict` when a refresh is already running.
    async fn start_instance_refresh(&self, request: &StartRefresh) -> CloudResult<String>;
    /// Newest first.
    async fn describe_instance_refreshes(&self, group: &str) -> CloudResult<Vec<InstanceRefresh>>;
    async fn cancel_instance_refresh(&self, group: &str) -> CloudResult<()>;
    async fn rollback_instance_refresh(&self, group: &str) -> CloudResult<()>;
}

/// Elastic Load Balancing v2.
#[async_trait]
pub trait LoadBalancing: Send + Sync {
    async fn describe_load_balancers(&self, names: &[String]) -> CloudResult<Vec<LoadBalancer>>;
    /// Target groups by name; with none given, every target group.
    async fn describe_target_groups(&self, names: &[String]) -> CloudResult<Vec<TargetGroup>>;
    async fn create_target_group(&self, request: &CreateTargetGroup) -> CloudResult<TargetGroup>;
    async fn delete_target_group(&self, arn: &Arn) -> CloudResult<()>;
    async fn set_deregistration_delay(
        &self,
        arn: &Arn,
        delay: std::time::Duration,
    ) -> CloudResult<()>;
    async fn describe_target_health(&self, arn: &Arn) -> CloudResult<Vec<TargetHealth>>;
    async fn register_targets(&self, arn: &Arn, ids: &[InstanceId]) -> CloudResult<()>;
    async fn deregister_targets(&self, arn: &Arn, ids: &[InstanceId]) -> CloudResult<()>;
    async fn describe_listeners(&self, load_balancer: &Arn) -> CloudResult<Vec<Listener>>;
    async fn modify_listener_forward(&self, listener: &Arn, forward: &Forward) -> CloudResult<()>;
    async fn describe_rules(&self, listener: &Arn) -> CloudResult<Vec<Rule>>;
    async fn create_rule(&self, request: &CreateRule) -> CloudResult<Rule>;
    async fn delete_rule(&self, rule: &Arn) -> CloudResult<()>;
}

/// CloudWatch: alarm states and metric statistics for gates.
#[async_trait]
pub trait Metrics: Send + Sync {
    /// Alarms by name; with none given, every alarm.
    async fn describe_alarms(&self, names: &[String]) -> CloudResult<Vec<Alarm>>;
    /// One value per query (the statistic over the whole window); `None` for no data.
    async fn get_metric_data(&self, queries: &[MetricQuery]) -> CloudResult<Vec<Option<f64>>>;
}

/// What time it is in the world the ports talk to: the wall clock for AWS, the
/// simulated clock for the simulated account. Waiting itself is `tokio::time::sleep`,
/// which the simulation runs on a paused, auto-advancing tokio clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The ports of one region.
#[derive(Clone)]
pub struct Cloud {
    pub region: String,
    pub compute: Arc<dyn Compute>,
    pub commands: Arc<dyn Commands>,
    pub parameters: Arc<dyn Parameters>,
    pub scaling: Arc<dyn Scaling>,
    pub load_balancing: Arc<dyn LoadBalancing>,
    pub metrics: Arc<dyn Metrics>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloud")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// An AWS account (or the simulated one): the ports of any region.
#[async_trait]
pub trait Account: Send + Sync {
    /// The region commands act on when none is named.
    fn home_region(&self) -> &str;
    /// The account id, for tags and launch permissions.
    fn account_id(&self) -> &str;
    async fn region(&self, name: &str) -> CloudResult<Cloud>;
    /// Every region the account can use (EC2 DescribeRegions: the enabled ones), sorted.
    async fn regions(&self) -> CloudResult<Vec<String>>;
    /// Whether this is the simulated account (its outputs say so).
    fn is_simulated(&self) -> bool;
}
