//! Elastic Load Balancing v2 in the simulation: target groups and their health checks,
//! draining, listeners with weighted forwarding, and rules.

use std::collections::BTreeMap;

use crate::error::{CloudResult, ErrorKind};
use crate::types::*;

use super::model::*;
use super::world::World;

/// ELB accepts target group weights from 0 to 999.
const MAX_WEIGHT: i32 = 999;
/// ELB accepts rule priorities from 1 to 50,000.
const MAX_PRIORITY: i32 = 50_000;

pub fn describe_load_balancers(w: &mut World, names: &[String]) -> CloudResult<Vec<LoadBalancer>> {
    for name in names {
        if !w.r.load_balancers.iter().any(|l| &l.name == name) {
            let code = "LoadBalancerNotFound";
            return Err(w.not_found("DescribeLoadBalancers", name, code));
        }
    }
    let out =
        w.r.load_balancers
            .iter()
            .filter(|l| names.is_empty() || names.contains(&l.name));
    Ok(out.cloned().collect())
}

/// The load balancers whose listeners or rules forward to a target group.
fn users(r: &Region, tg: &Arn) -> Vec<Arn> {
    let forwards = |f: &Option<Forward>| {
        f.as_ref()
            .is_some_and(|f| f.target_groups.iter().any(|t| &t.target_group_arn == tg))
    };
    let mut out: Vec<Arn> = r
        .listeners
        .values()
        .filter(|l| {
            forwards(&l.default_forward)
                || r.rules
                    .values()
                    .any(|ru| ru.listener_arn == l.arn && forwards(&ru.forward))
        })
        .map(|l| l.load_balancer_arn.clone())
        .collect();
    out.dedup();
    out
}

fn shown_group(r: &Region, tg: &SimTargetGroup) -> TargetGroup {
    let mut g = tg.group.clone();
    g.load_balancer_arns = users(r, &g.arn);
    g.tags = tg.tags.clone();
    g
}

pub fn describe_target_groups(w: &mut World, names: &[String]) -> CloudResult<Vec<TargetGroup>> {
    for name in names {
        if !w.r.target_groups.values().any(|t| &t.group.name == name) {
            return Err(w.not_found("DescribeTargetGroups", name, "TargetGroupNotFound"));
        }
    }
    let out = w.r.target_groups.values();
    let out = out.filter(|t| names.is_empty() || names.contains(&t.group.name));
    Ok(out.map(|t| shown_group(w.r, t)).collect())
}

pub fn target_group_arn(w: &World, name: &str) -> String {
    let account = &w.meta.account_id;
    let region = w.region;
    let suffix = format!("{:016x}", w.meta.next_id.wrapping_mul(0x9e37_79b9));
    format!("arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{name}/{suffix}")
}

pub fn create_target_group(w: &mut World, req: &CreateTargetGroup) -> CloudResult<TargetGroup> {
    const OP: &str = "CreateTargetGroup";
    if let Some(existing) =
        w.r.target_groups
            .values()
            .find(|t| t.group.name == req.name)
    {
        let same = existing.group.port == req.port && existing.group.protocol == req.protocol;
        if same {
            return Ok(shown_group(w.r, existing));
        }
        let msg = format!(
            "a target group named {} exists with other settings",
            req.name
        );
        let code = "DuplicateTargetGroupName";
        return Err(w.err(ErrorKind::Conflict, OP, &req.name, code, msg));
    }
    if !w.r.vpcs.contains(&req.vpc_id) {
        return Err(w.not_found(OP, &req.vpc_id, "ValidationError"));
    }
    w.meta.next_id += 1;
    let arn = Arn::new(target_group_arn(w, &req.name));
    let group = TargetGroup {
        arn: arn.clone(),
        name: req.name.clone(),
        protocol: req.protocol.clone(),
        port: req.port,
        vpc_id: req.vpc_id.clone(),
        health_check: req.health_check.clone(),
        load_balancer_arns: Vec::new(),
        deregistration_delay: req.deregistration_delay,
        stickiness_enabled: false,
        tags: req.tags.clone(),
    };
    let sim = SimTargetGroup {
        group: group.clone(),
        targets: BTreeMap::new(),
        tags: req.tags.clone(),
    };
    w.r.target_groups.insert(arn.0.clone(), sim);
    Ok(group)
}

fn tg<'w>(w: &'w mut World, op: &'static str, arn: &Arn) -> CloudResult<&'w mut SimTargetGroup> {
    if !w.r.target_groups.contains_key(arn.as_str()) {
        return Err(w.not_found(op, arn.as_str(), "TargetGroupNotFound"));
    }
    Ok(w.r
        .target_groups
        .get_mut(arn.as_str())
        .expect("checked above"))
}

pub fn delete_target_group(w: &mut World, arn: &Arn) -> CloudResult<()> {
    const OP: &str = "DeleteTargetGroup";
    tg(w, OP, arn)?;
    if !users(w.r, arn).is_empty() {
        let msg = format!("target group {arn} is in use by a listener or a rule");
        return Err(w.err(ErrorKind::Conflict, OP, arn.as_str(), "ResourceInUse", msg));
    }
    w.r.target_groups.remove(arn.as_str());
    for group in w.r.groups.values_mut() {
        group.group.target_group_arns.retain(|a| a != arn);
    }
    Ok(())
}

pub fn set_deregistration_delay(
    w: &mut World,
    arn: &Arn,
    delay: std::time::Duration,
) -> CloudResult<()> {
    tg(w, "ModifyTargetGroupAttributes", arn)?
        .group
        .deregistration_delay = delay;
    Ok(())
}

pub fn describe_target_health(w: &mut World, arn: &Arn) -> CloudResult<Vec<TargetHealth>> {
    let group = tg(w, "DescribeTargetHealth", arn)?;
    Ok(group.targets.values().map(|t| t.health.clone()).collect())
}

pub fn register_targets(w: &mut World, arn: &Arn, ids: &[InstanceId]) -> CloudResult<()> {
    const OP: &str = "RegisterTargets";
    tg(w, OP, arn)?;
    for id in ids {
        let ok =
            w.r.instances
                .get(id.as_str())
                .is_some_and(|i| !i.state().is_ending());
        if !ok {
            let msg = format!("instance {id} is not in a valid state for registration");
            return Err(w.err(ErrorKind::Validation, OP, id.as_str(), "InvalidTarget", msg));
        }
    }
    for id in ids {
        register(w, arn, id);
    }
    Ok(())
}

/// Adds a target in `initial`; registering a draining target makes it current again.
pub fn register(w: &mut World, arn: &Arn, id: &InstanceId) {
    let now = w.now;
    let Some(group) = w.r.target_groups.get_mut(arn.as_str()) else {
        return;
    };
    let port = group.group.port;
    let fresh = group
        .targets
        .get(id.as_str())
        .is_none_or(|t| t.drain_until.is_some());
    if fresh {
        let target = SimTarget {
            health: health(id, port, TargetState::Initial, "Elb.RegistrationInProgress"),
            registered_at: now,
            drain_until: None,
        };
        group.targets.insert(id.0.clone(), target);
    }
}

fn health(id: &InstanceId, port: i32, state: TargetState, reason: &str) -> TargetHealth {
    TargetHealth {
        target_id: id.0.clone(),
        port: Some(port),
        state,
        reason: (!reason.is_empty()).then(|| reason.to_string()),
        description: (!reason.is_empty()).then(|| describe_reason(reason).to_string()),
    }
}

fn describe_reason(reason: &str) -> &'static str {
    match reason {
        "Elb.RegistrationInProgress" => "Target registration is in progress",
        "Elb.InitialHealthChecking" => "Initial health checks in progress",
        "Target.ResponseCodeMismatch" => "Health checks failed with these codes: [500]",
        "Target.DeregistrationInProgress" => "Target deregistration is in progress",
        "Target.NotInUse" => {
            "Target group is not configured to receive traffic from the load balancer"
        }
        "Target.InvalidState" => "Target is in the stopped or terminated state",
        _ => "",
    }
}

pub fn deregister_targets(w: &mut World, arn: &Arn, ids: &[InstanceId]) -> CloudResult<()> {
    tg(w, "DeregisterTargets", arn)?;
    for id in ids {
        deregister(w, arn, id);
    }
    Ok(())
}

/// Starts draining a target for the group's deregistration delay (PITFALLS 30).
pub fn deregister(w: &mut World, arn: &Arn, id: &InstanceId) -> Option<Timestamp> {
    let now = w.now;
    let group = w.r.target_groups.get_mut(arn.as_str())?;
    let delay = dur(group.group.deregistration_delay);
    let port = group.group.port;
    let target = group.targets.get_mut(id.as_str())?;
    if target.drain_until.is_none() {
        target.drain_until = Some(now + delay);
        target.health = health(
            id,
            port,
            TargetState::Draining,
            "Target.DeregistrationInProgress",
        );
    }
    target.drain_until
}

/// Target health transitions due at `w.now`.
pub fn step(w: &mut World) -> bool {
    let now = w.now;
    let mut changed = false;
    let arns: Vec<Arn> =
        w.r.target_groups
            .values()
            .map(|t| t.group.arn.clone())
            .collect();
    for arn in arns {
        let in_use = !users(w.r, &arn).is_empty();
        let r = &mut *w.r;
        let group = r.target_groups.get_mut(arn.as_str()).expect("listed above");
        let before = group.targets.len();
        group
            .targets
            .retain(|_, t| t.drain_until.is_none_or(|d| d > now));
        changed |= before != group.targets.len();
        let (hc, port) = (group.group.health_check.clone(), group.group.port);
        for (id, target) in group.targets.iter_mut() {
            if target.drain_until.is_some() {
                continue;
            }
            let inst = r.instances.get(id);
            let (state, reason) = judge(inst, target, &hc, in_use, now);
            if target.health.state != state {
                target.health = health(&InstanceId::new(id.clone()), port, state, reason);
                changed = true;
            }
        }
    }
    changed
}

/// What the health checks say of a target now.
fn judge(
    inst: Option<&SimInstance>,
    target: &SimTarget,
    hc: &HealthCheck,
    in_use: bool,
    now: Timestamp,
) -> (TargetState, &'static str) {
    let Some(inst) = inst.filter(|i| i.state() == InstanceState::Running) else {
        return match inst.map(|i| i.state()) {
            Some(InstanceState::Pending) => (TargetState::Initial, "Elb.RegistrationInProgress"),
            _ => (TargetState::Unused, "Target.InvalidState"),
        };
    };
    if !in_use {
        // Health checks run only for target groups a load balancer uses.
        return (TargetState::Unused, "Target.NotInUse");
    }
    let checking_from = target.registered_at.max(inst.running_at);
    let interval = dur(hc.interval);
    if inst.bad_image {
        let fails = checking_from + interval * hc.unhealthy_threshold;
        if now >= fails {
            return (TargetState::Unhealthy, "Target.ResponseCodeMismatch");
        }
        return (TargetState::Initial, "Elb.InitialHealthChecking");
    }
    let ready = target.registered_at.max(inst.app_ready_at) + interval * hc.healthy_threshold;
    if now >= ready {
        return (TargetState::Healthy, "");
    }
    (TargetState::Initial, "Elb.InitialHealthChecking")
}

/// The state of an instance in a target group (for group health checks and gates).
pub fn target_state(r: &Region, arn: &Arn, id: &InstanceId) -> Option<TargetState> {
    let group = r.target_groups.get(arn.as_str())?;
    Some(group.targets.get(id.as_str())?.health.state)
}

/// Healthy targets of a target group.
pub fn healthy_count(r: &Region, arn: &Arn) -> usize {
    r.target_groups.get(arn.as_str()).map_or(0, |g| {
        g.targets
            .values()
            .filter(|t| t.health.state == TargetState::Healthy)
            .count()
    })
}

// ---------------------------------------------------------------------------------------
// Listeners and rules

pub fn describe_listeners(w: &mut World, lb: &Arn) -> CloudResult<Vec<Listener>> {
    if !w.r.load_balancers.iter().any(|l| &l.arn == lb) {
        return Err(w.not_found("DescribeListeners", lb.as_str(), "LoadBalancerNotFound"));
    }
    let out =
        w.r.listeners
            .values()
            .filter(|l| &l.load_balancer_arn == lb);
    Ok(out.cloned().collect())
}

/// Checks a forward action as ELB does: known target groups, group-level stickiness
/// when weighted forwarding meets sticky target groups (PITFALLS 29).
fn check_forward(w: &World, op: &'static str, f: &Forward) -> CloudResult<()> {
    if f.target_groups.is_empty() {
        let msg = "a forward action needs at least one target group";
        return Err(w.err(ErrorKind::Validation, op, "forward", "ValidationError", msg));
    }
    for t in &f.target_groups {
        if !w.r.target_groups.contains_key(t.target_group_arn.as_str()) {
            return Err(w.not_found(op, t.target_group_arn.as_str(), "TargetGroupNotFound"));
        }
        if !(0..=MAX_WEIGHT).contains(&t.weight) {
            let msg = format!("weight {} is outside 0..={MAX_WEIGHT}", t.weight);
            let e = ErrorKind::Validation;
            return Err(w.err(e, op, t.target_group_arn.as_str(), "ValidationError", msg));
        }
    }
    let sticky = f.target_groups.iter().any(|t| {
        w.r.target_groups
            .get(t.target_group_arn.as_str())
            .is_some_and(|g| g.group.stickiness_enabled)
    });
    if f.target_groups.len() > 1 && sticky && f.stickiness.is_none() {
        let msg = "weighted forwarding to target groups with stickiness requires \
                   target group stickiness on the action";
        return Err(w.err(
            ErrorKind::Validation,
            op,
            "forward",
            "InvalidConfigurationRequest",
            msg,
        ));
    }
    Ok(())
}

pub fn modify_listener_forward(w: &mut World, arn: &Arn, f: &Forward) -> CloudResult<()> {
    const OP: &str = "ModifyListener";
    if !w.r.listeners.contains_key(arn.as_str()) {
        return Err(w.not_found(OP, arn.as_str(), "ListenerNotFound"));
    }
    check_forward(w, OP, f)?;
    w.r.listeners
        .get_mut(arn.as_str())
        .expect("checked")
        .default_forward = Some(f.clone());
    Ok(())
}

pub fn describe_rules(w: &mut World, listener: &Arn) -> CloudResult<Vec<Rule>> {
    let Some(l) = w.r.listeners.get(listener.as_str()) else {
        return Err(w.not_found("DescribeRules", listener.as_str(), "ListenerNotFound"));
    };
    let default = Rule {
        arn: Arn::new(format!("{}/default", l.arn).replace(":listener/", ":listener-rule/")),
        listener_arn: l.arn.clone(),
        priority: "default".into(),
        conditions: Vec::new(),
        forward: l.default_forward.clone(),
        tags: Tags::new(),
    };
    let mut out: Vec<Rule> =
        w.r.rules
            .values()
            .filter(|r| &r.listener_arn == listener)
            .cloned()
            .collect();
    out.sort_by_key(|r| r.priority.parse::<i64>().unwrap_or(i64::MAX));
    out.push(default);
    Ok(out)
}

/// ELB refuses a source-ip condition that is not a CIDR block.
fn check_conditions(w: &World, op: &'static str, conditions: &[RuleCondition]) -> CloudResult<()> {
    let cidrs = conditions.iter().flat_map(|c| match c {
        RuleCondition::SourceIp(v) => v.as_slice(),
        _ => &[],
    });
    for cidr in cidrs {
        let ok = cidr.split_once('/').is_some_and(|(ip, bits)| {
            let bits: Option<u8> = bits.parse().ok();
            match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(_)) => bits.is_some_and(|b| b <= 32),
                Ok(std::net::IpAddr::V6(_)) => bits.is_some_and(|b| b <= 128),
                Err(_) => false,
            }
        });
        if !ok {
            let msg = format!("{cidr} is not a valid CIDR block for a source-ip condition");
            return Err(w.err(ErrorKind::Validation, op, cidr, "ValidationError", msg));
        }
    }
    if conditions.is_empty() {
        let msg = "a rule needs at least one condition";
        return Err(w.err(
            ErrorKind::Validation,
            op,
            "conditions",
            "ValidationError",
            msg,
        ));
    }
    Ok(())
}

pub fn create_rule(w: &mut World, req: &CreateRule) -> CloudResult<Rule> {
    const OP: &str = "CreateRule";
    if !w.r.listeners.contains_key(req.listener_arn.as_str()) {
        return Err(w.not_found(OP, req.listener_arn.as_str(), "ListenerNotFound"));
    }
    check_conditions(w, OP, &req.conditions)?;
    check_forward(w, OP, &req.forward)?;
    let priority = req.priority.to_string();
    let taken =
        w.r.rules
            .values()
            .any(|r| r.listener_arn == req.listener_arn && r.priority == priority);
    if taken || !(1..=MAX_PRIORITY).contains(&req.priority) {
        let msg = format!(
            "priority {} is in use or outside 1..={MAX_PRIORITY}",
            req.priority
        );
        return Err(w.err(ErrorKind::Conflict, OP, &priority, "PriorityInUse", msg));
    }
    let id = w.meta.id("rule");
    let arn = format!("{}/{id}", req.listener_arn).replace(":listener/", ":listener-rule/");
    let rule = Rule {
        arn: Arn::new(arn),
        listener_arn: req.listener_arn.clone(),
        priority,
        conditions: req.conditions.clone(),
        forward: Some(req.forward.clone()),
        tags: req.tags.clone(),
    };
    w.r.rules.insert(rule.arn.0.clone(), rule.clone());
    Ok(rule)
}

pub fn delete_rule(w: &mut World, arn: &Arn) -> CloudResult<()> {
    if w.r.rules.remove(arn.as_str()).is_none() {
        return Err(w.not_found("DeleteRule", arn.as_str(), "RuleNotFound"));
    }
    Ok(())
}
