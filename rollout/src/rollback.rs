//! `rollback` by hand (`kiln rollback`): a running refresh is rolled back by AWS; a
//! finished rollout is undone by a refresh back to the version recorded on the group.
//! Nothing to undo (no rollout recorded, or the group already back on the recorded
//! version) is a result, not a failure: a retried CI job must not page anyone.

use kiln_cloud::{
    Cloud, ErrorKind, Group, ImageId, InstanceId, InstanceRefresh, Progress, RefreshStatus,
    TAG_RUN_ID,
};
use tokio_util::sync::CancellationToken;

use crate::error::{human, rollback_command, status_command, RolloutError, StopReason};
use crate::events::Emitter;
use crate::fixed;
use crate::lock;
use crate::outcome::{status, RolloutOutcome};
use crate::plan::planned;
use crate::preflight::is_undoing;
use crate::refresh::{chrono_of, is_rolled_back, RefreshRun, Watched};
use crate::run::{
    on_new_image, outcome, running as running_now, template_ref, version_image, Running, Timings,
    TAG_PREVIOUS_VERSION, TAG_TARGET, TAG_VERSION,
};
use crate::spec::{Gates, RollingSettings, RolloutSpec, Strategy, Timeouts};

/// Undoes the last rollout of `group`.
pub async fn rollback(
    cloud: &Cloud,
    group: &str,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<RolloutOutcome, RolloutError> {
    let cloud = &crate::patient::patient(cloud);
    let emit = Emitter {
        progress,
        clock: &*cloud.clock,
    };
    let g = lock::describe(cloud, group).await?;
    let serving = crate::bluegreen::serving(cloud, &g).await?;
    if let Some((run, state)) = fixed::last_fix(&serving.tags) {
        return Err(no_undo(cloud, &serving, &run, &state).await?);
    }
    if let Some(out) = crate::bluegreen::switch_back(cloud, &g, &emit).await? {
        return Ok(out);
    }
    if let Some(green) = switched_back_last(cloud, &serving).await? {
        // A retried rollback must not go on to undo the release before.
        let why = format!(
            "the blue/green rollout to {green} is rolled back already: group {} takes the \
             traffic again",
            serving.name
        );
        return nothing(cloud, &serving, why).await;
    }
    let refreshes = cloud.scaling.describe_instance_refreshes(group).await?;
    if let Some(running) = refreshes.iter().find(|r| !r.status.is_terminal()) {
        return roll_back_running(cloud, &g, running, &emit, cancel).await;
    }
    refresh_back(cloud, &g, refreshes.first(), &emit, cancel).await
}

/// Why the last rollout of `g`, the in-place fix of `run`, cannot be rolled back: how it
/// ended, where the instances are now, and the same advice a failed fix gives.
async fn no_undo(
    cloud: &Cloud,
    g: &Group,
    run: &str,
    state: &str,
) -> Result<RolloutError, RolloutError> {
    let (tg, out) = out_of_target_group(cloud, g).await?;
    let now = running_now(cloud, g).await?;
    let tg_text = tg.as_deref().unwrap_or("its target group");
    let place = if out.is_empty() {
        format!("every instance in service is in {tg_text}")
    } else {
        let ids: Vec<&str> = out.iter().map(InstanceId::as_str).collect();
        format!("{} out of target group {tg_text}", ids.join(", "))
    };
    let detail = format!(
        "the last rollout of {} was an in-place fix (run {run}: {state}), which has no \
         rollback. Now: {place}",
        g.name
    );
    let next = fixed::advice(&out, tg.as_deref(), now.version, now.image.as_ref());
    Ok(RolloutError::NoUndo {
        group: g.name.clone(),
        region: cloud.region.clone(),
        detail,
        next,
        needs_attention: !out.is_empty() || !state.starts_with(status::SUCCESSFUL),
    })
}

/// The group's (first) target group by name, and its in-service instances that target
/// group does not count in service; no target group, no instance out.
async fn out_of_target_group(
    cloud: &Cloud,
    g: &Group,
) -> Result<(Option<String>, Vec<InstanceId>), RolloutError> {
    let Some(arn) = g.target_group_arns.first() else {
        return Ok((None, Vec::new()));
    };
    let all = cloud.load_balancing.describe_target_groups(&[]).await?;
    let name = all.into_iter().find(|t| &t.arn == arn).map(|t| t.name);
    let health = cloud.load_balancing.describe_target_health(arn).await?;
    Ok((name, fixed::out_of_service(g, &health)))
}

/// AWS's own rollback of a refresh in progress; allowed while another run holds the
/// lock (that run sees its refresh end), because stopping a bad rollout cannot wait. A
/// refresh already on its way back (a killed run's undo, AWS's automatic rollback, a
/// cancel) is waited for instead: AWS refuses to roll it back again.
async fn roll_back_running(
    cloud: &Cloud,
    g: &Group,
    running: &InstanceRefresh,
    emit: &Emitter<'_>,
    cancel: &CancellationToken,
) -> Result<RolloutOutcome, RolloutError> {
    let mut timings = Timings::new(&*cloud.clock);
    if let Some(h) = lock::holder_of(&g.tags) {
        emit.warn(
            "rollback",
            &g.name,
            format!("rolling back the refresh of {h}"),
        );
    }
    request_rollback(cloud, &g.name, running, emit).await?;
    let ended = wait_end(cloud, g, &running.id, cancel).await?;
    timings.lap("rollback");
    let after = lock::describe(cloud, &g.name).await?;
    if !is_rolled_back(ended.status) {
        // Cancelled or ended without AWS's undo: what it replaced goes back as after any
        // refresh that ended.
        emit.warn(
            "rollback",
            &g.name,
            format!("instance refresh {} ended {:?}", ended.id, ended.status),
        );
        return refresh_back(cloud, &after, Some(&ended), emit, cancel).await;
    }
    let label = if ended.status == RefreshStatus::RollbackSuccessful {
        status::ROLLED_BACK
    } else {
        status::ROLLBACK_FAILED
    };
    // What the instances run once AWS is done, not what the tags planned.
    let now = running_now(cloud, &after).await?;
    let towards = running.desired.as_ref().and_then(|d| d.numbered_version());
    let mut out = result_of(&after, now, label, timings.list);
    out.previous_version = towards.unwrap_or_default();
    Ok(out)
}

/// Asks AWS to roll back `running`, unless it is on its way back already; one that began
/// its own undo or ended since it was read is waited for all the same.
async fn request_rollback(
    cloud: &Cloud,
    group: &str,
    running: &InstanceRefresh,
    emit: &Emitter<'_>,
) -> Result<(), RolloutError> {
    let id = &running.id;
    if is_undoing(running.status) {
        let text = format!(
            "instance refresh {id} is {:?} already: waiting for it to end",
            running.status
        );
        emit.info("rollback", group, text);
        return Ok(());
    }
    match cloud.scaling.rollback_instance_refresh(group).await {
        Ok(()) => {
            let text = format!("rollback of refresh {id} requested");
            emit.info("rollback", group, text);
            Ok(())
        }
        Err(e) if e.is(ErrorKind::NotFound) => {
            let text = format!("refresh {id} changed since it was read ({e}): waiting for it");
            emit.info("rollback", group, text);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A rollback's result, from what the group runs now.
fn result_of(
    g: &Group,
    now: Running,
    label: &str,
    timings: Vec<(String, std::time::Duration)>,
) -> RolloutOutcome {
    RolloutOutcome {
        target: g
            .tags
            .get(TAG_TARGET)
            .cloned()
            .unwrap_or_else(|| g.name.clone()),
        group: g.name.clone(),
        strategy: "rollback".into(),
        launch_template_version: now.version,
        previous_version: now.version,
        status: label.into(),
        desired: g.desired_capacity,
        on_new_image: now.on_image,
        image: now.image,
        note: None,
        timings,
    }
}

/// Nothing to roll back, and why; the group is left as it is.
async fn nothing(cloud: &Cloud, g: &Group, why: String) -> Result<RolloutOutcome, RolloutError> {
    let now = running_now(cloud, g).await?;
    let mut out = result_of(g, now, status::NOTHING_TO_ROLL_BACK, Vec::new());
    out.note = Some(why);
    Ok(out)
}

/// Polls a refresh to its end, within the default rollback deadline; a cancel stops the
/// wait (AWS goes on with the refresh) and says how to take it up again.
async fn wait_end(
    cloud: &Cloud,
    g: &Group,
    id: &str,
    cancel: &CancellationToken,
) -> Result<InstanceRefresh, RolloutError> {
    let timeouts = Timeouts::default();
    let deadline = cloud.clock.now() + chrono_of(timeouts.rollback);
    loop {
        let cancelled = tokio::select! {
            _ = cancel.cancelled() => true,
            _ = tokio::time::sleep(timeouts.poll) => false,
        };
        if cancelled {
            return Err(stopped_waiting(cloud, g, id).await);
        }
        let list = match cloud.scaling.describe_instance_refreshes(&g.name).await {
            Ok(list) => list,
            // Throttled: the deadline bounds the retries.
            Err(e) if e.is_transient() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        if let Some(r) = list.into_iter().find(|r| r.id == id) {
            if r.status.is_terminal() {
                return Ok(r);
            }
        }
        if cloud.clock.now() >= deadline {
            let waited = human(timeouts.rollback);
            let detail = format!("refresh {id} still rolling back after {waited}");
            return Err(rollback_failed(cloud, &g.name, detail));
        }
    }
}

/// A rollback cancelled while it waited for refresh `id`: nothing of its own to undo.
async fn stopped_waiting(cloud: &Cloud, g: &Group, id: &str) -> RolloutError {
    let target = g.tags.get(TAG_TARGET).unwrap_or(&g.name);
    let left = format!(
        "instance refresh {id} goes on in AWS; {} shows it, {} waits for it again",
        status_command(target),
        rollback_command(target)
    );
    let now = running_now(cloud, g).await.unwrap_or_else(|_| Running {
        version: g
            .launch_template
            .as_ref()
            .and_then(|t| t.numbered_version())
            .unwrap_or_default(),
        image: None,
        on_image: 0,
    });
    let outcome = result_of(g, now, status::CANCELLED, Vec::new());
    RolloutError::Stopped {
        group: g.name.clone(),
        region: cloud.region.clone(),
        reason: Box::new(StopReason::Cancelled),
        rolled_back: false,
        outcome: Box::new(outcome),
        left: Some(left),
    }
}

/// The green group of the blue/green rollout a rollback switched `g` back from, when
/// that rollout is still the last one on `g` (no later run of kiln's is recorded on it).
async fn switched_back_last(cloud: &Cloud, g: &Group) -> Result<Option<String>, RolloutError> {
    let Some(green) = crate::bluegreen::rolled_back_from(cloud, g).await? else {
        return Ok(None);
    };
    let green_run = lock::describe(cloud, &green)
        .await?
        .tags
        .get(TAG_RUN_ID)
        .and_then(|run| crate::sweep::run_started(run));
    let own_run = g
        .tags
        .get(TAG_RUN_ID)
        .and_then(|run| crate::sweep::run_started(run));
    let later = own_run.is_some_and(|own| green_run.is_none_or(|green| own > green));
    Ok((!later).then_some(green))
}

/// A refresh back to the recorded previous version, watched with the target health gate
/// only (the alarm that caused the rollback must not stop it).
async fn refresh_back(
    cloud: &Cloud,
    g: &Group,
    last: Option<&InstanceRefresh>,
    emit: &Emitter<'_>,
    cancel: &CancellationToken,
) -> Result<RolloutOutcome, RolloutError> {
    let Some((spec, image, previous)) = rollback_spec(cloud, g, last).await? else {
        let retired = g.tags.get(crate::bluegreen::TAG_BLUE_RETIRED);
        let why = match crate::bluegreen::rolled_back_from(cloud, g).await? {
            _ if retired.is_some() => {
                let retired = retired.map(String::as_str).unwrap_or_default();
                let (blue, at) = retired.split_once(' ').unwrap_or((retired, "?"));
                format!(
                    "the blue group {blue} of the last blue/green rollout was retired at {at}, \
                     after its rollback window: there is nothing to switch back to"
                )
            }
            Some(green) => format!(
                "the blue/green rollout to {green} is rolled back already: group {} takes \
                 the traffic again",
                g.name
            ),
            None => format!(
                "no rollout by kiln is recorded on group {} (tag {TAG_PREVIOUS_VERSION}), so \
                 there is no earlier version to return to",
                g.name
            ),
        };
        return nothing(cloud, g, why).await;
    };
    let plan = planned(cloud, &spec, &image).await?;
    // Undone only once every instance is back too: a refresh cancelled or failed half-way
    // leaves the group on the previous version and some instances on the new one.
    if plan.no_change {
        let after = tag_version(g, TAG_VERSION).map_or(String::new(), |v| format!(" to {v}"));
        let why = format!(
            "group {} already runs version {previous}, the version before kiln's last \
             rollout{after}: that rollout is undone",
            g.name
        );
        return nothing(cloud, g, why).await;
    }
    let me = plan.lock_holder(cloud.clock.now());
    if let Some(old) = lock::acquire(cloud, &g.name, &me).await? {
        emit.warn(
            "lock",
            &g.name,
            format!("took over the expired lock of {old}"),
        );
    }
    let result = watch_back(cloud, &plan, previous, emit, cancel).await;
    if let Err(e) = lock::release(cloud, &g.name, &me).await {
        emit.warn("lock", &g.name, format!("could not release the lock: {e}"));
    }
    result
}

/// A rolling spec back to the recorded previous version, its image, and the version;
/// `None` when no previous version is recorded.
async fn rollback_spec(
    cloud: &Cloud,
    g: &Group,
    last: Option<&InstanceRefresh>,
) -> Result<Option<(RolloutSpec, ImageId, i64)>, RolloutError> {
    let fail = |detail: &str| rollback_failed(cloud, &g.name, detail.to_string());
    let Some(previous) = tag_version(g, TAG_PREVIOUS_VERSION) else {
        return Ok(None);
    };
    let template = g
        .launch_template
        .as_ref()
        .and_then(template_ref)
        .ok_or_else(|| fail("the group has no launch template"))?;
    let image = version_image(cloud, &template, previous)
        .await?
        .ok_or_else(|| fail(&format!("version {previous} has no image")))?;
    let spec = RolloutSpec {
        target: g
            .tags
            .get(TAG_TARGET)
            .cloned()
            .unwrap_or_else(|| g.name.clone()),
        group: g.name.clone(),
        launch_template: template,
        target_group: None,
        load_balancer: None,
        strategy: Strategy::Rolling(settings_from(last)),
        gates: Gates::default(),
        timeouts: Timeouts::default(),
        // A rollback restores what ran before; it is never refused for how that was.
        allow_imdsv1: true,
    };
    Ok(Some((spec, image, previous)))
}

async fn watch_back(
    cloud: &Cloud,
    plan: &crate::plan::RolloutPlan,
    previous: i64,
    emit: &Emitter<'_>,
    cancel: &CancellationToken,
) -> Result<RolloutOutcome, RolloutError> {
    let mut timings = Timings::new(&*cloud.clock);
    let refresh = plan.refresh.as_ref().expect("a rolling plan has a refresh");
    let run = RefreshRun {
        cloud,
        plan,
        emit,
        cancel,
        template_id: kiln_cloud::LaunchTemplateId::new(plan.template.id.clone()),
        version: previous,
    };
    let id = run.start(refresh).await?;
    let deadline = cloud.clock.now() + chrono_of(plan.spec.timeouts.rollback);
    let watched = run.watch(&id, deadline).await?;
    timings.lap("rollback");
    let mut out = outcome(plan, previous, status::ROLLED_BACK, 0, timings.list);
    out.strategy = "rollback".into();
    out.previous_version = plan.template.source_version;
    out.on_new_image = on_new_image(cloud, &plan.spec.group, &plan.image).await?;
    match watched {
        Watched::Succeeded => Ok(out),
        Watched::Stopped(reason, _) => {
            let _ = cloud
                .scaling
                .cancel_instance_refresh(&plan.spec.group)
                .await;
            Err(rollback_failed(
                cloud,
                &plan.spec.group,
                format!("the refresh back to version {previous} stopped: {reason} (cancelled)"),
            ))
        }
    }
}

/// The last refresh's preferences, so a rollback replaces at the pace the rollout did.
fn settings_from(last: Option<&InstanceRefresh>) -> RollingSettings {
    let mut s = RollingSettings {
        auto_rollback: false,
        ..RollingSettings::default()
    };
    if let Some(p) = last.and_then(|r| r.preferences.as_ref()) {
        s.min_healthy_percentage = p.min_healthy_percentage;
        s.max_healthy_percentage = p.max_healthy_percentage;
        s.instance_warmup = Some(p.instance_warmup);
        s.protected_instances = Some(p.scale_in_protected_instances);
        s.standby_instances = Some(p.standby_instances);
    }
    s
}

fn tag_version(g: &Group, key: &str) -> Option<i64> {
    g.tags.get(key).and_then(|v| v.parse().ok())
}

fn rollback_failed(cloud: &Cloud, group: &str, detail: String) -> RolloutError {
    RolloutError::RollbackFailed {
        group: group.to_string(),
        region: cloud.region.clone(),
        detail,
        next: "`kiln status` shows the group's versions; roll out the wanted image instead".into(),
    }
}
