//! [`Scaling`] on Auto Scaling: groups, their processes, instances and tags, and
//! instance refreshes.

use async_trait::async_trait;
use aws_sdk_autoscaling::types as asg;
use aws_sdk_autoscaling::Client;

use super::autoscaling_convert as conv;
use super::convert::seconds_i32;
use super::error::{from_sdk, invalid, missing, Call};
use crate::error::CloudResult;
use crate::ports::Scaling;
use crate::types::*;

/// Auto Scaling of one region.
#[derive(Debug, Clone)]
pub struct AutoScaling {
    client: Client,
    region: String,
}

impl AutoScaling {
    pub(crate) fn new(client: Client, region: impl Into<String>) -> Self {
        Self {
            client,
            region: region.into(),
        }
    }

    fn call(&self, operation: &'static str, resource: impl ToString) -> Call<'_> {
        Call::new(&self.region, operation, resource)
    }
}

fn strings<T: ToString>(items: &[T]) -> Option<Vec<String>> {
    Some(items.iter().map(ToString::to_string).collect())
}

#[async_trait]
impl Scaling for AutoScaling {
    async fn describe_groups(&self, names: &[String]) -> CloudResult<Vec<Group>> {
        let groups = self
            .client
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names((!names.is_empty()).then(|| names.to_vec()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeAutoScalingGroups", names.join(",")), e))?;
        Ok(groups.iter().map(conv::group).collect())
    }

    async fn create_group(&self, r: &CreateGroup) -> CloudResult<()> {
        self.client
            .create_auto_scaling_group()
            .auto_scaling_group_name(&r.name)
            .launch_template(conv::template_spec(&r.template))
            .min_size(r.min_size)
            .max_size(r.max_size)
            .desired_capacity(r.desired_capacity)
            .vpc_zone_identifier(
                r.subnet_ids
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .set_target_group_arns((!r.target_group_arns.is_empty()).then(|| {
                r.target_group_arns
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            }))
            .health_check_type(&r.health_check_type)
            .health_check_grace_period(seconds_i32(r.health_check_grace))
            .set_default_instance_warmup(r.default_instance_warmup.map(seconds_i32))
            // A new group's tags (run id, role) belong on the instances it launches too.
            .set_tags(Some(conv::group_tags(&r.name, &r.tags, true)))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("CreateAutoScalingGroup", &r.name), e))?;
        Ok(())
    }

    async fn update_group(&self, r: &UpdateGroup) -> CloudResult<()> {
        self.client
            .update_auto_scaling_group()
            .auto_scaling_group_name(&r.name)
            .set_launch_template(r.template.as_ref().map(conv::template_spec))
            .set_min_size(r.min_size)
            .set_max_size(r.max_size)
            .set_desired_capacity(r.desired_capacity)
            .set_health_check_type(r.health_check_type.clone())
            .set_health_check_grace_period(r.health_check_grace.map(seconds_i32))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("UpdateAutoScalingGroup", &r.name), e))?;
        Ok(())
    }

    async fn delete_group(&self, name: &str, force: bool) -> CloudResult<()> {
        self.client
            .delete_auto_scaling_group()
            .auto_scaling_group_name(name)
            .force_delete(force)
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DeleteAutoScalingGroup", name), e))?;
        Ok(())
    }

    async fn set_desired_capacity(&self, name: &str, desired: i32) -> CloudResult<()> {
        self.client
            .set_desired_capacity()
            .auto_scaling_group_name(name)
            .desired_capacity(desired)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| from_sdk(self.call("SetDesiredCapacity", name), e))?;
        Ok(())
    }

    async fn suspend_processes(&self, name: &str, processes: &[String]) -> CloudResult<()> {
        // An empty list would suspend every process of the group: never what was meant.
        if processes.is_empty() {
            return Ok(());
        }
        self.client
            .suspend_processes()
            .auto_scaling_group_name(name)
            .set_scaling_processes(Some(processes.to_vec()))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("SuspendProcesses", name), e))?;
        Ok(())
    }

    async fn resume_processes(&self, name: &str, processes: &[String]) -> CloudResult<()> {
        // An empty list would resume every process, also those someone else suspended.
        if processes.is_empty() {
            return Ok(());
        }
        self.client
            .resume_processes()
            .auto_scaling_group_name(name)
            .set_scaling_processes(Some(processes.to_vec()))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("ResumeProcesses", name), e))?;
        Ok(())
    }

    async fn set_instance_protection(
        &self,
        name: &str,
        ids: &[InstanceId],
        protected: bool,
    ) -> CloudResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .set_instance_protection()
            .auto_scaling_group_name(name)
            .set_instance_ids(strings(ids))
            .protected_from_scale_in(protected)
            .send()
            .await
            .map_err(|e| from_sdk(self.call("SetInstanceProtection", name), e))?;
        Ok(())
    }

    async fn enter_standby(
        &self,
        name: &str,
        ids: &[InstanceId],
        decrement: bool,
    ) -> CloudResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .enter_standby()
            .auto_scaling_group_name(name)
            .set_instance_ids(strings(ids))
            .should_decrement_desired_capacity(decrement)
            .send()
            .await
            .map_err(|e| from_sdk(self.call("EnterStandby", name), e))?;
        Ok(())
    }

    async fn exit_standby(&self, name: &str, ids: &[InstanceId]) -> CloudResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .exit_standby()
            .auto_scaling_group_name(name)
            .set_instance_ids(strings(ids))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("ExitStandby", name), e))?;
        Ok(())
    }

    async fn attach_target_groups(&self, name: &str, arns: &[Arn]) -> CloudResult<()> {
        self.client
            .attach_load_balancer_target_groups()
            .auto_scaling_group_name(name)
            .set_target_group_arns(strings(arns))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("AttachLoadBalancerTargetGroups", name), e))?;
        Ok(())
    }

    async fn detach_target_groups(&self, name: &str, arns: &[Arn]) -> CloudResult<()> {
        self.client
            .detach_load_balancer_target_groups()
            .auto_scaling_group_name(name)
            .set_target_group_arns(strings(arns))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DetachLoadBalancerTargetGroups", name), e))?;
        Ok(())
    }

    async fn put_group_tags(&self, name: &str, tags: &Tags) -> CloudResult<()> {
        if tags.is_empty() {
            return Ok(());
        }
        // kiln's own marks on a group (its lock) are not the instances' business.
        self.client
            .create_or_update_tags()
            .set_tags(Some(conv::group_tags(name, tags, false)))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("CreateOrUpdateTags", name), e))?;
        Ok(())
    }

    async fn delete_group_tags(&self, name: &str, keys: &[String]) -> CloudResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let tags = keys
            .iter()
            .map(|k| {
                asg::Tag::builder()
                    .resource_id(name)
                    .resource_type("auto-scaling-group")
                    .key(k)
                    .build()
            })
            .collect();
        self.client
            .delete_tags()
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DeleteTags", name), e))?;
        Ok(())
    }

    async fn start_instance_refresh(&self, r: &StartRefresh) -> CloudResult<String> {
        let call = || self.call("StartInstanceRefresh", &r.group);
        if r.preferences.auto_rollback && r.desired.is_none() {
            return Err(invalid(
                call(),
                "auto rollback needs a desired configuration (the numbered launch template \
                 version to install); name one, or turn auto rollback off",
            ));
        }
        let desired = r.desired.as_ref().map(|t| {
            asg::DesiredConfiguration::builder()
                .launch_template(conv::template_spec(t))
                .build()
        });
        let out = self
            .client
            .start_instance_refresh()
            .auto_scaling_group_name(&r.group)
            .strategy(asg::RefreshStrategy::Rolling)
            .set_desired_configuration(desired)
            .preferences(conv::preferences(&r.preferences, r.desired.is_some()))
            .send()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        out.instance_refresh_id()
            .map(String::from)
            .ok_or_else(|| missing(call(), "InstanceRefreshId"))
    }

    async fn describe_instance_refreshes(&self, group: &str) -> CloudResult<Vec<InstanceRefresh>> {
        let found = self
            .client
            .describe_instance_refreshes()
            .auto_scaling_group_name(group)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeInstanceRefreshes", group), e))?;
        let mut refreshes: Vec<_> = found
            .iter()
            .flat_map(|page| page.instance_refreshes())
            .map(conv::refresh)
            .collect();
        // AWS lists newest first; a stable sort keeps that even if the pages disagree.
        refreshes.sort_by_key(|r| std::cmp::Reverse(r.start_time));
        Ok(refreshes)
    }

    async fn cancel_instance_refresh(&self, group: &str) -> CloudResult<()> {
        self.client
            .cancel_instance_refresh()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| from_sdk(self.call("CancelInstanceRefresh", group), e))?;
        Ok(())
    }

    async fn rollback_instance_refresh(&self, group: &str) -> CloudResult<()> {
        self.client
            .rollback_instance_refresh()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| from_sdk(self.call("RollbackInstanceRefresh", group), e))?;
        Ok(())
    }
}
