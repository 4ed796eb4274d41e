//! The ports of one region of the simulated account: each call is throttled (or not) as
//! the faults say, with the SDK's standard retry on virtual time, then advances the model
//! to now, acts, and saves the state.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};

use crate::error::{CloudError, CloudResult, ErrorKind};
use crate::ports::*;
use crate::types::*;

use super::model::State;
use super::world::World;
use super::{compute, elb, metrics, refresh, scaling, ssm, templates, Inner};

/// The SDK's standard retry mode makes 3 attempts in all.
const SDK_ATTEMPTS: usize = 3;
/// First backoff of the standard retry mode (it then doubles).
const SDK_FIRST_BACKOFF: Duration = Duration::from_millis(500);

pub struct SimRegion {
    inner: Arc<Inner>,
    region: String,
}

pub fn cloud(inner: Arc<Inner>, region: &str) -> Cloud {
    let port = Arc::new(SimRegion {
        inner,
        region: region.to_string(),
    });
    Cloud {
        region: region.to_string(),
        compute: port.clone(),
        commands: port.clone(),
        parameters: port.clone(),
        scaling: port.clone(),
        load_balancing: port.clone(),
        metrics: port.clone(),
        clock: port,
    }
}

impl SimRegion {
    /// One API call: throttling (with the client's retries), then `act` on the state.
    async fn call<T>(
        &self,
        op: &'static str,
        act: impl FnOnce(&mut World) -> CloudResult<T>,
    ) -> CloudResult<T> {
        self.with_state(op, |state, region| {
            let mut w = state.world(region).expect("regions are never removed");
            act(&mut w)
        })
        .await
    }

    async fn with_state<T>(
        &self,
        op: &'static str,
        act: impl FnOnce(&mut State, &str) -> CloudResult<T>,
    ) -> CloudResult<T> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(SDK_FIRST_BACKOFF)
            .with_max_times(SDK_ATTEMPTS - 1);
        (|| async { self.throttle(op) })
            .retry(backoff)
            .when(|e: &CloudError| e.kind == ErrorKind::Throttled)
            .await?;
        let mut live = self.inner.lock();
        self.inner.advance(&mut live);
        let out = act(&mut live.state, &self.region);
        if let Err(e) = self.inner.save(&live.state) {
            tracing::error!(error = %e, "simulated account state not saved");
            let msg = e.to_string();
            return Err(CloudError::new(
                ErrorKind::Other,
                op,
                "state file",
                &self.region,
                "SimStateNotSaved",
                msg,
            ));
        }
        out
    }

    /// One attempt: rejected when a throttle fault says so (each rejection is counted).
    fn throttle(&self, op: &'static str) -> CloudResult<()> {
        let mut live = self.inner.lock();
        self.inner.advance(&mut live);
        if live.state.faults.denied_regions.contains(&self.region) {
            let msg = "explicit deny in a service control policy (simulated fault)";
            return Err(CloudError::new(
                ErrorKind::AccessDenied,
                op,
                op,
                &self.region,
                "UnauthorizedOperation",
                msg,
            ));
        }
        let now = live.state.meta.now;
        if !live.state.faults.throttle_now(op, now) {
            return Ok(());
        }
        let _ = self.inner.save(&live.state);
        let msg = "Rate exceeded (simulated throttling fault)";
        Err(CloudError::new(
            ErrorKind::Throttled,
            op,
            op,
            &self.region,
            "ThrottlingException",
            msg,
        ))
    }
}

impl Clock for SimRegion {
    fn now(&self) -> Timestamp {
        self.inner.now()
    }
}

#[async_trait]
impl Compute for SimRegion {
    async fn describe_images(&self, filter: &ImageFilter) -> CloudResult<Vec<Image>> {
        self.call("DescribeImages", |w| compute::describe_images(w, filter))
            .await
    }
    async fn create_image(&self, request: &CreateImage) -> CloudResult<ImageId> {
        self.call("CreateImage", |w| compute::create_image(w, request))
            .await
    }
    async fn copy_image(&self, request: &CopyImage) -> CloudResult<ImageId> {
        self.with_state("CopyImage", |s, region| {
            compute::copy_image(s, region, request)
        })
        .await
    }
    async fn deregister_image(&self, image: &ImageId) -> CloudResult<()> {
        self.call("DeregisterImage", |w| compute::deregister_image(w, image))
            .await
    }
    async fn enable_image_deprecation(&self, image: &ImageId, at: Timestamp) -> CloudResult<()> {
        self.call("EnableImageDeprecation", |w| {
            compute::enable_deprecation(w, image, at)
        })
        .await
    }
    async fn add_launch_permissions(
        &self,
        image: &ImageId,
        permissions: &LaunchPermissions,
    ) -> CloudResult<()> {
        let op = "ModifyImageAttribute";
        self.call(op, |w| {
            compute::add_launch_permissions(w, image, permissions)
        })
        .await
    }
    async fn describe_snapshots(
        &self,
        ids: &[SnapshotId],
        tags: &Tags,
    ) -> CloudResult<Vec<Snapshot>> {
        self.call("DescribeSnapshots", |w| {
            compute::describe_snapshots(w, ids, tags)
        })
        .await
    }
    async fn delete_snapshot(&self, snapshot: &SnapshotId) -> CloudResult<()> {
        self.call("DeleteSnapshot", |w| compute::delete_snapshot(w, snapshot))
            .await
    }
    async fn run_instance(&self, request: &RunInstance) -> CloudResult<Instance> {
        self.call("RunInstances", |w| compute::run_instance(w, request))
            .await
    }
    async fn describe_instances(&self, filter: &InstanceFilter) -> CloudResult<Vec<Instance>> {
        self.call("DescribeInstances", |w| {
            compute::describe_instances(w, filter)
        })
        .await
    }
    async fn terminate_instances(&self, ids: &[InstanceId]) -> CloudResult<()> {
        self.call("TerminateInstances", |w| {
            compute::terminate_instances(w, ids)
        })
        .await
    }
    async fn describe_subnets(&self, ids: &[SubnetId], tags: &Tags) -> CloudResult<Vec<Subnet>> {
        self.call("DescribeSubnets", |w| {
            compute::describe_subnets(w, ids, tags)
        })
        .await
    }
    async fn describe_security_groups(
        &self,
        ids: &[SecurityGroupId],
        tags: &Tags,
    ) -> CloudResult<Vec<SecurityGroup>> {
        let op = "DescribeSecurityGroups";
        self.call(op, |w| compute::describe_security_groups(w, ids, tags))
            .await
    }
    async fn create_security_group(
        &self,
        request: &CreateSecurityGroup,
    ) -> CloudResult<SecurityGroupId> {
        self.call("CreateSecurityGroup", |w| {
            compute::create_security_group(w, request)
        })
        .await
    }
    async fn delete_security_group(&self, id: &SecurityGroupId) -> CloudResult<()> {
        self.call("DeleteSecurityGroup", |w| {
            compute::delete_security_group(w, id)
        })
        .await
    }
    async fn describe_launch_template(
        &self,
        template: &TemplateRef,
    ) -> CloudResult<LaunchTemplate> {
        self.call("DescribeLaunchTemplates", |w| {
            templates::describe(w, template)
        })
        .await
    }
    async fn describe_launch_template_versions(
        &self,
        template: &TemplateRef,
        versions: &[i64],
    ) -> CloudResult<Vec<LaunchTemplateVersion>> {
        let op = "DescribeLaunchTemplateVersions";
        self.call(op, |w| templates::describe_versions(w, template, versions))
            .await
    }
    async fn create_launch_template_version(
        &self,
        request: &NewTemplateVersion,
    ) -> CloudResult<LaunchTemplateVersion> {
        let op = "CreateLaunchTemplateVersion";
        self.call(op, |w| templates::create_version(w, request))
            .await
    }
    async fn describe_launch_templates(&self) -> CloudResult<Vec<LaunchTemplate>> {
        self.call("DescribeLaunchTemplates", templates::describe_all)
            .await
    }
    async fn delete_launch_template_versions(
        &self,
        template: &TemplateRef,
        versions: &[i64],
    ) -> CloudResult<()> {
        self.call("DeleteLaunchTemplateVersions", |w| {
            templates::delete_versions(w, template, versions)
        })
        .await
    }
    async fn create_tags(&self, resource_ids: &[String], tags: &Tags) -> CloudResult<()> {
        self.call("CreateTags", |w| {
            compute::create_tags(w, resource_ids, tags)
        })
        .await
    }
}

#[async_trait]
impl Commands for SimRegion {
    async fn describe_instance_information(
        &self,
        ids: &[InstanceId],
    ) -> CloudResult<Vec<AgentInfo>> {
        let op = "DescribeInstanceInformation";
        self.call(op, |w| ssm::describe_instance_information(w, ids))
            .await
    }
    async fn send_command(&self, request: &SendCommand) -> CloudResult<CommandId> {
        let checked = ssm::check_syntax(&request.commands);
        self.call("SendCommand", |w| ssm::send_command(w, request, &checked))
            .await
    }
    async fn get_command_invocation(
        &self,
        command: &CommandId,
        instance: &InstanceId,
    ) -> CloudResult<Invocation> {
        let op = "GetCommandInvocation";
        self.call(op, |w| ssm::get_invocation(w, command, instance))
            .await
    }
    async fn list_command_invocations(&self, command: &CommandId) -> CloudResult<Vec<Invocation>> {
        self.call("ListCommandInvocations", |w| {
            ssm::list_invocations(w, command)
        })
        .await
    }
    async fn cancel_command(
        &self,
        command: &CommandId,
        instances: &[InstanceId],
    ) -> CloudResult<()> {
        self.call("CancelCommand", |w| ssm::cancel(w, command, instances))
            .await
    }
}

#[async_trait]
impl Parameters for SimRegion {
    async fn get_parameter(&self, name: &str, decrypt: bool) -> CloudResult<Option<Parameter>> {
        self.call("GetParameter", |w| ssm::get_parameter(w, name, decrypt))
            .await
    }
    async fn get_parameters_by_path(
        &self,
        path: &str,
        decrypt: bool,
    ) -> CloudResult<Vec<Parameter>> {
        self.call("GetParametersByPath", |w| {
            ssm::get_by_path(w, path, decrypt)
        })
        .await
    }
    async fn get_parameter_history(
        &self,
        name: &str,
        decrypt: bool,
    ) -> CloudResult<Vec<Parameter>> {
        self.call("GetParameterHistory", |w| ssm::history(w, name, decrypt))
            .await
    }
    async fn put_parameter(&self, request: &PutParameter) -> CloudResult<i64> {
        self.call("PutParameter", |w| ssm::put_parameter(w, request))
            .await
    }
    async fn delete_parameter(&self, name: &str) -> CloudResult<()> {
        self.call("DeleteParameter", |w| ssm::delete_parameter(w, name))
            .await
    }
}

#[async_trait]
impl Scaling for SimRegion {
    async fn describe_groups(&self, names: &[String]) -> CloudResult<Vec<Group>> {
        self.call("DescribeAutoScalingGroups", |w| scaling::describe(w, names))
            .await
    }
    async fn create_group(&self, request: &CreateGroup) -> CloudResult<()> {
        self.call("CreateAutoScalingGroup", |w| scaling::create(w, request))
            .await
    }
    async fn update_group(&self, request: &UpdateGroup) -> CloudResult<()> {
        self.call("UpdateAutoScalingGroup", |w| scaling::update(w, request))
            .await
    }
    async fn delete_group(&self, name: &str, force: bool) -> CloudResult<()> {
        self.call("DeleteAutoScalingGroup", |w| {
            scaling::delete(w, name, force)
        })
        .await
    }
    async fn set_desired_capacity(&self, name: &str, desired: i32) -> CloudResult<()> {
        self.call("SetDesiredCapacity", |w| {
            scaling::set_desired(w, name, desired)
        })
        .await
    }
    async fn suspend_processes(&self, name: &str, processes: &[String]) -> CloudResult<()> {
        self.call("SuspendProcesses", |w| {
            scaling::suspend(w, name, processes, true)
        })
        .await
    }
    async fn resume_processes(&self, name: &str, processes: &[String]) -> CloudResult<()> {
        self.call("ResumeProcesses", |w| {
            scaling::suspend(w, name, processes, false)
        })
        .await
    }
    async fn set_instance_protection(
        &self,
        name: &str,
        ids: &[InstanceId],
        protected: bool,
    ) -> CloudResult<()> {
        self.call("SetInstanceProtection", |w| {
            scaling::protect(w, name, ids, protected)
        })
        .await
    }
    async fn enter_standby(
        &self,
        name: &str,
        ids: &[InstanceId],
        decrement: bool,
    ) -> CloudResult<()> {
        self.call("EnterStandby", |w| {
            scaling::enter_standby(w, name, ids, decrement)
        })
        .await
    }
    async fn exit_standby(&self, name: &str, ids: &[InstanceId]) -> CloudResult<()> {
        self.call("ExitStandby", |w| scaling::exit_standby(w, name, ids))
            .await
    }
    async fn attach_target_groups(&self, name: &str, arns: &[Arn]) -> CloudResult<()> {
        let op = "AttachLoadBalancerTargetGroups";
        self.call(op, |w| scaling::attach_target_groups(w, name, arns, true))
            .await
    }
    async fn detach_target_groups(&self, name: &str, arns: &[Arn]) -> CloudResult<()> {
        let op = "DetachLoadBalancerTargetGroups";
        self.call(op, |w| scaling::attach_target_groups(w, name, arns, false))
            .await
    }
    async fn put_group_tags(&self, name: &str, tags: &Tags) -> CloudResult<()> {
        self.call("CreateOrUpdateTags", |w| scaling::put_tags(w, name, tags))
            .await
    }
    async fn delete_group_tags(&self, name: &str, keys: &[String]) -> CloudResult<()> {
        self.call("DeleteTags", |w| scaling::delete_tags(w, name, keys))
            .await
    }
    async fn start_instance_refresh(&self, request: &StartRefresh) -> CloudResult<String> {
        self.call("StartInstanceRefresh", |w| refresh::start(w, request))
            .await
    }
    async fn describe_instance_refreshes(&self, group: &str) -> CloudResult<Vec<InstanceRefresh>> {
        self.call("DescribeInstanceRefreshes", |w| refresh::describe(w, group))
            .await
    }
    async fn cancel_instance_refresh(&self, group: &str) -> CloudResult<()> {
        self.call("CancelInstanceRefresh", |w| refresh::cancel(w, group))
            .await
    }
    async fn rollback_instance_refresh(&self, group: &str) -> CloudResult<()> {
        self.call("RollbackInstanceRefresh", |w| refresh::rollback(w, group))
            .await
    }
}

#[async_trait]
impl LoadBalancing for SimRegion {
    async fn describe_load_balancers(&self, names: &[String]) -> CloudResult<Vec<LoadBalancer>> {
        self.call("DescribeLoadBalancers", |w| {
            elb::describe_load_balancers(w, names)
        })
        .await
    }
    async fn describe_target_groups(&self, names: &[String]) -> CloudResult<Vec<TargetGroup>> {
        self.call("DescribeTargetGroups", |w| {
            elb::describe_target_groups(w, names)
        })
        .await
    }
    async fn create_target_group(&self, request: &CreateTargetGroup) -> CloudResult<TargetGroup> {
        self.call("CreateTargetGroup", |w| {
            elb::create_target_group(w, request)
        })
        .await
    }
    async fn delete_target_group(&self, arn: &Arn) -> CloudResult<()> {
        self.call("DeleteTargetGroup", |w| elb::delete_target_group(w, arn))
            .await
    }
    async fn set_deregistration_delay(&self, arn: &Arn, delay: Duration) -> CloudResult<()> {
        let op = "ModifyTargetGroupAttributes";
        self.call(op, |w| elb::set_deregistration_delay(w, arn, delay))
            .await
    }
    async fn describe_target_health(&self, arn: &Arn) -> CloudResult<Vec<TargetHealth>> {
        self.call("DescribeTargetHealth", |w| {
            elb::describe_target_health(w, arn)
        })
        .await
    }
    async fn register_targets(&self, arn: &Arn, ids: &[InstanceId]) -> CloudResult<()> {
        self.call("RegisterTargets", |w| elb::register_targets(w, arn, ids))
            .await
    }
    async fn deregister_targets(&self, arn: &Arn, ids: &[InstanceId]) -> CloudResult<()> {
        self.call("DeregisterTargets", |w| {
            elb::deregister_targets(w, arn, ids)
        })
        .await
    }
    async fn describe_listeners(&self, load_balancer: &Arn) -> CloudResult<Vec<Listener>> {
        self.call("DescribeListeners", |w| {
            elb::describe_listeners(w, load_balancer)
        })
        .await
    }
    async fn modify_listener_forward(&self, listener: &Arn, forward: &Forward) -> CloudResult<()> {
        self.call("ModifyListener", |w| {
            elb::modify_listener_forward(w, listener, forward)
        })
        .await
    }
    async fn describe_rules(&self, listener: &Arn) -> CloudResult<Vec<Rule>> {
        self.call("DescribeRules", |w| elb::describe_rules(w, listener))
            .await
    }
    async fn create_rule(&self, request: &CreateRule) -> CloudResult<Rule> {
        self.call("CreateRule", |w| elb::create_rule(w, request))
            .await
    }
    async fn delete_rule(&self, rule: &Arn) -> CloudResult<()> {
        self.call("DeleteRule", |w| elb::delete_rule(w, rule)).await
    }
}

#[async_trait]
impl Metrics for SimRegion {
    async fn describe_alarms(&self, names: &[String]) -> CloudResult<Vec<Alarm>> {
        self.call("DescribeAlarms", |w| metrics::describe_alarms(w, names))
            .await
    }
    async fn get_metric_data(&self, queries: &[MetricQuery]) -> CloudResult<Vec<Option<f64>>> {
        self.call("GetMetricData", |w| metrics::get_metric_data(w, queries))
            .await
    }
}
