//! The timeline: for each simulated second where something visible changed, what each
//! group could serve and where each listener sent traffic. Rollout tests assert on it
//! ("healthy capacity never fell below X", "no traffic to a target group with no healthy
//! target").

use serde::Serialize;

use crate::types::{Arn, Timestamp};

use super::model::Region;
use super::{elb, scaling};

/// One moment of the account, recorded when it differs from the previous one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frame {
    pub at: Timestamp,
    pub region: String,
    pub groups: Vec<GroupFrame>,
    pub listeners: Vec<ListenerFrame>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupFrame {
    pub name: String,
    pub desired: i32,
    /// In service, healthy and (with ELB health checks) healthy in every target group.
    pub healthy_in_service: usize,
    /// Members that are pending or in service.
    pub active: usize,
}

/// A listener's default action, or one of its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerFrame {
    pub listener: Arn,
    /// `default`, or the rule's priority.
    pub rule: String,
    /// The target groups getting a weight above zero.
    pub targets: Vec<TrafficFrame>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficFrame {
    pub target_group: Arn,
    pub weight: i32,
    pub healthy_targets: usize,
}

impl Frame {
    pub fn group(&self, name: &str) -> Option<&GroupFrame> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// What a region looks like now.
pub fn frame(r: &Region, region: &str, at: Timestamp) -> Frame {
    let groups = r
        .groups
        .values()
        .map(|g| GroupFrame {
            name: g.group.name.clone(),
            desired: g.group.desired_capacity,
            healthy_in_service: g
                .members
                .iter()
                .filter(|m| scaling::ready(r, g, m, chrono::Duration::zero(), at))
                .count(),
            active: g.members.iter().filter(|m| scaling::active(m)).count(),
        })
        .collect();
    let traffic = |f: &Option<crate::types::Forward>| -> Vec<TrafficFrame> {
        let Some(f) = f else { return Vec::new() };
        f.target_groups
            .iter()
            .filter(|t| t.weight > 0)
            .map(|t| TrafficFrame {
                target_group: t.target_group_arn.clone(),
                weight: t.weight,
                healthy_targets: elb::healthy_count(r, &t.target_group_arn),
            })
            .collect()
    };
    let mut listeners: Vec<ListenerFrame> = r
        .listeners
        .values()
        .map(|l| ListenerFrame {
            listener: l.arn.clone(),
            rule: "default".into(),
            targets: traffic(&l.default_forward),
        })
        .collect();
    listeners.extend(r.rules.values().map(|ru| ListenerFrame {
        listener: ru.listener_arn.clone(),
        rule: ru.priority.clone(),
        targets: traffic(&ru.forward),
    }));
    Frame {
        at,
        region: region.to_string(),
        groups,
        listeners,
    }
}

/// Same content, whatever the time.
pub fn same(a: &Frame, b: &Frame) -> bool {
    a.region == b.region && a.groups == b.groups && a.listeners == b.listeners
}
