//! The sweep behind `kiln gc` for rollouts: what a killed rollout left in a region,
//! found in the account, and its removal.
//!
//! A rollout killed with SIGKILL, or whose machine was lost, cannot undo itself
//! (PITFALLS 11); and what a blue/green rollout keeps on purpose must end too: the blue
//! group once its rollback window is over, and the green a rollback switched away from
//! (both tagged `kiln:live=false`), with their target groups, once they take no traffic. What blue/green and A/B canaries create carries the run id: green
//! groups and target groups (tag `kiln:role=green`), testers' rules (`kiln:role=preview`),
//! launch template versions (description `kiln <run id>: …`), and the group lock (tag
//! `kiln:lock`, which names its run) that a killed run never released. [`survey`] lists
//! them and changes nothing; [`sweep`] removes them: rules first, then groups (waiting
//! until they are gone), then target groups, then versions, and the locks last, so that
//! no new rollout takes a group before what the dead run left on it is gone.
//!
//! Safety first: a group tagged `kiln:live=true` is never removed, nor the blue group
//! the live green keeps for its rollback window, nor a group that takes traffic or whose
//! target has no live group, nor a target group a listener or a kept rule sends traffic
//! to or a kept group uses, nor a version a group, an instance, a refresh or a rollback
//! needs, nor any resource (or lock) of a run that may still be going ([`RunJudge`]; a
//! rollout holds its group's lock from before it makes anything to its end, so a run no
//! lock names is over).

use std::collections::{BTreeMap, BTreeSet};

pub use kiln_cloud::journal::RunState;
use kiln_cloud::journal::{parse_template_version_id, template_version_id, ResourceKind};
pub use kiln_cloud::sweep::{Found, RunJudge, Survey, SweepReport};
use kiln_cloud::{
    Arn, Cloud, CloudResult, Group, LaunchTemplate, LaunchTemplateId, Rule, Tags, TargetGroup,
    TemplateRef, Timestamp, TAG_ROLE, TAG_RUN_ID,
};

use crate::bluegreen::{ROLE_GREEN, ROLE_PREVIEW, TAG_BLUE_GROUP, TAG_BLUE_UNTIL, TAG_LIVE};
use crate::lock::{holder_of, LOCK_TAG};
use crate::run::TAG_TARGET;

/// The start time in a rollout's run id (`ro-20261203T172112-1a2b`).
pub fn run_started(run_id: &str) -> Option<Timestamp> {
    let stamp = run_id.strip_prefix("ro-")?.split('-').next()?;
    let naive = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S").ok()?;
    Some(naive.and_utc())
}

/// Where a target group gets traffic from.
#[derive(Default)]
struct Traffic {
    /// Target group → (listener or rule, weight) of every action that names it.
    uses: BTreeMap<Arn, Vec<(Arn, i32)>>,
    rules: Vec<Rule>,
}

/// What the region holds that the decisions read.
struct Region {
    name: String,
    groups: Vec<Group>,
    target_groups: Vec<TargetGroup>,
    traffic: Traffic,
    /// The runs some group's lock names: the rollouts that may still be going.
    locked_runs: BTreeSet<String>,
}

fn run_of(tags: &Tags, role: &str) -> Option<String> {
    let run = tags.get(TAG_RUN_ID)?;
    (tags.get(TAG_ROLE).map(String::as_str) == Some(role)).then(|| run.clone())
}

/// Why the resources of `run_id` are kept, if they are. A rollout holds its group's lock
/// from before it creates anything until its very end, so a run no group's lock names
/// is over, whatever the grace period; else the judge decides (its start is in its id).
fn keep_reason(region: &Region, judge: &RunJudge<'_>, run_id: &str) -> Option<String> {
    if !region.locked_runs.contains(run_id) {
        return None;
    }
    judge.keep_reason(run_id, run_started(run_id))
}

/// Lists what rollouts left in the cloud's region; changes nothing.
pub async fn survey(cloud: &Cloud, judge: &RunJudge<'_>) -> CloudResult<Survey> {
    let cloud = &crate::patient::patient(cloud);
    let groups = cloud.scaling.describe_groups(&[]).await?;
    let locked_runs = groups
        .iter()
        .filter_map(|g| holder_of(&g.tags))
        .map(|h| h.run_id)
        .collect();
    let region = Region {
        name: cloud.region.clone(),
        groups,
        target_groups: cloud.load_balancing.describe_target_groups(&[]).await?,
        traffic: traffic(cloud).await?,
        locked_runs,
    };
    let mut survey = Survey {
        region: cloud.region.clone(),
        ..Survey::default()
    };
    survey_rules(&region, judge, &mut survey);
    survey_groups(&region, judge, &mut survey);
    survey_target_groups(&region, judge, &mut survey);
    survey_versions(cloud, &region, judge, &mut survey).await?;
    survey_locks(&region, judge, &mut survey);
    Ok(survey)
}

/// Every listener's default action and every rule, by the target groups they name.
async fn traffic(cloud: &Cloud) -> CloudResult<Traffic> {
    let mut t = Traffic::default();
    for lb in cloud.load_balancing.describe_load_balancers(&[]).await? {
        for l in cloud.load_balancing.describe_listeners(&lb.arn).await? {
            for w in l.default_forward.iter().flat_map(|f| &f.target_groups) {
                let user = (l.arn.clone(), w.weight);
                t.uses
                    .entry(w.target_group_arn.clone())
                    .or_default()
                    .push(user);
            }
            let rules = cloud.load_balancing.describe_rules(&l.arn).await?;
            t.rules
                .extend(rules.into_iter().filter(|r| r.priority != "default"));
        }
    }
    for r in &t.rules {
        for w in r.forward.iter().flat_map(|f| &f.target_groups) {
            let user = (r.arn.clone(), w.weight);
            t.uses
                .entry(w.target_group_arn.clone())
                .or_default()
                .push(user);
        }
    }
    Ok(t)
}

fn listed(survey: &Survey, kind: ResourceKind, id: &str) -> bool {
    survey.remove.iter().any(|f| f.kind == kind && f.id == id)
}

fn survey_rules(region: &Region, judge: &RunJudge<'_>, survey: &mut Survey) {
    for rule in &region.traffic.rules {
        let Some(run_id) = run_of(&rule.tags, ROLE_PREVIEW) else {
            continue;
        };
        let found = Found {
            kind: ResourceKind::ListenerRule,
            id: rule.arn.to_string(),
            region: region.name.clone(),
            reason: format!(
                "testers' rule (priority {}) of a rollout that is over",
                rule.priority
            ),
            run_id,
        };
        let keep = keep_reason(region, judge, &found.run_id);
        survey.place(found, keep);
    }
}

/// Why a target group must stay for its traffic: a listener or a kept rule gives it
/// requests.
fn serving(region: &Region, survey: &Survey, tg: &Arn) -> Option<String> {
    let uses = region.traffic.uses.get(tg)?;
    uses.iter()
        .find(|(user, weight)| {
            let is_rule = region.traffic.rules.iter().any(|r| &r.arn == user);
            let rule_goes = is_rule && listed(survey, ResourceKind::ListenerRule, user.as_str());
            *weight > 0 && !rule_goes
        })
        .map(|(user, weight)| {
            format!("{user} forwards to it (weight {weight}): put the traffic back on blue first")
        })
}

fn is_live(g: &Group) -> Option<bool> {
    g.tags.get(TAG_LIVE).map(|v| v == "true")
}

/// The group that names `g` as its blue (`kiln:blue-group`): the green its switch went to.
fn switched_to<'r>(region: &'r Region, g: &Group) -> Option<&'r Group> {
    region
        .groups
        .iter()
        .find(|o| o.tags.get(TAG_BLUE_GROUP) == Some(&g.name))
}

/// A group the sweep considers: a green group of a run, or a group a blue/green switch
/// or a rollback switched away from (`kiln:live=false`), with why it would go.
fn group_found(region: &Region, g: &Group) -> Option<Found> {
    let green_run = run_of(&g.tags, ROLE_GREEN);
    let switched_away = is_live(g) == Some(false);
    if green_run.is_none() && !switched_away {
        return None;
    }
    let to = switched_to(region, g);
    let reason = match (switched_away, to) {
        (false, _) => "green group of a rollout that never switched to it".to_string(),
        (true, Some(to)) if is_live(to) == Some(true) => format!(
            "blue of {}, retired: its rollback window is over and it takes no traffic",
            to.name
        ),
        (true, _) if g.tags.contains_key(TAG_BLUE_GROUP) => {
            "green group a rollback switched away from: it takes no traffic".to_string()
        }
        (true, _) => {
            "group a blue/green switch left: no live group keeps it for a rollback, and it \
             takes no traffic"
                .to_string()
        }
    };
    // A group switched away from belongs to the run that switched.
    let switching_run = to.and_then(|to| run_of(&to.tags, ROLE_GREEN));
    let run_id = match switched_away {
        true => switching_run.or(green_run),
        false => green_run,
    };
    Some(Found {
        kind: ResourceKind::AutoScalingGroup,
        id: g.name.clone(),
        region: region.name.clone(),
        reason,
        run_id: run_id.unwrap_or_else(|| "-".into()),
    })
}

/// Why a group must stay, if it must: it is live, it is the blue a live green keeps for
/// its rollback window, it takes traffic, its target has no live group (it may be the
/// one serving), or a run it belongs to may still be going.
fn group_keep(
    region: &Region,
    survey: &Survey,
    judge: &RunJudge<'_>,
    g: &Group,
    found: &Found,
) -> Option<String> {
    if is_live(g) == Some(true) {
        return Some("it serves its target (kiln:live=true)".into());
    }
    let to = switched_to(region, g).filter(|to| is_live(to) == Some(true));
    if let Some(to) = to {
        let until = to.tags.get(TAG_BLUE_UNTIL).cloned().unwrap_or_default();
        let open = chrono::DateTime::parse_from_rfc3339(&until).is_ok_and(|u| judge.now < u);
        if open {
            return Some(format!(
                "blue kept by {} for a rollback (window until {until})",
                to.name
            ));
        }
    }
    let serves = g.target_group_arns.iter();
    if let Some(why) = serves.clone().find_map(|tg| serving(region, survey, tg)) {
        return Some(why);
    }
    if is_live(g) == Some(false) && !target_has_live(region, g) {
        return Some("no group of its target is tagged live: it may be the one serving".into());
    }
    let own = run_of(&g.tags, ROLE_GREEN);
    let runs = [Some(found.run_id.clone()), own];
    runs.iter()
        .flatten()
        .filter(|run| run.as_str() != "-")
        .find_map(|run| keep_reason(region, judge, run))
}

/// Whether another group of `g`'s target is tagged live.
fn target_has_live(region: &Region, g: &Group) -> bool {
    let Some(target) = g.tags.get(TAG_TARGET) else {
        return false;
    };
    region.groups.iter().any(|o| {
        o.name != g.name && o.tags.get(TAG_TARGET) == Some(target) && is_live(o) == Some(true)
    })
}

fn survey_groups(region: &Region, judge: &RunJudge<'_>, survey: &mut Survey) {
    for g in &region.groups {
        let Some(found) = group_found(region, g) else {
            continue;
        };
        let keep = group_keep(region, survey, judge, g, &found);
        survey.place(found, keep);
    }
}

fn survey_target_groups(region: &Region, judge: &RunJudge<'_>, survey: &mut Survey) {
    for tg in &region.target_groups {
        let Some(found) = target_group_found(region, survey, tg) else {
            continue;
        };
        let user = region.groups.iter().find(|g| {
            g.target_group_arns.contains(&tg.arn)
                && !listed(survey, ResourceKind::AutoScalingGroup, &g.name)
        });
        let keep = match user {
            Some(g) => Some(format!("attached to group {}, which stays", g.name)),
            None => serving(region, survey, &tg.arn),
        };
        let keep = keep.or_else(|| keep_reason(region, judge, &found.run_id));
        survey.place(found, keep);
    }
}

/// A target group the sweep considers: green's, or the one a group that goes used.
fn target_group_found(region: &Region, survey: &Survey, tg: &TargetGroup) -> Option<Found> {
    let (reason, run_id) = match run_of(&tg.tags, ROLE_GREEN) {
        Some(run) => (
            format!("green target group {} of a rollout that is over", tg.name),
            run,
        ),
        None => {
            let leaving = survey.remove.iter().find(|f| {
                f.kind == ResourceKind::AutoScalingGroup
                    && region
                        .groups
                        .iter()
                        .any(|g| g.name == f.id && g.target_group_arns.contains(&tg.arn))
            })?;
            let reason = format!(
                "target group {} of group {}, which goes",
                tg.name, leaving.id
            );
            (reason, leaving.run_id.clone())
        }
    };
    Some(Found {
        kind: ResourceKind::TargetGroup,
        id: tg.arn.to_string(),
        region: region.name.clone(),
        reason,
        run_id,
    })
}

/// Locks of runs that are over (a run killed with SIGKILL never releases its own); a
/// group about to be removed takes its lock with it.
fn survey_locks(region: &Region, judge: &RunJudge<'_>, survey: &mut Survey) {
    for g in &region.groups {
        let Some(holder) = holder_of(&g.tags) else {
            continue;
        };
        if listed(survey, ResourceKind::AutoScalingGroup, &g.name) {
            continue;
        }
        let found = Found {
            kind: ResourceKind::GroupLock,
            id: g.name.clone(),
            region: region.name.clone(),
            reason: format!(
                "tag {LOCK_TAG} of a run that is over, held by {} (until {})",
                holder.owner,
                holder.expires.to_rfc3339()
            ),
            run_id: holder.run_id,
        };
        let keep = keep_reason(region, judge, &found.run_id);
        survey.place(found, keep);
    }
}

/// The run id in a version description kiln wrote (`kiln ro-…: ami-… from version 2`).
pub fn version_run_id(description: &str) -> Option<&str> {
    let rest = description.strip_prefix("kiln ")?;
    let (run_id, _) = rest.split_once(':')?;
    (run_id.starts_with("ro-") && !run_id.contains(' ')).then_some(run_id)
}

async fn survey_versions(
    cloud: &Cloud,
    region: &Region,
    judge: &RunJudge<'_>,
    survey: &mut Survey,
) -> CloudResult<()> {
    let leaving: Vec<String> = survey
        .remove
        .iter()
        .filter(|f| f.kind == ResourceKind::AutoScalingGroup)
        .map(|f| f.id.clone())
        .collect();
    for template in cloud.compute.describe_launch_templates().await? {
        let by_id = TemplateRef::Id(template.id.clone());
        let versions = cloud
            .compute
            .describe_launch_template_versions(&by_id, &[])
            .await?;
        for v in versions {
            let Some(run_id) = v.description.as_deref().and_then(version_run_id) else {
                continue;
            };
            let found = Found {
                kind: ResourceKind::LaunchTemplateVersion,
                id: template_version_id(template.id.as_str(), v.version),
                region: region.name.clone(),
                run_id: run_id.to_string(),
                reason: format!(
                    "version {} of {}, used by nothing",
                    v.version, template.name
                ),
            };
            let keep = match keep_reason(region, judge, run_id) {
                Some(why) => Some(why),
                None => version_keep(cloud, &template, v.version, region, &leaving).await?,
            };
            survey.place(found, keep);
        }
    }
    Ok(())
}

async fn version_keep(
    cloud: &Cloud,
    template: &LaunchTemplate,
    version: i64,
    region: &Region,
    leaving: &[String],
) -> CloudResult<Option<String>> {
    let user =
        crate::remove::version_user(cloud, template, version, &region.groups, leaving).await?;
    Ok(user.map(|u| format!("it is {u}")))
}

/// Removes what [`survey`] listed: rules, then groups (waiting until they are gone),
/// then target groups (out of any listener action that gives them no traffic first),
/// then versions, each checked again just before. Failures are reported, not fatal.
pub async fn sweep(cloud: &Cloud, survey: &Survey) -> SweepReport {
    let cloud = &crate::patient::patient(cloud);
    let mut report = SweepReport::default();
    let of = |kind| survey.remove.iter().filter(move |f| f.kind == kind);
    for rule in of(ResourceKind::ListenerRule) {
        report.note(rule, crate::remove::rule(cloud, &Arn::new(&rule.id)).await);
    }
    for group in of(ResourceKind::AutoScalingGroup) {
        report.note(group, remove_group(cloud, &group.id).await);
    }
    for tg in of(ResourceKind::TargetGroup) {
        report.note(tg, remove_target_group(cloud, &Arn::new(&tg.id)).await);
    }
    for version in of(ResourceKind::LaunchTemplateVersion) {
        report.note(version, remove_version(cloud, &version.id).await);
    }
    for lock in of(ResourceKind::GroupLock) {
        report.note(lock, release_lock(cloud, &lock.id, &lock.run_id).await);
    }
    report
}

/// Deletes the group's lock tag if it still names `run_id`: a run that took the group
/// since holds a lock of its own, which is not the sweep's to release.
async fn release_lock(cloud: &Cloud, group: &str, run_id: &str) -> Result<(), String> {
    let names = [group.to_string()];
    let groups = cloud.scaling.describe_groups(&names).await;
    let Some(g) = groups.map_err(|e| e.to_string())?.pop() else {
        return Ok(());
    };
    match holder_of(&g.tags) {
        None => Ok(()),
        Some(h) if h.run_id == run_id => cloud
            .scaling
            .delete_group_tags(group, &[LOCK_TAG.to_string()])
            .await
            .map_err(|e| e.to_string()),
        Some(h) => Err(format!("not released: the lock is held by {h} now")),
    }
}

/// A group, unless it became live since the survey; the green that kept it as its blue
/// stops naming it (and says it was retired, for `kiln rollback`).
async fn remove_group(cloud: &Cloud, name: &str) -> Result<(), String> {
    let groups = cloud.scaling.describe_groups(&[]).await;
    let groups = groups.map_err(|e| e.to_string())?;
    if groups
        .iter()
        .any(|g| g.name == name && is_live(g) == Some(true))
    {
        return Err("not removed: it is live now".into());
    }
    crate::remove::group(cloud, name).await?;
    for keeper in groups
        .iter()
        .filter(|g| g.tags.get(TAG_BLUE_GROUP).map(String::as_str) == Some(name))
    {
        match crate::bluegreen::forget_blue(cloud, &keeper.name, name).await {
            // The keeper went too, earlier in this sweep.
            Err(crate::RolloutError::Cloud(e)) if e.is(kiln_cloud::ErrorKind::NotFound) => {}
            Err(e) => {
                return Err(format!(
                    "deleted, but {} still names it as blue: {e}",
                    keeper.name
                ))
            }
            Ok(()) => {}
        }
    }
    Ok(())
}

/// A target group, unless a group still uses it (its removal may have failed).
async fn remove_target_group(cloud: &Cloud, arn: &Arn) -> Result<(), String> {
    let groups = cloud
        .scaling
        .describe_groups(&[])
        .await
        .map_err(|e| e.to_string())?;
    if let Some(g) = groups.iter().find(|g| g.target_group_arns.contains(arn)) {
        return Err(format!("not deleted: group {} still uses it", g.name));
    }
    crate::remove::out_of_idle_listeners(cloud, arn).await?;
    crate::remove::target_group(cloud, arn).await
}

/// A version, unless something needs it now.
async fn remove_version(cloud: &Cloud, id: &str) -> Result<(), String> {
    let Some((template, version)) = parse_template_version_id(id) else {
        return Err(format!("`{id}` is not a template version id"));
    };
    let template = LaunchTemplateId::new(template);
    let needed = async {
        let t = cloud
            .compute
            .describe_launch_template(&TemplateRef::Id(template.clone()))
            .await?;
        let groups = cloud.scaling.describe_groups(&[]).await?;
        crate::remove::version_user(cloud, &t, version, &groups, &[]).await
    };
    match needed.await.map_err(|e| e.to_string())? {
        Some(user) => Err(format!("not deleted: it is {user}")),
        None => crate::remove::version(cloud, &template, version).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_carries_its_start() {
        let at = run_started("ro-20261203T172112-1a2b").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-03T17:21:12+00:00");
        assert!(run_started("bake-20261203T172112Z-1").is_none());
        assert!(run_started("ro-garbage-1").is_none());
    }

    #[test]
    fn a_version_description_names_its_run() {
        let d = "kiln ro-20261203T172112-1a2b: ami-1 from version 2 (poc-web)";
        assert_eq!(version_run_id(d), Some("ro-20261203T172112-1a2b"));
        assert_eq!(version_run_id("hand-made: kiln base"), None);
        assert_eq!(version_run_id("kiln rollout: later"), None);
        assert_eq!(version_run_id("kiln ro-1 two: x"), None);
    }
}
