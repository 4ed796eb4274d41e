//! Elastic Load Balancing: weighted forwarding with group-level stickiness (PITFALLS 29)
//! and rule conditions by header, which the emulator does not check.

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::operation::create_rule::{CreateRuleInput, CreateRuleOutput};
use aws_sdk_elasticloadbalancingv2::operation::modify_listener::{
    ModifyListenerInput, ModifyListenerOutput,
};
use aws_sdk_elasticloadbalancingv2::types as elb;
use aws_sdk_elasticloadbalancingv2::Client;
use aws_smithy_mocks::mock;

use super::{mocked, query_error, REGION};
use crate::aws::LoadBalancers;
use crate::ports::LoadBalancing;
use crate::types::*;
use crate::ErrorKind;

fn weighted(stickiness: Option<Duration>) -> Forward {
    Forward {
        target_groups: vec![
            WeightedTarget {
                target_group_arn: Arn::new("arn:tg/blue"),
                weight: 80,
            },
            WeightedTarget {
                target_group_arn: Arn::new("arn:tg/green"),
                weight: 20,
            },
        ],
        stickiness,
    }
}

fn sticky_forward(r: &ModifyListenerInput) -> bool {
    assert_eq!(r.listener_arn(), Some("arn:listener/1"));
    let action = &r.default_actions()[0];
    assert_eq!(action.r#type(), Some(&elb::ActionTypeEnum::Forward));
    assert_eq!(
        action.target_group_arn(),
        None,
        "weights need a ForwardConfig"
    );
    let config = action.forward_config().expect("forward config");
    let weights: Vec<_> = config
        .target_groups()
        .iter()
        .map(|t| (t.target_group_arn(), t.weight()))
        .collect();
    assert_eq!(
        weights,
        [
            (Some("arn:tg/blue"), Some(80)),
            (Some("arn:tg/green"), Some(20))
        ]
    );
    let stickiness = config.target_group_stickiness_config().expect("stated");
    assert_eq!(stickiness.enabled(), Some(true));
    assert_eq!(stickiness.duration_seconds(), Some(3600));
    true
}

#[tokio::test]
async fn weighted_forwarding_states_group_level_stickiness() {
    let modify = mock!(Client::modify_listener)
        .match_requests(sticky_forward)
        .then_output(|| ModifyListenerOutput::builder().build());
    let lb = LoadBalancers::new(mocked!(aws_sdk_elasticloadbalancingv2, modify), REGION);

    let forward = weighted(Some(Duration::from_secs(3600)));
    lb.modify_listener_forward(&Arn::new("arn:listener/1"), &forward)
        .await
        .expect("switch");

    assert_eq!(modify.num_calls(), 1);
}

fn header_rule(r: &CreateRuleInput) -> bool {
    let condition = &r.conditions()[0];
    assert_eq!(condition.field(), Some("http-header"));
    let header = condition.http_header_config().expect("header config");
    assert_eq!(header.http_header_name(), Some("X-Kiln-Tester"));
    assert_eq!(header.values(), ["yes"]);
    let config = r.actions()[0].forward_config().expect("forward config");
    let stickiness = config.target_group_stickiness_config().expect("stated");
    assert_eq!(
        stickiness.enabled(),
        Some(false),
        "stated off, not left out"
    );
    let tags: Vec<_> = r.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags, [(Some("kiln:role"), Some("testers"))]);
    r.priority() == Some(5)
}

#[tokio::test]
async fn a_header_rule_is_created_with_its_tags() {
    let create = mock!(Client::create_rule)
        .match_requests(header_rule)
        .then_compute_output(|r| {
            let rule = elb::Rule::builder()
                .rule_arn("arn:rule/5")
                .priority("5")
                .set_conditions(Some(r.conditions().to_vec()))
                .set_actions(Some(r.actions().to_vec()))
                .build();
            CreateRuleOutput::builder().rules(rule).build()
        });
    let lb = LoadBalancers::new(mocked!(aws_sdk_elasticloadbalancingv2, create), REGION);
    let request = CreateRule {
        listener_arn: Arn::new("arn:listener/1"),
        priority: 5,
        conditions: vec![RuleCondition::HttpHeader {
            name: "X-Kiln-Tester".to_string(),
            values: vec!["yes".to_string()],
        }],
        forward: weighted(None),
        tags: [("kiln:role".to_string(), "testers".to_string())].into(),
    };

    let rule = lb.create_rule(&request).await.expect("rule");

    assert_eq!(rule.priority, "5");
    assert_eq!(rule.conditions, request.conditions, "read back as sent");
    assert_eq!(rule.forward, Some(weighted(None)));
}

#[tokio::test]
async fn a_taken_priority_is_a_conflict() {
    let create = mock!(Client::create_rule)
        .then_http_response(|| query_error("PriorityInUse", "Priority '5' is currently in use"));
    let lb = LoadBalancers::new(mocked!(aws_sdk_elasticloadbalancingv2, create), REGION);
    let request = CreateRule {
        listener_arn: Arn::new("arn:listener/1"),
        priority: 5,
        conditions: vec![RuleCondition::SourceIp(vec!["203.0.113.0/24".to_string()])],
        forward: weighted(None),
        tags: Tags::new(),
    };

    let err = lb.create_rule(&request).await.expect_err("taken");

    assert_eq!(err.kind, ErrorKind::Conflict, "{err}");
    assert_eq!(err.code, "PriorityInUse");
}
