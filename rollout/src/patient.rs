//! Every call a rollout makes survives a throttling storm.
//!
//! The AWS client gives up on a throttled call after a few quick attempts; a storm lasts
//! minutes. A rollout makes hundreds of calls, and one given up on at the wrong moment
//! (after the switch, counting instances) turned a deploy that happened into a failure.
//! Rather than wrap each call site, [`patient`] wraps the ports once: each call is tried
//! again under [`retry_throttled`], the rule bakes use, with its backoff and budget. The
//! public entry points of this crate wrap the cloud they are given, once; what they call
//! inside takes the wrapped one.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use kiln_cloud::ports::{Commands, Compute, LoadBalancing, Metrics, Parameters, Scaling};
use kiln_cloud::throttle::retry_throttled;
use kiln_cloud::*;
use tokio_util::sync::CancellationToken;

use crate::error::StopReason;

/// Runs one poll unless `cancel` lands first: `Err(Cancelled)` then, and the poll is
/// dropped where it stands. Only for polls: they read and probe, so dropping one
/// half-way (even inside a throttled call's retries) changes nothing in the account.
pub(crate) async fn or_cancel<T>(
    cancel: &CancellationToken,
    poll: impl Future<Output = T>,
) -> Result<T, StopReason> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(StopReason::Cancelled),
        out = poll => Ok(out),
    }
}

/// The same ports, each call tried again while AWS answers that it is throttled.
///
/// A call being tried again does not see a cancel: a write given up half-way may or may
/// not have happened. The polls, which only read (and probe), go through [`or_cancel`]
/// so that a Ctrl-C in a storm starts the undo at once instead of after the budget.
pub(crate) fn patient(cloud: &Cloud) -> Cloud {
    Cloud {
        region: cloud.region.clone(),
        compute: Arc::new(Patient(cloud.compute.clone())),
        commands: Arc::new(Patient(cloud.commands.clone())),
        parameters: Arc::new(Patient(cloud.parameters.clone())),
        scaling: Arc::new(Patient(cloud.scaling.clone())),
        load_balancing: Arc::new(Patient(cloud.load_balancing.clone())),
        metrics: Arc::new(Patient(cloud.metrics.clone())),
        clock: cloud.clock.clone(),
    }
}

/// One port, wrapped.
struct Patient<P: ?Sized>(Arc<P>);

#[async_trait]
impl Compute for Patient<dyn Compute> {
    async fn describe_images(&self, filter: &ImageFilter) -> CloudResult<Vec<Image>> {
        retry_throttled(|| self.0.describe_images(filter)).await
    }
    async fn create_image(&self, request: &CreateImage) -> CloudResult<ImageId> {
        retry_throttled(|| self.0.create_image(request)).await
    }
    async fn copy_image(&self, request: &CopyImage) -> CloudResult<ImageId> {
        retry_throttled(|| self.0.copy_image(request)).await
    }
    async fn deregister_image(&self, image: &ImageId) -> CloudResult<()> {
        retry_throttled(|| self.0.deregister_image(image)).await
    }
    async fn enable_image_deprecation(&self, image: &ImageId, at: Timestamp) -> CloudResult<()> {
        retry_throttled(|| self.0.enable_image_deprecation(image, at)).await
    }
    async fn add_launch_permissions(
        &self,
        image: &ImageId,
        permissions: &LaunchPermissions,
    ) -> CloudResult<()> {
        retry_throttled(|| self.0.add_launch_permissions(image, permissions)).await
    }
    async fn describe_snapshots(
        &self,
        ids: &[SnapshotId],
        tags: &Tags,
    ) -> CloudResult<Vec<Snapshot>> {
        retry_throttled(|| self.0.describe_snapshots(ids, tags)).await
    }
    async fn delete_snapshot(&self, snapshot: &SnapshotId) -> CloudResult<()> {
        retry_throttled(|| self.0.delete_snapshot(snapshot)).await
    }
    async fn run_instance(&self, request: &RunInstance) -> CloudResult<Instance> {
        retry_throttled(|| self.0.run_instance(request)).await
    }
    async fn describe_instances(&self, filter: &InstanceFilter) -> CloudResult<Vec<Instance>> {
        retry_throttled(|| self.0.describe_instances(filter)).await
    }
    async fn terminate_instances(&self, ids: &[InstanceId]) -> CloudResult<()> {
        retry_throttled(|| self.0.terminate_instances(ids)).await
    }
    async fn describe_subnets(&self, ids: &[SubnetId], tags: &Tags) -> CloudResult<Vec<Subnet>> {
        retry_throttled(|| self.0.describe_subnets(ids, tags)).await
    }
    async fn describe_security_groups(
        &self,
        ids: &[SecurityGroupId],
        tags: &Tags,
    ) -> CloudResult<Vec<SecurityGroup>> {
        retry_throttled(|| self.0.describe_security_groups(ids, tags)).await
    }
    async fn create_security_group(
        &self,
        request: &CreateSecurityGroup,
    ) -> CloudResult<SecurityGroupId> {
        retry_throttled(|| self.0.create_security_group(request)).await
    }
    async fn delete_security_group(&self, id: &SecurityGroupId) -> CloudResult<()> {
        retry_throttled(|| self.0.delete_security_group(id)).await
    }
    async fn describe_launch_template(
        &self,
        template: &TemplateRef,
    ) -> CloudResult<LaunchTemplate> {
        retry_throttled(|| self.0.describe_launch_template(template)).await
    }
    async fn describe_launch_template_versions(
        &self,
        template: &TemplateRef,
        versions: &[i64],
    ) -> CloudResult<Vec<LaunchTemplateVersion>> {
        retry_throttled(|| self.0.describe_launch_template_versions(template, versions)).await
    }
    async fn create_launch_template_version(
        &self,
        request: &NewTemplateVersion,
    ) -> CloudResult<LaunchTemplateVersion> {
        retry_throttled(|| self.0.create_launch_template_version(request)).await
    }
    async fn describe_launch_templates(&self) -> CloudResult<Vec<LaunchTemplate>> {
        retry_throttled(|| self.0.describe_launch_templates()).await
    }
    async fn delete_launch_template_versions(
        &self,
        template: &TemplateRef,
        versions: &[i64],
    ) -> CloudResult<()> {
        retry_throttled(|| self.0.delete_launch_template_versions(template, versions)).await
    }
    async fn create_tags(&self, resource_ids: &[String], tags: &Tags) -> CloudResult<()> {
        retry_throttled(|| self.0.create_tags(resource_ids, tags)).await
    }
}

#[async_trait]
impl Commands for Patient<dyn Commands> {
    async fn describe_instance_information(
        &self,
        ids: &[InstanceId],
    ) -> CloudResult<Vec<AgentInfo>> {
        retry_throttled(|| self.0.describe_instance_information(ids)).await
    }
    async fn send_command(&self, request: &SendCommand) -> CloudResult<CommandId> {
        retry_throttled(|| self.0.send_command(request)).await
    }
    async fn get_command_invocation(
        &self,
        command: &CommandId,
        instance: &InstanceId,
    ) -> CloudResult<Invocation> {
        retry_throttled(|| self.0.get_command_invocation(command, instance)).await
    }
    async fn list_command_invocations(&self, command: &CommandId) -> CloudResult<Vec<Invocation>> {
        retry_throttled(|| self.0.list_command_invocations(command)).await
    }
    async fn cancel_command(
        &self,
        command: &CommandId,
        instances: &[InstanceId],
    ) -> CloudResult<()> {
        retry_throttled(|| self.0.cancel_command(command, instances)).await
    }
}

#[async_trait]
impl Parameters for Patient<dyn Parameters> {
    async fn get_parameter(&self, name: &str, decrypt: bool) -> CloudResult<Option<Parameter>> {
        retry_throttled(|| self.0.get_parameter(name, decrypt)).await
    }
    async fn get_parameters_by_path(
        &self,
        path: &str,
        decrypt: bool,
    ) -> CloudResult<Vec<Parameter>> {
        retry_throttled(|| self.0.get_parameters_by_path(path, decrypt)).await
    }
    async fn get_parameter_history(
        &self,
        name: &str,
        decrypt: bool,
    ) -> CloudResult<Vec<Parameter>> {
        retry_throttled(|| self.0.get_parameter_history(name, decrypt)).await
    }
    async fn put_parameter(&self, request: &PutParameter) -> CloudResult<i64> {
        retry_throttled(|| self.0.put_parameter(request)).await
    }
    async fn delete_parameter(&self, name: &str) -> CloudResult<()> {
        retry_throttled(|| self.0.delete_parameter(name)).await
    }
}

#[async_trait]
impl Scaling for Patient<dyn Scaling> {
    async fn describe_groups(&self, names: &[String]) -> CloudResult<Vec<Group>> {
        retry_throttled(|| self.0.describe_groups(names)).await
    }
    async fn create_group(&self, request: &CreateGroup) -> CloudResult<()> {
        retry_throttled(|| self.0.create_group(request)).await
    }
    async fn update_group(&self, request: &UpdateGroup) -> CloudResult<()> {
        retry_throttled(|| self.0.update_group(request)).await
    }
    async fn delete_group(&self, name: &str, force: bool) -> CloudResult<()> {
        retry_throttled(|| self.0.delete_group(name, force)).await
    }
    async fn set_desired_capacity(&self, name: &str, desired: i32) -> CloudResult<()> {
        retry_throttled(|| self.0.set_desired_capacity(name, desired)).await
    }
    async fn suspend_processes(&self, name: &str, processes: &[String]) -> CloudResult<()> {
        retry_throttled(|| self.0.suspend_processes(name, processes)).await
    }
    async fn resume_processes(&self, name: &str, processes: &[String]) -> CloudResult<()> {
        retry_throttled(|| self.0.resume_processes(name, processes)).await
    }
    async fn set_instance_protection(
        &self,
        name: &str,
        ids: &[InstanceId],
        protected: bool,
    ) -> CloudResult<()> {
        retry_throttled(|| self.0.set_instance_protection(name, ids, protected)).await
    }
    async fn enter_standby(
        &self,
        name: &str,
        ids: &[InstanceId],
        decrement: bool,
    ) -> CloudResult<()> {
        retry_throttled(|| self.0.enter_standby(name, ids, decrement)).await
    }
    async fn exit_standby(&self, name: &str, ids: &[InstanceId]) -> CloudResult<()> {
        retry_throttled(|| self.0.exit_standby(name, ids)).await
    }
    async fn attach_target_groups(&self, name: &str, arns: &[Arn]) -> CloudResult<()> {
        retry_throttled(|| self.0.attach_target_groups(name, arns)).await
    }
    async fn detach_target_groups(&self, name: &str, arns: &[Arn]) -> CloudResult<()> {
        retry_throttled(|| self.0.detach_target_groups(name, arns)).await
    }
    async fn put_group_tags(&self, name: &str, tags: &Tags) -> CloudResult<()> {
        retry_throttled(|| self.0.put_group_tags(name, tags)).await
    }
    async fn delete_group_tags(&self, name: &str, keys: &[String]) -> CloudResult<()> {
        retry_throttled(|| self.0.delete_group_tags(name, keys)).await
    }
    async fn start_instance_refresh(&self, request: &StartRefresh) -> CloudResult<String> {
        retry_throttled(|| self.0.start_instance_refresh(request)).await
    }
    async fn describe_instance_refreshes(&self, group: &str) -> CloudResult<Vec<InstanceRefresh>> {
        retry_throttled(|| self.0.describe_instance_refreshes(group)).await
    }
    async fn cancel_instance_refresh(&self, group: &str) -> CloudResult<()> {
        retry_throttled(|| self.0.cancel_instance_refresh(group)).await
    }
    async fn rollback_instance_refresh(&self, group: &str) -> CloudResult<()> {
        retry_throttled(|| self.0.rollback_instance_refresh(group)).await
    }
}

#[async_trait]
impl LoadBalancing for Patient<dyn LoadBalancing> {
    async fn describe_load_balancers(&self, names: &[String]) -> CloudResult<Vec<LoadBalancer>> {
        retry_throttled(|| self.0.describe_load_balancers(names)).await
    }
    async fn describe_target_groups(&self, names: &[String]) -> CloudResult<Vec<TargetGroup>> {
        retry_throttled(|| self.0.describe_target_groups(names)).await
    }
    async fn create_target_group(&self, request: &CreateTargetGroup) -> CloudResult<TargetGroup> {
        retry_throttled(|| self.0.create_target_group(request)).await
    }
    async fn delete_target_group(&self, arn: &Arn) -> CloudResult<()> {
        retry_throttled(|| self.0.delete_target_group(arn)).await
    }
    async fn set_deregistration_delay(
        &self,
        arn: &Arn,
        delay: std::time::Duration,
    ) -> CloudResult<()> {
        retry_throttled(|| self.0.set_deregistration_delay(arn, delay)).await
    }
    async fn describe_target_health(&self, arn: &Arn) -> CloudResult<Vec<TargetHealth>> {
        retry_throttled(|| self.0.describe_target_health(arn)).await
    }
    async fn register_targets(&self, arn: &Arn, ids: &[InstanceId]) -> CloudResult<()> {
        retry_throttled(|| self.0.register_targets(arn, ids)).await
    }
    async fn deregister_targets(&self, arn: &Arn, ids: &[InstanceId]) -> CloudResult<()> {
        retry_throttled(|| self.0.deregister_targets(arn, ids)).await
    }
    async fn describe_listeners(&self, load_balancer: &Arn) -> CloudResult<Vec<Listener>> {
        retry_throttled(|| self.0.describe_listeners(load_balancer)).await
    }
    async fn modify_listener_forward(&self, listener: &Arn, forward: &Forward) -> CloudResult<()> {
        retry_throttled(|| self.0.modify_listener_forward(listener, forward)).await
    }
    async fn describe_rules(&self, listener: &Arn) -> CloudResult<Vec<Rule>> {
        retry_throttled(|| self.0.describe_rules(listener)).await
    }
    async fn create_rule(&self, request: &CreateRule) -> CloudResult<Rule> {
        retry_throttled(|| self.0.create_rule(request)).await
    }
    async fn delete_rule(&self, rule: &Arn) -> CloudResult<()> {
        retry_throttled(|| self.0.delete_rule(rule)).await
    }
}

#[async_trait]
impl Metrics for Patient<dyn Metrics> {
    async fn describe_alarms(&self, names: &[String]) -> CloudResult<Vec<Alarm>> {
        retry_throttled(|| self.0.describe_alarms(names)).await
    }
    async fn get_metric_data(&self, queries: &[MetricQuery]) -> CloudResult<Vec<Option<f64>>> {
        retry_throttled(|| self.0.get_metric_data(queries)).await
    }
}
