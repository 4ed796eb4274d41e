//! Preflight: the checks that refuse a rollout which would stall or hurt, each with its
//! reason and its fix. Pure functions over what was described, so each is tested alone.

use std::time::Duration;

use kiln_cloud::{Group, InstanceRefresh, RefreshStatus, TargetGroup};
use serde::{Deserialize, Serialize};

use crate::error::{rollback_command, status_command, Refusal};
use crate::spec::RollingSettings;

/// Processes whose suspension stalls a refresh or a replacement (PITFALLS 6).
/// `AddToLoadBalancer` is here because new instances would never serve.
pub const BLOCKING_PROCESSES: [&str; 6] = [
    "Launch",
    "Terminate",
    "InstanceRefresh",
    "HealthCheck",
    "ReplaceUnhealthy",
    "AddToLoadBalancer",
];

/// In which order a refresh replaces instances, given the healthy percentages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplacementOrder {
    /// New instances launch and become healthy before old ones are terminated.
    LaunchBeforeTerminate,
    /// Old instances are terminated before their replacements launch.
    TerminateBeforeLaunch,
    /// Both at once, within the bounds.
    LaunchAndTerminate,
}

impl ReplacementOrder {
    pub fn describe(self) -> &'static str {
        match self {
            Self::LaunchBeforeTerminate => "launch before terminate",
            Self::TerminateBeforeLaunch => "terminate before launch",
            Self::LaunchAndTerminate => "launch and terminate together",
        }
    }
}

/// What the healthy percentages mean on the group's current desired capacity
/// (PITFALLS 9: never on a static minimum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub desired: i32,
    /// Instances kept healthy: desired × min% rounded up, as AWS rounds it.
    pub min_in_service: i32,
    /// Instances allowed in service or pending: desired × max% rounded down (at least
    /// desired + 1 above 100 %).
    pub max_in_service: i32,
    /// Instances launched ahead of terminations in one batch.
    pub launch_batch: i32,
    /// Instances terminated ahead of their replacements in one batch.
    pub terminate_batch: i32,
    pub order: ReplacementOrder,
}

/// The batch arithmetic of a refresh on `desired` instances. Above 100 % max healthy,
/// AWS launches at least one instance ahead even where the percentage rounds to none.
pub fn capacity(desired: i32, min_pct: i32, max_pct: i32) -> Capacity {
    let d = i64::from(desired);
    let min_in_service = (d * i64::from(min_pct) + 99) / 100;
    let launch_batch = if max_pct > 100 {
        (d * i64::from(max_pct) / 100 - d).max(1)
    } else {
        0
    };
    let max_in_service = d + launch_batch;
    let launch_batch = launch_batch as i32;
    let terminate_batch = (d - min_in_service).max(0) as i32;
    let order = match (launch_batch > 0, terminate_batch > 0) {
        (true, false) => ReplacementOrder::LaunchBeforeTerminate,
        (true, true) => ReplacementOrder::LaunchAndTerminate,
        _ => ReplacementOrder::TerminateBeforeLaunch,
    };
    Capacity {
        desired,
        min_in_service: min_in_service as i32,
        max_in_service: max_in_service as i32,
        launch_batch,
        terminate_batch,
        order,
    }
}

/// The smallest MaxHealthyPercentage that gives `desired` one more instance exactly.
pub fn max_pct_for_one_extra(desired: i32) -> i32 {
    let d = desired.max(1);
    (100 * (d + 1) + d - 1) / d
}

fn refusal(check: &str, reason: String, fix: String) -> Refusal {
    Refusal {
        check: check.to_string(),
        reason,
        fix,
    }
}

/// A refresh that is not finished blocks a new one (only one runs per group). The fix
/// names the commands of `target` that watch it and that stop (or finish undoing) it.
pub fn check_running_refresh(
    target: &str,
    group: &str,
    refreshes: &[InstanceRefresh],
) -> Vec<Refusal> {
    let (watch, rollback) = (status_command(target), rollback_command(target));
    refreshes
        .iter()
        .filter(|r| !r.status.is_terminal())
        .map(|r| {
            let fix = if is_undoing(r.status) {
                format!(
                    "it is being undone: try again once it ends ({watch} shows it), or let \
                     {rollback} wait for it and finish the undo"
                )
            } else {
                format!("wait for it to finish ({watch} shows it), or stop it with {rollback}")
            };
            refusal(
                "refresh_running",
                format!(
                    "instance refresh {} on {group} is {:?} ({}% done)",
                    r.id, r.status, r.percentage_complete
                ),
                fix,
            )
        })
        .collect()
}

/// A refresh on its way back (rolling back or cancelling): AWS refuses to roll it back
/// again, and nothing but its end can be waited for.
pub fn is_undoing(status: RefreshStatus) -> bool {
    matches!(
        status,
        RefreshStatus::RollbackInProgress | RefreshStatus::Cancelling
    )
}

/// Suspended processes that would stall the replacement.
pub fn check_suspended(group: &Group) -> Vec<Refusal> {
    let blocking: Vec<&str> = group
        .suspended_processes
        .iter()
        .map(String::as_str)
        .filter(|p| BLOCKING_PROCESSES.contains(p))
        .collect();
    if blocking.is_empty() {
        return Vec::new();
    }
    vec![refusal(
        "suspended_processes",
        format!(
            "group {} has suspended processes {} that stall a refresh",
            group.name,
            blocking.join(", ")
        ),
        format!(
            "find out who suspended them (another deployer?), then resume them: \
             aws autoscaling resume-processes --auto-scaling-group-name {} \
             --scaling-processes {}",
            group.name,
            blocking.join(" ")
        ),
    )]
}

/// Protected and standby instances stall a refresh unless the settings decide for them.
pub fn check_protected_standby(group: &Group, settings: &RollingSettings) -> Vec<Refusal> {
    let protected: Vec<String> = group
        .instances
        .iter()
        .filter(|i| i.protected_from_scale_in)
        .map(|i| i.id.to_string())
        .collect();
    let standby: Vec<String> = group
        .instances
        .iter()
        .filter(|i| i.lifecycle_state.starts_with("Standby"))
        .map(|i| i.id.to_string())
        .collect();
    let mut out = Vec::new();
    if !protected.is_empty() && settings.protected_instances.is_none() {
        out.push(refusal(
            "protected_instances",
            format!(
                "group {} has scale-in protected instances ({}) that a refresh would wait on",
                group.name,
                protected.join(", ")
            ),
            "set protected_instances to Refresh (replace them too), Ignore (leave them on \
             the old image) or Wait (wait until their protection is removed)"
                .into(),
        ));
    }
    if !standby.is_empty() && settings.standby_instances.is_none() {
        out.push(refusal(
            "standby_instances",
            format!(
                "group {} has standby instances ({}) that a refresh would wait on",
                group.name,
                standby.join(", ")
            ),
            "set standby_instances to Terminate, Ignore (leave them on the old image) or \
             Wait (wait until they return to service)"
                .into(),
        ));
    }
    out
}

/// The group's own min/max/desired must be consistent and not empty.
pub fn check_group_sizes(group: &Group) -> Vec<Refusal> {
    let (min, max, desired) = (group.min_size, group.max_size, group.desired_capacity);
    let mut out = Vec::new();
    if desired < min || desired > max {
        out.push(refusal(
            "group_sizes",
            format!(
                "group {} has desired capacity {desired} outside min {min} .. max {max}",
                group.name
            ),
            "fix the group's sizes (another tool may be changing them) and plan again".into(),
        ));
    }
    if desired == 0 {
        out.push(refusal(
            "empty_group",
            format!(
                "group {} has no instances to replace (desired 0)",
                group.name
            ),
            "scale the group up first, or set its launch template version directly".into(),
        ));
    }
    out
}

/// The healthy percentages: valid for AWS, able to make progress, safe for the group.
/// Returns the refusals and, when launch-first needs more room than max size, the max
/// size kiln would raise the group to.
pub fn check_percentages(
    group: &Group,
    settings: &RollingSettings,
) -> (Vec<Refusal>, Capacity, Option<i32>) {
    let (min_pct, max_pct) = (
        settings.min_healthy_percentage,
        settings.max_healthy_percentage,
    );
    let cap = capacity(group.desired_capacity, min_pct, max_pct);
    let mut out = Vec::new();
    if !(0..=100).contains(&min_pct) || !(100..=200).contains(&max_pct) || max_pct - min_pct > 100 {
        out.push(refusal(
            "healthy_percentages",
            format!(
                "min_healthy_percentage {min_pct} / max_healthy_percentage {max_pct} are not \
                 accepted by AWS"
            ),
            "use min 0..100, max 100..200, and max - min at most 100".into(),
        ));
        return (out, cap, None);
    }
    if cap.desired <= 0 {
        return (out, cap, None);
    }
    out.extend(check_progress(group, &cap, min_pct, max_pct));
    out.extend(check_terminate_first(group, &cap));
    let (room, raise) = check_room(group, &cap, settings);
    out.extend(room);
    (out, cap, raise)
}

fn check_progress(group: &Group, cap: &Capacity, min_pct: i32, max_pct: i32) -> Vec<Refusal> {
    if cap.launch_batch > 0 || cap.terminate_batch > 0 {
        return Vec::new();
    }
    let d = cap.desired;
    let lower_min = 100 * (d - 1) / d;
    vec![refusal(
        "no_progress",
        format!(
            "on desired capacity {d} of group {}, min {min_pct}% keeps {} in service and max \
             {max_pct}% allows {}: no instance can be replaced within the bounds, and AWS \
             would replace one at a time below the minimum",
            group.name, cap.min_in_service, cap.max_in_service
        ),
        format!(
            "set max_healthy_percentage to at least {} (launch first), or \
             min_healthy_percentage to at most {lower_min}",
            max_pct_for_one_extra(d)
        ),
    )]
}

fn check_terminate_first(group: &Group, cap: &Capacity) -> Vec<Refusal> {
    let terminates = cap.terminate_batch > 0 || cap.launch_batch == 0;
    let fragile = cap.desired == 1 || group.min_size == cap.desired;
    if !terminates || !fragile {
        return Vec::new();
    }
    vec![refusal(
        "terminate_first",
        format!(
            "group {} (desired {}, min {}) would lose serving capacity: the refresh \
             terminates before its replacements are healthy ({})",
            group.name,
            cap.desired,
            group.min_size,
            cap.order.describe()
        ),
        format!(
            "launch first: min_healthy_percentage 100 and max_healthy_percentage at least {}",
            max_pct_for_one_extra(cap.desired)
        ),
    )]
}

fn check_room(
    group: &Group,
    cap: &Capacity,
    settings: &RollingSettings,
) -> (Vec<Refusal>, Option<i32>) {
    let needed = cap.desired + cap.launch_batch;
    if cap.launch_batch == 0 || group.max_size >= needed {
        return (Vec::new(), None);
    }
    if settings.raise_max_size {
        return (Vec::new(), Some(needed));
    }
    let fitting_pct = 100 * group.max_size / cap.desired.max(1);
    let lower = if fitting_pct > 100 {
        format!(", or lower max_healthy_percentage to {fitting_pct}")
    } else {
        String::new()
    };
    let reason = format!(
        "launching {} ahead on desired {} needs max size {needed}, but group {} has max \
         size {}",
        cap.launch_batch, cap.desired, group.name, group.max_size
    );
    let fix = format!(
        "raise the group's max size to {needed}, or set raise_max_size: true to let kiln \
         raise it for the rollout and restore it after{lower}"
    );
    (vec![refusal("max_size", reason, fix)], None)
}

/// An in-place batch leaves serving the instances not in it. It may take out those above
/// the group's min size (the capacity its owners say it needs), or one instance when none
/// is above it, so that a fix can make progress; never all of them (PITFALLS 4).
pub fn check_in_place_batch(group: &Group, batch_size: usize) -> Vec<Refusal> {
    let in_service = group.instances.iter().filter(|i| i.in_service()).count();
    let min = usize::try_from(group.min_size).unwrap_or(0);
    if in_service <= 1 {
        return vec![refusal(
            "in_place_batch",
            format!(
                "group {} has {in_service} instance(s) in service: an in-place batch would \
                 take the application down while it is fixed",
                group.name
            ),
            "scale the group to at least 2 first, or roll out a fixed image with a rolling \
             refresh (launch first)"
                .into(),
        )];
    }
    let allowed = in_service.saturating_sub(min).clamp(1, in_service - 1);
    if batch_size <= allowed {
        return Vec::new();
    }
    let taken = batch_size.min(in_service);
    vec![refusal(
        "in_place_batch",
        format!(
            "in-place batch_size {batch_size} takes {taken} of the {in_service} in-service \
             instances of group {} (min size {}) out of the target group at once, leaving {} \
             serving",
            group.name,
            group.min_size,
            in_service - taken
        ),
        format!(
            "set in_place.batch_size to at most {allowed}: a batch may take out the instances \
             above the group's min size, or one when none is above it, never all"
        ),
    )]
}

/// Where the warm-up comes from, so the plan can say it (PITFALLS 7).
pub fn warmup(
    settings: &RollingSettings,
    target_group: Option<&TargetGroup>,
    group: &Group,
) -> (Duration, String) {
    if let Some(w) = settings.instance_warmup {
        return (w, "set in the pipeline".into());
    }
    if let Some(tg) = target_group {
        let hc = &tg.health_check;
        let checks = hc.interval * hc.healthy_threshold.max(1) as u32;
        let derived = checks + settings.boot_time;
        // The group's own warm-up is what its operators measured; a shorter derived one
        // would take old capacity away before the new can serve (PITFALLS 7).
        if let Some(own) = group.default_instance_warmup.filter(|own| *own > derived) {
            return (
                own,
                format!(
                    "the group's default instance warm-up ({} s), longer than its target \
                     group's checks + boot time ({} s)",
                    own.as_secs(),
                    derived.as_secs()
                ),
            );
        }
        return (
            derived,
            format!(
                "target group {}: healthy threshold {} x interval {} s + boot time {} s",
                tg.name,
                hc.healthy_threshold,
                hc.interval.as_secs(),
                settings.boot_time.as_secs()
            ),
        );
    }
    let base = group
        .default_instance_warmup
        .unwrap_or(group.health_check_grace);
    let w = base.max(settings.boot_time);
    (
        w,
        format!(
            "no target group: the group's warm-up or grace ({} s), at least the boot time",
            base.as_secs()
        ),
    )
}
