//! Auto Scaling in the simulation: groups that keep their desired capacity, launch from
//! their template across their zones, register in their target groups, and replace
//! instances that fail EC2 or ELB health checks after the grace period.

use crate::error::{CloudResult, ErrorKind};
use crate::types::*;

use super::model::*;
use super::world::World;
use super::{compute, elb, refresh, templates};

/// After a failed launch, Auto Scaling tries again about this much later.
const LAUNCH_RETRY_SECS: u64 = 10;
/// The instance type a template without one launches (AWS requires one; the seed may omit it).
const DEFAULT_INSTANCE_TYPE: &str = "t3.small";
/// The tag Auto Scaling puts on the instances it launches.
pub const TAG_GROUP_NAME: &str = "aws:autoscaling:groupName";
/// The processes SuspendProcesses knows.
const PROCESSES: &[&str] = &[
    "Launch",
    "Terminate",
    "AddToLoadBalancer",
    "AlarmNotification",
    "AZRebalance",
    "HealthCheck",
    "InstanceRefresh",
    "ReplaceUnhealthy",
    "ScheduledActions",
];

pub const IN_SERVICE: &str = "InService";
pub const PENDING: &str = "Pending";
pub const TERMINATING: &str = "Terminating";
pub const STANDBY: &str = "Standby";
pub const HEALTHY: &str = "Healthy";
pub const UNHEALTHY: &str = "Unhealthy";

pub fn group<'w>(w: &'w mut World, op: &'static str, name: &str) -> CloudResult<&'w mut SimGroup> {
    if !w.r.groups.contains_key(name) {
        let msg = format!("AutoScalingGroup name not found - {name}");
        return Err(w.err(ErrorKind::NotFound, op, name, "ValidationError", msg));
    }
    Ok(w.r.groups.get_mut(name).expect("checked above"))
}

fn invalid(w: &World, op: &'static str, name: &str, msg: impl Into<String>) -> crate::CloudError {
    w.err(ErrorKind::Validation, op, name, "ValidationError", msg)
}

pub fn describe(w: &mut World, names: &[String]) -> CloudResult<Vec<Group>> {
    let out =
        w.r.groups
            .values()
            .filter(|g| names.is_empty() || names.contains(&g.group.name));
    Ok(out.map(shown).collect())
}

fn shown(g: &SimGroup) -> Group {
    let mut group = g.group.clone();
    group.instances = g
        .members
        .iter()
        .map(|m| GroupInstance {
            id: m.id.clone(),
            availability_zone: m.availability_zone.clone(),
            lifecycle_state: m.lifecycle.clone(),
            health_status: m.health.clone(),
            protected_from_scale_in: m.protected,
            launch_template: Some(m.template.clone()),
        })
        .collect();
    group
}

fn check_sizes(
    w: &World,
    op: &'static str,
    name: &str,
    min: i32,
    max: i32,
    want: i32,
) -> CloudResult<()> {
    if min < 0 || min > max || want < min || want > max {
        let msg = format!("sizes must satisfy 0 <= min ({min}) <= desired ({want}) <= max ({max})");
        return Err(invalid(w, op, name, msg));
    }
    Ok(())
}

pub fn create(w: &mut World, req: &CreateGroup) -> CloudResult<()> {
    const OP: &str = "CreateAutoScalingGroup";
    if w.r.groups.contains_key(&req.name) {
        let msg = format!(
            "AutoScalingGroup by this name already exists - {}",
            req.name
        );
        return Err(w.err(ErrorKind::Conflict, OP, &req.name, "AlreadyExists", msg));
    }
    check_sizes(
        w,
        OP,
        &req.name,
        req.min_size,
        req.max_size,
        req.desired_capacity,
    )?;
    templates::resolve(w, OP, &req.template)?;
    for s in &req.subnet_ids {
        if !w.r.subnets.iter().any(|x| &x.id == s) {
            return Err(w.not_found(OP, s.as_str(), "InvalidSubnetID.NotFound"));
        }
    }
    for t in &req.target_group_arns {
        if !w.r.target_groups.contains_key(t.as_str()) {
            return Err(w.not_found(OP, t.as_str(), "TargetGroupNotFound"));
        }
    }
    let uuid = w.meta.uuid();
    let arn = format!(
        "arn:aws:autoscaling:{}:{}:autoScalingGroup:{uuid}:autoScalingGroupName/{}",
        w.region, w.meta.account_id, req.name
    );
    let group = Group {
        name: req.name.clone(),
        arn: Some(arn),
        min_size: req.min_size,
        max_size: req.max_size,
        desired_capacity: req.desired_capacity,
        launch_template: Some(req.template.clone()),
        mixed_instances: false,
        target_group_arns: req.target_group_arns.clone(),
        health_check_type: req.health_check_type.clone(),
        health_check_grace: req.health_check_grace,
        default_instance_warmup: req.default_instance_warmup,
        subnet_ids: req.subnet_ids.clone(),
        instances: Vec::new(),
        suspended_processes: Vec::new(),
        tags: req.tags.clone(),
    };
    let sim = SimGroup {
        group,
        members: Vec::new(),
        surge: 0,
        last_launch_error: None,
        launch_retry_at: None,
        deleting: false,
    };
    w.r.groups.insert(req.name.clone(), sim);
    Ok(())
}

pub fn update(w: &mut World, req: &UpdateGroup) -> CloudResult<()> {
    const OP: &str = "UpdateAutoScalingGroup";
    let g = group(w, OP, &req.name)?.group.clone();
    let min = req.min_size.unwrap_or(g.min_size);
    let max = req.max_size.unwrap_or(g.max_size);
    let want = req.desired_capacity.unwrap_or(g.desired_capacity);
    check_sizes(w, OP, &req.name, min, max, want)?;
    if let Some(t) = &req.template {
        templates::resolve(w, OP, t)?;
    }
    let g = &mut group(w, OP, &req.name)?.group;
    (g.min_size, g.max_size, g.desired_capacity) = (min, max, want);
    if let Some(t) = &req.template {
        g.launch_template = Some(t.clone());
    }
    if let Some(h) = &req.health_check_type {
        g.health_check_type = h.clone();
    }
    if let Some(grace) = req.health_check_grace {
        g.health_check_grace = grace;
    }
    Ok(())
}

pub fn delete(w: &mut World, name: &str, force: bool) -> CloudResult<()> {
    const OP: &str = "DeleteAutoScalingGroup";
    let members = group(w, OP, name)?.members.clone();
    if !members.is_empty() && !force {
        let msg = "You cannot delete an AutoScalingGroup while there are instances in it";
        return Err(w.err(ErrorKind::Conflict, OP, name, "ResourceInUse", msg));
    }
    refresh::forget_group(w, name);
    if members.is_empty() {
        w.r.groups.remove(name);
        return Ok(());
    }
    // As in AWS, a force-deleted group stays ("Delete in progress") while its instances
    // are deregistered, drained and terminated; it is gone once they are.
    let g = group(w, OP, name)?;
    g.deleting = true;
    (g.group.min_size, g.group.desired_capacity) = (0, 0);
    for m in members.iter().filter(|m| m.lifecycle != TERMINATING) {
        start_terminating(w, name, &m.id);
    }
    Ok(())
}

pub fn set_desired(w: &mut World, name: &str, desired: i32) -> CloudResult<()> {
    const OP: &str = "SetDesiredCapacity";
    let g = group(w, OP, name)?.group.clone();
    if desired < g.min_size || desired > g.max_size {
        let msg = format!(
            "New SetDesiredCapacity value {desired} is outside min {} .. max {}",
            g.min_size, g.max_size
        );
        return Err(invalid(w, OP, name, msg));
    }
    group(w, OP, name)?.group.desired_capacity = desired;
    Ok(())
}

pub fn suspend(w: &mut World, name: &str, processes: &[String], on: bool) -> CloudResult<()> {
    let op = if on {
        "SuspendProcesses"
    } else {
        "ResumeProcesses"
    };
    for p in processes {
        if !PROCESSES.contains(&p.as_str()) {
            return Err(invalid(w, op, name, format!("unknown scaling process {p}")));
        }
    }
    let all: Vec<String> = PROCESSES.iter().map(|p| p.to_string()).collect();
    let list = if processes.is_empty() {
        &all[..]
    } else {
        processes
    };
    let g = &mut group(w, op, name)?.group;
    for p in list {
        g.suspended_processes.retain(|x| x != p);
        if on {
            g.suspended_processes.push(p.clone());
        }
    }
    Ok(())
}

/// The members among `ids`, or a validation error naming one that is not in the group.
fn members_of(
    w: &mut World,
    op: &'static str,
    name: &str,
    ids: &[InstanceId],
) -> CloudResult<Vec<usize>> {
    let g = group(w, op, name)?;
    let found: Vec<Option<usize>> = ids
        .iter()
        .map(|id| g.members.iter().position(|m| &m.id == id))
        .collect();
    match ids.iter().zip(&found).find(|(_, f)| f.is_none()) {
        Some((id, _)) => Err(invalid(
            w,
            op,
            name,
            format!("instance {id} is not part of {name}"),
        )),
        None => Ok(found.into_iter().flatten().collect()),
    }
}

pub fn protect(w: &mut World, name: &str, ids: &[InstanceId], on: bool) -> CloudResult<()> {
    let idx = members_of(w, "SetInstanceProtection", name, ids)?;
    let g = group(w, "SetInstanceProtection", name)?;
    for i in idx {
        g.members[i].protected = on;
    }
    Ok(())
}

pub fn enter_standby(
    w: &mut World,
    name: &str,
    ids: &[InstanceId],
    decrement: bool,
) -> CloudResult<()> {
    const OP: &str = "EnterStandby";
    let idx = members_of(w, OP, name, ids)?;
    let g = group(w, OP, name)?.clone();
    if let Some(&i) = idx.iter().find(|&&i| g.members[i].lifecycle != IN_SERVICE) {
        let msg = format!("instance {} is not InService", g.members[i].id);
        return Err(invalid(w, OP, name, msg));
    }
    let desired = g.group.desired_capacity - if decrement { ids.len() as i32 } else { 0 };
    if desired < g.group.min_size {
        return Err(invalid(
            w,
            OP,
            name,
            format!("desired capacity {desired} would fall below min size"),
        ));
    }
    for &i in &idx {
        for arn in &g.group.target_group_arns {
            elb::deregister(w, arn, &g.members[i].id);
        }
    }
    let g = group(w, OP, name)?;
    g.group.desired_capacity = desired;
    for i in idx {
        g.members[i].lifecycle = STANDBY.into();
    }
    Ok(())
}

pub fn exit_standby(w: &mut World, name: &str, ids: &[InstanceId]) -> CloudResult<()> {
    const OP: &str = "ExitStandby";
    let idx = members_of(w, OP, name, ids)?;
    let g = group(w, OP, name)?.clone();
    if idx.iter().any(|&i| g.members[i].lifecycle != STANDBY) {
        return Err(invalid(w, OP, name, "every instance must be in Standby"));
    }
    let desired = g.group.desired_capacity + ids.len() as i32;
    if desired > g.group.max_size {
        return Err(invalid(
            w,
            OP,
            name,
            format!("desired capacity {desired} would exceed max size"),
        ));
    }
    for &i in &idx {
        for arn in &g.group.target_group_arns {
            elb::register(w, arn, &g.members[i].id);
        }
    }
    let g = group(w, OP, name)?;
    g.group.desired_capacity = desired;
    for i in idx {
        g.members[i].lifecycle = IN_SERVICE.into();
    }
    Ok(())
}

pub fn attach_target_groups(w: &mut World, name: &str, arns: &[Arn], on: bool) -> CloudResult<()> {
    let op = if on {
        "AttachLoadBalancerTargetGroups"
    } else {
        "DetachLoadBalancerTargetGroups"
    };
    group(w, op, name)?;
    for arn in arns {
        if !w.r.target_groups.contains_key(arn.as_str()) {
            return Err(w.not_found(op, arn.as_str(), "TargetGroupNotFound"));
        }
    }
    let g = group(w, op, name)?.clone();
    for arn in arns {
        for m in g.members.iter().filter(|m| m.lifecycle == IN_SERVICE) {
            if on {
                elb::register(w, arn, &m.id);
            } else {
                elb::deregister(w, arn, &m.id);
            }
        }
    }
    let list = &mut group(w, op, name)?.group.target_group_arns;
    list.retain(|a| !arns.contains(a));
    if on {
        list.extend(arns.iter().cloned());
    }
    Ok(())
}

pub fn put_tags(w: &mut World, name: &str, tags: &Tags) -> CloudResult<()> {
    let g = group(w, "CreateOrUpdateTags", name)?;
    g.group
        .tags
        .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(())
}

pub fn delete_tags(w: &mut World, name: &str, keys: &[String]) -> CloudResult<()> {
    let g = group(w, "DeleteTags", name)?;
    g.group.tags.retain(|k, _| !keys.contains(k));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Launching and terminating members

/// Launches one instance for the group from `template` in its least-used zone.
pub fn launch_member(
    w: &mut World,
    name: &str,
    template: &GroupTemplate,
) -> CloudResult<InstanceId> {
    const OP: &str = "RunInstances";
    let (sim, number) = templates::resolve(w, OP, template)?;
    let data = sim.versions[&number].data.clone();
    let g = w.r.groups[name].clone();
    let Some(image_id) = data.image_id.clone() else {
        return Err(invalid(
            w,
            OP,
            name,
            "the launch template version names no image",
        ));
    };
    let subnet = least_used_subnet(w, &g)?;
    let mut tags = data.tags.clone();
    tags.extend(g.group.tags.clone());
    tags.insert(TAG_GROUP_NAME.into(), name.to_string());
    let req = RunInstance {
        image_id,
        instance_type: data
            .instance_type
            .clone()
            .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.into()),
        subnet_id: Some(subnet.id.clone()),
        security_group_ids: data.security_group_ids.clone(),
        instance_profile: data.instance_profile.clone(),
        imdsv2_required: data.metadata_http_tokens.as_deref() == Some("required"),
        terminate_on_shutdown: false,
        root_volume: None,
        user_data: data.user_data.clone(),
        tags,
    };
    let inst = compute::run_instance(w, &req)?;
    let member = Member {
        id: inst.id.clone(),
        availability_zone: subnet.availability_zone.clone(),
        lifecycle: PENDING.into(),
        health: HEALTHY.into(),
        protected: false,
        template: templates::numbered(&sim, number),
        launched_at: w.now,
        in_service_at: None,
        terminate_at: None,
    };
    w.r.groups
        .get_mut(name)
        .expect("exists")
        .members
        .push(member);
    Ok(inst.id)
}

fn least_used_subnet(w: &World, g: &SimGroup) -> CloudResult<Subnet> {
    let subnets: Vec<&Subnet> =
        w.r.subnets
            .iter()
            .filter(|s| g.group.subnet_ids.contains(&s.id))
            .collect();
    let load = |s: &Subnet| {
        g.members
            .iter()
            .filter(|m| m.availability_zone == s.availability_zone && active(m))
            .count()
    };
    // Among equally loaded zones, one whose old instances a refresh still replaces: the
    // replacement lands where the instance it replaces goes, and the zones stay balanced.
    let replacing = refresh::replacing_zones(w, &g.group.name);
    subnets
        .into_iter()
        .min_by_key(|s| (load(s), !replacing.contains(&s.availability_zone)))
        .cloned()
        .ok_or_else(|| invalid(w, "RunInstances", &g.group.name, "the group has no subnet"))
}

/// Pending or in service: counts toward desired capacity.
pub fn active(m: &Member) -> bool {
    m.lifecycle == PENDING || m.lifecycle == IN_SERVICE
}

/// Moves a member to Terminating: deregistered, and terminated once drained.
pub fn start_terminating(w: &mut World, name: &str, id: &InstanceId) {
    let arns = w.r.groups[name].group.target_group_arns.clone();
    let mut until = w.now;
    for arn in &arns {
        if let Some(d) = elb::deregister(w, arn, id) {
            until = until.max(d);
        }
    }
    let g = w.r.groups.get_mut(name).expect("exists");
    if let Some(m) = g.members.iter_mut().find(|m| &m.id == id) {
        m.lifecycle = TERMINATING.into();
        m.terminate_at = Some(until);
    }
}

pub fn suspended(g: &SimGroup, process: &str) -> bool {
    g.group.suspended_processes.iter().any(|p| p == process)
}

/// Whether the member serves: in service, healthy, warmed up, and (ELB health checks)
/// healthy in every target group.
pub fn ready(
    r: &Region,
    g: &SimGroup,
    m: &Member,
    warmup: chrono::Duration,
    now: Timestamp,
) -> bool {
    let warm = m.in_service_at.is_some_and(|t| t + warmup <= now);
    let elb_ok = g.group.health_check_type != "ELB"
        || g.group
            .target_group_arns
            .iter()
            .all(|arn| elb::target_state(r, arn, &m.id) == Some(TargetState::Healthy));
    m.lifecycle == IN_SERVICE && m.health == HEALTHY && warm && elb_ok
}

// ---------------------------------------------------------------------------------------
// Time passing

pub fn step(w: &mut World) -> bool {
    let names: Vec<String> = w.r.groups.keys().cloned().collect();
    let mut changed = false;
    for name in names {
        changed |= sync_members(w, &name);
        if w.r.groups[&name].deleting {
            changed |= finish_deleting(w, &name);
            continue;
        }
        changed |= refresh::step(w, &name);
        changed |= reconcile(w, &name);
    }
    changed
}

/// A force-deleted group goes once its last instance has.
fn finish_deleting(w: &mut World, name: &str) -> bool {
    let done = w.r.groups[name].members.is_empty();
    if done {
        w.r.groups.remove(name);
    }
    done
}

/// Follows each member's instance and health checks; replaces the unhealthy.
fn sync_members(w: &mut World, name: &str) -> bool {
    let now = w.now;
    let g = w.r.groups[name].clone();
    let grace = dur(g.group.health_check_grace);
    let mut changed = false;
    for m in &g.members {
        let inst =
            w.r.instances
                .get(m.id.as_str())
                .map(|i| (i.state(), i.running_at));
        let ending = inst.is_none_or(|(s, _)| s.is_ending());
        if m.lifecycle == TERMINATING {
            changed |= finish_terminating(w, name, m, ending);
            continue;
        }
        if m.lifecycle == PENDING && inst.is_some_and(|(s, _)| s == InstanceState::Running) {
            enter_service(w, name, &m.id);
            changed = true;
            continue;
        }
        let elb_bad = g.group.health_check_type == "ELB"
            && m.lifecycle == IN_SERVICE
            && now >= m.launched_at + grace
            && g.group
                .target_group_arns
                .iter()
                .any(|a| elb::target_state(w.r, a, &m.id) == Some(TargetState::Unhealthy));
        if (ending || elb_bad) && m.health == HEALTHY {
            mark_unhealthy(w, name, &m.id);
            changed = true;
        }
    }
    changed | replace_unhealthy(w, name)
}

fn enter_service(w: &mut World, name: &str, id: &InstanceId) {
    let now = w.now;
    let g = w.r.groups.get_mut(name).expect("exists");
    let arns = g.group.target_group_arns.clone();
    if let Some(m) = g.members.iter_mut().find(|m| &m.id == id) {
        m.lifecycle = IN_SERVICE.into();
        m.in_service_at = Some(now);
    }
    for arn in &arns {
        elb::register(w, arn, id);
    }
}

fn mark_unhealthy(w: &mut World, name: &str, id: &InstanceId) {
    let g = w.r.groups.get_mut(name).expect("exists");
    if let Some(m) = g.members.iter_mut().find(|m| &m.id == id) {
        m.health = UNHEALTHY.into();
        tracing::debug!(instance = %id, group = name, "simulated instance unhealthy");
    }
    refresh::note_unhealthy(w, name, id);
}

fn replace_unhealthy(w: &mut World, name: &str) -> bool {
    let g = &w.r.groups[name];
    if suspended(g, "ReplaceUnhealthy") || suspended(g, "HealthCheck") {
        return false;
    }
    let sick: Vec<InstanceId> = g
        .members
        .iter()
        .filter(|m| m.health == UNHEALTHY && m.lifecycle != TERMINATING)
        .map(|m| m.id.clone())
        .collect();
    for id in &sick {
        start_terminating(w, name, id);
    }
    !sick.is_empty()
}

fn finish_terminating(w: &mut World, name: &str, m: &Member, ending: bool) -> bool {
    if m.terminate_at.is_some_and(|t| t <= w.now) && !ending {
        compute::terminate(w, &m.id);
        return true;
    }
    let gone =
        w.r.instances
            .get(m.id.as_str())
            .is_none_or(|i| i.state() == InstanceState::Terminated);
    if gone {
        let g = w.r.groups.get_mut(name).expect("exists");
        g.members.retain(|x| x.id != m.id);
        return true;
    }
    false
}

/// Launches or terminates to reach desired capacity (plus a refresh's surge).
fn reconcile(w: &mut World, name: &str) -> bool {
    let g = &w.r.groups[name];
    let active_n = g.members.iter().filter(|m| active(m)).count() as i32;
    let target = g.group.desired_capacity + g.surge;
    if active_n < target && !suspended(g, "Launch") {
        if g.launch_retry_at.is_some_and(|t| t > w.now) {
            return false;
        }
        let template = refresh::launch_template(w, name);
        let g = w.r.groups.get_mut(name).expect("exists");
        (g.launch_retry_at, g.last_launch_error) = (None, None);
        for _ in active_n..target {
            if let Err(e) = launch_member(w, name, &template) {
                tracing::debug!(group = name, error = %e, "simulated launch failed");
                let retry = w.now + secs(LAUNCH_RETRY_SECS);
                let g = w.r.groups.get_mut(name).expect("exists");
                g.last_launch_error = Some(e.to_string());
                g.launch_retry_at = Some(retry);
                break;
            }
        }
        return true;
    }
    if active_n > target && !suspended(g, "Terminate") {
        let victims = scale_in_victims(g, (active_n - target) as usize);
        for id in &victims {
            start_terminating(w, name, id);
        }
        return !victims.is_empty();
    }
    false
}

/// Unprotected members from the busiest zone first, then the oldest.
fn scale_in_victims(g: &SimGroup, n: usize) -> Vec<InstanceId> {
    let mut pool: Vec<&Member> = g
        .members
        .iter()
        .filter(|m| active(m) && !m.protected)
        .collect();
    let mut out = Vec::new();
    for _ in 0..n {
        let zone_load = |z: &str| pool.iter().filter(|m| m.availability_zone == z).count();
        let Some(pick) = pool
            .iter()
            .enumerate()
            .max_by_key(|(_, m)| {
                (
                    zone_load(&m.availability_zone),
                    std::cmp::Reverse(m.launched_at),
                )
            })
            .map(|(i, _)| i)
        else {
            break;
        };
        out.push(pool.remove(pick).id.clone());
    }
    out
}
