//! The builder and test instances: their security group, launch, and readiness (running,
//! then the SSM agent online, each with its own deadline: PITFALLS 16).

use kiln_cloud::{
    CreateSecurityGroup, ErrorKind, ImageId, Instance, InstanceFilter, InstanceId, InstanceState,
    Level, PingStatus, RunInstance, SecurityGroupId,
};

use super::Run;
use crate::error::BakeError;
use crate::journal::ResourceKind;
use crate::plan::security_group_name;
use crate::wait::{retry_throttled, wait_until, Poll, WaitError, AGENT_POLL, INSTANCE_POLL};

impl Run<'_> {
    /// A security group with no ingress: SSM needs only outbound HTTPS from the instance.
    pub(super) async fn create_security_group(&mut self) -> Result<SecurityGroupId, BakeError> {
        self.check_cancelled()?;
        let name = security_group_name(self.plan);
        let request = CreateSecurityGroup {
            name: name.clone(),
            description: format!(
                "kiln bake {} of {}: no ingress",
                self.plan.run_id, self.plan.image_name
            ),
            vpc_id: self.plan.builder.vpc_id.clone(),
            tags: self.resource_tags(crate::naming::ROLE_BUILDER),
        };
        let id = retry_throttled(|| self.cloud.compute.create_security_group(&request))
            .await
            .map_err(|e| BakeError::cloud(format!("creating security group {name}"), e))?;
        self.record(ResourceKind::SecurityGroup, id.as_str());
        self.created.security_group = Some(id.clone());
        self.emit(
            Level::Info,
            "builder",
            id.as_str(),
            format!("security group {name} created"),
        );
        Ok(id)
    }

    /// Launches an instance of `role` from `image`; its id is recorded before any wait.
    pub(super) async fn launch(
        &mut self,
        role: &'static str,
        image: &ImageId,
        group: &SecurityGroupId,
    ) -> Result<InstanceId, BakeError> {
        self.check_cancelled()?;
        let builder = &self.plan.builder;
        let request = RunInstance {
            image_id: image.clone(),
            instance_type: builder.instance_type.clone(),
            subnet_id: Some(builder.subnet_id.clone()),
            security_group_ids: vec![group.clone()],
            instance_profile: builder.instance_profile.clone(),
            imdsv2_required: true,
            terminate_on_shutdown: true,
            root_volume: Some(builder.root_volume.clone()),
            user_data: None,
            tags: self.resource_tags(role),
        };
        let instance = retry_throttled(|| self.cloud.compute.run_instance(&request))
            .await
            .map_err(|e| {
                BakeError::cloud(format!("launching the {role} instance from {image}"), e)
            })?;
        self.record(ResourceKind::Instance, instance.id.as_str());
        self.created.instances.push((instance.id.clone(), role));
        let message = format!(
            "{role} instance launched from {image} in {}",
            builder.subnet_id
        );
        self.emit(
            Level::Info,
            self.phase_name(),
            instance.id.as_str(),
            message,
        );
        Ok(instance.id)
    }

    /// Waits for `running`, then for the SSM agent to be Online.
    pub(super) async fn wait_ready(
        &self,
        instance: &InstanceId,
        role: &'static str,
    ) -> Result<(), BakeError> {
        self.wait_running(instance, role).await?;
        self.wait_agent_online(instance, role).await?;
        let message = format!("{role} instance running, SSM agent online");
        self.emit(Level::Info, self.phase_name(), instance.as_str(), message);
        Ok(())
    }

    async fn wait_running(
        &self,
        instance: &InstanceId,
        role: &'static str,
    ) -> Result<(), BakeError> {
        let budget = self.plan.timeouts.boot;
        // The last state seen, for the timeout's message.
        let last_state = std::sync::Mutex::new("not yet listed".to_string());
        let result = wait_until(budget, INSTANCE_POLL, self.cancel, || async {
            let Some(found) = self.read_instance(instance).await? else {
                return Ok(Poll::Pending);
            };
            let state = state_text(&found);
            match found.state {
                InstanceState::Running => Ok(Poll::Ready(())),
                InstanceState::Pending => {
                    *last_state.lock().expect("state lock") = state;
                    Ok(Poll::Pending)
                }
                // Stopped, stopping or ending: no boot timeout would help.
                _ => Err(BakeError::InstanceEnded {
                    role: role.to_string(),
                    instance: instance.clone(),
                    region: self.cloud.region.clone(),
                    state,
                }),
            }
        })
        .await;
        let last_state = last_state.into_inner().expect("state lock");
        self.finish_wait(result, |run| {
            run.not_running(instance, role, last_state, budget)
        })
    }

    /// The instance; `None` while EC2 does not list it yet or a read failed transiently.
    async fn read_instance(&self, instance: &InstanceId) -> Result<Option<Instance>, BakeError> {
        let filter = InstanceFilter {
            ids: vec![instance.clone()],
            ..InstanceFilter::default()
        };
        match self.cloud.compute.describe_instances(&filter).await {
            Ok(found) => Ok(found.into_iter().find(|i| &i.id == instance)),
            Err(e) if e.is(ErrorKind::NotFound) || e.is_transient() => {
                tracing::debug!(%instance, error = %e, "instance not readable yet");
                Ok(None)
            }
            Err(e) => Err(BakeError::cloud(
                format!("describing instance {instance}"),
                e,
            )),
        }
    }

    fn not_running(
        &self,
        instance: &InstanceId,
        role: &str,
        state: String,
        waited: std::time::Duration,
    ) -> BakeError {
        BakeError::InstanceNotRunning {
            role: role.to_string(),
            instance: instance.clone(),
            region: self.cloud.region.clone(),
            state,
            waited,
        }
    }

    /// Waits until DescribeInstanceInformation reports the agent Online.
    pub(super) async fn wait_agent_online(
        &self,
        instance: &InstanceId,
        role: &'static str,
    ) -> Result<(), BakeError> {
        let budget = self.plan.timeouts.agent_online;
        let ids = [instance.clone()];
        let result = wait_until(budget, AGENT_POLL, self.cancel, || async {
            match self
                .cloud
                .commands
                .describe_instance_information(&ids)
                .await
            {
                Ok(agents) => Ok(
                    if agents
                        .iter()
                        .any(|a| &a.instance_id == instance && a.ping_status == PingStatus::Online)
                    {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    },
                ),
                Err(e) if e.is_transient() || e.is(ErrorKind::InvalidInstance) => Ok(Poll::Pending),
                Err(e) => Err(BakeError::cloud(
                    format!("reading the SSM agent status of {instance}"),
                    e,
                )),
            }
        })
        .await;
        self.finish_wait(result, |run| run.agent_not_online(instance, role, budget))
    }

    pub(super) fn agent_not_online(
        &self,
        instance: &InstanceId,
        role: &str,
        waited: std::time::Duration,
    ) -> BakeError {
        BakeError::AgentNotOnline {
            role: role.to_string(),
            instance: instance.clone(),
            region: self.cloud.region.clone(),
            waited,
        }
    }

    /// Turns a wait's end into the bake's result: the value, the poll's own error, the
    /// timeout error `on_timeout` builds, or cancellation.
    pub(super) fn finish_wait<T>(
        &self,
        result: Result<T, WaitError<BakeError>>,
        on_timeout: impl FnOnce(&Self) -> BakeError,
    ) -> Result<T, BakeError> {
        match result {
            Ok(value) => Ok(value),
            Err(WaitError::Failed(error)) => Err(error),
            Err(WaitError::TimedOut) => Err(on_timeout(self)),
            Err(WaitError::Cancelled) => Err(self.cancelled()),
        }
    }
}

/// `terminated (Server.InternalError: ...)`: the state and EC2's reason for it.
fn state_text(instance: &Instance) -> String {
    let state = format!("{:?}", instance.state).to_lowercase();
    match &instance.state_reason {
        Some(reason) => format!("{state} ({reason})"),
        None => state,
    }
}
