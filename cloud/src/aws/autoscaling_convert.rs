//! Auto Scaling types to kiln's, and kiln's refresh request to Auto Scaling's.

use aws_sdk_autoscaling::types as asg;

use super::convert::{seconds, seconds_i32, tags_from, timestamp_opt};
use crate::types::*;

/// A template as Auto Scaling takes it: by id, or by name when there is no id. AWS
/// answers with both but refuses a request that names both, so a template read from a
/// group can be sent back as it is.
pub(crate) fn template_spec(t: &GroupTemplate) -> asg::LaunchTemplateSpecification {
    let id = t.template_id.as_ref().map(ToString::to_string);
    let name = t.template_name.clone().filter(|_| id.is_none());
    asg::LaunchTemplateSpecification::builder()
        .set_launch_template_id(id)
        .set_launch_template_name(name)
        .version(&t.version)
        .build()
}

fn group_template(t: &asg::LaunchTemplateSpecification) -> GroupTemplate {
    GroupTemplate {
        template_id: t.launch_template_id().map(LaunchTemplateId::new),
        template_name: t.launch_template_name().map(String::from),
        // A group that names no version launches from the default one.
        version: t.version().unwrap_or("$Default").to_string(),
    }
}

fn group_instance(i: &asg::Instance) -> GroupInstance {
    GroupInstance {
        id: InstanceId::new(i.instance_id().unwrap_or_default()),
        availability_zone: i.availability_zone().unwrap_or_default().to_string(),
        lifecycle_state: i
            .lifecycle_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        health_status: i.health_status().unwrap_or_default().to_string(),
        protected_from_scale_in: i.protected_from_scale_in().unwrap_or(false),
        launch_template: i.launch_template().map(group_template),
    }
}

pub(crate) fn group(g: &asg::AutoScalingGroup) -> Group {
    let mixed = g
        .mixed_instances_policy()
        .and_then(|p| p.launch_template())
        .and_then(|t| t.launch_template_specification());
    Group {
        name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
        arn: g.auto_scaling_group_arn().map(String::from),
        min_size: g.min_size().unwrap_or_default(),
        max_size: g.max_size().unwrap_or_default(),
        desired_capacity: g.desired_capacity().unwrap_or_default(),
        launch_template: g.launch_template().or(mixed).map(group_template),
        mixed_instances: g.mixed_instances_policy().is_some(),
        target_group_arns: g.target_group_arns().iter().map(Arn::new).collect(),
        health_check_type: g.health_check_type().unwrap_or("EC2").to_string(),
        health_check_grace: seconds(g.health_check_grace_period()),
        default_instance_warmup: g.default_instance_warmup().map(|s| seconds(Some(s))),
        subnet_ids: g
            .vpc_zone_identifier()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(SubnetId::new)
            .collect(),
        instances: g.instances().iter().map(group_instance).collect(),
        suspended_processes: g
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name().map(String::from))
            .collect(),
        tags: tags_from(g.tags().iter().map(|t| (t.key(), t.value()))),
    }
}

/// Group tags; `propagate` copies them onto the instances the group launches.
pub(crate) fn group_tags(group: &str, tags: &Tags, propagate: bool) -> Vec<asg::Tag> {
    tags.iter()
        .map(|(k, v)| {
            asg::Tag::builder()
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .key(k)
                .value(v)
                .propagate_at_launch(propagate)
                .build()
        })
        .collect()
}

fn protected(p: ProtectedInstances) -> asg::ScaleInProtectedInstances {
    match p {
        ProtectedInstances::Refresh => asg::ScaleInProtectedInstances::Refresh,
        ProtectedInstances::Ignore => asg::ScaleInProtectedInstances::Ignore,
        ProtectedInstances::Wait => asg::ScaleInProtectedInstances::Wait,
    }
}

fn standby(s: StandbyInstances) -> asg::StandbyInstances {
    match s {
        StandbyInstances::Terminate => asg::StandbyInstances::Terminate,
        StandbyInstances::Ignore => asg::StandbyInstances::Ignore,
        StandbyInstances::Wait => asg::StandbyInstances::Wait,
    }
}

/// Every preference stated (PITFALLS 3, 5). AutoRollback is sent only beside a desired
/// configuration, the only case AWS accepts it in.
pub(crate) fn preferences(p: &RefreshPreferences, has_desired: bool) -> asg::RefreshPreferences {
    let alarms = (!p.alarm_names.is_empty()).then(|| {
        asg::AlarmSpecification::builder()
            .set_alarms(Some(p.alarm_names.clone()))
            .build()
    });
    let checkpoints = !p.checkpoint_percentages.is_empty();
    asg::RefreshPreferences::builder()
        .min_healthy_percentage(p.min_healthy_percentage)
        .max_healthy_percentage(p.max_healthy_percentage)
        .instance_warmup(seconds_i32(p.instance_warmup))
        .skip_matching(p.skip_matching)
        .set_checkpoint_percentages(checkpoints.then(|| p.checkpoint_percentages.clone()))
        .set_checkpoint_delay(p.checkpoint_delay.filter(|_| checkpoints).map(seconds_i32))
        .set_auto_rollback(has_desired.then_some(p.auto_rollback))
        .set_alarm_specification(alarms)
        .scale_in_protected_instances(protected(p.scale_in_protected_instances))
        .standby_instances(standby(p.standby_instances))
        .build()
}

fn kiln_protected(p: Option<&asg::ScaleInProtectedInstances>) -> ProtectedInstances {
    match p {
        Some(asg::ScaleInProtectedInstances::Refresh) => ProtectedInstances::Refresh,
        Some(asg::ScaleInProtectedInstances::Wait) => ProtectedInstances::Wait,
        _ => ProtectedInstances::Ignore,
    }
}

fn kiln_standby(s: Option<&asg::StandbyInstances>) -> StandbyInstances {
    match s {
        Some(asg::StandbyInstances::Terminate) => StandbyInstances::Terminate,
        Some(asg::StandbyInstances::Wait) => StandbyInstances::Wait,
        _ => StandbyInstances::Ignore,
    }
}

fn kiln_preferences(p: &asg::RefreshPreferences) -> RefreshPreferences {
    RefreshPreferences {
        min_healthy_percentage: p.min_healthy_percentage().unwrap_or_default(),
        max_healthy_percentage: p.max_healthy_percentage().unwrap_or_default(),
        instance_warmup: seconds(p.instance_warmup()),
        skip_matching: p.skip_matching().unwrap_or(false),
        checkpoint_percentages: p.checkpoint_percentages().to_vec(),
        checkpoint_delay: p.checkpoint_delay().map(|s| seconds(Some(s))),
        auto_rollback: p.auto_rollback().unwrap_or(false),
        alarm_names: p
            .alarm_specification()
            .map(|a| a.alarms().to_vec())
            .unwrap_or_default(),
        scale_in_protected_instances: kiln_protected(p.scale_in_protected_instances()),
        standby_instances: kiln_standby(p.standby_instances()),
    }
}

fn refresh_status(s: Option<&asg::InstanceRefreshStatus>) -> RefreshStatus {
    use asg::InstanceRefreshStatus as S;
    match s {
        Some(S::Pending) => RefreshStatus::Pending,
        Some(S::InProgress) => RefreshStatus::InProgress,
        Some(S::Successful) => RefreshStatus::Successful,
        Some(S::Cancelling) => RefreshStatus::Cancelling,
        Some(S::Cancelled) => RefreshStatus::Cancelled,
        Some(S::RollbackInProgress) => RefreshStatus::RollbackInProgress,
        Some(S::RollbackFailed) => RefreshStatus::RollbackFailed,
        Some(S::RollbackSuccessful) => RefreshStatus::RollbackSuccessful,
        Some(S::Baking) => RefreshStatus::Baking,
        // Failed, or a status newer than this client: the refresh did not succeed.
        _ => RefreshStatus::Failed,
    }
}

pub(crate) fn refresh(r: &asg::InstanceRefresh) -> InstanceRefresh {
    InstanceRefresh {
        id: r.instance_refresh_id().unwrap_or_default().to_string(),
        group: r.auto_scaling_group_name().unwrap_or_default().to_string(),
        status: refresh_status(r.status()),
        status_reason: r.status_reason().map(String::from),
        percentage_complete: r.percentage_complete().unwrap_or_default(),
        instances_to_update: r.instances_to_update().unwrap_or_default(),
        start_time: timestamp_opt(r.start_time()),
        end_time: timestamp_opt(r.end_time()),
        desired: r
            .desired_configuration()
            .and_then(|d| d.launch_template())
            .map(group_template),
        preferences: r.preferences().map(kiln_preferences),
    }
}
