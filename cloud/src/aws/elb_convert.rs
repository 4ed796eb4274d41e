//! Elastic Load Balancing v2 types to kiln's, and kiln's forward actions and rule
//! conditions to ELB's.

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types as elb;

use super::convert::{seconds, seconds_i32, tags_from};
use crate::types::*;

/// The target group attribute that holds the deregistration delay, in seconds.
pub(crate) const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";
/// The target group attribute that says whether target-group stickiness is on.
pub(crate) const STICKINESS_ENABLED: &str = "stickiness.enabled";

pub(crate) fn tags(tags: &[elb::Tag]) -> Tags {
    tags_from(tags.iter().map(|t| (t.key(), t.value())))
}

pub(crate) fn elb_tags(tags: &Tags) -> Option<Vec<elb::Tag>> {
    (!tags.is_empty()).then(|| {
        tags.iter()
            .map(|(k, v)| elb::Tag::builder().key(k).value(v).build())
            .collect()
    })
}

pub(crate) fn load_balancer(lb: &elb::LoadBalancer) -> LoadBalancer {
    LoadBalancer {
        arn: Arn::new(lb.load_balancer_arn().unwrap_or_default()),
        name: lb.load_balancer_name().unwrap_or_default().to_string(),
        dns_name: lb.dns_name().unwrap_or_default().to_string(),
        vpc_id: lb.vpc_id().unwrap_or_default().to_string(),
    }
}

fn health_check(tg: &elb::TargetGroup) -> HealthCheck {
    HealthCheck {
        path: tg.health_check_path().unwrap_or("/").to_string(),
        port: tg.health_check_port().unwrap_or("traffic-port").to_string(),
        protocol: tg
            .health_check_protocol()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        interval: seconds(tg.health_check_interval_seconds()),
        timeout: seconds(tg.health_check_timeout_seconds()),
        healthy_threshold: tg.healthy_threshold_count().unwrap_or_default(),
        unhealthy_threshold: tg.unhealthy_threshold_count().unwrap_or_default(),
        matcher: tg
            .matcher()
            .and_then(|m| m.http_code())
            .unwrap_or_default()
            .to_string(),
    }
}

/// The attributes that live beside a target group, not in it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GroupAttributes {
    pub deregistration_delay: Duration,
    pub stickiness_enabled: bool,
}

pub(crate) fn group_attributes(attributes: &[elb::TargetGroupAttribute]) -> GroupAttributes {
    let value = |key: &str| {
        attributes
            .iter()
            .find(|a| a.key() == Some(key))
            .and_then(|a| a.value())
    };
    GroupAttributes {
        deregistration_delay: Duration::from_secs(
            value(DEREGISTRATION_DELAY)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        ),
        stickiness_enabled: value(STICKINESS_ENABLED) == Some("true"),
    }
}

pub(crate) fn target_group(tg: &elb::TargetGroup, attributes: GroupAttributes) -> TargetGroup {
    TargetGroup {
        arn: Arn::new(tg.target_group_arn().unwrap_or_default()),
        name: tg.target_group_name().unwrap_or_default().to_string(),
        protocol: tg
            .protocol()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        port: tg.port().unwrap_or_default(),
        vpc_id: tg.vpc_id().unwrap_or_default().to_string(),
        health_check: health_check(tg),
        load_balancer_arns: tg.load_balancer_arns().iter().map(Arn::new).collect(),
        deregistration_delay: attributes.deregistration_delay,
        stickiness_enabled: attributes.stickiness_enabled,
        // DescribeTargetGroups has no tags: the caller fills them from DescribeTags.
        tags: Tags::new(),
    }
}

fn target_state(state: Option<&elb::TargetHealthStateEnum>) -> TargetState {
    use elb::TargetHealthStateEnum as S;
    match state {
        Some(S::Initial) => TargetState::Initial,
        Some(S::Healthy) => TargetState::Healthy,
        Some(S::Unhealthy | S::UnhealthyDraining) => TargetState::Unhealthy,
        Some(S::Unused) => TargetState::Unused,
        Some(S::Draining) => TargetState::Draining,
        _ => TargetState::Unavailable,
    }
}

pub(crate) fn target_health(d: &elb::TargetHealthDescription) -> TargetHealth {
    let health = d.target_health();
    TargetHealth {
        target_id: d
            .target()
            .and_then(|t| t.id())
            .unwrap_or_default()
            .to_string(),
        port: d.target().and_then(|t| t.port()),
        state: target_state(health.and_then(|h| h.state())),
        reason: health
            .and_then(|h| h.reason())
            .map(|r| r.as_str().to_string()),
        description: health.and_then(|h| h.description()).map(String::from),
    }
}

/// A forward action: a single `TargetGroupArn`, or weighted groups in `ForwardConfig`.
fn forward_of(action: &elb::Action) -> Option<Forward> {
    if action.r#type() != Some(&elb::ActionTypeEnum::Forward) {
        return None;
    }
    if let Some(config) = action.forward_config() {
        let stickiness = config
            .target_group_stickiness_config()
            .filter(|s| s.enabled() == Some(true))
            .map(|s| seconds(s.duration_seconds()));
        let target_groups = config
            .target_groups()
            .iter()
            .map(|t| WeightedTarget {
                target_group_arn: Arn::new(t.target_group_arn().unwrap_or_default()),
                weight: t.weight().unwrap_or(1),
            })
            .collect();
        return Some(Forward {
            target_groups,
            stickiness,
        });
    }
    action.target_group_arn().map(|arn| Forward {
        target_groups: vec![WeightedTarget {
            target_group_arn: Arn::new(arn),
            weight: 1,
        }],
        stickiness: None,
    })
}

pub(crate) fn forward_in(actions: &[elb::Action]) -> Option<Forward> {
    actions.iter().find_map(forward_of)
}

/// The forward action kiln sends: always a `ForwardConfig` with weights, and group-level
/// stickiness stated either way (PITFALLS 29).
pub(crate) fn forward_action(forward: &Forward) -> elb::Action {
    let tuples = forward
        .target_groups
        .iter()
        .map(|t| {
            elb::TargetGroupTuple::builder()
                .target_group_arn(t.target_group_arn.as_str())
                .weight(t.weight)
                .build()
        })
        .collect();
    let stickiness = elb::TargetGroupStickinessConfig::builder()
        .enabled(forward.stickiness.is_some())
        .set_duration_seconds(forward.stickiness.map(seconds_i32))
        .build();
    let config = elb::ForwardActionConfig::builder()
        .set_target_groups(Some(tuples))
        .target_group_stickiness_config(stickiness)
        .build();
    elb::Action::builder()
        .r#type(elb::ActionTypeEnum::Forward)
        .forward_config(config)
        .build()
}

pub(crate) fn listener(l: &elb::Listener) -> Listener {
    Listener {
        arn: Arn::new(l.listener_arn().unwrap_or_default()),
        load_balancer_arn: Arn::new(l.load_balancer_arn().unwrap_or_default()),
        port: l.port().unwrap_or_default(),
        protocol: l
            .protocol()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        default_forward: forward_in(l.default_actions()),
    }
}

fn condition(c: &elb::RuleCondition) -> Option<RuleCondition> {
    match c.field()? {
        "source-ip" => Some(RuleCondition::SourceIp(
            c.source_ip_config()
                .map(|s| s.values().to_vec())
                .unwrap_or_default(),
        )),
        "http-header" => {
            let h = c.http_header_config()?;
            Some(RuleCondition::HttpHeader {
                name: h.http_header_name().unwrap_or_default().to_string(),
                values: h.values().to_vec(),
            })
        }
        "path-pattern" => {
            let values = c.path_pattern_config().map(|p| p.values().to_vec());
            Some(RuleCondition::PathPattern(
                values.unwrap_or_else(|| c.values().to_vec()),
            ))
        }
        _ => None,
    }
}

pub(crate) fn elb_condition(c: &RuleCondition) -> elb::RuleCondition {
    let builder = elb::RuleCondition::builder();
    match c {
        RuleCondition::SourceIp(cidrs) => builder.field("source-ip").source_ip_config(
            elb::SourceIpConditionConfig::builder()
                .set_values(Some(cidrs.clone()))
                .build(),
        ),
        RuleCondition::HttpHeader { name, values } => {
            builder.field("http-header").http_header_config(
                elb::HttpHeaderConditionConfig::builder()
                    .http_header_name(name)
                    .set_values(Some(values.clone()))
                    .build(),
            )
        }
        RuleCondition::PathPattern(patterns) => builder.field("path-pattern").path_pattern_config(
            elb::PathPatternConditionConfig::builder()
                .set_values(Some(patterns.clone()))
                .build(),
        ),
    }
    .build()
}

/// A rule; its tags come from a separate DescribeTags call.
pub(crate) fn rule(r: &elb::Rule, listener: &Arn, tags: Tags) -> Rule {
    Rule {
        arn: Arn::new(r.rule_arn().unwrap_or_default()),
        listener_arn: listener.clone(),
        priority: r.priority().unwrap_or("default").to_string(),
        conditions: r.conditions().iter().filter_map(condition).collect(),
        forward: forward_in(r.actions()),
        tags,
    }
}
