//! [`LoadBalancing`] on Elastic Load Balancing v2: load balancers, target groups and
//! their health, listeners and listener rules.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types as elb;
use aws_sdk_elasticloadbalancingv2::Client;

use super::convert::seconds_i32;
use super::elb_convert as conv;
use super::error::{from_sdk, missing, Call};
use crate::error::CloudResult;
use crate::ports::LoadBalancing;
use crate::types::*;

/// DescribeTags takes at most this many resource ARNs per call.
const MAX_ARNS_PER_DESCRIBE_TAGS: usize = 20;

/// Elastic Load Balancing v2 of one region.
#[derive(Debug, Clone)]
pub struct LoadBalancers {
    client: Client,
    region: String,
}

impl LoadBalancers {
    pub(crate) fn new(client: Client, region: impl Into<String>) -> Self {
        Self {
            client,
            region: region.into(),
        }
    }

    fn call(&self, operation: &'static str, resource: impl ToString) -> Call<'_> {
        Call::new(&self.region, operation, resource)
    }

    async fn attributes(&self, arn: &str) -> CloudResult<conv::GroupAttributes> {
        let out = self
            .client
            .describe_target_group_attributes()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DescribeTargetGroupAttributes", arn), e))?;
        Ok(conv::group_attributes(out.attributes()))
    }

    /// Tags of many resources, by ARN.
    async fn tags_of(&self, arns: &[String]) -> CloudResult<HashMap<String, Tags>> {
        let mut found = HashMap::new();
        for chunk in arns.chunks(MAX_ARNS_PER_DESCRIBE_TAGS) {
            let out = self
                .client
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| from_sdk(self.call("DescribeTags", chunk.join(",")), e))?;
            for d in out.tag_descriptions() {
                let arn = d.resource_arn().unwrap_or_default().to_string();
                found.insert(arn, conv::tags(d.tags()));
            }
        }
        Ok(found)
    }

    fn targets(ids: &[InstanceId]) -> Option<Vec<elb::TargetDescription>> {
        Some(
            ids.iter()
                .map(|id| elb::TargetDescription::builder().id(id.as_str()).build())
                .collect(),
        )
    }
}

fn with_names(names: &[String]) -> Option<Vec<String>> {
    (!names.is_empty()).then(|| names.to_vec())
}

#[async_trait]
impl LoadBalancing for LoadBalancers {
    async fn describe_load_balancers(&self, names: &[String]) -> CloudResult<Vec<LoadBalancer>> {
        let found = self
            .client
            .describe_load_balancers()
            .set_names(with_names(names))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeLoadBalancers", names.join(",")), e))?;
        Ok(found.iter().map(conv::load_balancer).collect())
    }

    async fn describe_target_groups(&self, names: &[String]) -> CloudResult<Vec<TargetGroup>> {
        let found = self
            .client
            .describe_target_groups()
            .set_names(with_names(names))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeTargetGroups", names.join(",")), e))?;
        let mut groups = Vec::with_capacity(found.len());
        for tg in &found {
            let attributes = self
                .attributes(tg.target_group_arn().unwrap_or_default())
                .await?;
            groups.push(conv::target_group(tg, attributes));
        }
        let arns: Vec<String> = groups.iter().map(|g| g.arn.to_string()).collect();
        let mut tags = self.tags_of(&arns).await?;
        for g in &mut groups {
            g.tags = tags.remove(g.arn.as_str()).unwrap_or_default();
        }
        Ok(groups)
    }

    async fn create_target_group(&self, r: &CreateTargetGroup) -> CloudResult<TargetGroup> {
        let call = || self.call("CreateTargetGroup", &r.name);
        let hc = &r.health_check;
        let out = self
            .client
            .create_target_group()
            .name(&r.name)
            .protocol(elb::ProtocolEnum::from(r.protocol.as_str()))
            .port(r.port)
            .vpc_id(&r.vpc_id)
            .target_type(elb::TargetTypeEnum::Instance)
            .health_check_enabled(true)
            .health_check_path(&hc.path)
            .health_check_port(&hc.port)
            .health_check_protocol(elb::ProtocolEnum::from(hc.protocol.as_str()))
            .health_check_interval_seconds(seconds_i32(hc.interval))
            .health_check_timeout_seconds(seconds_i32(hc.timeout))
            .healthy_threshold_count(hc.healthy_threshold)
            .unhealthy_threshold_count(hc.unhealthy_threshold)
            .matcher(elb::Matcher::builder().http_code(&hc.matcher).build())
            .set_tags(conv::elb_tags(&r.tags))
            .send()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        let created = out
            .target_groups()
            .first()
            .ok_or_else(|| missing(call(), "TargetGroups"))?;
        let arn = Arn::new(created.target_group_arn().unwrap_or_default());
        self.set_deregistration_delay(&arn, r.deregistration_delay)
            .await?;
        let attributes = conv::GroupAttributes {
            deregistration_delay: r.deregistration_delay,
            stickiness_enabled: false,
        };
        let mut group = conv::target_group(created, attributes);
        group.tags = r.tags.clone();
        Ok(group)
    }

    async fn delete_target_group(&self, arn: &Arn) -> CloudResult<()> {
        self.client
            .delete_target_group()
            .target_group_arn(arn.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DeleteTargetGroup", arn), e))?;
        Ok(())
    }

    async fn set_deregistration_delay(&self, arn: &Arn, delay: Duration) -> CloudResult<()> {
        let attribute = elb::TargetGroupAttribute::builder()
            .key(conv::DEREGISTRATION_DELAY)
            .value(delay.as_secs().to_string())
            .build();
        self.client
            .modify_target_group_attributes()
            .target_group_arn(arn.as_str())
            .attributes(attribute)
            .send()
            .await
            .map_err(|e| from_sdk(self.call("ModifyTargetGroupAttributes", arn), e))?;
        Ok(())
    }

    async fn describe_target_health(&self, arn: &Arn) -> CloudResult<Vec<TargetHealth>> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(arn.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DescribeTargetHealth", arn), e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .map(conv::target_health)
            .collect())
    }

    async fn register_targets(&self, arn: &Arn, ids: &[InstanceId]) -> CloudResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .register_targets()
            .target_group_arn(arn.as_str())
            .set_targets(Self::targets(ids))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("RegisterTargets", arn), e))?;
        Ok(())
    }

    async fn deregister_targets(&self, arn: &Arn, ids: &[InstanceId]) -> CloudResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .deregister_targets()
            .target_group_arn(arn.as_str())
            .set_targets(Self::targets(ids))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DeregisterTargets", arn), e))?;
        Ok(())
    }

    async fn describe_listeners(&self, load_balancer: &Arn) -> CloudResult<Vec<Listener>> {
        let found = self
            .client
            .describe_listeners()
            .load_balancer_arn(load_balancer.as_str())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeListeners", load_balancer), e))?;
        Ok(found.iter().map(conv::listener).collect())
    }

    async fn modify_listener_forward(&self, listener: &Arn, forward: &Forward) -> CloudResult<()> {
        self.client
            .modify_listener()
            .listener_arn(listener.as_str())
            .default_actions(conv::forward_action(forward))
            .send()
            .await
            .map_err(|e| from_sdk(self.call("ModifyListener", listener), e))?;
        Ok(())
    }

    async fn describe_rules(&self, listener: &Arn) -> CloudResult<Vec<Rule>> {
        let found = self
            .client
            .describe_rules()
            .listener_arn(listener.as_str())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeRules", listener), e))?;
        let arns: Vec<String> = found
            .iter()
            .filter_map(|r| r.rule_arn())
            .map(String::from)
            .collect();
        let mut tags = self.tags_of(&arns).await?;
        Ok(found
            .iter()
            .map(|r| {
                let rule_tags = tags
                    .remove(r.rule_arn().unwrap_or_default())
                    .unwrap_or_default();
                conv::rule(r, listener, rule_tags)
            })
            .collect())
    }

    async fn create_rule(&self, r: &CreateRule) -> CloudResult<Rule> {
        let call = || {
            self.call(
                "CreateRule",
                format!("priority {} on {}", r.priority, r.listener_arn),
            )
        };
        let out = self
            .client
            .create_rule()
            .listener_arn(r.listener_arn.as_str())
            .priority(r.priority)
            .set_conditions(Some(r.conditions.iter().map(conv::elb_condition).collect()))
            .actions(conv::forward_action(&r.forward))
            .set_tags(conv::elb_tags(&r.tags))
            .send()
            .await
            .map_err(|e| from_sdk(call(), e))?;
        let created = out
            .rules()
            .first()
            .ok_or_else(|| missing(call(), "Rules"))?;
        Ok(conv::rule(created, &r.listener_arn, r.tags.clone()))
    }

    async fn delete_rule(&self, rule: &Arn) -> CloudResult<()> {
        self.client
            .delete_rule()
            .rule_arn(rule.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(self.call("DeleteRule", rule), e))?;
        Ok(())
    }
}
