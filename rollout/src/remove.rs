//! Removing what a rollout created, for the run's own undo and for the sweep (`kiln gc`).
//!
//! Each removal waits for what AWS does afterwards, with a deadline: a force-deleted group
//! is gone only once its instances are, and a target group a listener stopped using may
//! still count as in use for a moment. "Not found" is success: someone (or a retry) was
//! quicker. Failures come back as text, so that they can be reported without hiding the
//! error that caused the clean-up.

use std::future::Future;
use std::time::Duration;

use kiln_cloud::{
    Arn, Cloud, CloudError, CloudResult, ErrorKind, Group, GroupTemplate, LaunchTemplate,
    LaunchTemplateId, TemplateRef,
};

use crate::refresh::chrono_of;
use crate::run::TAG_PREVIOUS_VERSION;

/// How long a force-deleted group may take to be gone: AWS first terminates its
/// instances (each after its deregistration delay and lifecycle hooks), minutes at most.
pub const GROUP_GONE_BUDGET: Duration = Duration::from_secs(15 * 60);
/// How often a deleted group is looked for: its instances end over minutes.
const GROUP_GONE_POLL: Duration = Duration::from_secs(15);
/// How long ELB may go on counting a target group as in use after the listener or rule
/// that used it changed: seconds in practice, a minute or two under load.
pub const TARGET_GROUP_BUDGET: Duration = Duration::from_secs(2 * 60);
/// How often a target group still in use is tried again.
const TARGET_GROUP_RETRY: Duration = Duration::from_secs(10);
/// How long a throttled call is tried again before the removal is given up (and left
/// to `kiln gc`).
const THROTTLED_BUDGET: Duration = Duration::from_secs(2 * 60);
/// How often a throttled call is tried again.
const THROTTLED_RETRY: Duration = Duration::from_secs(5);

/// One try of a removal.
enum Attempt {
    Done,
    /// Not yet (still in use, still there, throttled): try again, with the reason.
    Again(String),
    Failed(String),
}

/// Tries `attempt` every `every` until it is done, fails, or `budget` (account time)
/// has passed.
async fn until<F, Fut>(
    cloud: &Cloud,
    budget: Duration,
    every: Duration,
    mut attempt: F,
) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    let deadline = cloud.clock.now() + chrono_of(budget);
    loop {
        match attempt().await {
            Attempt::Done => return Ok(()),
            Attempt::Failed(why) => return Err(why),
            Attempt::Again(why) if cloud.clock.now() >= deadline => {
                let budget = humantime::format_duration(budget);
                return Err(format!("{why} (still so after {budget})"));
            }
            Attempt::Again(_) => tokio::time::sleep(every).await,
        }
    }
}

/// A delete call's result as an attempt: gone is done, throttling is tried again.
fn deleted(result: CloudResult<()>, retry_on_conflict: bool) -> Attempt {
    match result {
        Ok(()) => Attempt::Done,
        Err(e) if e.is(ErrorKind::NotFound) => Attempt::Done,
        Err(e) if e.is_transient() || (retry_on_conflict && e.is(ErrorKind::Conflict)) => {
            Attempt::Again(e.to_string())
        }
        Err(e) => Attempt::Failed(e.to_string()),
    }
}

/// Force-deletes a group (its instances with it) and waits until it is gone.
pub(crate) async fn group(cloud: &Cloud, name: &str) -> Result<(), String> {
    until(cloud, THROTTLED_BUDGET, THROTTLED_RETRY, || async {
        // A scaling activity in progress refuses the delete for a moment.
        deleted(cloud.scaling.delete_group(name, true).await, true)
    })
    .await?;
    let names = [name.to_string()];
    until(cloud, GROUP_GONE_BUDGET, GROUP_GONE_POLL, || async {
        match cloud.scaling.describe_groups(&names).await {
            Ok(found) if found.is_empty() => Attempt::Done,
            Ok(_) => Attempt::Again(format!("group {name} is still being deleted")),
            Err(e) if e.is(ErrorKind::NotFound) => Attempt::Done,
            Err(e) => Attempt::Again(e.to_string()),
        }
    })
    .await
}

/// Deletes a target group, trying again while ELB still counts it in use.
pub(crate) async fn target_group(cloud: &Cloud, arn: &Arn) -> Result<(), String> {
    until(cloud, TARGET_GROUP_BUDGET, TARGET_GROUP_RETRY, || async {
        deleted(cloud.load_balancing.delete_target_group(arn).await, true)
    })
    .await
}

pub(crate) async fn rule(cloud: &Cloud, arn: &Arn) -> Result<(), String> {
    until(cloud, THROTTLED_BUDGET, THROTTLED_RETRY, || async {
        deleted(cloud.load_balancing.delete_rule(arn).await, false)
    })
    .await
}

pub(crate) async fn version(
    cloud: &Cloud,
    template: &LaunchTemplateId,
    version: i64,
) -> Result<(), String> {
    let by_id = TemplateRef::Id(template.clone());
    until(cloud, THROTTLED_BUDGET, THROTTLED_RETRY, || async {
        let versions = [version];
        deleted(
            cloud
                .compute
                .delete_launch_template_versions(&by_id, &versions)
                .await,
            false,
        )
    })
    .await
}

/// Takes `arn` out of every listener action that sends it no traffic (weight 0), so
/// that it can be deleted. An action that gives it traffic is left alone.
pub(crate) async fn out_of_idle_listeners(cloud: &Cloud, arn: &Arn) -> Result<(), String> {
    let listeners = crate::bluegreen::listeners_of(cloud, arn)
        .await
        .map_err(|e| e.to_string())?;
    for l in listeners {
        let Some(mut f) = l.default_forward else {
            continue;
        };
        let idle = f
            .target_groups
            .iter()
            .any(|t| &t.target_group_arn == arn && t.weight == 0);
        if !idle || f.target_groups.len() < 2 {
            continue;
        }
        f.target_groups.retain(|t| &t.target_group_arn != arn);
        cloud
            .load_balancing
            .modify_listener_forward(&l.arn, &f)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Whether a group's template reference is `template`.
fn uses_template(t: &GroupTemplate, template: &LaunchTemplate) -> bool {
    t.template_id.as_ref() == Some(&template.id)
        || (t.template_id.is_none() && t.template_name.as_ref() == Some(&template.name))
}

/// The number a group's reference stands for (`$Latest`, `$Default` resolved).
fn number_of(t: &GroupTemplate, template: &LaunchTemplate) -> Option<i64> {
    match t.version.as_str() {
        "$Latest" => Some(template.latest_version),
        "$Default" | "" => Some(template.default_version),
        v => v.parse().ok(),
    }
}

/// Who still needs a version, if anyone: the template's default, a group that launches
/// it, an instance that runs it, a refresh in progress towards it, or a group whose
/// rollback would go back to it. Groups named in `leaving` are about to be deleted
/// and do not count.
pub(crate) async fn version_user(
    cloud: &Cloud,
    template: &LaunchTemplate,
    version: i64,
    groups: &[Group],
    leaving: &[String],
) -> Result<Option<String>, CloudError> {
    if version == template.default_version {
        return Ok(Some(format!("the default version of {}", template.name)));
    }
    let on = |t: &Option<GroupTemplate>| {
        t.as_ref()
            .is_some_and(|t| uses_template(t, template) && number_of(t, template) == Some(version))
    };
    for g in groups.iter().filter(|g| !leaving.contains(&g.name)) {
        let refreshes = cloud.scaling.describe_instance_refreshes(&g.name).await?;
        let undoing = refreshes
            .iter()
            .find(|r| crate::preflight::is_undoing(r.status) && on(&r.desired));
        if let Some(r) = undoing {
            // Said first: the instances on it are going, and the refresh is what to watch.
            let target = g.tags.get(crate::run::TAG_TARGET).unwrap_or(&g.name);
            return Ok(Some(format!(
                "in use until refresh {} of group {} ends: it is {:?}, taking the group's \
                 instances off this version; {} waits for it",
                r.id,
                g.name,
                r.status,
                crate::error::rollback_command(target)
            )));
        }
        if on(&g.launch_template) {
            return Ok(Some(format!("launched by group {}", g.name)));
        }
        let running = g
            .instances
            .iter()
            .filter(|i| !i.lifecycle_state.starts_with("Terminat"));
        if let Some(i) = running.clone().find(|i| on(&i.launch_template)) {
            return Ok(Some(format!(
                "run by instance {} of group {}",
                i.id, g.name
            )));
        }
        let uses = g
            .launch_template
            .as_ref()
            .is_some_and(|t| uses_template(t, template));
        if uses && g.tags.get(TAG_PREVIOUS_VERSION) == Some(&version.to_string()) {
            return Ok(Some(format!(
                "the version a rollback of group {} goes back to",
                g.name
            )));
        }
        let towards = refreshes
            .iter()
            .find(|r| !r.status.is_terminal() && on(&r.desired));
        if let Some(r) = towards {
            return Ok(Some(format!(
                "the target of refresh {} of group {}",
                r.id, g.name
            )));
        }
    }
    Ok(None)
}
