//! Instance refresh in the simulation, as the Auto Scaling documentation describes it.
//!
//! - MaxHealthyPercentage above 100: launch before terminating. A batch of new instances
//!   (up to max% of desired, above desired) is launched; once they are healthy and warmed
//!   up, as many old instances are terminated. With MinHealthyPercentage below 100 as
//!   well, `desired - ceil(desired * min%)` old instances also go when the batch starts.
//! - Otherwise: terminate first, in batches of `desired - ceil(desired * min%)` (at least
//!   one, so a group of one loses its only instance, PITFALLS 4), computed from the
//!   *current* desired capacity; the group launches the replacements.
//! - A replacement counts when in service, healthy (ELB too, for ELB health checks) and
//!   past its warm-up. Checkpoints hold the refresh InProgress for their delay.
//! - Failure: when [`FAILED_REPLACEMENTS_LIMIT`] replacement instances failed their health
//!   checks, or a batch was not ready within [`BATCH_DEADLINE_SECS`]. AWS documents no
//!   exact count; it keeps replacing and gives up after roughly an hour (PITFALLS 8).
//!   The simulation gives up after three failed replacements, which is what an operator
//!   sees as "the new instances never become healthy" well before the hour.
//! - The desired configuration is written to the group only when the refresh succeeds;
//!   a rollback replaces the instances launched so far with the original configuration.

use std::collections::BTreeSet;

use crate::error::{CloudResult, ErrorKind};
use crate::types::*;

use super::model::*;
use super::scaling::{self, active, STANDBY, TERMINATING};
use super::templates;
use super::world::World;

/// Replacement instances that may fail health checks before the refresh fails.
pub const FAILED_REPLACEMENTS_LIMIT: i32 = 3;
/// A batch that is not ready after this long fails the refresh (AWS's hour).
pub const BATCH_DEADLINE_SECS: u64 = 3600;
/// Auto Scaling accepts MaxHealthyPercentage up to 200 (and at most 100 above the minimum).
const MAX_HEALTHY_CEILING: i32 = 200;
/// CheckpointDelay when checkpoints are given without one (AWS's default).
const DEFAULT_CHECKPOINT_DELAY_SECS: u64 = 3600;

fn active_index(r: &Region, group: &str) -> Option<usize> {
    r.refreshes
        .iter()
        .rposition(|x| x.refresh.group == group && !x.refresh.status.is_terminal())
}

fn invalid(w: &World, group: &str, msg: impl Into<String>) -> crate::CloudError {
    w.err(
        ErrorKind::Validation,
        "StartInstanceRefresh",
        group,
        "ValidationError",
        msg,
    )
}

fn check_preferences(w: &World, req: &StartRefresh, floating: bool) -> CloudResult<()> {
    let p = &req.preferences;
    let (min, max) = (p.min_healthy_percentage, p.max_healthy_percentage);
    if !(0..=100).contains(&min) || !(100..=MAX_HEALTHY_CEILING).contains(&max) || max - min > 100 {
        let msg = format!(
            "MinHealthyPercentage {min} must be 0..=100, MaxHealthyPercentage {max} \
             100..=200, at most 100 apart"
        );
        return Err(invalid(w, &req.group, msg));
    }
    let ascending = p.checkpoint_percentages.windows(2).all(|x| x[0] < x[1]);
    let in_range = p
        .checkpoint_percentages
        .iter()
        .all(|c| (1..=100).contains(c));
    if !ascending || !in_range {
        return Err(invalid(
            w,
            &req.group,
            "checkpoint percentages must ascend within 1..=100",
        ));
    }
    if p.checkpoint_delay.is_some() && p.checkpoint_percentages.is_empty() {
        return Err(invalid(
            w,
            &req.group,
            "CheckpointDelay needs CheckpointPercentages",
        ));
    }
    if p.auto_rollback && (req.desired.is_none() || floating) {
        let msg = "auto rollback needs a desired configuration \
                   and a group on a numbered template version";
        return Err(invalid(w, &req.group, msg));
    }
    for alarm in &p.alarm_names {
        if !w.r.alarms.contains_key(alarm) {
            return Err(w.not_found("StartInstanceRefresh", alarm, "ResourceNotFound"));
        }
    }
    Ok(())
}

pub fn start(w: &mut World, req: &StartRefresh) -> CloudResult<String> {
    const OP: &str = "StartInstanceRefresh";
    let g = scaling::group(w, OP, &req.group)?.clone();
    if active_index(w.r, &req.group).is_some() {
        let msg = format!(
            "an instance refresh is already in progress for {}",
            req.group
        );
        return Err(w.err(
            ErrorKind::Conflict,
            OP,
            &req.group,
            "InstanceRefreshInProgress",
            msg,
        ));
    }
    let Some(original) = g.group.launch_template.clone() else {
        return Err(invalid(w, &req.group, "the group has no launch template"));
    };
    check_preferences(w, req, original.is_floating())?;
    let target_ref = req.desired.clone().unwrap_or_else(|| original.clone());
    let (t, n) = templates::resolve(w, OP, &target_ref)?;
    // Matching is judged on the version the reference stands for now; launches resolve
    // it again, so `$Latest` follows versions written during the refresh (PITFALLS 1).
    let target = templates::numbered(&t, n);
    let p = &req.preferences;
    let to_replace: BTreeSet<InstanceId> = g
        .members
        .iter()
        .filter(|m| {
            active(m) || (m.lifecycle == STANDBY && p.standby_instances != StandbyInstances::Ignore)
        })
        .filter(|m| !(m.protected && p.scale_in_protected_instances == ProtectedInstances::Ignore))
        .filter(|m| !(p.skip_matching && same(&m.template, &target)))
        .map(|m| m.id.clone())
        .collect();
    let id = w.meta.uuid();
    let refresh = InstanceRefresh {
        id: id.clone(),
        group: req.group.clone(),
        status: RefreshStatus::Pending,
        status_reason: None,
        percentage_complete: 0,
        instances_to_update: to_replace.len() as i32,
        start_time: Some(w.now),
        end_time: None,
        desired: req.desired.clone(),
        preferences: Some(p.clone()),
    };
    let total = to_replace.len() as i32;
    w.r.refreshes.push(SimRefresh {
        refresh,
        original,
        target: target_ref,
        to_replace,
        total,
        replaced: 0,
        failed_replacements: 0,
        batch_started_at: None,
        checkpoint_until: None,
        next_checkpoint: 0,
        rollback_reason: None,
    });
    Ok(id)
}

/// Same template and version.
fn same(a: &GroupTemplate, b: &GroupTemplate) -> bool {
    a.template_id == b.template_id && a.version == b.version
}

pub fn describe(w: &mut World, group: &str) -> CloudResult<Vec<InstanceRefresh>> {
    scaling::group(w, "DescribeInstanceRefreshes", group)?;
    let mine =
        w.r.refreshes
            .iter()
            .rev()
            .filter(|x| x.refresh.group == group);
    Ok(mine.map(|x| x.refresh.clone()).collect())
}

fn no_active(w: &World, op: &'static str, group: &str) -> crate::CloudError {
    let msg = format!("no instance refresh in progress for {group}");
    w.err(
        ErrorKind::NotFound,
        op,
        group,
        "ActiveInstanceRefreshNotFound",
        msg,
    )
}

pub fn cancel(w: &mut World, group: &str) -> CloudResult<()> {
    const OP: &str = "CancelInstanceRefresh";
    scaling::group(w, OP, group)?;
    let Some(i) = active_index(w.r, group) else {
        return Err(no_active(w, OP, group));
    };
    let x = &mut w.r.refreshes[i];
    x.refresh.status = RefreshStatus::Cancelling;
    x.refresh.status_reason = Some("Cancellation requested".into());
    Ok(())
}

pub fn rollback(w: &mut World, group: &str) -> CloudResult<()> {
    const OP: &str = "RollbackInstanceRefresh";
    scaling::group(w, OP, group)?;
    let i = active_index(w.r, group).filter(|&i| {
        matches!(
            w.r.refreshes[i].refresh.status,
            RefreshStatus::InProgress | RefreshStatus::Pending | RefreshStatus::Baking
        )
    });
    let Some(i) = i else {
        return Err(no_active(w, OP, group));
    };
    let x = &w.r.refreshes[i];
    if x.refresh.desired.is_none() || x.original.is_floating() {
        let msg = "a refresh without a desired configuration, \
                   or on a $Latest/$Default group, cannot roll back";
        return Err(w.err(
            ErrorKind::Validation,
            OP,
            group,
            "IrreversibleInstanceRefresh",
            msg,
        ));
    }
    begin_rollback(w, i, "Rollback requested by the user".into());
    Ok(())
}

/// Forgets a deleted group's active refresh.
pub fn forget_group(w: &mut World, group: &str) {
    if let Some(i) = active_index(w.r, group) {
        finish(
            w,
            i,
            RefreshStatus::Cancelled,
            Some("The group was deleted".into()),
        );
    }
}

/// The configuration the group launches from now: the refresh's target while one runs.
pub fn launch_template(w: &World, group: &str) -> GroupTemplate {
    match active_index(w.r, group) {
        Some(i) if w.r.refreshes[i].refresh.status != RefreshStatus::Cancelling => {
            w.r.refreshes[i].target.clone()
        }
        _ => w.r.groups[group]
            .group
            .launch_template
            .clone()
            .expect("groups have a template"),
    }
}

/// The zones of the old instances the group's running refresh still has to replace.
pub fn replacing_zones(w: &World, group: &str) -> BTreeSet<String> {
    let (Some(i), Some(g)) = (active_index(w.r, group), w.r.groups.get(group)) else {
        return BTreeSet::new();
    };
    let x = &w.r.refreshes[i];
    g.members
        .iter()
        .filter(|m| x.to_replace.contains(&m.id) && m.lifecycle != TERMINATING)
        .map(|m| m.availability_zone.clone())
        .collect()
}

/// A member failed its health checks: count it if it was a replacement.
pub fn note_unhealthy(w: &mut World, group: &str, id: &InstanceId) {
    if let Some(i) = active_index(w.r, group) {
        let x = &mut w.r.refreshes[i];
        if !x.to_replace.contains(id) {
            x.failed_replacements += 1;
        }
    }
}

fn finish(w: &mut World, i: usize, status: RefreshStatus, reason: Option<String>) {
    let now = w.now;
    let x = &mut w.r.refreshes[i];
    x.refresh.status = status;
    x.refresh.status_reason = reason;
    x.refresh.end_time = Some(now);
    let group = x.refresh.group.clone();
    if let Some(g) = w.r.groups.get_mut(&group) {
        g.surge = 0;
    }
    tracing::debug!(group, ?status, "simulated instance refresh finished");
}

fn fail(w: &mut World, i: usize, reason: String) {
    let x = &w.r.refreshes[i];
    let auto = x
        .refresh
        .preferences
        .as_ref()
        .is_some_and(|p| p.auto_rollback);
    match x.refresh.status {
        RefreshStatus::RollbackInProgress => {
            finish(w, i, RefreshStatus::RollbackFailed, Some(reason))
        }
        _ if auto => begin_rollback(w, i, reason),
        _ => finish(w, i, RefreshStatus::Failed, Some(reason)),
    }
}

fn begin_rollback(w: &mut World, i: usize, reason: String) {
    let x = &w.r.refreshes[i];
    let group = x.refresh.group.clone();
    let Ok((t, n)) = templates::resolve(w, "RollbackInstanceRefresh", &x.original) else {
        finish(
            w,
            i,
            RefreshStatus::RollbackFailed,
            Some(format!("{reason}; original template is gone")),
        );
        return;
    };
    let original = templates::numbered(&t, n);
    drop_surge(w, &group, &original);
    let g = w.r.groups.get_mut(&group).expect("refreshes have groups");
    let to_replace: BTreeSet<InstanceId> = g
        .members
        .iter()
        .filter(|m| m.lifecycle != TERMINATING && !same(&m.template, &original))
        .map(|m| m.id.clone())
        .collect();
    let x = &mut w.r.refreshes[i];
    x.refresh.status = RefreshStatus::RollbackInProgress;
    x.refresh.status_reason = Some(reason.clone());
    x.rollback_reason = Some(reason);
    x.refresh.percentage_complete = 0;
    x.refresh.instances_to_update = to_replace.len() as i32;
    x.total = to_replace.len() as i32;
    x.to_replace = to_replace;
    x.target = original;
    x.replaced = 0;
    x.failed_replacements = 0;
    x.batch_started_at = None;
    x.checkpoint_until = None;
    x.next_checkpoint = usize::MAX;
}

/// Ends a launch-first batch in flight at a rollback: the surge's new instances that are
/// not serving yet go first, so the group falls back to its desired capacity without
/// a scale-in that would pick a serving old instance.
fn drop_surge(w: &mut World, group: &str, original: &GroupTemplate) {
    let g = w.r.groups.get_mut(group).expect("refreshes have groups");
    g.surge = 0;
    let desired = g.group.desired_capacity.max(0) as usize;
    let surplus = g
        .members
        .iter()
        .filter(|m| active(m))
        .count()
        .saturating_sub(desired);
    let g = &w.r.groups[group];
    let mut extra: Vec<&Member> = g
        .members
        .iter()
        .filter(|m| active(m) && !same(&m.template, original))
        .collect();
    // Not serving first, then the newest.
    extra.sort_by_key(|m| {
        let serving = scaling::ready(w.r, g, m, chrono::Duration::zero(), w.now);
        (serving, std::cmp::Reverse(m.launched_at))
    });
    let ids: Vec<InstanceId> = extra.iter().take(surplus).map(|m| m.id.clone()).collect();
    for id in &ids {
        scaling::start_terminating(w, group, id);
    }
}

// ---------------------------------------------------------------------------------------
// Time passing

pub fn step(w: &mut World, group: &str) -> bool {
    let Some(i) = active_index(w.r, group) else {
        return false;
    };
    match w.r.refreshes[i].refresh.status {
        RefreshStatus::Pending => {
            w.r.refreshes[i].refresh.status = RefreshStatus::InProgress;
            true
        }
        RefreshStatus::Cancelling => {
            finish(
                w,
                i,
                RefreshStatus::Cancelled,
                Some("Cancelled by the user".into()),
            );
            true
        }
        RefreshStatus::InProgress | RefreshStatus::RollbackInProgress => advance(w, i, group),
        _ => false,
    }
}

fn set_reason(w: &mut World, i: usize, reason: Option<String>) -> bool {
    let x = &mut w.r.refreshes[i];
    let changed = x.refresh.status_reason != reason;
    x.refresh.status_reason = reason;
    changed
}

fn advance(w: &mut World, i: usize, group: &str) -> bool {
    if let Some(reason) = blocked(w, i, group) {
        if reason.starts_with("alarm")
            || reason.starts_with("replacement")
            || reason.starts_with("batch")
        {
            fail(w, i, reason);
            return true;
        }
        return set_reason(w, i, Some(reason));
    }
    let g = &w.r.groups[group];
    let x = &w.r.refreshes[i];
    let warmup = warmup(x, g);
    let busy = g.members.iter().any(|m| {
        !x.to_replace.contains(&m.id)
            && m.lifecycle != TERMINATING
            && m.lifecycle != STANDBY
            && !scaling::ready(w.r, g, m, warmup, w.now)
    });
    // A launch-first batch is complete only with its whole surge in service: a surge
    // instance replaced for failing its health checks leaves the group short, and AWS
    // keeps every old instance until its replacement is healthy.
    let wanted = (g.group.desired_capacity + g.surge).max(0) as usize;
    let short = g.members.iter().filter(|m| active(m)).count() < wanted;
    if busy || short {
        return false;
    }
    batch_done(w, i, group)
}

/// Why the refresh cannot move now; failures start with `alarm`, `replacement`, `batch`.
fn blocked(w: &World, i: usize, group: &str) -> Option<String> {
    let x = &w.r.refreshes[i];
    let g = &w.r.groups[group];
    let p = x.refresh.preferences.as_ref()?;
    if x.refresh.status == RefreshStatus::InProgress {
        let alarm = p.alarm_names.iter().find(|a| {
            w.r.alarms
                .get(*a)
                .is_some_and(|s| s.alarm.state == AlarmState::Alarm)
        });
        if let Some(a) = alarm {
            return Some(format!(
                "alarm {a} went into ALARM state during the instance refresh"
            ));
        }
    }
    if x.failed_replacements >= FAILED_REPLACEMENTS_LIMIT {
        return Some(format!(
            "replacement instances failed health checks {} times: \
             the new configuration does not become healthy",
            x.failed_replacements
        ));
    }
    let launch_failing = g.launch_retry_at.is_some() && x.batch_started_at.is_some();
    if let (true, Some(e)) = (launch_failing, &g.last_launch_error) {
        return Some(format!("batch could not launch replacement instances: {e}"));
    }
    if x.batch_started_at
        .is_some_and(|t| t + secs(BATCH_DEADLINE_SECS) <= w.now)
    {
        return Some("batch not ready within an hour: new instances did not become healthy".into());
    }
    ["Launch", "Terminate", "InstanceRefresh"]
        .iter()
        .find(|p| scaling::suspended(g, p))
        .map(|p| format!("Waiting: the {p} process is suspended"))
}

fn warmup(x: &SimRefresh, g: &SimGroup) -> chrono::Duration {
    let p = x.refresh.preferences.as_ref();
    let d = p.map(|p| p.instance_warmup).filter(|d| !d.is_zero());
    dur(d
        .or(g.group.default_instance_warmup)
        .unwrap_or(g.group.health_check_grace))
}

/// The previous batch is in service: checkpoint, finish, or start the next batch.
fn batch_done(w: &mut World, i: usize, group: &str) -> bool {
    let g = w.r.groups[group].clone();
    let x = &mut w.r.refreshes[i];
    x.to_replace.retain(|id| {
        g.members
            .iter()
            .any(|m| &m.id == id && m.lifecycle != TERMINATING)
    });
    let remaining = x.to_replace.len() as i32;
    if g.surge > 0 {
        return terminate_after_surge(w, i, group);
    }
    x.replaced = x.total - remaining;
    x.refresh.instances_to_update = remaining;
    x.refresh.percentage_complete = if x.total == 0 {
        100
    } else {
        x.replaced * 100 / x.total
    };
    if let Some(changed) = checkpoint(w, i) {
        return changed;
    }
    let x = &w.r.refreshes[i];
    let p = x
        .refresh
        .preferences
        .clone()
        .expect("refreshes keep their preferences");
    let eligible: Vec<InstanceId> = eligible(&g, x, &p);
    if remaining == 0 {
        // Done once the last replaced instances have drained and terminated.
        if g.members.iter().any(|m| m.lifecycle == TERMINATING) {
            return false;
        }
        return succeed(w, i, group);
    }
    if eligible.is_empty() {
        return set_reason(
            w,
            i,
            Some("Waiting for scale-in protected or standby instances".into()),
        );
    }
    start_batch(w, i, group, &p, eligible)
}

/// Old instances that may be replaced now, oldest first.
fn eligible(g: &SimGroup, x: &SimRefresh, p: &RefreshPreferences) -> Vec<InstanceId> {
    let mut out: Vec<&Member> = g
        .members
        .iter()
        .filter(|m| x.to_replace.contains(&m.id) && m.lifecycle != TERMINATING)
        .filter(|m| !(m.protected && p.scale_in_protected_instances == ProtectedInstances::Wait))
        .filter(|m| !(m.lifecycle == STANDBY && p.standby_instances == StandbyInstances::Wait))
        .collect();
    out.sort_by_key(|m| m.launched_at);
    out.into_iter().map(|m| m.id.clone()).collect()
}

/// `n` of the old instances, each from the zone with the most active members then (the
/// oldest first within a zone): Auto Scaling keeps the zones balanced as it replaces, so
/// a group of one instance per zone stays so.
fn balanced_victims(g: &SimGroup, mut old: Vec<InstanceId>, n: usize) -> Vec<InstanceId> {
    let zone = |id: &InstanceId| {
        g.members
            .iter()
            .find(|m| &m.id == id)
            .map(|m| m.availability_zone.clone())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for _ in 0..n {
        let load = |z: &str| {
            let members = g
                .members
                .iter()
                .filter(|m| active(m) && m.availability_zone == z);
            members.filter(|m| !out.contains(&m.id)).count()
        };
        // `old` is oldest first: the first of the busiest zone wins a tie.
        let Some(pick) =
            (0..old.len()).max_by_key(|&i| (load(&zone(&old[i])), std::cmp::Reverse(i)))
        else {
            break;
        };
        out.push(old.remove(pick));
    }
    out
}

/// `Some` when the refresh holds at a checkpoint (the value says if anything changed).
fn checkpoint(w: &mut World, i: usize) -> Option<bool> {
    let now = w.now;
    let x = &mut w.r.refreshes[i];
    if let Some(until) = x.checkpoint_until {
        if now < until {
            return Some(false);
        }
        x.checkpoint_until = None;
        x.refresh.status_reason = None;
    }
    let p = x.refresh.preferences.as_ref()?;
    let next = *p.checkpoint_percentages.get(x.next_checkpoint)?;
    if x.refresh.percentage_complete < next {
        return None;
    }
    let delay = p
        .checkpoint_delay
        .map_or(secs(DEFAULT_CHECKPOINT_DELAY_SECS), dur);
    x.next_checkpoint += 1;
    x.checkpoint_until = Some(now + delay);
    x.refresh.status_reason = Some(format!(
        "Waiting for checkpoint at {next}% ({}% complete) to pass its delay",
        x.refresh.percentage_complete
    ));
    Some(true)
}

fn succeed(w: &mut World, i: usize, group: &str) -> bool {
    let x = &mut w.r.refreshes[i];
    x.refresh.percentage_complete = 100;
    x.refresh.instances_to_update = 0;
    let rollback = x.refresh.status == RefreshStatus::RollbackInProgress;
    let desired = x.refresh.desired.clone();
    if !rollback {
        if let Some(d) = desired {
            // Only now does the group take the desired configuration (PITFALLS 2).
            w.r.groups
                .get_mut(group)
                .expect("exists")
                .group
                .launch_template = Some(d);
        }
    }
    let (status, reason) = if rollback {
        let reason = w.r.refreshes[i].rollback_reason.clone();
        (RefreshStatus::RollbackSuccessful, reason)
    } else {
        (RefreshStatus::Successful, None)
    };
    finish(w, i, status, reason);
    true
}

fn start_batch(
    w: &mut World,
    i: usize,
    group: &str,
    p: &RefreshPreferences,
    eligible: Vec<InstanceId>,
) -> bool {
    let desired = w.r.groups[group].group.desired_capacity;
    let now = w.now;
    let x = &mut w.r.refreshes[i];
    x.batch_started_at = Some(now);
    x.refresh.status_reason = x.rollback_reason.clone();
    let keep = (desired * p.min_healthy_percentage + 99) / 100;
    let mut batch = ((desired - keep).max(1) as usize).min(eligible.len());
    if p.max_healthy_percentage > 100 {
        let room = (desired * p.max_healthy_percentage / 100 - desired).max(1);
        let surge = room.min(eligible.len() as i32);
        w.r.groups.get_mut(group).expect("exists").surge = surge;
        // Below 100 % minimum, old instances also go at once (launch and terminate).
        let spare = (desired - keep).max(0) as usize;
        batch = spare.min(eligible.len() - surge as usize);
    }
    for id in &eligible[..batch] {
        scaling::start_terminating(w, group, id);
    }
    true
}

/// The surge is in service: terminate as many old instances and end the surge.
fn terminate_after_surge(w: &mut World, i: usize, group: &str) -> bool {
    let g = w.r.groups[group].clone();
    let x = &w.r.refreshes[i];
    let p = x
        .refresh
        .preferences
        .clone()
        .expect("refreshes keep their preferences");
    let old = eligible(&g, x, &p);
    let n = (g.surge as usize).min(old.len());
    w.r.groups.get_mut(group).expect("exists").surge = 0;
    for id in &balanced_victims(&g, old, n) {
        scaling::start_terminating(w, group, id);
    }
    let x = &mut w.r.refreshes[i];
    x.replaced = (x.replaced + n as i32).min(x.total);
    x.refresh.instances_to_update = x.total - x.replaced;
    x.refresh.percentage_complete = if x.total == 0 {
        100
    } else {
        x.replaced * 100 / x.total
    };
    true
}
